#include "lstm_sequence.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "dense_cell.h"
#include "packed_products.h"
#include "sequence_driver.h"

namespace zoo {

using rnn::ConstRow;
using rnn::ConstRows;
using rnn::RowMatrix;
using rnn::Rows;

// One LSTM step for units [first, first + count) of a block of rows: `gates` (a
// [rows, 4H] block) holds the pre-activations x W + h U without the bias; they
// are replaced by the activated gates (i, f, o sigmoid, c~ tanh), and new_c = f
// * c + i * c~, new_h = o * tanh(new_c) are written for those units. new_c may
// be c.
template <typename GateRows, typename Bias, typename CellIn, typename CellOut, typename HiddenOut>
void LstmCellStep(GateRows gates, const Bias& bias, int64_t units, int64_t first, int64_t count,
                  const CellIn& c, CellOut&& new_c, HiddenOut&& new_h) {
  const auto gate = [&](int k) { return gates.middleCols(k * units + first, count).array(); };
  // The bias in a pass of its own: inside the activation's expression the
  // broadcast kept Eigen from vectorising it. With all the units, each pass
  // covers whole rows (i and f together), so that small H does not make many
  // short passes.
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

// LstmCellStep for units [first, first + count) of float rows (c, new_c and
// new_h hold those units only), one pass over each row with Eigen's packet
// functions, new_h also written to the rows of `output` (`output_stride` apart)
// unless it is null: false where it does not apply (count not a multiple of a
// packet).
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

// The element-wise part of a backward step for all the units of float rows
// (`gates` [n, 4H] activated, c_prev [n, H], the gradient reaching h, d_h [n,
// H], and reaching c, dc [n, H], all contiguous rows), one pass over each row:
// writes the pre-activation gradients d_pre [n, 4H] (zero in rows that are not
// `valid`) and, in the valid rows, the gradient reaching the previous step's c
// into dc_previous. False where it does not apply (units not a multiple of a
// packet); the caller then runs the same arithmetic as Eigen expressions.
template <typename T>
bool FusedLstmCellGradient(const T* gates, const T* c_prev, const T* d_h, const T* dc,
                           T* dc_previous, T* d_pre, int64_t n, int64_t units, const char* valid,
                           bool all_valid) {
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
        Store(dc_previous + r * units + j, pmul(d_c, f));
      }
    }
    return true;
  }
}

// The LSTM's forward step (sequence_driver.h): states h, c; kept [x_t, h]
// records (step_inputs), the activated gates and c_prev.
template <typename T>
class LstmForwardCell {
 public:
  using Scalar = T;
  static constexpr int kStates = 2, kKept = 3;
  using Call = rnn::ForwardStep<T, kStates, kKept>;
  struct Scratch {
    Scratch(const LstmForwardCell&, int64_t) {}
  };

  LstmForwardCell(const rnn::Workers& workers, const RnnSizes& sizes, const T* kernel,
                  const T* recurrent_kernel, const T* bias)
      : units_(sizes.units),
        plan_(rnn::PlanDenseForward<T>(workers, sizes, 4, sizes.time * sizes.units * 4 * units_,
                                       true, 4 * units_)),
        bias_(bias, 4 * units_),
        input_weights_(kernel, 4 * units_, sizes.input, 4 * units_, false, plan_.packing),
        recurrent_(recurrent_kernel, 4 * units_, units_, 4 * units_, false, plan_.packing) {}

  const rnn::Split& split() const { return plan_.split; }
  rnn::SharedSetup Setup() const { return rnn::PrepareAll(input_weights_, recurrent_); }

