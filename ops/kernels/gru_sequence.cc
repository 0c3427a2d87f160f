#include "gru_sequence.h"

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

// The update and reset gates of units [first, first + count) of a block of rows: z and r =
// sigmoid(x W + h U + biases), from the products x W and h U (without biases) into `gates`.
template <typename GateRows, typename Product, typename InputBias, typename RecurrentBias>
void GruUpdateResetStep(GateRows gates, const Product& x, const Product& from_h,
                        const InputBias& input_bias, const RecurrentBias& recurrent_bias,
                        int64_t units, int64_t first, int64_t count) {
  // Biases broadcast in passes of their own: inside the activation's expression the broadcast
  // kept Eigen from vectorising it. With all the units, z and r are one block of whole rows.
  const int gates_per_pass = count == units ? 2 : 1;
  for (int k = 0; k < 2; k += gates_per_pass) {
    const int64_t column = k * units + first, columns = gates_per_pass * count;
    auto block = gates.middleCols(column, columns).array();
    block = x.middleCols(column, columns).array() + from_h.middleCols(column, columns).array();
    block.rowwise() += input_bias.segment(column, columns);
    block.rowwise() += recurrent_bias.segment(column, columns);
    block = block.logistic();
  }
}

// The rest of a reset_after GRU step for units [first, first + count), after
// GruUpdateResetStep: the recurrent candidate h U_h + b_rec_h (kept in the gates' last block for
// the backward pass), h~ = tanh(x W_h + b_in_h + r * that) and new_h = z * h + (1 - z) * h~.
template <typename GateRows, typename Product, typename InputBias, typename RecurrentBias,
          typename Hidden, typename HiddenOut>
void GruResetAfterStep(GateRows gates, const Product& x, const Product& from_h,
                       const InputBias& input_bias, const RecurrentBias& recurrent_bias,
                       int64_t units, int64_t first, int64_t count, const Hidden& h,
                       HiddenOut&& new_h) {
  using Scalar = typename Hidden::Scalar;
  const auto block = [&](int k) { return gates.middleCols(k * units + first, count).array(); };
  const int64_t column = 2 * units + first;
  auto recurrent_candidate = block(3);
  recurrent_candidate = from_h.middleCols(column, count).array();
  recurrent_candidate.rowwise() += recurrent_bias.segment(column, count);
  auto candidate = block(2);
  candidate = x.middleCols(column, count).array() + block(1) * recurrent_candidate;
  candidate.rowwise() += input_bias.segment(column, count);
  candidate = candidate.tanh();
  new_h.array() = block(0) * h.array() + (Scalar(1) - block(0)) * candidate;
}

// GruUpdateResetStep and GruResetAfterStep for units [first, first + count) of float rows (h
// and new_h hold those units only), one pass over each row with Eigen's packet functions, new_h
// also written to the rows of `output` (`output_stride` apart) unless it is null: false where
// it does not apply (count not a multiple of a packet).
template <typename GateRows, typename Product, typename InputBias, typename RecurrentBias,
          typename Hidden, typename HiddenOut>
bool FusedGruResetAfterStep(GateRows gates, const Product& x, const Product& from_h,
                            const InputBias& input_bias, const RecurrentBias& recurrent_bias,
                            int64_t units, int64_t first, int64_t count, const Hidden& h,
                            HiddenOut&& new_h, typename Hidden::Scalar* output,
                            int64_t output_stride) {
  using Scalar = typename Hidden::Scalar;
  if constexpr (!std::is_same<Scalar, float>::value) {
    return false;
  } else {
    using namespace rnn::packets;
    if (count % kLanes != 0) return false;
    const Float one = Splat(1.0f);
    const float* input_b = input_bias.data();
    const float* recurrent_b = recurrent_bias.data();
    // x W + h U + both biases of gate k, units first + [j, j + kLanes).
    const auto pre_activation = [&](const float* x_row, const float* from_h_row, int64_t k,
                                    int64_t j) {
      const int64_t column = k * units + first + j;
      return padd(
          padd(padd(Load(x_row + column), Load(from_h_row + column)), Load(input_b + column)),
          Load(recurrent_b + column));
    };
    for (int64_t r = 0; r < gates.rows(); ++r) {
      float* g = gates.data() + r * gates.outerStride();
      const float* x_row = x.data() + r * x.outerStride();
      const float* from_h_row = from_h.data() + r * from_h.outerStride();
      const float* h_row = h.data() + r * h.outerStride();
      float* new_h_row = new_h.data() + r * new_h.outerStride();
      float* output_row = output == nullptr ? nullptr : output + r * output_stride;
      for (int64_t j = 0; j < count; j += kLanes) {
        const Float update = Sigmoid(pre_activation(x_row, from_h_row, 0, j));
        const Float reset = Sigmoid(pre_activation(x_row, from_h_row, 1, j));
        const int64_t column = 2 * units + first + j;
        const Float recurrent_candidate =
            padd(Load(from_h_row + column), Load(recurrent_b + column));
        const Float candidate = Tanh(padd(
            padd(Load(x_row + column), pmul(reset, recurrent_candidate)), Load(input_b + column)));
        Store(g + first + j, update);
        Store(g + units + first + j, reset);
        Store(g + 2 * units + first + j, candidate);
        Store(g + 3 * units + first + j, recurrent_candidate);
        const Float hidden =
            padd(pmul(update, Load(h_row + j)), pmul(psub(one, update), candidate));
        Store(new_h_row + j, hidden);
        if (output_row != nullptr) Store(output_row + j, hidden);
      }
    }
    return true;
  }
}

