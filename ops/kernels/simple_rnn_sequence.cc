#include "simple_rnn_sequence.h"

#include <algorithm>
#include <vector>

#include "dense_cell.h"
#include "packed_products.h"
#include "sequence_driver.h"

namespace zoo {

using rnn::ConstRow;
using rnn::ConstRows;
using rnn::RowMatrix;
using rnn::Rows;

// states = tanh(states + bias) over a block of rows and units [first, first +
// count), where `states` holds the pre-activations x W + h U. The bias in a
// pass of its own, as in the LSTM.
template <typename Block, typename Bias>
void SimpleRnnActivate(Block states, const Bias& bias) {
  states.array().rowwise() += bias;
  states.array() = states.array().tanh();
}

// The SimpleRNN's forward step (sequence_driver.h): state h; kept each step's
// new state (its activation's derivative is 1 - h^2) and the [x_t, h] records
// (step_inputs).
template <typename T>
class SimpleRnnForwardCell {
 public:
  using Scalar = T;
  static constexpr int kStates = 1, kKept = 2;
  using Call = rnn::ForwardStep<T, kStates, kKept>;
  struct Scratch {
    Scratch(const SimpleRnnForwardCell&, int64_t) {}
  };

  SimpleRnnForwardCell(const rnn::Workers& workers, const RnnSizes& sizes, const T* kernel,
                       const T* recurrent_kernel, const T* bias)
      : units_(sizes.units),
        plan_(rnn::PlanDenseForward<T>(workers, sizes, 1,
                                       sizes.time * units_ * (sizes.input + units_), true, 0)),
        bias_(bias, units_),
        input_weights_(kernel, units_, sizes.input, units_, false, plan_.packing),
        recurrent_(recurrent_kernel, units_, units_, units_, false, plan_.packing) {}

  const rnn::Split& split() const { return plan_.split; }
  rnn::SharedSetup Setup() const { return rnn::PrepareAll(input_weights_, recurrent_); }

  void Step(const Call& step, Scratch*) const {
    const int64_t units = units_, rows = step.rows, first = step.first, count = step.count;
    // The pre-activations x_t W + h U, activated in place: the kept state.
    T* state = step.kept[0];
    rnn::UnitRangeProducts<T>(units, 1, first, count)
        .MultiplySum(input_weights_, step.x.data, step.x.stride, recurrent_, step.state[0].data,
                     step.state[0].stride, rows, state, units);
    const auto write = [&](auto block) {
      SimpleRnnActivate(block, bias_.segment(first, count));
      rnn::Columns(step.next[0], rows, first, count) = block;
      if (step.output.data != nullptr) rnn::Columns(step.output, rows, first, count) = block;
    };
    if (count == units) {
      write(Rows<T>(state, rows, units));
    } else {
      write(rnn::Columns(rnn::RowsAt<T>{state, units}, rows, first, count));
    }
  }

 private:
  const int64_t units_;
  const rnn::DensePlan<T> plan_;
  const ConstRow<T> bias_;
  const rnn::PackedMatrix<T> input_weights_, recurrent_;
};

template <typename T>
void SimpleRnnSequenceForward(const rnn::Workers& workers, const RnnSizes& sizes,
                              const RnnOptions& options, const T* inputs, const T* initial_h,
                              const T* kernel, const T* recurrent_kernel, const T* bias,
                              const int32_t* lengths, T* outputs, T* final_h, T* states,
                              T* step_inputs) {
  const SimpleRnnForwardCell<T> cell(workers, sizes, kernel, recurrent_kernel, bias);
  // h lives in the step's [x_t, h] records, as in the LSTM.
  rnn::RunForward(
      workers, sizes, options,
      rnn::ForwardBuffers<T, 1, 2>{inputs,
                                   lengths,
                                   outputs,
                                   {initial_h},
                                   {final_h},
                                   {{{states, sizes.units, true, false},
                                     {step_inputs, sizes.input + sizes.units, false, true}}},
                                   {{{1, sizes.input}}}},
      cell);
}

// The SimpleRNN's backward step: d_pre = d_h * (1 - h^2), then d_pre U^T and
// d_pre W^T in one product, and the weight gradients' share of the block while
// it is in cache.
template <typename T>
class SimpleRnnBackwardCell {
 public:
  using Scalar = T;
  static constexpr int kStates = 1;

