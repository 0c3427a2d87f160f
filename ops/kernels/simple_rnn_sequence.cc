#include "simple_rnn_sequence.h"

#include <algorithm>
#include <vector>

#include "packed_products.h"
#include "step_layout.h"

namespace zoo {

using rnn::ConstRow;
using rnn::ConstRows;
using rnn::RowMatrix;
using rnn::Rows;

// states = tanh(states + bias) over a block of rows and units [first, first + count), where
// `states` holds the pre-activations x W + h U. The bias in a pass of its own, as in the LSTM.
template <typename Block, typename Bias>
void SimpleRnnActivate(Block states, const Bias& bias) {
  states.array().rowwise() += bias;
  states.array() = states.array().tanh();
}

template <typename T>
void SimpleRnnSequenceForward(const rnn::Workers& workers, const RnnSizes& sizes,
                              const RnnOptions& options, const T* inputs, const T* initial_h,
                              const T* kernel, const T* recurrent_kernel, const T* bias,
                              const int32_t* lengths, T* outputs, T* final_h, T* states,
                              T* step_inputs) {
  const int64_t batch = sizes.batch, time = sizes.time, units = sizes.units, input = sizes.input;
  const int64_t step_width = input + units;
  // Multiply-adds per example: what ForEachBatchShard shares out, and so the rows of a block.
  const int64_t work_per_example = time * units * step_width;
  const ConstRow<T> bias_row(bias, units);
  // One sequence, or a few, split by units (whole panels) rather than by example.
  const int64_t panel = rnn::PackedMatrix<T>::PanelColumns(units);
  const int parts = rnn::UnitParts(workers, batch, units, panel, step_width * units * sizeof(T));
  const auto packing =
      parts > 0 ? rnn::PackedMatrix<T>::Packing::kInPlace
                : rnn::PackedMatrix<T>::PackingFor(
                      rnn::BatchShardRows(workers, batch, work_per_example), step_width * units);
  const rnn::PackedMatrix<T> input_weights(kernel, units, input, units, false, packing);
  const rnn::PackedMatrix<T> recurrent(recurrent_kernel, units, units, units, false, packing);
  const rnn::StepLayout layout{time, units};
  if (parts > 0) {
    rnn::ShardStepRows<T> step_states(states, batch, 0, batch, units);
    if (step_inputs != nullptr) {
      rnn::KeepStepInputs(inputs, batch, time, input, step_width, step_inputs);
    }
    const Eigen::OuterStride<> state_stride(units);
    rnn::RunSequencesByUnits(
        workers, batch, time, units, panel, parts, options.reverse, options.zero_output_for_mask,
        lengths, initial_h, layout, outputs, step_inputs == nullptr ? nullptr : step_inputs + input,
        step_width, final_h,
        [&](int64_t t, const std::vector<char>& valid, bool all_valid, int64_t first, int64_t count,
            const T* h, T* h_next) {
          T* state = step_states.At(t);
          input_weights.MultiplySumPanels(inputs + t * input, time * input, recurrent, h, units,
                                          batch, state, units, first / panel,
                                          (first + count) / panel);
          rnn::StridedRows<T> block(state + first, batch, count, state_stride);
          SimpleRnnActivate(block, bias_row.segment(first, count));
          rnn::StridedRows<T>(h_next + first, batch, count, state_stride) = block;
          if (all_valid) return;
          for (int64_t r = 0; r < batch; ++r) {
            if (!valid[r]) block.row(r).setZero();
          }
        });
  } else {
    rnn::ForEachBatchShard(
        workers, batch, work_per_example,
        [&](int64_t first, int64_t end) {
          const int64_t rows = end - first;
          std::vector<char> valid(rows);
          rnn::ShardStepRows<T> shard_states(states, batch, first, rows, units);
          rnn::ShardStepRows<T> shard_step_inputs(step_inputs, batch, first, rows, step_width);
          // h in the steps' [x_t, h] rows, as in the LSTM.
          const rnn::StepStates<T> h_states(&shard_step_inputs, input, step_width,
                                            final_h + first * units, rows, units, time,
                                            options.reverse);
          h_states.At(0) = ConstRows<T>(initial_h + first * units, rows, units);
          for (int64_t step = 0; step < time; ++step) {
            const int64_t t = rnn::TimeIndex(step, time, options.reverse);
            const bool all_valid = rnn::MarkValidRows(lengths, first, rows, t, &valid);
            // [x_t, h] of each row, as in the LSTM: the left factor of both weight gradients and of
            // this step's pre-activations.
            T* step_rows = shard_step_inputs.At(t);
            rnn::StridedRows<T>(step_rows, rows, input, Eigen::OuterStride<>(step_width)) =
                rnn::ConstStridedRows<T>(inputs + (first * time + t) * input, rows, input,
                                         Eigen::OuterStride<>(time * input));
            const auto h = h_states.At(step);
            auto next_h = h_states.At(step + 1);
            Rows<T> state(shard_states.At(t), rows, units);
            input_weights.MultiplySum(step_rows, step_width, recurrent, step_rows + input,
                                      step_width, rows, state.data(), units);
            SimpleRnnActivate(state, bias_row);
            rnn::StridedRows<T> output(outputs + layout.Offset(step, first), rows, units,
                                       Eigen::OuterStride<>(layout.RowStride()));
            if (all_valid) {
              next_h = state;
              output = state;
              continue;
            }
            rnn::CommitPartlyValidStep(
                valid, state, output, step, options.zero_output_for_mask, layout,
                [&](int64_t r) {
                  next_h.row(r) = state.row(r);
                  output.row(r) = state.row(r);
                },
                [&](int64_t r) { next_h.row(r) = h.row(r); });
          }
        },
        rnn::PrepareAll(input_weights, recurrent));
  }
}

template <typename T>
void SimpleRnnSequenceBackward(const rnn::Workers& workers, const RnnSizes& sizes,
                               const RnnOptions& options, const T* kernel,
                               const T* recurrent_kernel, const int32_t* lengths, const T* states,
                               const T* step_inputs, const T* d_outputs, const T* d_final_h,
                               T* d_inputs, T* d_initial_h, T* d_pre, T* d_weights, T* d_bias) {
  const int64_t batch = sizes.batch, time = sizes.time, units = sizes.units, input = sizes.input;
  // Multiply-adds per example: what ForEachBatchShard shares out, and so the rows of a block.
  const int64_t work_per_example = time * units * (input + units);
  const auto packing = rnn::PackedMatrix<T>::PackingFor(
      rnn::BatchShardRows(workers, batch, work_per_example), (input + units) * units);
  const rnn::TransposedWeights<T> weights_transposed(recurrent_kernel, units, kernel, input, units,
                                                     packing);
  const rnn::StepLayout layout{time, units};
  const int64_t step_width = input + units;
  rnn::GradientSums<T> sums(d_weights != nullptr,
                            {{d_weights, step_width * units}, {d_bias, units}});

  rnn::ForEachBatchShard(
      workers, batch, work_per_example,
      [&](int64_t first, int64_t end) {
        const int64_t rows = end - first;
        auto shard_sums = sums.ForShard({rows * units});
        RowMatrix<T> dh = Eigen::Map<const RowMatrix<T>>(d_final_h + first * units, rows, units);
        // Gradient reaching a padded step's output, which is the previous step's output.
        rnn::CarriedGradient<T> carried(rows, units);
        RowMatrix<T> d_h_total(rows, units), through_recurrence(rows, units);
        Eigen::Matrix<T, Eigen::Dynamic, 1> product_scratch(
            weights_transposed.ScratchElements(rows));
        std::vector<char> valid(rows);
        for (int64_t step = time - 1; step >= 0; --step) {
          const int64_t t = rnn::TimeIndex(step, time, options.reverse);
          const bool all_valid = rnn::MarkValidRows(lengths, first, rows, t, &valid);
          rnn::GradientReachingState(d_outputs, layout, step, first, valid, all_valid,
                                     options.zero_output_for_mask, dh, &carried, &d_h_total);
          const int64_t cell = t * batch + first;
          const auto state = ConstRows<T>(states + cell * units, rows, units).array();
          Rows<T> d_step(shard_sums.Block(0, d_pre + cell * units), rows, units);
          d_step.array() = d_h_total.array() * (T(1) - state * state);
          if (!all_valid) {
            for (int64_t r = 0; r < rows; ++r) {
              if (!valid[r]) d_step.row(r).setZero();
            }
          }
          // d x_t = d_pre * W^T while d_pre is in cache, straight into the batch-major d_inputs.
          weights_transposed.Multiply(d_step.data(), units, rows, through_recurrence.data(), units,
                                      d_inputs + (first * time + t) * input, time * input,
                                      product_scratch.data());
          shard_sums.AddProduct(0, 0, units, step_inputs + cell * step_width, step_width,
                                step_width, d_step.data(), units, rows, units);
          shard_sums.AddColumnSums(1, 0, d_step.data(), units, rows, units);
          rnn::TakeValidRows(all_valid, valid, &through_recurrence, &dh);
        }
        Eigen::Map<RowMatrix<T>>(d_initial_h + first * units, rows, units) = dh;
        sums.Take(shard_sums);
      },
      rnn::PrepareAll(weights_transposed));

  if (!sums.enabled()) rnn::ParallelColumnSums(workers, d_pre, batch * time, units, d_bias);
}

#define ZOO_INSTANTIATE_SIMPLE_RNN(T)                                                              \
  template void SimpleRnnSequenceForward<T>(const rnn::Workers&, const RnnSizes&,                  \
                                            const RnnOptions&, const T*, const T*, const T*,       \
                                            const T*, const T*, const int32_t*, T*, T*, T*, T*);   \
  template void SimpleRnnSequenceBackward<T>(                                                      \
      const rnn::Workers&, const RnnSizes&, const RnnOptions&, const T*, const T*, const int32_t*, \
      const T*, const T*, const T*, const T*, T*, T*, T*, T*, T*);
ZOO_INSTANTIATE_SIMPLE_RNN(float)
ZOO_INSTANTIATE_SIMPLE_RNN(double)
#undef ZOO_INSTANTIATE_SIMPLE_RNN

}  // namespace zoo
