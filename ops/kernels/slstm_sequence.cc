#include "slstm_sequence.h"

#include <algorithm>
#include <vector>

#include "packet_math.h"
#include "step_layout.h"

namespace zoo {

using rnn::RowMatrix;

namespace {

template <typename T>
using Array = Eigen::Array<T, 1, Eigen::Dynamic>;
template <typename T>
using ConstRow = rnn::ConstRow<T>;
template <typename T>
using Row = rnn::Row<T>;

// log σ(x) = -softplus(-x), without overflow for either sign of x.
template <typename Values>
auto LogSigmoid(const Values& x) {
  return x.min(typename Values::Scalar(0)) - (-x.abs()).exp().log1p();
}

// Head k's block of the recurrent kernel, [d, 4d]: its gates i, f, z, o side by side.
template <typename T>
rnn::ConstRows<T> HeadKernel(const SlstmSizes& sizes, const T* recurrent_kernel, int64_t k) {
  const int64_t d = sizes.head_size;
  return rnn::ConstRows<T>(recurrent_kernel + k * d * 4 * d, d, 4 * d);
}

// gates[:, g H + k d : + d] += h[:, k d : + d] R[k][:, g d : + d] for every head k and gate g: one
// product per head, the multiply-adds of the blocks only. `head_gates` is [rows, 4d] scratch.
template <typename T>
void AddRecurrentProduct(const SlstmSizes& sizes, const T* recurrent_kernel,
                         const RowMatrix<T>& states, RowMatrix<T>* gates,
                         RowMatrix<T>* head_gates) {
  const int64_t d = sizes.head_size, units = sizes.units(), rows = states.rows();
  for (int64_t k = 0; k < sizes.heads; ++k) {
    head_gates->noalias() =
        states.block(0, k * d, rows, d) * HeadKernel(sizes, recurrent_kernel, k);
    for (int g = 0; g < 4; ++g) {
      gates->block(0, g * units + k * d, rows, d) += head_gates->middleCols(g * d, d);
    }
  }
}

// d_h[:, k d : + d] = Σ_g d_gates[:, g H + k d : + d] R[k][:, g d : + d]ᵀ, the transpose of the
// product above. `head_gates` is [rows, 4d] scratch.
template <typename T>
void RecurrentProductGradient(const SlstmSizes& sizes, const T* recurrent_kernel,
                              const RowMatrix<T>& d_gates, RowMatrix<T>* d_h,
                              RowMatrix<T>* head_gates) {
  const int64_t d = sizes.head_size, units = sizes.units(), rows = d_gates.rows();
  for (int64_t k = 0; k < sizes.heads; ++k) {
    for (int g = 0; g < 4; ++g) {
      head_gates->middleCols(g * d, d) = d_gates.block(0, g * units + k * d, rows, d);
    }
    d_h->middleCols(k * d, d).noalias() =
        *head_gates * HeadKernel(sizes, recurrent_kernel, k).transpose();
  }
}

// The stabilised cell of one row, from its gate pre-activations and the states it starts from.
template <typename T>
struct SlstmCell {
  SlstmCell(const T* gates, const T* h_c_n_m, int64_t units)
      : input(ConstRow<T>(gates, units)),
        forget(ConstRow<T>(gates + units, units)),
        candidate(ConstRow<T>(gates + 2 * units, units).tanh()),
        output(ConstRow<T>(gates + 3 * units, units).logistic()),
        c_previous(ConstRow<T>(h_c_n_m + units, units)),
        n_previous(ConstRow<T>(h_c_n_m + 2 * units, units)),
        m_previous(ConstRow<T>(h_c_n_m + 3 * units, units)),
        log_forget(LogSigmoid(forget)),
        forget_path(log_forget + m_previous),
        m(forget_path.max(input)),
        input_scale((input - m).exp()),
        forget_scale((forget_path - m).exp()),
        c(forget_scale * c_previous + input_scale * candidate),
        n(forget_scale * n_previous + input_scale),
        h(output * c / n) {}

