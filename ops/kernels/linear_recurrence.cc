#include "linear_recurrence.h"

#include <algorithm>

#include "packet_math.h"
#include "step_layout.h"

namespace zoo {

using rnn::ConstRow;
using rnn::Row;

namespace {

template <typename T>
using Array = Eigen::Array<T, 1, Eigen::Dynamic>;

// Examples are independent through the whole recurrence, and each one's [T, H] block is
// contiguous: a batch split runs each example's time loop over its own rows.
template <typename Example>
void ForEachExample(const rnn::Workers& workers, const LinearRecurrenceSizes& sizes,
                    const Example& example) {
  rnn::ForEachBatchShard(workers, sizes.batch, sizes.time * sizes.units,
                         [&](int64_t first, int64_t end) {
                           for (int64_t r = first; r < end; ++r) example(r);
                         });
}

// Where the recurrence's coefficients come from and where their gradients go, for the step of
// index `at` = r T + t (example r, input time t):
//   void Coefficients(int64_t at, Array* a, Array* b) const;
//   // Given d_a and d_b (the gradient reaching h_t), writes their sources' gradients; gives a.
//   void Gradient(int64_t at, int64_t r, const Array& d_a, const Array& d_b, Array* a) const;
//   void Clear(int64_t at) const;  // a padded step: no gradient
// Given: a and b as tensors of their own.
template <typename T>
struct GivenCoefficients {
  const T *a, *b;
  T *d_a, *d_b;
  int64_t units;

  void Coefficients(int64_t at, Array<T>* a_t, Array<T>* b_t) const {
    *a_t = ConstRow<T>(a + at * units, units);
    *b_t = ConstRow<T>(b + at * units, units);
  }
  void Gradient(int64_t at, int64_t, const Array<T>& d_a_t, const Array<T>& d_b_t,
                Array<T>* a_t) const {
    Row<T>(d_a + at * units, units) = d_a_t;
    Row<T>(d_b + at * units, units) = d_b_t;
    *a_t = ConstRow<T>(a + at * units, units);
  }
  void Clear(int64_t at) const {
    std::fill_n(d_a + at * units, units, T(0));
    std::fill_n(d_b + at * units, units, T(0));
  }
};

// g(x) = x + 1/2 for x >= 0, σ(x) otherwise, and its derivative.
template <typename Values>
Array<typename Values::Scalar> PositiveActivation(const Values& x) {
  using T = typename Values::Scalar;
  return (x >= T(0)).select(x + T(0.5), x.logistic());
}
template <typename Values>
Array<typename Values::Scalar> PositiveActivationDerivative(const Values& x) {
  using T = typename Values::Scalar;
  const Array<T> s = x.logistic();
  return (x >= T(0)).select(Array<T>::Ones(x.size()), s * (T(1) - s));
}

// Gated: a and b from the layer's projected input, in the pass that reads them.
template <typename T>
struct GatedCoefficients {
  GatedCellOptions gates;
  const T *projected, *log_base;
  T *d_projected, *d_log_base_rows;
  int64_t units;

  int64_t Width() const { return ProjectionBlocks(gates.cell) * units; }
  ConstRow<T> Block(int64_t at, int block) const {
    return ConstRow<T>(projected + at * Width() + block * units, units);
  }
  Row<T> DBlock(int64_t at, int block) const {
    return Row<T>(d_projected + at * Width() + block * units, units);
  }

  void Coefficients(int64_t at, Array<T>* a, Array<T>* b) const {
    switch (gates.cell) {
      case GatedCell::kMinGru: {
        const Array<T> z = Block(at, 0).logistic();
        *a = T(1) - z;
        *b = z * PositiveActivation(Block(at, 1));
        return;
      }
      case GatedCell::kMinLstm: {
        const Array<T> f = Block(at, 0).logistic(), i = Block(at, 1).logistic();
        const Array<T> total = f + i;
        *a = f / total;
        *b = i * PositiveActivation(Block(at, 2)) / total;
        return;
      }
      case GatedCell::kRgLru: {
        const Array<T> log_a =
            T(gates.gate_exponent) * Block(at, 0).logistic() * ConstRow<T>(log_base, units);
        *a = log_a.exp();
        *b = (-(T(2) * log_a).expm1()).sqrt() * Block(at, 1).logistic() * Block(at, 2);
        return;
      }
    }
  }