  void Step(const Call& step, Scratch*) const {
    const int64_t units = units_, rows = step.rows, first = step.first, count = step.count;
    // x_t * W + h * U in one pass, written where the step's gates then replace
    // them.
    Rows<T> gates(step.kept[1], rows, 4 * units);
    rnn::UnitRangeProducts<T>(units, 4, first, count)
        .MultiplySum(input_weights_, step.x.data, step.x.stride, recurrent_, step.state[0].data,
                     step.state[0].stride, rows, gates.data(), 4 * units);
    const auto c = rnn::Columns(step.state[1], rows, first, count);
    auto next_c = rnn::Columns(step.next[1], rows, first, count);
    auto next_h = rnn::Columns(step.next[0], rows, first, count);
    T* output = step.output.data == nullptr ? nullptr : step.output.data + first;
    if (!FusedLstmCellStep(gates, bias_, units, first, count, c, next_c, next_h, output,
                           step.output.stride)) {
      LstmCellStep(gates, bias_, units, first, count, c, next_c, next_h);
      if (output != nullptr) rnn::Columns(step.output, rows, first, count) = next_h;
    }
  }

 private:
  const int64_t units_;
  const rnn::DensePlan<T> plan_;
  const ConstRow<T> bias_;
  const rnn::PackedMatrix<T> input_weights_, recurrent_;
};

template <typename T>
void LstmSequenceForward(const rnn::Workers& workers, const RnnSizes& sizes,
                         const RnnOptions& options, const T* inputs, const T* initial_h,
                         const T* initial_c, const T* kernel, const T* recurrent_kernel,
                         const T* bias, const int32_t* lengths, T* outputs, T* final_h, T* final_c,
                         T* gates, T* step_inputs, T* c_prev) {
  const int64_t units = sizes.units, step_width = sizes.input + units;
  const LstmForwardCell<T> cell(workers, sizes, kernel, recurrent_kernel, bias);
  // h lives in the step's [x_t, h] records (the left factor of its products and
  // of the weight gradients), c in c_prev.
  rnn::RunForward(workers, sizes, options,
                  rnn::ForwardBuffers<T, 2, 3>{inputs,
                                               lengths,
                                               outputs,
                                               {initial_h, initial_c},
                                               {final_h, final_c},
                                               {{{step_inputs, step_width, false, true},
                                                 {gates, 4 * units, true, false},
                                                 {c_prev, units, false, false}}},
                                               {{{0, sizes.input}, {2, 0}}}},
                  cell);
}

// The LSTM's backward step: the pre-activation gradients d_pre of a block of
// rows, then d_pre U^T (through the recurrence) and d_pre W^T (d x_t) in one
// product, and the weight gradients' share of the block (step_inputs^T d_pre)
// while it is in cache.
template <typename T>
class LstmBackwardCell {
 public:
  using Scalar = T;
  static constexpr int kStates = 2;

  LstmBackwardCell(const rnn::Workers& workers, const RnnSizes& sizes, const T* kernel,
                   const T* recurrent_kernel, const T* gates, const T* c_prev, const T* step_inputs,
                   T* pre_activation_grads, T* d_weights, T* d_bias)
      : sizes_(sizes),
        plan_(rnn::PlanDenseBackward<T>(
            workers, sizes, 4, sizes.time * sizes.units * 4 * sizes.units, 4 * sizes.units)),
        weights_transposed_(recurrent_kernel, sizes.units, kernel, sizes.input, 4 * sizes.units,
                            plan_.packing),
        gates_(gates),
        c_prev_(c_prev),
        step_inputs_(step_inputs),
        pre_activation_grads_(pre_activation_grads),
        d_bias_(d_bias),
        sums_(d_weights != nullptr, {{d_weights, (sizes.input + sizes.units) * 4 * sizes.units},
                                     {d_bias, 4 * sizes.units}}) {}

  const rnn::Split& split() const { return plan_.split; }
  rnn::SharedSetup Setup() const { return rnn::PrepareAll(weights_transposed_); }

  class Shard {
   public:
    Shard(LstmBackwardCell* cell, int64_t rows)
        : cell_(*cell),
          sums_(cell->sums_.ForShard({rows * 4 * cell->sizes_.units})),
          tanh_c_(rows, cell->sizes_.units),
          d_c_(rows, cell->sizes_.units),
          product_scratch_(cell->weights_transposed_.ScratchElements(rows)) {}