  const ConstRow<T> input, forget;
  const Array<T> candidate, output;
  const ConstRow<T> c_previous, n_previous, m_previous;
  const Array<T> log_forget, forget_path, m, input_scale, forget_scale, c, n, h;
};

// Examples are independent through the whole recurrence: a batch split runs each block's time
// loop over its rows together, so that the recurrent products are products of blocks of rows.
template <typename Shard>
void ForEachShard(const rnn::Workers& workers, const SlstmSizes& sizes, const Shard& shard) {
  const int64_t units = sizes.units();
  rnn::ForEachBatchShard(workers, sizes.batch, sizes.time * units * (4 * sizes.head_size + 20),
                         [&](int64_t first, int64_t end) { shard(first, end - first); });
}

}  // namespace

template <typename T>
void SlstmSequenceForward(const rnn::Workers& workers, const SlstmSizes& sizes,
                          const RnnOptions& options, const T* projected, const T* recurrent_kernel,
                          const std::array<const T*, kSlstmStates>& initial, const int32_t* lengths,
                          T* outputs, const std::array<T*, kSlstmStates>& final, T* pre,
                          T* previous) {
  const int64_t time = sizes.time, units = sizes.units(), width = 4 * units;
  const rnn::StepLayout layout{time, units};
  ForEachShard(workers, sizes, [&](int64_t first, int64_t rows) {
    // The states of the shard's rows side by side, [h, c, n, m], and the step's gates.
    RowMatrix<T> states(rows, width), gates(rows, width), head_gates(rows, 4 * sizes.head_size);
    for (int s = 0; s < kSlstmStates; ++s) {
      states.middleCols(s * units, units) =
          rnn::ConstRows<T>(initial[s] + first * units, rows, units);
    }
    for (int64_t step = 0; step < time; ++step) {
      const int64_t t = rnn::TimeIndex(step, time, options.reverse);
      gates = rnn::ConstStridedRows<T>(projected + (first * time + t) * width, rows, width,
                                       Eigen::OuterStride<>(time * width));
      AddRecurrentProduct(sizes, recurrent_kernel, states, &gates, &head_gates);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t at = ((first + r) * time + t) * width;
        T* output = outputs + layout.Offset(step, first + r);
        if (t >= lengths[first + r]) {
          std::fill_n(pre + at, width, T(0));
          std::fill_n(previous + at, width, T(0));
          rnn::PadOutputRow(output, 0, units, step, options.zero_output_for_mask, layout);
          continue;
        }
        std::copy_n(gates.row(r).data(), width, pre + at);
        std::copy_n(states.row(r).data(), width, previous + at);
        const SlstmCell<T> cell(pre + at, previous + at, units);
        states.row(r) << cell.h.matrix(), cell.c.matrix(), cell.n.matrix(), cell.m.matrix();
        std::copy_n(cell.h.data(), units, output);
      }
    }
    for (int s = 0; s < kSlstmStates; ++s) {
      rnn::Rows<T>(final[s] + first * units, rows, units) = states.middleCols(s * units, units);
    }
  });
}

