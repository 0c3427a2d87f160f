// The sequence driver of the fused recurrent kernels: the loops over time, batch and units that
// every recurrent layer shares, around each cell's step.
//
// Forward (RunForward). A cell's step computes the next states of a block of rows from x_t and
// the states the step starts from; the driver does the rest:
// - the split of the work: a batch split (ForEachBatchShard), where each thread runs the whole
//   time loop of a block of examples, taking its rows through each step in chunks; or, for a few
//   rows of many units, a split by units (ForEachStepInParts), where each thread computes a range
//   of units of every row and the threads meet after each step;
// - the direction: step `step` of the processing order is input time t = TimeIndex(step), and the
//   outputs are written in processing order (Keras's go_backwards);
// - the kept activations: the cell's buffers [time, batch, width] for the gradient, or, when the
//   op keeps nothing (inference), one block of scratch rows that every step of a shard reuses;
//   the step's inputs x_t copied into a buffer that keeps [x_t, h] records;
// - the states: in a batch split each state lives where the step keeps it for the gradient (a
//   StateSlot of a kept buffer), so that the cell writes the next state straight where the next
//   step reads it and no copy follows; in a split by units the states are double-buffered (a part
//   may still read h while another writes the next h) and copied into their slots;
// - padding (Keras's masking, step_layout.h): at a step where some rows are padded the cell writes
//   the next states aside; the driver then takes them for the valid rows, carries the states of
//   the padded ones, clears what those rows kept (the buffers marked `cleared_when_padded`) and
//   gives them the padding rule's output.
// Backward (RunBackward): the batch split in reverse time; the driver forms the gradient reaching
// the states after each step (the outputs', the recurrence's, and what padded steps carry back)
// and the cell's step turns it into the gradients reaching the states before the step, d x_t and
// its share of the weight gradients; the driver keeps the previous gradient for padded rows.
//
// The cell interface does not assume which states a layer has (Cell::kStates of them, each
// [batch, units], state 0 being the output), how its step gets from x_t and the states to the
// next states (dense products, element-wise recurrences, block-diagonal heads), or how many gate
// blocks it keeps (Cell::kKept buffers of any widths). A layer whose step needs no product of x_t
// by weights at every step (an element-wise recurrence h_t = a_t * h_{t-1} + b_t with a_t, b_t
// from x_t only) takes x_t as the projections that its wrapper formed in one large product. A
// forward cell provides:
//   using Scalar; static constexpr int kStates, kKept;
//   const Split& split() const;          // how its work is shared out
//   SharedSetup Setup() const;           // work before a batch split's blocks (its weights' split)
//   struct Scratch { Scratch(const Cell&, int64_t rows); };  // one thread's buffers for `rows`
//   void Step(const ForwardStep<...>&, Scratch*) const;
// and a backward cell:
//   using Scalar; static constexpr int kStates;
//   const Split& split() const; SharedSetup Setup() const;
//   class Shard { Shard(Cell*, int64_t rows); void Step(const BackwardStep<...>&); void Finish();
//   }; void Finish(const Workers&);          // after every shard
//
// Invariants: a step reads the states of a row before it writes that row's next states (they may
// be the same memory: nothing kept and all rows valid); in a split by units a step writes only the
// columns of its units, in the next states and in each kept buffer, whose widths are then whole
// blocks of `units` columns (unit j of each block belonging to unit j); buffers are owned by the
// caller and outlive the call.
#ifndef ZOO_OPS_KERNELS_SEQUENCE_DRIVER_H_
#define ZOO_OPS_KERNELS_SEQUENCE_DRIVER_H_

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <vector>

#include "packet_math.h"
#include "step_layout.h"
#include "workers.h"