// The element-wise part of a reset_after GRU's backward step for all the units of float rows,
// one pass over each row: from the activated `gates` [n, 4H] (z, r, the candidate and the
// recurrent candidate h U_h + b), h_prev [n, H] and the gradient reaching h, d_h [n, H], writes the
// gradients of the input projections, dx [n, 3H], and of the recurrent ones, d_from_h [n, 3H]
// (zero in rows that are not `valid`), and the part of the gradient reaching h_prev that does
// not go through U, new_dh = d_h * z [n, H]. False where it does not apply (units not a multiple
// of a packet); the caller then runs the same arithmetic as Eigen expressions.
template <typename T>
bool FusedGruResetAfterGradient(const T* gates, const T* h_prev, const T* d_h, T* dx, T* d_from_h,
                                T* new_dh, int64_t n, int64_t units, const char* valid,
                                bool all_valid) {
  if constexpr (!std::is_same<T, float>::value) {
    return false;
  } else {
    using namespace rnn::packets;
    if (units % kLanes != 0) return false;
    const int64_t width = 3 * units;
    const Float one = Splat(1.0f);
    for (int64_t r = 0; r < n; ++r) {
      float* dx_row = dx + r * width;
      float* d_from_h_row = d_from_h + r * width;
      float* new_dh_row = new_dh + r * units;
      if (!all_valid && !valid[r]) {
        std::fill_n(dx_row, width, 0.0f);
        std::fill_n(d_from_h_row, width, 0.0f);
        std::fill_n(new_dh_row, units, 0.0f);
        continue;
      }
      const float* g_row = gates + r * 4 * units;
      for (int64_t j = 0; j < units; j += kLanes) {
        const Float update = Load(g_row + j);
        const Float reset = Load(g_row + units + j);
        const Float candidate = Load(g_row + 2 * units + j);
        const Float recurrent_candidate = Load(g_row + 3 * units + j);
        const Float d_h_value = Load(d_h + r * units + j);
        const Float d_update =
            pmul(pmul(pmul(d_h_value, psub(Load(h_prev + r * units + j), candidate)), update),
                 psub(one, update));
        const Float d_candidate =
            pmul(pmul(d_h_value, psub(one, update)), psub(one, pmul(candidate, candidate)));
        const Float d_reset =
            pmul(pmul(pmul(d_candidate, recurrent_candidate), reset), psub(one, reset));
        Store(dx_row + j, d_update);
        Store(dx_row + units + j, d_reset);
        Store(dx_row + 2 * units + j, d_candidate);
        Store(d_from_h_row + j, d_update);
        Store(d_from_h_row + units + j, d_reset);
        Store(d_from_h_row + 2 * units + j, pmul(d_candidate, reset));
        Store(new_dh_row + j, pmul(d_h_value, update));
      }
    }
    return true;
  }
}

