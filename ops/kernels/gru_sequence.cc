#include "gru_sequence.h"

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

// The update and reset gates of units [first, first + count) of a block of
// rows: z and r = sigmoid(x W + h U + biases), from the products x W and h U
// (without biases) into `gates`.
template <typename GateRows, typename Product, typename InputBias, typename RecurrentBias>
void GruUpdateResetStep(GateRows gates, const Product& x, const Product& from_h,
                        const InputBias& input_bias, const RecurrentBias& recurrent_bias,
                        int64_t units, int64_t first, int64_t count) {
  // Biases broadcast in passes of their own: inside the activation's expression
  // the broadcast kept Eigen from vectorising it. With all the units, z and r
  // are one block of whole rows.
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
// GruUpdateResetStep: the recurrent candidate h U_h + b_rec_h (kept in the
// gates' last block for the backward pass), h~ = tanh(x W_h + b_in_h + r *
// that) and new_h = z * h + (1 - z) * h~.
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

// GruUpdateResetStep and GruResetAfterStep for units [first, first + count) of
// float rows (h and new_h hold those units only), one pass over each row with
// Eigen's packet functions, new_h also written to the rows of `output`
// (`output_stride` apart) unless it is null: false where it does not apply
// (count not a multiple of a packet).
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

// The element-wise part of a reset_after GRU's backward step for all the units
// of float rows, one pass over each row: from the activated `gates` [n, 4H] (z,
// r, the candidate and the recurrent candidate h U_h + b), h_prev [n, H] and
// the gradient reaching h, d_h [n, H], writes the gradients of the input
// projections, dx [n, 3H], and of the recurrent ones, d_from_h [n, 3H] (zero in
// rows that are not `valid`), and the part of the gradient reaching h_prev that
// does not go through U, new_dh = d_h * z [n, H]. False where it does not apply
// (units not a multiple of a packet); the caller then runs the same arithmetic
// as Eigen expressions.
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

// The GRU's forward step (sequence_driver.h): state h; kept the gates (z, r, h~
// and, with reset_after, the recurrent candidate) and h_prev.
template <typename T>
class GruForwardCell {
 public:
  using Scalar = T;
  static constexpr int kStates = 1, kKept = 2;
  using Call = rnn::ForwardStep<T, kStates, kKept>;

  // One thread's products of a step: x W and h U (with reset_after all three
  // gates, else z and r), and without reset_after r * h and (r * h) U_h.
  struct Scratch {
    Scratch(const GruForwardCell& cell, int64_t rows)
        : x(rows, 3 * cell.units_),
          from_h(rows, (cell.reset_after_ ? 3 : 2) * cell.units_),
          reset_h(rows, cell.units_),
          candidate_from_h(rows, cell.units_) {}
    RowMatrix<T> x, from_h, reset_h, candidate_from_h;
  };

  GruForwardCell(const rnn::Workers& workers, const RnnSizes& sizes, bool reset_after,
                 const T* kernel, const T* recurrent_kernel, const T* bias)
      : units_(sizes.units),
        reset_after_(reset_after),
        // Split by units only with reset_after: otherwise (r * h) U_h needs
        // every unit of r.
        plan_(rnn::PlanDenseForward<T>(workers, sizes, 3, sizes.time * units_ * 3 * units_,
                                       reset_after, GruGateWidth(units_, reset_after))),
        input_weights_(kernel, 3 * units_, sizes.input, 3 * units_, false, plan_.packing),
        recurrent_from_h_(recurrent_kernel, 3 * units_, units_, (reset_after ? 3 : 2) * units_,
                          false, plan_.packing),
        recurrent_h_(recurrent_kernel + 2 * units_, 3 * units_, units_, reset_after ? 0 : units_,
                     false, plan_.packing),
        input_bias_(bias, 3 * units_),
        // Without reset_after there is no recurrent bias; a zero row keeps one
        // code path.
        recurrent_bias_(reset_after ? Eigen::Array<T, 1, Eigen::Dynamic>(
                                          ConstRow<T>(bias + 3 * units_, 3 * units_))
                                    : Eigen::Array<T, 1, Eigen::Dynamic>::Zero(3 * units_)) {}

  const rnn::Split& split() const { return plan_.split; }
  rnn::SharedSetup Setup() const {
    return rnn::PrepareAll(input_weights_, recurrent_from_h_, recurrent_h_);
  }

  void Step(const Call& step, Scratch* scratch) const {
    const int64_t units = units_, rows = step.rows, first = step.first, count = step.count;
    const rnn::UnitRangeProducts<T> products(units, 3, first, count);
    // x_t * W per step, into a block that stays in cache; a product of all
    // steps at once, with its small inner dimension, would write and then read
    // a B*T*3H buffer.
    products.Multiply(input_weights_, step.x.data, step.x.stride, rows, scratch->x.data(),
                      3 * units);
    products.Multiply(recurrent_from_h_, step.state[0].data, step.state[0].stride, rows,
                      scratch->from_h.data(), scratch->from_h.cols());
    Rows<T> gates(step.kept[0], rows, GruGateWidth(units, reset_after_));
    const auto x = scratch->x.topRows(rows);
    const auto from_h = scratch->from_h.topRows(rows);
    const auto h = rnn::Columns(step.state[0], rows, first, count);
    auto next_h = rnn::Columns(step.next[0], rows, first, count);
    T* output = step.output.data == nullptr ? nullptr : step.output.data + first;
    if (reset_after_ &&
        FusedGruResetAfterStep(gates, x, from_h, input_bias_, recurrent_bias_, units, first, count,
                               h, next_h, output, step.output.stride)) {
      return;
    }
    GruUpdateResetStep(gates, x, from_h, input_bias_, recurrent_bias_, units, first, count);
    if (reset_after_) {
      GruResetAfterStep(gates, x, from_h, input_bias_, recurrent_bias_, units, first, count, h,
                        next_h);
    } else {
      const auto update = gates.leftCols(units).array();
      const auto reset = gates.middleCols(units, units).array();
      auto candidate = gates.middleCols(2 * units, units).array();
      auto reset_h = scratch->reset_h.topRows(rows);
      auto candidate_from_h = scratch->candidate_from_h.topRows(rows);
      reset_h.array() = reset * h.array();
      recurrent_h_.Multiply(reset_h.data(), units, rows, candidate_from_h.data(), units, false);
      candidate = x.rightCols(units).array() + candidate_from_h.array();
      candidate.rowwise() += input_bias_.tail(units);
      candidate = candidate.tanh();
      next_h.array() = update * h.array() + (T(1) - update) * candidate;
    }
    if (output != nullptr) rnn::Columns(step.output, rows, first, count) = next_h;
  }

 private:
  const int64_t units_;
  const bool reset_after_;
  const rnn::DensePlan<T> plan_;
  const rnn::PackedMatrix<T> input_weights_, recurrent_from_h_, recurrent_h_;
  const ConstRow<T> input_bias_;
  const Eigen::Array<T, 1, Eigen::Dynamic> recurrent_bias_;
};

template <typename T>
void GruSequenceForward(const rnn::Workers& workers, const RnnSizes& sizes,
                        const RnnOptions& options, bool reset_after, const T* inputs,
                        const T* initial_h, const T* kernel, const T* recurrent_kernel,
                        const T* bias, const int32_t* lengths, T* outputs, T* final_h, T* gates,
                        T* h_prev) {
  const GruForwardCell<T> cell(workers, sizes, reset_after, kernel, recurrent_kernel, bias);
  // h lives in h_prev.
  rnn::RunForward(
      workers, sizes, options,
      rnn::ForwardBuffers<T, 1, 2>{inputs,
                                   lengths,
                                   outputs,
                                   {initial_h},
                                   {final_h},
                                   {{{gates, GruGateWidth(sizes.units, reset_after), true, false},
                                     {h_prev, sizes.units, false, false}}},
                                   {{{1, 0}}}},
      cell);
}

// The GRU's backward step: the gradients of the input and recurrent projections
// of a block of rows, the gradient reaching h_prev (through z directly and
// through U), d x_t, and the weight gradients' share of the block while it is
// in cache.
template <typename T>
class GruBackwardCell {
 public:
  using Scalar = T;
  static constexpr int kStates = 1;

  GruBackwardCell(const rnn::Workers& workers, const RnnSizes& sizes, bool reset_after,
                  const T* inputs, const T* kernel, const T* recurrent_kernel, const T* gates,
                  const T* h_prev, T* d_projected, T* d_recurrent, T* d_kernel,
                  T* d_recurrent_kernel, T* d_bias)
      : sizes_(sizes),
        reset_after_(reset_after),
        plan_(rnn::PlanDenseBackward<T>(
            workers, sizes, 3, sizes.time * sizes.units * 3 * sizes.units, 3 * sizes.units)),
        // d * U^T (all three gates with reset_after, else z and r), and
        // d_candidate * U_h^T without it.
        recurrent_transposed_(recurrent_kernel, 3 * sizes.units,
                              (reset_after ? 3 : 2) * sizes.units, sizes.units, true,
                              plan_.packing),
        recurrent_h_transposed_(recurrent_kernel + 2 * sizes.units, 3 * sizes.units,
                                reset_after ? 0 : sizes.units, sizes.units, true, plan_.packing),
        input_weights_transposed_(kernel, 3 * sizes.units, 3 * sizes.units, sizes.input, true,
                                  plan_.packing),
        inputs_(inputs),
        gates_(gates),
        h_prev_(h_prev),
        d_projected_(d_projected),
        d_recurrent_(d_recurrent),
        d_bias_(d_bias),
        // Outputs 0, 1, 2: d_kernel, d_recurrent_kernel, d_bias.
        sums_(d_kernel != nullptr, {{d_kernel, sizes.input * 3 * sizes.units},
                                    {d_recurrent_kernel, sizes.units * 3 * sizes.units},
                                    {d_bias, (reset_after ? 2 : 1) * 3 * sizes.units}}) {}

  const rnn::Split& split() const { return plan_.split; }
  rnn::SharedSetup Setup() const {
    return rnn::PrepareAll(recurrent_transposed_, recurrent_h_transposed_,
                           input_weights_transposed_);
  }

  class Shard {
   public:
    Shard(GruBackwardCell* cell, int64_t rows)
        : cell_(*cell),
          sums_(cell->sums_.ForShard({rows * 3 * cell->sizes_.units,
                                      rows * (cell->reset_after_ ? 3 : 1) * cell->sizes_.units})),
          d_reset_h_(rows, cell->sizes_.units) {}

    void Step(const rnn::BackwardStep<T, kStates>& step) {
      const RnnSizes& sizes = cell_.sizes_;
      const int64_t units = sizes.units, width = 3 * units, n = step.rows;
      const int64_t gate_width = GruGateWidth(units, cell_.reset_after_);
      const int64_t cell = step.t * sizes.batch + step.row;
      const ConstRows<T> gate(cell_.gates_ + cell * gate_width, n, gate_width);
      const auto update = gate.leftCols(units).array();
      const auto reset = gate.middleCols(units, units).array();
      const auto candidate = gate.middleCols(2 * units, units).array();
      const T* const h_prev_rows = cell_.h_prev_ + cell * units;
      const auto before = ConstRows<T>(h_prev_rows, n, units).array();
      const auto d_h_rows = ConstRows<T>(step.d_state[0], n, units).array();
      auto new_dh_rows = Rows<T>(step.d_previous[0], n, units).array();
      Rows<T> dx(sums_.Block(0, Kept(cell_.d_projected_, cell * width)), n, width);
      auto d_candidate = dx.rightCols(units).array();
      // The block's rows of x_t in the batch-major inputs, `time` rows apart.
      const T* const x_rows = cell_.inputs_ + (step.row * sizes.time + step.t) * sizes.input;
      // The update gate's and the candidate's gradients, and d_h's part that
      // skips U.
      const auto gradients_beside_reset = [&] {
        dx.leftCols(units).array() = d_h_rows * (before - candidate) * update * (T(1) - update);
        d_candidate = d_h_rows * (T(1) - update) * (T(1) - candidate * candidate);
        new_dh_rows = d_h_rows * update;
      };
      if (cell_.reset_after_) {
        Rows<T> d_from_h(sums_.Block(1, Kept(cell_.d_recurrent_, cell * width)), n, width);
        if (!FusedGruResetAfterGradient(gate.data(), h_prev_rows, step.d_state[0], dx.data(),
                                        d_from_h.data(), step.d_previous[0], n, units, step.valid,
                                        step.all_valid)) {
          gradients_beside_reset();
          dx.middleCols(units, units).array() =
              d_candidate * gate.rightCols(units).array() * reset * (T(1) - reset);
          d_from_h.leftCols(2 * units) = dx.leftCols(2 * units);
          d_from_h.rightCols(units).array() = d_candidate * reset;
          rnn::ClearPaddedRows(step.valid, step.all_valid, dx);
          rnn::ClearPaddedRows(step.valid, step.all_valid, d_from_h);
        }
        cell_.recurrent_transposed_.Multiply(d_from_h.data(), width, n, step.d_previous[0], units,
                                             true);
        sums_.AddProduct(1, 0, width, h_prev_rows, units, units, d_from_h.data(), width, n, width);
        sums_.AddColumnSums(2, width, d_from_h.data(), width, n, width);
      } else {
        gradients_beside_reset();
        // The reset gate acts before U_h: its gradient needs d(r * h_prev)
        // first.
        rnn::ClearPaddedRows(step.valid, step.all_valid, dx);
        auto d_reset_h_rows = d_reset_h_.topRows(n).array();
        cell_.recurrent_h_transposed_.Multiply(dx.data() + 2 * units, width, n,
                                               d_reset_h_rows.data(), units, false);
        dx.middleCols(units, units).array() = d_reset_h_rows * before * reset * (T(1) - reset);
        Rows<T> reset_h(sums_.Block(1, Kept(cell_.d_recurrent_, cell * units)), n, units);
        reset_h.array() = reset * before;
        new_dh_rows += d_reset_h_rows * reset;
        rnn::ClearPaddedRows(step.valid, step.all_valid, dx);
        rnn::ClearPaddedRows(step.valid, step.all_valid, reset_h);
        cell_.recurrent_transposed_.Multiply(dx.data(), width, n, step.d_previous[0], units, true);
        sums_.AddProduct(1, 0, width, h_prev_rows, units, units, dx.data(), width, n, 2 * units);
        sums_.AddProduct(1, 2 * units, width, reset_h.data(), units, units, dx.data() + 2 * units,
                         width, n, units);
      }
      sums_.AddProduct(0, 0, width, x_rows, sizes.time * sizes.input, sizes.input, dx.data(), width,
                       n, width);
      sums_.AddColumnSums(2, 0, dx.data(), width, n, width);
      // d x_t = dx * W^T while dx is in cache, straight into the batch-major
      // d_inputs.
      cell_.input_weights_transposed_.Multiply(dx.data(), width, n, step.d_inputs.data,
                                               step.d_inputs.stride, false);
    }

    void Finish() { cell_.sums_.Take(sums_); }

   private:
    // Rows `offset` of a factor the caller multiplies, or null where the kernel
    // sums instead.
    static T* Kept(T* factor, int64_t offset) {
      return factor == nullptr ? nullptr : factor + offset;
    }

    GruBackwardCell& cell_;
    typename rnn::GradientSums<T>::Shard sums_;
    RowMatrix<T> d_reset_h_;
  };

  void Finish(const rnn::Workers& workers) {
    if (sums_.enabled()) return;
    const int64_t rows = sizes_.batch * sizes_.time, width = 3 * sizes_.units;
    rnn::ParallelColumnSums(workers, d_projected_, rows, width, d_bias_);
    if (reset_after_) rnn::ParallelColumnSums(workers, d_recurrent_, rows, width, d_bias_ + width);
  }

 private:
  const RnnSizes sizes_;
  const bool reset_after_;
  const rnn::DensePlan<T> plan_;
  const rnn::PackedMatrix<T> recurrent_transposed_, recurrent_h_transposed_,
      input_weights_transposed_;
  const T *const inputs_, *const gates_, *const h_prev_;
  T *const d_projected_, *const d_recurrent_, *const d_bias_;
  rnn::GradientSums<T> sums_;
};

template <typename T>
void GruSequenceBackward(const rnn::Workers& workers, const RnnSizes& sizes,
                         const RnnOptions& options, bool reset_after, const T* inputs,
                         const T* kernel, const T* recurrent_kernel, const int32_t* lengths,
                         const T* gates, const T* h_prev, const T* d_outputs, const T* d_final_h,
                         T* d_inputs, T* d_initial_h, T* d_projected, T* d_recurrent, T* d_kernel,
                         T* d_recurrent_kernel, T* d_bias) {
  GruBackwardCell<T> cell(workers, sizes, reset_after, inputs, kernel, recurrent_kernel, gates,
                          h_prev, d_projected, d_recurrent, d_kernel, d_recurrent_kernel, d_bias);
  rnn::RunBackward(workers, sizes, options, lengths, d_outputs, {d_final_h}, {d_initial_h},
                   d_inputs, &cell);
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