  void Gradient(int64_t at, int64_t r, const Array<T>& d_a, const Array<T>& d_b,
                Array<T>* a_t) const {
    switch (gates.cell) {
      case GatedCell::kMinGru: {
        const Array<T> z = Block(at, 0).logistic(), g = PositiveActivation(Block(at, 1));
        *a_t = T(1) - z;
        DBlock(at, 0) = (d_b * g - d_a) * z * (T(1) - z);
        DBlock(at, 1) = d_b * z * PositiveActivationDerivative(Block(at, 1));
        return;
      }
      case GatedCell::kMinLstm: {
        const Array<T> f = Block(at, 0).logistic(), i = Block(at, 1).logistic();
        const Array<T> g = PositiveActivation(Block(at, 2)), total = f + i;
        const Array<T> total_squared = total * total;
        *a_t = f / total;
        DBlock(at, 0) = (d_a - d_b * g) * i / total_squared * f * (T(1) - f);
        DBlock(at, 1) = (d_b * g - d_a) * f / total_squared * i * (T(1) - i);
        DBlock(at, 2) = d_b * i / total * PositiveActivationDerivative(Block(at, 2));
        return;
      }
      case GatedCell::kRgLru: {
        const ConstRow<T> base(log_base, units);
        const T c = T(gates.gate_exponent);
        const Array<T> r_gate = Block(at, 0).logistic(), i_gate = Block(at, 1).logistic();
        const Array<T> log_a = c * r_gate * base;
        *a_t = log_a.exp();
        const Array<T> scale = (-(T(2) * log_a).expm1()).sqrt(), u = Block(at, 2);
        // d sqrt(1 - a²) / d log a = -a² / sqrt(1 - a²).
        const Array<T> d_log_a = d_a * *a_t - d_b * i_gate * u * (T(2) * log_a).exp() / scale;
        DBlock(at, 0) = d_log_a * c * base * r_gate * (T(1) - r_gate);
        Row<T>(d_log_base_rows + r * units, units) += d_log_a * c * r_gate;
        DBlock(at, 1) = d_b * scale * u * i_gate * (T(1) - i_gate);
        DBlock(at, 2) = d_b * scale * i_gate;
        return;
      }
    }
  }