template <typename T>
void GruSequenceForward(const rnn::Workers& workers, const RnnSizes& sizes,
                        const RnnOptions& options, bool reset_after, const T* inputs,
                        const T* initial_h, const T* kernel, const T* recurrent_kernel,
                        const T* bias, const int32_t* lengths, T* outputs, T* final_h, T* gates,
                        T* h_prev) {
  const int64_t batch = sizes.batch, time = sizes.time, units = sizes.units, input = sizes.input;
  const int64_t width = 3 * units;
  // Multiply-adds per example: what ForEachBatchShard shares out, and so the rows of a block.
  const int64_t work_per_example = time * units * width;
  const int64_t gate_width = GruGateWidth(units, reset_after);
  // One sequence, or a few, split by units (whole panels) rather than by example. Only with
  // reset_after: otherwise (r * h) U_h needs every unit of r at each step.
  const int64_t panel = rnn::PackedMatrix<T>::PanelColumns(width);
  const int parts = reset_after ? rnn::UnitParts(workers, batch, units, panel,
                                                 (input + units) * width * sizeof(T))
                                : 0;
  const auto packing = parts > 0 ? rnn::PackedMatrix<T>::Packing::kInPlace
                                 : rnn::PackedMatrix<T>::PackingFor(
                                       rnn::BatchShardRows(workers, batch, work_per_example),
                                       (input + units) * width);
  const rnn::PackedMatrix<T> input_weights(kernel, width, input, width, false, packing);
  const ConstRow<T> input_bias(bias, width);
  // Without reset_after there is no recurrent bias; a zero row keeps one code path.
  const Eigen::Array<T, 1, Eigen::Dynamic> recurrent_bias =
      reset_after ? Eigen::Array<T, 1, Eigen::Dynamic>(ConstRow<T>(bias + width, width))
                  : Eigen::Array<T, 1, Eigen::Dynamic>::Zero(width);
  // h * U (all three gates with reset_after, else z and r), and (r * h) * U_h without it.
  const rnn::PackedMatrix<T> recurrent_from_h(recurrent_kernel, width, units,
                                              reset_after ? width : 2 * units, false, packing);
  const rnn::PackedMatrix<T> recurrent_h(recurrent_kernel + 2 * units, width, units,
                                         reset_after ? 0 : units, false, packing);
  const int64_t chunk_rows = rnn::StepChunkRows<T>(gate_width, (units + input) * width);
  const rnn::StepLayout layout{time, units};
  if (parts > 0) {
    rnn::ShardStepRows<T> step_gates(gates, batch, 0, batch, gate_width);
    // x W and h U of the step, each part writing its own columns.
    RowMatrix<T> x(batch, width), from_h(batch, width);
    const Eigen::OuterStride<> state_stride(units);
    rnn::RunSequencesByUnits(
        workers, batch, time, units, panel, parts, options.reverse, options.zero_output_for_mask,
        lengths, initial_h, layout, outputs, h_prev, units, final_h,
        [&](int64_t t, const std::vector<char>& valid, bool all_valid, int64_t first, int64_t count,
            const T* h, T* h_next) {
          for (int k = 0; k < 3; ++k) {
            const int64_t first_panel = (k * units + first) / panel;
            const int64_t end_panel = (k * units + first + count) / panel;
            input_weights.MultiplyPanels(inputs + t * input, time * input, batch, x.data(), width,
                                         first_panel, end_panel);
            recurrent_from_h.MultiplyPanels(h, units, batch, from_h.data(), width, first_panel,
                                            end_panel);
          }
          Rows<T> gate(step_gates.At(t), batch, gate_width);
          const rnn::ConstStridedRows<T> h_units(h + first, batch, count, state_stride);
          rnn::StridedRows<T> next_h_units(h_next + first, batch, count, state_stride);
          if (!FusedGruResetAfterStep(gate, x, from_h, input_bias, recurrent_bias, units, first,
                                      count, h_units, next_h_units, nullptr, 0)) {
            GruUpdateResetStep(gate, x, from_h, input_bias, recurrent_bias, units, first, count);
            GruResetAfterStep(gate, x, from_h, input_bias, recurrent_bias, units, first, count,
                              h_units, next_h_units);
          }
          if (all_valid) return;
          for (int64_t r = 0; r < batch; ++r) {
            if (valid[r]) continue;
            for (int k = 0; k < 4; ++k) gate.row(r).segment(k * units + first, count).setZero();
          }
        });
  } else {
    rnn::ForEachBatchShard(
        workers, batch, work_per_example,
        [&](int64_t first, int64_t end) {
          const int64_t rows = end - first;
          const int64_t block_rows = std::min(chunk_rows, rows);
          RowMatrix<T> x(block_rows, width), from_h(block_rows, reset_after ? width : 2 * units);
          RowMatrix<T> reset_h(block_rows, units), candidate_from_h(block_rows, units);
          rnn::ShardStepRows<T> shard_gates(gates, batch, first, rows, gate_width);
          rnn::ShardStepRows<T> shard_h(h_prev, batch, first, rows, units);
          const rnn::StepStates<T> h_states(&shard_h, 0, units, final_h + first * units, rows,
                                            units, time, options.reverse);
          h_states.At(0) = ConstRows<T>(initial_h + first * units, rows, units);
          const Eigen::OuterStride<> state_stride(units);
          // The new state of a step where some rows are padded, before it is committed.
          RowMatrix<T> new_h_block(rows, units);
          rnn::StridedRows<T> new_h(new_h_block.data(), rows, units, state_stride);
          std::vector<char> valid(rows);
          for (int64_t step = 0; step < time; ++step) {
            const int64_t t = rnn::TimeIndex(step, time, options.reverse);
            const bool all_valid = rnn::MarkValidRows(lengths, first, rows, t, &valid);
            const auto h = h_states.At(step);
            auto next_h = h_states.At(step + 1);
            rnn::StridedRows<T> output(outputs + layout.Offset(step, first), rows, units,
                                       Eigen::OuterStride<>(layout.RowStride()));
            // The whole shard at once; padded rows are put right afterwards.
            Rows<T> gate(shard_gates.At(t), rows, gate_width);
            for (int64_t chunk = 0; chunk < rows; chunk += block_rows) {
              const int64_t n = std::min(block_rows, rows - chunk);
              auto gate_rows = gate.middleRows(chunk, n);
              const auto h_rows = h.middleRows(chunk, n);
              // A chunk's h is read by its own pass only, so the next h may take its place.
              auto new_h_rows =
                  all_valid ? next_h.middleRows(chunk, n) : new_h.middleRows(chunk, n);
              T* output_rows = all_valid ? output.row(chunk).data() : nullptr;
              // x_t * W per step, into a block that stays in cache (the input rows of a step are
              // `time` rows apart in the batch-major inputs); a product of all steps at once, with
              // its small inner dimension, wrote and then read a B*T*3H buffer.
              input_weights.Multiply(inputs + ((first + chunk) * time + t) * input, time * input, n,
                                     x.data(), width, false);
              recurrent_from_h.Multiply(h_rows.data(), units, n, from_h.data(), from_h.cols(),
                                        false);
              const auto x_rows = x.topRows(n);
              const auto from_h_rows = from_h.topRows(n);
              if (reset_after &&
                  FusedGruResetAfterStep(gate_rows, x_rows, from_h_rows, input_bias, recurrent_bias,
                                         units, 0, units, h_rows, new_h_rows, output_rows,
                                         output.outerStride())) {
                continue;
              }
              GruUpdateResetStep(gate_rows, x_rows, from_h_rows, input_bias, recurrent_bias, units,
                                 0, units);
              if (reset_after) {
                GruResetAfterStep(gate_rows, x_rows, from_h_rows, input_bias, recurrent_bias, units,
                                  0, units, h_rows, new_h_rows);
              } else {
                const auto update = gate_rows.leftCols(units).array();
                const auto reset = gate_rows.middleCols(units, units).array();
                auto candidate = gate_rows.middleCols(2 * units, units).array();
                auto reset_h_rows = reset_h.topRows(n);
                auto candidate_from_h_rows = candidate_from_h.topRows(n);
                reset_h_rows.array() = reset * h_rows.array();
                recurrent_h.Multiply(reset_h_rows.data(), units, n, candidate_from_h_rows.data(),
                                     units, false);
                candidate = x_rows.rightCols(units).array() + candidate_from_h_rows.array();
                candidate.rowwise() += input_bias.tail(units);
                candidate = candidate.tanh();
                new_h_rows.array() = update * h_rows.array() + (T(1) - update) * candidate;
              }
              if (all_valid) output.middleRows(chunk, n) = new_h_rows;
            }
            if (all_valid) continue;
            rnn::CommitPartlyValidStep(
                valid, gate, output, step, options.zero_output_for_mask, layout,
                [&](int64_t r) {
                  next_h.row(r) = new_h.row(r);
                  output.row(r) = new_h.row(r);
                },
                [&](int64_t r) { next_h.row(r) = h.row(r); });
          }
        },
        rnn::PrepareAll(input_weights, recurrent_from_h, recurrent_h));
  }
}