  SimpleRnnBackwardCell(const rnn::Workers& workers, const RnnSizes& sizes, const T* kernel,
                        const T* recurrent_kernel, const T* states, const T* step_inputs, T* d_pre,
                        T* d_weights, T* d_bias)
      : sizes_(sizes),
        plan_(rnn::PlanDenseBackward<T>(workers, sizes, 1,
                                        sizes.time * sizes.units * (sizes.input + sizes.units), 0)),
        weights_transposed_(recurrent_kernel, sizes.units, kernel, sizes.input, sizes.units,
                            plan_.packing),
        states_(states),
        step_inputs_(step_inputs),
        d_pre_(d_pre),
        d_bias_(d_bias),
        sums_(d_weights != nullptr,
              {{d_weights, (sizes.input + sizes.units) * sizes.units}, {d_bias, sizes.units}}) {}

  const rnn::Split& split() const { return plan_.split; }
  rnn::SharedSetup Setup() const { return rnn::PrepareAll(weights_transposed_); }

  class Shard {
   public:
    Shard(SimpleRnnBackwardCell* cell, int64_t rows)
        : cell_(*cell),
          sums_(cell->sums_.ForShard({rows * cell->sizes_.units})),
          product_scratch_(cell->weights_transposed_.ScratchElements(rows)) {}

    void Step(const rnn::BackwardStep<T, kStates>& step) {
      const int64_t units = cell_.sizes_.units, rows = step.rows;
      const int64_t step_width = cell_.sizes_.input + units;
      const int64_t cell = step.t * cell_.sizes_.batch + step.row;
      const auto state = ConstRows<T>(cell_.states_ + cell * units, rows, units).array();
      Rows<T> d_step(
          sums_.Block(0, cell_.d_pre_ == nullptr ? nullptr : cell_.d_pre_ + cell * units), rows,
          units);
      d_step.array() = ConstRows<T>(step.d_state[0], rows, units).array() * (T(1) - state * state);
      rnn::ClearPaddedRows(step.valid, step.all_valid, d_step);
      rnn::BackpropagateRecords(cell_.weights_transposed_, d_step.data(), units, step, units,
                                cell_.step_inputs_ + cell * step_width, step_width, &sums_,
                                product_scratch_.data());
    }

    void Finish() { cell_.sums_.Take(sums_); }

   private:
    SimpleRnnBackwardCell& cell_;
    typename rnn::GradientSums<T>::Shard sums_;
    Eigen::Matrix<T, Eigen::Dynamic, 1> product_scratch_;
  };

  void Finish(const rnn::Workers& workers) {
    if (sums_.enabled()) return;
    rnn::ParallelColumnSums(workers, d_pre_, sizes_.batch * sizes_.time, sizes_.units, d_bias_);
  }

 private:
  const RnnSizes sizes_;
  const rnn::DensePlan<T> plan_;
  const rnn::TransposedWeights<T> weights_transposed_;
  const T *const states_, *const step_inputs_;
  T *const d_pre_, *const d_bias_;
  rnn::GradientSums<T> sums_;
};

template <typename T>
void SimpleRnnSequenceBackward(const rnn::Workers& workers, const RnnSizes& sizes,
                               const RnnOptions& options, const T* kernel,
                               const T* recurrent_kernel, const int32_t* lengths, const T* states,
                               const T* step_inputs, const T* d_outputs, const T* d_final_h,
                               T* d_inputs, T* d_initial_h, T* d_pre, T* d_weights, T* d_bias) {
  SimpleRnnBackwardCell<T> cell(workers, sizes, kernel, recurrent_kernel, states, step_inputs,
                                d_pre, d_weights, d_bias);
  rnn::RunBackward(workers, sizes, options, lengths, d_outputs, {d_final_h}, {d_initial_h},
                   d_inputs, &cell);
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