namespace zoo {

// Sizes of a sequence op: inputs [batch, time, input], states [batch, units].
struct RnnSizes {
  int64_t batch;
  int64_t time;
  int64_t input;
  int64_t units;
};

// Keras's direction and padding rule: `reverse` processes t = T-1 .. 0 (go_backwards);
// zero_output_for_mask gives padded steps a zero output instead of the previous one.
struct RnnOptions {
  bool reverse;
  bool zero_output_for_mask;
};

namespace rnn {

// How a sequence op shares its work out.
struct Split {
  // Multiply-adds of one example's whole sequence: how many blocks a batch split makes.
  int64_t work_per_example;
  // More than 0: a forward split by units into this many ranges, each a multiple of
  // `unit_multiple` units; 0: a batch split.
  int unit_parts = 0;
  int64_t unit_multiple = 1;
  // Rows a step of a batch split takes at a time.
  int64_t chunk_rows = std::numeric_limits<int64_t>::max();
};

// Rows of values `stride` apart, from `data` (null where there are none).
template <typename T>
struct RowsAt {
  T* data;
  int64_t stride;
};

// Columns [first, first + count) of `rows` rows at `at`, as an Eigen view.
template <typename T>
StridedRows<T> Columns(const RowsAt<T>& at, int64_t rows, int64_t first, int64_t count) {
  return StridedRows<T>(at.data + first, rows, count, Eigen::OuterStride<>(at.stride));
}
template <typename T>
ConstStridedRows<T> Columns(const RowsAt<const T>& at, int64_t rows, int64_t first, int64_t count) {
  return ConstStridedRows<T>(at.data + first, rows, count, Eigen::OuterStride<>(at.stride));
}

// A buffer that a forward pass keeps for its gradient, time-major [time, batch, width] and
// indexed by input time t; `data` null when the op keeps nothing.
template <typename T>
struct KeptBuffer {
  T* data;
  int64_t width;
  // Cleared in the rows that a step pads, so that the backward pass adds nothing from them.
  bool cleared_when_padded = false;
  // Columns [0, input) hold the step's inputs x_t, copied there by the driver (a [x_t, h] record,
  // the left factor of the weight gradients).
  bool starts_with_inputs = false;
};

// Where a state lives from step to step: columns [offset, offset + units) of kept buffer `kept`.
struct StateSlot {
  int kept;
  int64_t offset;
};

// The tensors of a forward pass.
template <typename T, int kStates, int kKept>
struct ForwardBuffers {
  const T* inputs;                        // [batch, time, input]
  const int32_t* lengths;                 // [batch], each in [0, time]
  T* outputs;                             // [batch, time, units], in processing order
  std::array<const T*, kStates> initial;  // [batch, units] each
  std::array<T*, kStates> final;          // [batch, units] each
  std::array<KeptBuffer<T>, kKept> kept;
  std::array<StateSlot, kStates> slots;
};

// One call of a forward cell's step: rows `rows` of time index t, units [first, first + count).
// All row pointers are at column 0: the cell reads every unit of the states and writes its units
// of the next states, of its kept rows and of the output.
template <typename T, int kStates, int kKept>
struct ForwardStep {
  int64_t t, rows, first, count;
  RowsAt<const T> x;                           // x_t [rows, input]
  std::array<RowsAt<const T>, kStates> state;  // the states the step starts from
  std::array<RowsAt<T>, kStates> next;         // where the next states go
  std::array<T*, kKept> kept;                  // the step's kept rows, [rows, width] each
  RowsAt<T> output;                            // the next state 0 too, unless data is null
};

// One call of a backward cell's step: rows [row, row + rows) of the batch at time index t.
template <typename T, int kStates>
struct BackwardStep {
  int64_t t, row, rows;
  const char* valid;  // valid[r]: row + r is inside its sequence at t
  bool all_valid;
  // The gradients reaching the states after the step, [rows, units] contiguous (state 0's with
  // the output's); the cell writes those reaching the states the step started from into
  // `d_previous`, in the rows inside their sequence.
  std::array<const T*, kStates> d_state;
  std::array<T*, kStates> d_previous;
  RowsAt<T> d_inputs;  // d x_t [rows, input]
};

namespace driver {

// A forward pass over blocks of whole sequences.
template <typename Cell, typename T = typename Cell::Scalar>
void RunByBatch(const Workers& workers, const RnnSizes& sizes, const RnnOptions& options,
                const ForwardBuffers<T, Cell::kStates, Cell::kKept>& buffers, const Cell& cell) {
  constexpr int kStates = Cell::kStates, kKept = Cell::kKept;
  const int64_t batch = sizes.batch, time = sizes.time, input = sizes.input, units = sizes.units;
  const Split& split = cell.split();
  const StepLayout layout{time, units};
  // The kept buffer holding the steps' inputs, if any.
  int inputs_kept = -1;
  for (int k = 0; k < kKept; ++k) {
    if (buffers.kept[k].starts_with_inputs) inputs_kept = k;
  }
  ForEachBatchShard(
      workers, batch, split.work_per_example,
      [&](int64_t first, int64_t end) {
        const int64_t rows = end - first;
        const int64_t chunk_rows = std::min(split.chunk_rows, rows);
        typename Cell::Scratch scratch(cell, chunk_rows);
        std::vector<ShardStepRows<T>> kept;
        kept.reserve(kKept);
        for (const KeptBuffer<T>& buffer : buffers.kept) {
          kept.emplace_back(buffer.data, batch, first, rows, buffer.width);
        }
        std::vector<StepStates<T>> states;
        states.reserve(kStates);
        // The next states of a step where some rows are padded, before they are committed.
        std::array<RowMatrix<T>, kStates> new_states;
        for (int s = 0; s < kStates; ++s) {
          const StateSlot& slot = buffers.slots[s];
          states.emplace_back(&kept[slot.kept], slot.offset, buffers.kept[slot.kept].width,
                              buffers.final[s] + first * units, rows, units, time, options.reverse);
          states[s].At(0) = ConstRows<T>(buffers.initial[s] + first * units, rows, units);
          new_states[s].resize(rows, units);
        }
        std::vector<char> valid(rows);
        for (int64_t step = 0; step < time; ++step) {
          const int64_t t = TimeIndex(step, time, options.reverse);
          const bool all_valid = MarkValidRows(buffers.lengths, first, rows, t, &valid);
          // x_t of the shard's rows: `time` rows apart in the batch-major inputs, or copied into
          // the step's [x_t, h] records, where the cell then reads them.
          RowsAt<const T> x{buffers.inputs + (first * time + t) * input, time * input};
          if (inputs_kept >= 0) {
            T* records = kept[inputs_kept].At(t);
            const int64_t width = buffers.kept[inputs_kept].width;
            StridedRows<T>(records, rows, input, Eigen::OuterStride<>(width)) =
                ConstStridedRows<T>(x.data, rows, input, Eigen::OuterStride<>(x.stride));
            x = {records, width};
          }
          T* const output = buffers.outputs + layout.Offset(step, first);
          ForwardStep<T, kStates, kKept> call;
          call.t = t;
          call.first = 0;
          call.count = units;
          for (int64_t chunk = 0; chunk < rows; chunk += chunk_rows) {
            call.rows = std::min(chunk_rows, rows - chunk);
            call.x = {x.data + chunk * x.stride, x.stride};
            for (int s = 0; s < kStates; ++s) {
              const StridedRows<T> from = states[s].At(step);
              call.state[s] = {from.data() + chunk * from.outerStride(), from.outerStride()};
              // Rows that a step pads keep their state: the next states go aside until committed.
              StridedRows<T> to = states[s].At(step + 1);
              call.next[s] = all_valid
                                 ? RowsAt<T>{to.data() + chunk * to.outerStride(), to.outerStride()}
                                 : RowsAt<T>{new_states[s].data() + chunk * units, units};
            }
            for (int k = 0; k < kKept; ++k)
              call.kept[k] = kept[k].At(t) + chunk * buffers.kept[k].width;
            call.output = all_valid
                              ? RowsAt<T>{output + chunk * layout.RowStride(), layout.RowStride()}
                              : RowsAt<T>{nullptr, 0};
            cell.Step(call, &scratch);
          }
          if (all_valid) continue;
          for (int64_t r = 0; r < rows; ++r) {
            T* output_row = output + r * layout.RowStride();
            if (valid[r]) {
              for (int s = 0; s < kStates; ++s)
                states[s].At(step + 1).row(r) = new_states[s].row(r);
              std::copy_n(new_states[0].data() + r * units, units, output_row);
              continue;
            }
            for (int s = 0; s < kStates; ++s)
              states[s].At(step + 1).row(r) = states[s].At(step).row(r);
            for (int k = 0; k < kKept; ++k) {
              const int64_t width = buffers.kept[k].width;
              if (buffers.kept[k].cleared_when_padded)
                std::fill_n(kept[k].At(t) + r * width, width, T(0));
            }
            PadOutputRow(output_row, 0, units, step, options.zero_output_for_mask, layout);
          }
        }
      },
      cell.Setup());
}

// A forward pass with the units split into ranges that meet after every step.
template <typename Cell, typename T = typename Cell::Scalar>
void RunByUnits(const Workers& workers, const RnnSizes& sizes, const RnnOptions& options,
                const ForwardBuffers<T, Cell::kStates, Cell::kKept>& buffers, const Cell& cell) {
  constexpr int kStates = Cell::kStates, kKept = Cell::kKept;
  const int64_t batch = sizes.batch, time = sizes.time, input = sizes.input, units = sizes.units;
  const int parts = cell.split().unit_parts;
  const int64_t blocks = units / cell.split().unit_multiple;
  const StepLayout layout{time, units};
  const int64_t state_values = batch * units;
  // State s of step `step` at (2 * s + step % 2) * state_values.
  std::vector<T> state_buffers(2 * kStates * state_values);
  for (int s = 0; s < kStates; ++s) {
    std::copy_n(buffers.initial[s], state_values, state_buffers.data() + 2 * s * state_values);
  }
  const auto state_at = [&](int s, int64_t step) {
    return state_buffers.data() + (2 * s + step % 2) * state_values;
  };
  std::vector<ShardStepRows<T>> kept;
  kept.reserve(kKept);
  for (const KeptBuffer<T>& buffer : buffers.kept) {
    kept.emplace_back(buffer.data, batch, 0, batch, buffer.width);
    // The products read x_t from the inputs; the records get them all at once.
    if (buffer.starts_with_inputs && buffer.data != nullptr) {
      KeepStepInputs(buffers.inputs, batch, time, input, buffer.width, buffer.data);
    }
  }
  // Each part writes its own columns of the scratch.
  typename Cell::Scratch scratch(cell, batch);
  std::vector<std::vector<char>> valid_by_part(parts, std::vector<char>(batch));
  ForEachStepInParts(workers, time, parts, [&](int64_t step, int part) {
    const int64_t first = part * blocks / parts * cell.split().unit_multiple;
    const int64_t count = (part + 1) * blocks / parts * cell.split().unit_multiple - first;
    const int64_t t = TimeIndex(step, time, options.reverse);
    std::vector<char>& valid = valid_by_part[part];
    const bool all_valid = MarkValidRows(buffers.lengths, 0, batch, t, &valid);
    T* const output = buffers.outputs + layout.Offset(step, 0);
    ForwardStep<T, kStates, kKept> call;
    call.t = t;
    call.rows = batch;
    call.first = first;
    call.count = count;
    call.x = {buffers.inputs + t * input, time * input};
    for (int s = 0; s < kStates; ++s) {
      call.state[s] = {state_at(s, step), units};
      call.next[s] = {state_at(s, step + 1), units};
      // The state the step starts from, where the gradient finds it.
      const StateSlot& slot = buffers.slots[s];
      if (buffers.kept[slot.kept].data == nullptr) continue;
      const int64_t width = buffers.kept[slot.kept].width;
      for (int64_t r = 0; r < batch; ++r) {
        std::copy_n(state_at(s, step) + r * units + first, count,
                    kept[slot.kept].At(t) + r * width + slot.offset + first);
      }
    }
    for (int k = 0; k < kKept; ++k) call.kept[k] = kept[k].At(t);
    call.output = all_valid ? RowsAt<T>{output, layout.RowStride()} : RowsAt<T>{nullptr, 0};
    cell.Step(call, &scratch);
    if (all_valid) return;
    for (int64_t r = 0; r < batch; ++r) {
      T* output_row = output + r * layout.RowStride();
      if (valid[r]) {
        std::copy_n(state_at(0, step + 1) + r * units + first, count, output_row + first);
        continue;
      }
      for (int s = 0; s < kStates; ++s) {
        std::copy_n(state_at(s, step) + r * units + first, count,
                    state_at(s, step + 1) + r * units + first);
      }
      for (int k = 0; k < kKept; ++k) {
        if (!buffers.kept[k].cleared_when_padded) continue;
        const int64_t width = buffers.kept[k].width;
        for (int64_t block = 0; block < width; block += units) {
          std::fill_n(kept[k].At(t) + r * width + block + first, count, T(0));
        }
      }
      PadOutputRow(output_row, first, count, step, options.zero_output_for_mask, layout);
    }
  });
  for (int s = 0; s < kStates; ++s) {
    std::copy_n(state_at(s, time), state_values, buffers.final[s]);
  }
}

}  // namespace driver

// Runs a forward pass of `cell` over the sequences of `buffers` (see the top of this file).
template <typename Cell, typename T = typename Cell::Scalar>
void RunForward(const Workers& workers, const RnnSizes& sizes, const RnnOptions& options,
                const ForwardBuffers<T, Cell::kStates, Cell::kKept>& buffers, const Cell& cell) {
  if (cell.split().unit_parts > 0) {
    driver::RunByUnits(workers, sizes, options, buffers, cell);
  } else {
    driver::RunByBatch(workers, sizes, options, buffers, cell);
  }
}

// Runs the backward pass of `cell`, given the gradients of the outputs [batch, time, units] and
// of the final states; writes those of the initial states and d_inputs [batch, time, input].
template <typename Cell, typename T = typename Cell::Scalar>
void RunBackward(const Workers& workers, const RnnSizes& sizes, const RnnOptions& options,
                 const int32_t* lengths, const T* d_outputs,
                 const std::array<const T*, Cell::kStates>& d_final,
                 const std::array<T*, Cell::kStates>& d_initial, T* d_inputs, Cell* cell) {
  constexpr int kStates = Cell::kStates;
  const int64_t time = sizes.time, input = sizes.input, units = sizes.units;
  const Split& split = cell->split();
  const StepLayout layout{time, units};
  ForEachBatchShard(
      workers, sizes.batch, split.work_per_example,
      [&](int64_t first, int64_t end) {
        const int64_t rows = end - first;
        const int64_t chunk_rows = std::min(split.chunk_rows, rows);
        typename Cell::Shard shard(cell, chunk_rows);
        // The gradients reaching the states after the step, and before it.
        std::array<RowMatrix<T>, kStates> d_state, d_previous;
        for (int s = 0; s < kStates; ++s) {
          d_state[s] = ConstRows<T>(d_final[s] + first * units, rows, units);
          d_previous[s].resize(rows, units);
        }
        // Gradient reaching a padded step's output, which is the previous step's output.
        CarriedGradient<T> carried(rows, units);
        RowMatrix<T> d_output_state(rows, units);
        std::vector<char> valid(rows);
        BackwardStep<T, kStates> call;
        for (int64_t step = time - 1; step >= 0; --step) {
          const int64_t t = TimeIndex(step, time, options.reverse);
          call.t = t;
          call.all_valid = MarkValidRows(lengths, first, rows, t, &valid);
          GradientReachingState(d_outputs, layout, step, first, valid, call.all_valid,
                                options.zero_output_for_mask, d_state[0], &carried,
                                &d_output_state);
          for (int64_t chunk = 0; chunk < rows; chunk += chunk_rows) {
            call.row = first + chunk;
            call.rows = std::min(chunk_rows, rows - chunk);
            call.valid = valid.data() + chunk;
            for (int s = 0; s < kStates; ++s) {
              call.d_state[s] = (s == 0 ? d_output_state : d_state[s]).data() + chunk * units;
              call.d_previous[s] = d_previous[s].data() + chunk * units;
            }
            call.d_inputs = {d_inputs + (call.row * time + t) * input, time * input};
            shard.Step(call);
          }
          for (int s = 0; s < kStates; ++s) {
            TakeValidRows(call.all_valid, valid, &d_previous[s], &d_state[s]);
          }
        }
        for (int s = 0; s < kStates; ++s) {
          Eigen::Map<RowMatrix<T>>(d_initial[s] + first * units, rows, units) = d_state[s];
        }
        shard.Finish();
      },
      cell->Setup());
  cell->Finish(workers);
}

}  // namespace rnn
}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_SEQUENCE_DRIVER_H_