template <typename T>
void SlstmSequenceBackward(const rnn::Workers& workers, const SlstmSizes& sizes,
                           const RnnOptions& options, const T* recurrent_kernel,
                           const int32_t* lengths, const T* pre, const T* previous,
                           const T* d_outputs, const std::array<const T*, kSlstmStates>& d_final,
                           T* d_projected, const std::array<T*, kSlstmStates>& d_initial) {
  const int64_t time = sizes.time, units = sizes.units(), width = 4 * units;
  const rnn::StepLayout layout{time, units};
  ForEachShard(workers, sizes, [&](int64_t first, int64_t rows) {
    // The gradients reaching the states after the step, [h, c, n, m], what padded steps'
    // outputs pass on to the output they repeat, the step's gate gradients and d h_{t-1}.
    RowMatrix<T> d_states(rows, width), d_gates(rows, width), d_h(rows, units);
    RowMatrix<T> head_gates(rows, 4 * sizes.head_size);
    RowMatrix<T> carried = RowMatrix<T>::Zero(rows, units);
    for (int s = 0; s < kSlstmStates; ++s) {
      d_states.middleCols(s * units, units) =
          rnn::ConstRows<T>(d_final[s] + first * units, rows, units);
    }
    std::vector<char> valid(rows);
    for (int64_t step = time - 1; step >= 0; --step) {
      const int64_t t = rnn::TimeIndex(step, time, options.reverse);
      for (int64_t r = 0; r < rows; ++r) {
        const ConstRow<T> d_output(d_outputs + layout.Offset(step, first + r), units);
        valid[r] = t < lengths[first + r];
        if (!valid[r]) {
          d_gates.row(r).setZero();
          if (!options.zero_output_for_mask) carried.row(r).array() += d_output;
          continue;
        }
        const int64_t at = ((first + r) * time + t) * width;
        const SlstmCell<T> cell(pre + at, previous + at, units);
        const auto d_state = [&](int s) { return d_states.block(r, s * units, 1, units).array(); };
        const Array<T> d_h_total = d_state(0) + d_output + carried.row(r).array();
        carried.row(r).setZero();
        // h = σ(õ) c / n.
        const Array<T> d_c = d_state(1) + d_h_total * cell.output / cell.n;
        const Array<T> d_n = d_state(2) - d_h_total * cell.h / cell.n;
        // c = f' c_prev + i' tanh(z̃), n = f' n_prev + i'.
        const Array<T> d_forget_scale = d_c * cell.c_previous + d_n * cell.n_previous;
        const Array<T> d_input_scale = d_c * cell.candidate + d_n;
        // i' = exp(ĩ - m), f' = exp(log σ(f̃) + m_prev - m): what reaches m, then the maximum
        // (ties to its first argument, as TensorFlow's gradient of Maximum).
        const Array<T> d_input_exponent = d_input_scale * cell.input_scale;
        const Array<T> d_forget_exponent = d_forget_scale * cell.forget_scale;
        const Array<T> d_m = d_state(3) - d_input_exponent - d_forget_exponent;
        const auto forget_wins = cell.forget_path >= cell.input;
        const Array<T> d_forget_path = d_forget_exponent + forget_wins.select(d_m, T(0));
        auto gates = d_gates.row(r);
        gates.segment(0, units).array() = d_input_exponent + forget_wins.select(T(0), d_m);
        gates.segment(units, units).array() =
            d_forget_path * (T(1) - cell.forget.logistic());  // d log σ(x) / dx = σ(-x)
        gates.segment(2 * units, units).array() =
            d_c * cell.input_scale * (T(1) - cell.candidate.square());
        gates.segment(3 * units, units).array() =
            d_h_total * cell.c / cell.n * cell.output * (T(1) - cell.output);
        d_states.block(r, units, 1, units).array() = d_c * cell.forget_scale;
        d_states.block(r, 2 * units, 1, units).array() = d_n * cell.forget_scale;
        d_states.block(r, 3 * units, 1, units).array() = d_forget_path;
      }
      rnn::StridedRows<T>(d_projected + (first * time + t) * width, rows, width,
                          Eigen::OuterStride<>(time * width)) = d_gates;
      RecurrentProductGradient(sizes, recurrent_kernel, d_gates, &d_h, &head_gates);
      for (int64_t r = 0; r < rows; ++r) {
        if (valid[r]) d_states.row(r).leftCols(units) = d_h.row(r);
      }
    }
    // Gradient carried to before the first valid step reaches a zero output: nothing.
    for (int s = 0; s < kSlstmStates; ++s) {
      rnn::Rows<T>(d_initial[s] + first * units, rows, units) =
          d_states.middleCols(s * units, units);
    }
  });
}

#define ZOO_INSTANTIATE_SLSTM(T)                                                                   \
  template void SlstmSequenceForward<T>(const rnn::Workers&, const SlstmSizes&, const RnnOptions&, \
                                        const T*, const T*,                                        \
                                        const std::array<const T*, kSlstmStates>&, const int32_t*, \
                                        T*, const std::array<T*, kSlstmStates>&, T*, T*);          \
  template void SlstmSequenceBackward<T>(                                                          \
      const rnn::Workers&, const SlstmSizes&, const RnnOptions&, const T*, const int32_t*,         \
      const T*, const T*, const T*, const std::array<const T*, kSlstmStates>&, T*,                 \
      const std::array<T*, kSlstmStates>&);
ZOO_INSTANTIATE_SLSTM(float)
ZOO_INSTANTIATE_SLSTM(double)
#undef ZOO_INSTANTIATE_SLSTM

}  // namespace zoo