    void Step(const rnn::BackwardStep<T, kStates>& step) {
      const int64_t units = cell_.sizes_.units, width = 4 * units, n = step.rows;
      const int64_t step_width = cell_.sizes_.input + units;
      const int64_t cell = step.t * cell_.sizes_.batch + step.row;
      const T* gate_rows = cell_.gates_ + cell * width;
      const T* c_before_rows = cell_.c_prev_ + cell * units;
      Rows<T> d_pre(sums_.Block(0, cell_.pre_activation_grads_ == nullptr
                                       ? nullptr
                                       : cell_.pre_activation_grads_ + cell * width),
                    n, width);
      if (!FusedLstmCellGradient(gate_rows, c_before_rows, step.d_state[0], step.d_state[1],
                                 step.d_previous[1], d_pre.data(), n, units, step.valid,
                                 step.all_valid)) {
        const ConstRows<T> gate(gate_rows, n, width);
        const auto i = gate.leftCols(units).array();
        const auto f = gate.middleCols(units, units).array();
        const auto g = gate.middleCols(2 * units, units).array();
        const auto o = gate.rightCols(units).array();
        const auto c_before = ConstRows<T>(c_before_rows, n, units).array();
        const auto d_h = ConstRows<T>(step.d_state[0], n, units).array();
        const auto dc = ConstRows<T>(step.d_state[1], n, units).array();
        auto tanh_c = tanh_c_.topRows(n).array();
        auto d_c = d_c_.topRows(n).array();
        tanh_c = (f * c_before + i * g).tanh();
        d_c = dc + d_h * o * (T(1) - tanh_c * tanh_c);
        d_pre.leftCols(units).array() = d_c * g * i * (T(1) - i);
        d_pre.middleCols(units, units).array() = d_c * c_before * f * (T(1) - f);
        d_pre.middleCols(2 * units, units).array() = d_c * i * (T(1) - g * g);
        d_pre.rightCols(units).array() = d_h * tanh_c * o * (T(1) - o);
        Rows<T>(step.d_previous[1], n, units).array() = d_c * f;
        rnn::ClearPaddedRows(step.valid, step.all_valid, d_pre);
      }
      rnn::BackpropagateRecords(cell_.weights_transposed_, d_pre.data(), width, step, units,
                                cell_.step_inputs_ + cell * step_width, step_width, &sums_,
                                product_scratch_.data());
    }

    void Finish() { cell_.sums_.Take(sums_); }

   private:
    LstmBackwardCell& cell_;
    typename rnn::GradientSums<T>::Shard sums_;
    RowMatrix<T> tanh_c_, d_c_;  // for the Eigen expressions
    Eigen::Matrix<T, Eigen::Dynamic, 1> product_scratch_;
  };

  void Finish(const rnn::Workers& workers) {
    if (sums_.enabled()) return;
    rnn::ParallelColumnSums(workers, pre_activation_grads_, sizes_.batch * sizes_.time,
                            4 * sizes_.units, d_bias_);
  }

 private:
  const RnnSizes sizes_;
  const rnn::DensePlan<T> plan_;
  const rnn::TransposedWeights<T> weights_transposed_;
  const T *const gates_, *const c_prev_, *const step_inputs_;
  T *const pre_activation_grads_, *const d_bias_;
  rnn::GradientSums<T> sums_;
};

template <typename T>
void LstmSequenceBackward(const rnn::Workers& workers, const RnnSizes& sizes,
                          const RnnOptions& options, const T* kernel, const T* recurrent_kernel,
                          const int32_t* lengths, const T* gates, const T* c_prev,
                          const T* step_inputs, const T* d_outputs, const T* d_final_h,
                          const T* d_final_c, T* d_inputs, T* d_initial_h, T* d_initial_c,
                          T* pre_activation_grads, T* d_weights, T* d_bias) {
  LstmBackwardCell<T> cell(workers, sizes, kernel, recurrent_kernel, gates, c_prev, step_inputs,
                           pre_activation_grads, d_weights, d_bias);
  rnn::RunBackward(workers, sizes, options, lengths, d_outputs, {d_final_h, d_final_c},
                   {d_initial_h, d_initial_c}, d_inputs, &cell);
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
