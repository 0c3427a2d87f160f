#include "lstm_sequence.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "packed_products.h"
#include "step_layout.h"

namespace zoo {

using rnn::ConstRow;
using rnn::ConstRows;
using rnn::RowMatrix;
using rnn::Rows;

// One LSTM step for units [first, first + count) of a block of rows: `gates` (a [rows, 4H]
// block) holds the pre-activations x W + h U without the bias; they are replaced by the
// activated gates (i, f, o sigmoid, c~ tanh), and new_c = f * c + i * c~, new_h = o * tanh(new_c)
// are written for those units. new_c may be c.
template <typename GateRows, typename Bias, typename CellIn, typename CellOut, typename HiddenOut>
void LstmCellStep(GateRows gates, const Bias& bias, int64_t units, int64_t first, int64_t count,
                  const CellIn& c, CellOut&& new_c, HiddenOut&& new_h) {
  const auto gate = [&](int k) { return gates.middleCols(k * units + first, count).array(); };
  // The bias in a pass of its own: inside the activation's expression the broadcast kept Eigen
  // from vectorising it. With all the units, each pass covers whole rows (i and f together), so
  // that small H does not make many short passes.
  if (count == units) {
    gates.array().rowwise() += bias;
    auto input_forget = gates.leftCols(2 * units).array();
    input_forget = input_forget.logistic();
  } else {
    for (int k = 0; k < 4; ++k) gate(k).rowwise() += bias.segment(k * units + first, count);
    for (int k = 0; k < 2; ++k) gate(k) = gate(k).logistic();
  }
  gate(2) = gate(2).tanh();
  gate(3) = gate(3).logistic();
  new_c.array() = gate(1) * c.array() + gate(0) * gate(2);
  new_h.array() = gate(3) * new_c.array().tanh();
}

// LstmCellStep for units [first, first + count) of float rows (c, new_c and new_h hold those
// units only), one pass over each row with Eigen's packet functions, new_h also written to the
// rows of `output` (`output_stride` apart) unless it is null: false where it does not apply
// (count not a multiple of a packet).
template <typename GateRows, typename Bias, typename CellIn, typename CellOut, typename HiddenOut>
bool FusedLstmCellStep(GateRows gates, const Bias& bias, int64_t units, int64_t first,
                       int64_t count, const CellIn& c, CellOut&& new_c, HiddenOut&& new_h,
                       typename GateRows::Scalar* output, int64_t output_stride) {
  using Scalar = typename GateRows::Scalar;
  if constexpr (!std::is_same<Scalar, float>::value) {
    return false;
  } else {
    using namespace rnn::packets;
    if (count % kLanes != 0) return false;
    const float* b = bias.data() + first;
    for (int64_t r = 0; r < gates.rows(); ++r) {
      float* g = gates.data() + r * gates.outerStride() + first;
      const float* c_row = c.data() + r * c.outerStride();
      float* new_c_row = new_c.data() + r * new_c.outerStride();
      float* new_h_row = new_h.data() + r * new_h.outerStride();
      float* output_row = output == nullptr ? nullptr : output + r * output_stride;
      for (int64_t j = 0; j < count; j += kLanes) {
        // Gate k's pre-activation with its bias.
        const auto biased = [&](int k) {
          return padd(Load(g + k * units + j), Load(b + k * units + j));
        };
        const Float i = Sigmoid(biased(0)), f = Sigmoid(biased(1)), candidate = Tanh(biased(2)),
                    o = Sigmoid(biased(3));
        Store(g + j, i);
        Store(g + units + j, f);
        Store(g + 2 * units + j, candidate);
        Store(g + 3 * units + j, o);
        const Float cell = padd(pmul(f, Load(c_row + j)), pmul(i, candidate));
        Store(new_c_row + j, cell);
        const Float hidden = pmul(o, Tanh(cell));
        Store(new_h_row + j, hidden);
        if (output_row != nullptr) Store(output_row + j, hidden);
      }
    }
    return true;
  }
}

// The element-wise part of a backward step for all the units of float rows (`gates` [n, 4H]
// activated, c_prev [n, H], the gradient reaching h, d_h [n, H], and reaching c, dc [n, H],
// all contiguous rows), one pass over each row: writes the pre-activation gradients d_pre
// [n, 4H] (zero in rows that are not `valid`) and replaces dc with the gradient reaching the
// previous step's c in the valid rows. False where it does not apply (units not a multiple of a
// packet); the caller then runs the same arithmetic as Eigen expressions.
template <typename T>
bool FusedLstmCellGradient(const T* gates, const T* c_prev, const T* d_h, T* dc, T* d_pre,
                           int64_t n, int64_t units, const char* valid, bool all_valid) {
  if constexpr (!std::is_same<T, float>::value) {
    return false;
  } else {
    using namespace rnn::packets;
    if (units % kLanes != 0) return false;
    const int64_t width = 4 * units;
    const Float one = Splat(1.0f);
    for (int64_t r = 0; r < n; ++r) {
      float* d_pre_row = d_pre + r * width;
      if (!all_valid && !valid[r]) {
        std::fill_n(d_pre_row, width, 0.0f);
        continue;
      }
      const float* g_row = gates + r * width;
      for (int64_t j = 0; j < units; j += kLanes) {
        const Float i = Load(g_row + j);
        const Float f = Load(g_row + units + j);
        const Float g = Load(g_row + 2 * units + j);
        const Float o = Load(g_row + 3 * units + j);
        const Float c_before = Load(c_prev + r * units + j);
        const Float d_h_value = Load(d_h + r * units + j);
        const Float tanh_c = Tanh(padd(pmul(f, c_before), pmul(i, g)));
        const Float d_c = padd(Load(dc + r * units + j),
                               pmul(pmul(d_h_value, o), psub(one, pmul(tanh_c, tanh_c))));
        Store(d_pre_row + j, pmul(pmul(pmul(d_c, g), i), psub(one, i)));
        Store(d_pre_row + units + j, pmul(pmul(pmul(d_c, c_before), f), psub(one, f)));
        Store(d_pre_row + 2 * units + j, pmul(pmul(d_c, i), psub(one, pmul(g, g))));
        Store(d_pre_row + 3 * units + j, pmul(pmul(pmul(d_h_value, tanh_c), o), psub(one, o)));
        Store(dc + r * units + j, pmul(d_c, f));
      }
    }
    return true;
  }
}

template <typename T>
void LstmSequenceForward(const rnn::Workers& workers, const RnnSizes& sizes,
                         const RnnOptions& options, const T* inputs, const T* initial_h,
                         const T* initial_c, const T* kernel, const T* recurrent_kernel,
                         const T* bias, const int32_t* lengths, T* outputs, T* final_h, T* final_c,
                         T* gates, T* step_inputs, T* c_prev) {
  const int64_t batch = sizes.batch, time = sizes.time, units = sizes.units, input = sizes.input;
  const int64_t width = 4 * units;
  // Multiply-adds per example: what ForEachBatchShard shares out, and so the rows of a block.
  const int64_t work_per_example = time * units * width;
  const int64_t step_width = input + units;
  const ConstRow<T> bias_row(bias, width);
  // One sequence, or a few, split by units (whole panels) rather than by example.
  const int64_t panel = rnn::PackedMatrix<T>::PanelColumns(width);
  const int parts = rnn::UnitParts(workers, batch, units, panel, step_width * width * sizeof(T));
  const auto packing =
      parts > 0 ? rnn::PackedMatrix<T>::Packing::kInPlace
                : rnn::PackedMatrix<T>::PackingFor(
                      rnn::BatchShardRows(workers, batch, work_per_example), step_width * width);
  const rnn::PackedMatrix<T> input_weights(kernel, width, input, width, false, packing);
  const rnn::PackedMatrix<T> recurrent(recurrent_kernel, width, units, width, false, packing);
  const int64_t chunk_rows = rnn::StepChunkRows<T>(width, step_width * width);
  const rnn::StepLayout layout{time, units};
  if (parts > 0) {
    rnn::ShardStepRows<T> step_gates(gates, batch, 0, batch, width);
    if (step_inputs != nullptr) {
      rnn::KeepStepInputs(inputs, batch, time, input, step_width, step_inputs);
    }
    std::copy_n(initial_c, batch * units, final_c);  // c, updated in place
    RowMatrix<T> new_c(batch, units);  // for rows padded at a step, which keep their c
    const Eigen::OuterStride<> state_stride(units);
    rnn::RunSequencesByUnits(
        workers, batch, time, units, panel, parts, options.reverse, options.zero_output_for_mask,
        lengths, initial_h, layout, outputs, step_inputs == nullptr ? nullptr : step_inputs + input,
        step_width, final_h,
        [&](int64_t t, const std::vector<char>& valid, bool all_valid, int64_t first, int64_t count,
            const T* h, T* h_next) {
          rnn::StridedRows<T> c(final_c + first, batch, count, state_stride);
          if (c_prev != nullptr) {
            rnn::StridedRows<T>(c_prev + t * batch * units + first, batch, count, state_stride) = c;
          }
          Rows<T> gate(step_gates.At(t), batch, width);
          for (int k = 0; k < 4; ++k) {
            const int64_t column = k * units + first;
            input_weights.MultiplySumPanels(inputs + t * input, time * input, recurrent, h, units,
                                            batch, gate.data(), width, column / panel,
                                            (column + count) / panel);
          }
          rnn::StridedRows<T> next_h(h_next + first, batch, count, state_stride);
          // Rows padded at this step keep their c: their new one goes aside.
          rnn::StridedRows<T> next_c(all_valid ? c.data() : new_c.data() + first, batch, count,
                                     state_stride);
          if (!FusedLstmCellStep(gate, bias_row, units, first, count, c, next_c, next_h, nullptr,
                                 0)) {
            LstmCellStep(gate, bias_row, units, first, count, c, next_c, next_h);
          }
          if (all_valid) return;
          for (int64_t r = 0; r < batch; ++r) {
            if (valid[r]) {
              c.row(r) = next_c.row(r);
            } else {
              for (int k = 0; k < 4; ++k) gate.row(r).segment(k * units + first, count).setZero();
            }
          }
        });
  } else {
    rnn::ForEachBatchShard(
        workers, batch, work_per_example,
        [&](int64_t first, int64_t end) {
          const int64_t rows = end - first;
          rnn::ShardStepRows<T> shard_gates(gates, batch, first, rows, width);
          rnn::ShardStepRows<T> shard_step_inputs(step_inputs, batch, first, rows, step_width);
          rnn::ShardStepRows<T> shard_c(c_prev, batch, first, rows, units);
          // h in the steps' [x_t, h] rows, c in c_prev.
          const rnn::StepStates<T> h_states(&shard_step_inputs, input, step_width,
                                            final_h + first * units, rows, units, time,
                                            options.reverse);
          const rnn::StepStates<T> c_states(&shard_c, 0, units, final_c + first * units, rows,
                                            units, time, options.reverse);
          h_states.At(0) = ConstRows<T>(initial_h + first * units, rows, units);
          c_states.At(0) = ConstRows<T>(initial_c + first * units, rows, units);
          const Eigen::OuterStride<> state_stride(units), step_stride(step_width);
          // The new states of a step where some rows are padded, before they are committed.
          RowMatrix<T> new_h_block(rows, units), new_c_block(rows, units);
          rnn::StridedRows<T> new_h(new_h_block.data(), rows, units, state_stride);
          rnn::StridedRows<T> new_c(new_c_block.data(), rows, units, state_stride);
          std::vector<char> valid(rows);
          for (int64_t step = 0; step < time; ++step) {
            const int64_t t = rnn::TimeIndex(step, time, options.reverse);
            const bool all_valid = rnn::MarkValidRows(lengths, first, rows, t, &valid);
            // [x_t, h] of each row: the left factor of both weight gradients (one product over all
            // steps), and of this step's pre-activations. The input rows of a step are `time` rows
            // apart in the batch-major inputs.
            T* step_rows = shard_step_inputs.At(t);
            rnn::StridedRows<T>(step_rows, rows, input, step_stride) =
                rnn::ConstStridedRows<T>(inputs + (first * time + t) * input, rows, input,
                                         Eigen::OuterStride<>(time * input));
            const auto h = h_states.At(step), c = c_states.At(step);
            auto next_h = h_states.At(step + 1), next_c = c_states.At(step + 1);
            rnn::StridedRows<T> output(outputs + layout.Offset(step, first), rows, units,
                                       Eigen::OuterStride<>(layout.RowStride()));
            // The whole shard at once; padded rows are put right afterwards.
            Rows<T> gate(shard_gates.At(t), rows, width);
            // x_t * W + h * U in one pass, written where the step's gates then replace them (a
            // product of all steps at once, with its small inner dimension, streamed the whole gate
            // buffer one more time).
            for (int64_t chunk = 0; chunk < rows; chunk += chunk_rows) {
              const int64_t n = std::min(chunk_rows, rows - chunk);
              input_weights.MultiplySum(step_rows + chunk * step_width, step_width, recurrent,
                                        step_rows + chunk * step_width + input, step_width, n,
                                        gate.data() + chunk * width, width);
              // A chunk's h is read by its product only, so the next h may take its place.
              auto cell_out = all_valid ? next_c.middleRows(chunk, n) : new_c.middleRows(chunk, n);
              auto hidden_out =
                  all_valid ? next_h.middleRows(chunk, n) : new_h.middleRows(chunk, n);
              T* output_rows = all_valid ? output.row(chunk).data() : nullptr;
              if (!FusedLstmCellStep(gate.middleRows(chunk, n), bias_row, units, 0, units,
                                     c.middleRows(chunk, n), cell_out, hidden_out, output_rows,
                                     output.outerStride())) {
                LstmCellStep(gate.middleRows(chunk, n), bias_row, units, 0, units,
                             c.middleRows(chunk, n), cell_out, hidden_out);
                if (all_valid) output.middleRows(chunk, n) = hidden_out;
              }
            }
            if (all_valid) continue;
            rnn::CommitPartlyValidStep(
                valid, gate, output, step, options.zero_output_for_mask, layout,
                [&](int64_t r) {
                  next_c.row(r) = new_c.row(r);
                  next_h.row(r) = new_h.row(r);
                  output.row(r) = new_h.row(r);
                },
                [&](int64_t r) {
                  next_c.row(r) = c.row(r);
                  next_h.row(r) = h.row(r);
                });
          }
        },
        rnn::PrepareAll(input_weights, recurrent));
  }
}

template <typename T>
void LstmSequenceBackward(const rnn::Workers& workers, const RnnSizes& sizes,
                          const RnnOptions& options, const T* kernel, const T* recurrent_kernel,
                          const int32_t* lengths, const T* gates, const T* c_prev,
                          const T* step_inputs, const T* d_outputs, const T* d_final_h,
                          const T* d_final_c, T* d_inputs, T* d_initial_h, T* d_initial_c,
                          T* pre_activation_grads, T* d_weights, T* d_bias) {
  const int64_t batch = sizes.batch, time = sizes.time, units = sizes.units, input = sizes.input;
  const int64_t width = 4 * units;
  // Multiply-adds per example: what ForEachBatchShard shares out, and so the rows of a block.
  const int64_t work_per_example = time * units * width;
  const int64_t chunk_rows = rnn::StepChunkRows<T>(width, (units + input) * width);
  const auto packing = rnn::PackedMatrix<T>::PackingFor(
      std::min(chunk_rows, rnn::BatchShardRows(workers, batch, work_per_example)),
      (units + input) * width);
  const rnn::TransposedWeights<T> weights_transposed(recurrent_kernel, units, kernel, input, width,
                                                     packing);
  const rnn::StepLayout layout{time, units};
  const int64_t step_width = input + units;
  rnn::GradientSums<T> sums(d_weights != nullptr,
                            {{d_weights, step_width * width}, {d_bias, width}});

  rnn::ForEachBatchShard(
      workers, batch, work_per_example,
      [&](int64_t first, int64_t end) {
        const int64_t rows = end - first;
        const int64_t block_rows = std::min(chunk_rows, rows);
        auto shard_sums = sums.ForShard({block_rows * width});
        RowMatrix<T> dh = Eigen::Map<const RowMatrix<T>>(d_final_h + first * units, rows, units);
        RowMatrix<T> dc = Eigen::Map<const RowMatrix<T>>(d_final_c + first * units, rows, units);
        // Gradient reaching a padded step's output, which is the previous step's output.
        rnn::CarriedGradient<T> carried(rows, units);
        RowMatrix<T> d_h_total(rows, units), tanh_c(rows, units), d_c_total(rows, units);
        RowMatrix<T> through_recurrence(rows, units);
        Eigen::Matrix<T, Eigen::Dynamic, 1> product_scratch(
            weights_transposed.ScratchElements(block_rows));
        std::vector<char> valid(rows);
        for (int64_t step = time - 1; step >= 0; --step) {
          const int64_t t = rnn::TimeIndex(step, time, options.reverse);
          const bool all_valid = rnn::MarkValidRows(lengths, first, rows, t, &valid);
          const int64_t cell = t * batch + first;
          rnn::GradientReachingState(d_outputs, layout, step, first, valid, all_valid,
                                     options.zero_output_for_mask, dh, &carried, &d_h_total);
          for (int64_t chunk = 0; chunk < rows; chunk += chunk_rows) {
            const int64_t n = std::min(chunk_rows, rows - chunk);
            const T* gate_rows = gates + (cell + chunk) * width;
            const T* c_before_rows = c_prev + (cell + chunk) * units;
            Rows<T> d_pre(shard_sums.Block(0, pre_activation_grads + (cell + chunk) * width), n,
                          width);
            if (!FusedLstmCellGradient(gate_rows, c_before_rows, d_h_total.data() + chunk * units,
                                       dc.data() + chunk * units, d_pre.data(), n, units,
                                       valid.data() + chunk, all_valid)) {
              const ConstRows<T> gate(gate_rows, n, width);
              const auto i = gate.leftCols(units).array();
              const auto f = gate.middleCols(units, units).array();
              const auto g = gate.middleCols(2 * units, units).array();
              const auto o = gate.rightCols(units).array();
              const auto c_before = ConstRows<T>(c_before_rows, n, units).array();
              auto tanh_c_rows = tanh_c.middleRows(chunk, n).array();
              auto d_c_rows = d_c_total.middleRows(chunk, n).array();
              const auto d_h_rows = d_h_total.middleRows(chunk, n).array();
              auto dc_rows = dc.middleRows(chunk, n).array();
              tanh_c_rows = (f * c_before + i * g).tanh();
              d_c_rows = dc_rows + d_h_rows * o * (T(1) - tanh_c_rows * tanh_c_rows);
              d_pre.leftCols(units).array() = d_c_rows * g * i * (T(1) - i);
              d_pre.middleCols(units, units).array() = d_c_rows * c_before * f * (T(1) - f);
              d_pre.middleCols(2 * units, units).array() = d_c_rows * i * (T(1) - g * g);
              d_pre.rightCols(units).array() = d_h_rows * tanh_c_rows * o * (T(1) - o);
              if (all_valid) {
                dc_rows = d_c_rows * f;
              } else {
                for (int64_t r = 0; r < n; ++r) {
                  if (valid[chunk + r]) {
                    dc_rows.row(r) = d_c_rows.row(r) * f.row(r);
                  } else {
                    d_pre.row(r).setZero();
                  }
                }
              }
            }
            // d x_t = d_pre * W^T while d_pre is in cache, straight into the batch-major d_inputs.
            weights_transposed.Multiply(d_pre.data(), width, n,
                                        through_recurrence.data() + chunk * units, units,
                                        d_inputs + ((first + chunk) * time + t) * input,
                                        time * input, product_scratch.data());
            shard_sums.AddProduct(0, 0, width, step_inputs + (cell + chunk) * step_width,
                                  step_width, step_width, d_pre.data(), width, n, width);
            shard_sums.AddColumnSums(1, 0, d_pre.data(), width, n, width);
          }
          rnn::TakeValidRows(all_valid, valid, &through_recurrence, &dh);
        }
        Eigen::Map<RowMatrix<T>>(d_initial_h + first * units, rows, units) = dh;
        Eigen::Map<RowMatrix<T>>(d_initial_c + first * units, rows, units) = dc;
        sums.Take(shard_sums);
      },
      rnn::PrepareAll(weights_transposed));

  if (!sums.enabled()) {
    rnn::ParallelColumnSums(workers, pre_activation_grads, batch * time, width, d_bias);
  }
}

#define ZOO_INSTANTIATE_LSTM(T)                                                                    \
  template void LstmSequenceForward<T>(const rnn::Workers&, const RnnSizes&, const RnnOptions&,    \
                                       const T*, const T*, const T*, const T*, const T*, const T*, \
                                       const int32_t*, T*, T*, T*, T*, T*, T*);                    \
  template void LstmSequenceBackward<T>(                                                           \
      const rnn::Workers&, const RnnSizes&, const RnnOptions&, const T*, const T*, const int32_t*, \
      const T*, const T*, const T*, const T*, const T*, const T*, T*, T*, T*, T*, T*, T*);
ZOO_INSTANTIATE_LSTM(float)
ZOO_INSTANTIATE_LSTM(double)
#undef ZOO_INSTANTIATE_LSTM

}  // namespace zoo