template <typename T>
void GruSequenceBackward(const rnn::Workers& workers, const RnnSizes& sizes,
                         const RnnOptions& options, bool reset_after, const T* inputs,
                         const T* kernel, const T* recurrent_kernel, const int32_t* lengths,
                         const T* gates, const T* h_prev, const T* d_outputs, const T* d_final_h,
                         T* d_inputs, T* d_initial_h, T* d_projected, T* d_recurrent, T* d_kernel,
                         T* d_recurrent_kernel, T* d_bias) {
  const int64_t batch = sizes.batch, time = sizes.time, units = sizes.units, input = sizes.input;
  const int64_t width = 3 * units;
  // Multiply-adds per example: what ForEachBatchShard shares out, and so the rows of a block.
  const int64_t work_per_example = time * units * width;
  const int64_t gate_width = GruGateWidth(units, reset_after);
  const int64_t chunk_rows = rnn::StepChunkRows<T>(width, (units + input) * width);
  const auto packing = rnn::PackedMatrix<T>::PackingFor(
      std::min(chunk_rows, rnn::BatchShardRows(workers, batch, work_per_example)),
      (units + input) * width);
  // d * U^T (all three gates with reset_after, else z and r), and d_candidate * U_h^T without it.
  const rnn::PackedMatrix<T> recurrent_transposed(
      recurrent_kernel, width, reset_after ? width : 2 * units, units, true, packing);
  const rnn::PackedMatrix<T> recurrent_h_transposed(recurrent_kernel + 2 * units, width,
                                                    reset_after ? 0 : units, units, true, packing);
  const rnn::PackedMatrix<T> input_weights_transposed(kernel, width, width, input, true, packing);
  const rnn::StepLayout layout{time, units};
  const int64_t recurrent_width = reset_after ? width : units;
  // Outputs 0, 1, 2: d_kernel, d_recurrent_kernel, d_bias.
  rnn::GradientSums<T> sums(d_kernel != nullptr, {{d_kernel, input * width},
                                                  {d_recurrent_kernel, units * width},
                                                  {d_bias, (reset_after ? 2 : 1) * width}});

  rnn::ForEachBatchShard(
      workers, batch, work_per_example,
      [&](int64_t first, int64_t end) {
        const int64_t rows = end - first;
        const int64_t block_rows = std::min(chunk_rows, rows);
        auto shard_sums = sums.ForShard({block_rows * width, block_rows * recurrent_width});
        RowMatrix<T> dh = Eigen::Map<const RowMatrix<T>>(d_final_h + first * units, rows, units);
        // Gradient reaching a padded step's output, which is the previous step's output.
        rnn::CarriedGradient<T> carried(rows, units);
        RowMatrix<T> d_h_total(rows, units), d_reset_h(rows, units), new_dh(rows, units);
        std::vector<char> valid(rows);
        for (int64_t step = time - 1; step >= 0; --step) {
          const int64_t t = rnn::TimeIndex(step, time, options.reverse);
          const bool all_valid = rnn::MarkValidRows(lengths, first, rows, t, &valid);
          const int64_t cell = t * batch + first;
          rnn::GradientReachingState(d_outputs, layout, step, first, valid, all_valid,
                                     options.zero_output_for_mask, dh, &carried, &d_h_total);
          for (int64_t chunk = 0; chunk < rows; chunk += chunk_rows) {
            const int64_t n = std::min(chunk_rows, rows - chunk);
            const int64_t chunk_cell = cell + chunk;
            const ConstRows<T> gate(gates + chunk_cell * gate_width, n, gate_width);
            const auto update = gate.leftCols(units).array();
            const auto reset = gate.middleCols(units, units).array();
            const auto candidate = gate.middleCols(2 * units, units).array();
            const T* const h_prev_rows = h_prev + chunk_cell * units;
            const auto before = ConstRows<T>(h_prev_rows, n, units).array();
            const auto d_h_rows = d_h_total.middleRows(chunk, n).array();
            auto new_dh_rows = new_dh.middleRows(chunk, n).array();
            Rows<T> dx(shard_sums.Block(0, d_projected + chunk_cell * width), n, width);
            auto d_candidate = dx.rightCols(units).array();
            // The chunk's rows of x_t and of d x_t in the batch-major inputs, `time` rows apart.
            const int64_t input_offset = ((first + chunk) * time + t) * input;
            // The update gate's and the candidate's gradients, and d_h's part that skips U.
            const auto gradients_beside_reset = [&] {
              dx.leftCols(units).array() =
                  d_h_rows * (before - candidate) * update * (T(1) - update);
              d_candidate = d_h_rows * (T(1) - update) * (T(1) - candidate * candidate);
              new_dh_rows = d_h_rows * update;
            };
            const auto zero_padded_rows = [&](auto&&... kept) {
              if (all_valid) return;
              for (int64_t r = 0; r < n; ++r) {
                if (!valid[chunk + r]) (kept.row(r).setZero(), ...);
              }
            };
            if (reset_after) {
              Rows<T> d_from_h(shard_sums.Block(1, d_recurrent + chunk_cell * width), n, width);
              if (!FusedGruResetAfterGradient(gate.data(), h_prev_rows, d_h_rows.data(), dx.data(),
                                              d_from_h.data(), new_dh_rows.data(), n, units,
                                              valid.data() + chunk, all_valid)) {
                gradients_beside_reset();
                dx.middleCols(units, units).array() =
                    d_candidate * gate.rightCols(units).array() * reset * (T(1) - reset);
                d_from_h.leftCols(2 * units) = dx.leftCols(2 * units);
                d_from_h.rightCols(units).array() = d_candidate * reset;
                zero_padded_rows(dx, d_from_h);
              }
              recurrent_transposed.Multiply(d_from_h.data(), width, n, new_dh_rows.data(), units,
                                            true);
              shard_sums.AddProduct(1, 0, width, h_prev_rows, units, units, d_from_h.data(), width,
                                    n, width);
              shard_sums.AddColumnSums(2, width, d_from_h.data(), width, n, width);
            } else {
              gradients_beside_reset();
              // The reset gate acts before U_h: its gradient needs d(r * h_prev) first.
              zero_padded_rows(dx);
              auto d_reset_h_rows = d_reset_h.middleRows(chunk, n).array();
              recurrent_h_transposed.Multiply(dx.data() + 2 * units, width, n,
                                              d_reset_h_rows.data(), units, false);
              dx.middleCols(units, units).array() =
                  d_reset_h_rows * before * reset * (T(1) - reset);
              Rows<T> reset_h(shard_sums.Block(1, d_recurrent + chunk_cell * units), n, units);
              reset_h.array() = reset * before;
              new_dh_rows += d_reset_h_rows * reset;
              zero_padded_rows(dx, reset_h);
              recurrent_transposed.Multiply(dx.data(), width, n, new_dh_rows.data(), units, true);
              shard_sums.AddProduct(1, 0, width, h_prev_rows, units, units, dx.data(), width, n,
                                    2 * units);
              shard_sums.AddProduct(1, 2 * units, width, reset_h.data(), units, units,
                                    dx.data() + 2 * units, width, n, units);
            }
            shard_sums.AddProduct(0, 0, width, inputs + input_offset, time * input, input,
                                  dx.data(), width, n, width);
            shard_sums.AddColumnSums(2, 0, dx.data(), width, n, width);
            // d x_t = dx * W^T while dx is in cache, straight into the batch-major d_inputs.
            input_weights_transposed.Multiply(dx.data(), width, n, d_inputs + input_offset,
                                              time * input, false);
          }
          rnn::TakeValidRows(all_valid, valid, &new_dh, &dh);
        }
        Eigen::Map<RowMatrix<T>>(d_initial_h + first * units, rows, units) = dh;
        sums.Take(shard_sums);
      },
      rnn::PrepareAll(recurrent_transposed, recurrent_h_transposed, input_weights_transposed));

  if (sums.enabled()) return;
  rnn::ParallelColumnSums(workers, d_projected, batch * time, width, d_bias);
  if (reset_after) {
    rnn::ParallelColumnSums(workers, d_recurrent, batch * time, width, d_bias + width);
  }
}

#define ZOO_INSTANTIATE_GRU(T)                                                                     \
  template void GruSequenceForward<T>(const rnn::Workers&, const RnnSizes&, const RnnOptions&,     \
                                      bool, const T*, const T*, const T*, const T*, const T*,      \
                                      const int32_t*, T*, T*, T*, T*);                             \
  template void GruSequenceBackward<T>(                                                            \
      const rnn::Workers&, const RnnSizes&, const RnnOptions&, bool, const T*, const T*, const T*, \
      const int32_t*, const T*, const T*, const T*, const T*, T*, T*, T*, T*, T*, T*, T*);
ZOO_INSTANTIATE_GRU(float)
ZOO_INSTANTIATE_GRU(double)
#undef ZOO_INSTANTIATE_GRU

}  // namespace zoo