  void Clear(int64_t at) const { std::fill_n(d_projected + at * Width(), Width(), T(0)); }
};

template <typename T, typename Source>
void Forward(const rnn::Workers& workers, const LinearRecurrenceSizes& sizes,
             const RnnOptions& options, const Source& source, const T* initial_h,
             const int32_t* lengths, T* outputs, T* final_h) {
  const int64_t time = sizes.time, units = sizes.units;
  const rnn::StepLayout layout{time, units};
  ForEachExample(workers, sizes, [&](int64_t r) {
    Array<T> a(units), b(units);
    Row<T> final(final_h + r * units, units);
    final = ConstRow<T>(initial_h + r * units, units);
    // h lives in final_h; the outputs of valid steps are copies of it.
    for (int64_t step = 0; step < time; ++step) {
      const int64_t t = rnn::TimeIndex(step, time, options.reverse);
      T* output = outputs + layout.Offset(step, r);
      if (t < lengths[r]) {
        source.Coefficients(r * time + t, &a, &b);
        final = a * final + b;
        std::copy_n(final.data(), units, output);
      } else {
        rnn::PadOutputRow(output, 0, units, step, options.zero_output_for_mask, layout);
      }
    }
  });
}

template <typename T, typename Source>
void Backward(const rnn::Workers& workers, const LinearRecurrenceSizes& sizes,
              const RnnOptions& options, const Source& source, const T* initial_h,
              const int32_t* lengths, const T* outputs, const T* d_outputs, const T* d_final_h,
              T* d_initial_h) {
  const int64_t time = sizes.time, units = sizes.units;
  const rnn::StepLayout layout{time, units};
  ForEachExample(workers, sizes, [&](int64_t r) {
    const int64_t length = lengths[r];
    const auto valid = [&](int64_t step) {
      return rnn::TimeIndex(step, time, options.reverse) < length;
    };
    // The gradient reaching the state after the step (it lives in d_initial_h), and what padded
    // steps' outputs, which repeat an earlier output, pass on to it.
    Row<T> d_state(d_initial_h + r * units, units);
    d_state = ConstRow<T>(d_final_h + r * units, units);
    Array<T> carried = Array<T>::Zero(units), a(units), d_h(units);
    bool any_carried = false;
    for (int64_t step = time - 1; step >= 0; --step) {
      const int64_t at = r * time + rnn::TimeIndex(step, time, options.reverse);
      const ConstRow<T> d_output(d_outputs + layout.Offset(step, r), units);
      if (!valid(step)) {
        source.Clear(at);
        if (!options.zero_output_for_mask) {
          carried += d_output;
          any_carried = true;
        }
        continue;
      }
      // The gradient reaching h_t (that is d b_t): its output's, the padded outputs' that repeat
      // it, and the recurrence's.
      if (any_carried) {
        d_h = d_state + d_output + carried;
        carried.setZero();
        any_carried = false;
      } else {
        d_h = d_state + d_output;
      }
      // With right padding, every step before a valid one is valid, or none is.
      const T* h_previous = step > 0 && valid(step - 1) ? outputs + layout.Offset(step - 1, r)
                                                        : initial_h + r * units;
      source.Gradient(at, r, d_h * ConstRow<T>(h_previous, units), d_h, &a);
      d_state = d_h * a;
    }
  });
}

}  // namespace

template <typename T>
void LinearRecurrenceForward(const rnn::Workers& workers, const LinearRecurrenceSizes& sizes,
                             const RnnOptions& options, const T* a, const T* b, const T* initial_h,
                             const int32_t* lengths, T* outputs, T* final_h) {
  Forward<T>(workers, sizes, options, GivenCoefficients<T>{a, b, nullptr, nullptr, sizes.units},
             initial_h, lengths, outputs, final_h);
}

template <typename T>
void LinearRecurrenceBackward(const rnn::Workers& workers, const LinearRecurrenceSizes& sizes,
                              const RnnOptions& options, const T* a, const T* initial_h,
                              const int32_t* lengths, const T* outputs, const T* d_outputs,
                              const T* d_final_h, T* d_a, T* d_b, T* d_initial_h) {
  Backward<T>(workers, sizes, options, GivenCoefficients<T>{a, nullptr, d_a, d_b, sizes.units},
              initial_h, lengths, outputs, d_outputs, d_final_h, d_initial_h);
}

template <typename T>
void GatedLinearRecurrenceForward(const rnn::Workers& workers, const LinearRecurrenceSizes& sizes,
                                  const RnnOptions& options, const GatedCellOptions& gates,
                                  const T* projected, const T* log_base, const T* initial_h,
                                  const int32_t* lengths, T* outputs, T* final_h) {
  Forward<T>(workers, sizes, options,
             GatedCoefficients<T>{gates, projected, log_base, nullptr, nullptr, sizes.units},
             initial_h, lengths, outputs, final_h);
}

template <typename T>
void GatedLinearRecurrenceBackward(const rnn::Workers& workers, const LinearRecurrenceSizes& sizes,
                                   const RnnOptions& options, const GatedCellOptions& gates,
                                   const T* projected, const T* log_base, const T* initial_h,
                                   const int32_t* lengths, const T* outputs, const T* d_outputs,
                                   const T* d_final_h, T* d_projected, T* d_log_base_rows,
                                   T* d_initial_h) {
  if (gates.cell == GatedCell::kRgLru) {
    std::fill_n(d_log_base_rows, sizes.batch * sizes.units, T(0));
  }
  Backward<T>(
      workers, sizes, options,
      GatedCoefficients<T>{gates, projected, log_base, d_projected, d_log_base_rows, sizes.units},
      initial_h, lengths, outputs, d_outputs, d_final_h, d_initial_h);
}

#define ZOO_INSTANTIATE_LINEAR_RECURRENCE(T)                                                       \
  template void LinearRecurrenceForward<T>(const rnn::Workers&, const LinearRecurrenceSizes&,      \
                                           const RnnOptions&, const T*, const T*, const T*,        \
                                           const int32_t*, T*, T*);                                \
  template void LinearRecurrenceBackward<T>(const rnn::Workers&, const LinearRecurrenceSizes&,     \
                                            const RnnOptions&, const T*, const T*, const int32_t*, \
                                            const T*, const T*, const T*, T*, T*, T*);             \
  template void GatedLinearRecurrenceForward<T>(                                                   \
      const rnn::Workers&, const LinearRecurrenceSizes&, const RnnOptions&,                        \
      const GatedCellOptions&, const T*, const T*, const T*, const int32_t*, T*, T*);              \
  template void GatedLinearRecurrenceBackward<T>(                                                  \
      const rnn::Workers&, const LinearRecurrenceSizes&, const RnnOptions&,                        \
      const GatedCellOptions&, const T*, const T*, const T*, const int32_t*, const T*, const T*,   \
      const T*, T*, T*, T*);
ZOO_INSTANTIATE_LINEAR_RECURRENCE(float)
ZOO_INSTANTIATE_LINEAR_RECURRENCE(double)
#undef ZOO_INSTANTIATE_LINEAR_RECURRENCE

}  // namespace zoo
