#include "linear_recurrence.h"

#include <algorithm>
#include <type_traits>

#include "packet_math.h"
#include "step_layout.h"

namespace zoo {

using rnn::ConstRow;

namespace {

template <typename T>
using Array = Eigen::Array<T, 1, Eigen::Dynamic>;

// A step runs over its units in chunks small enough for the gate arithmetic's temporaries to live
// on the stack and in registers: chunks of kChunk<T> units, which Eigen vectorizes whole, then one
// shorter chunk for the rest of the row. No temporary is allocated inside the time loop.
template <typename T>
inline constexpr int kChunk = 128 / sizeof(T);
template <typename T, int N>
using Chunk = Eigen::Array<T, 1, N, Eigen::RowMajor, 1, N == Eigen::Dynamic ? kChunk<T> : N>;
template <typename T, int N>
using ChunkView = Eigen::Map<Eigen::Array<T, 1, N>>;
template <typename T, int N>
using ConstChunkView = Eigen::Map<const Eigen::Array<T, 1, N>>;

// Calls function(std::integral_constant<int, N>, offset, count) for each chunk of a row of `units`.
template <typename T, typename Function>
void ForEachChunk(int64_t units, const Function& function) {
  constexpr int kSize = kChunk<T>;
  int64_t offset = 0;
  for (; offset + kSize <= units; offset += kSize) {
    function(std::integral_constant<int, kSize>(), offset, kSize);
  }
  if (offset < units) {
    function(std::integral_constant<int, Eigen::Dynamic>(), offset, units - offset);
  }
}

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

// Where the recurrence's coefficients come from and where their gradients go, for the units
// [offset, offset + count) of the step of index `at` = r T + t (example r, input time t), as a
// chunk of N units (N = count, or Eigen::Dynamic):
//   // h = a h + b
//   template <int N> void Advance(int64_t at, int64_t offset, int64_t count, T* h) const;
//   // Given the gradient reaching h_t and the state h_{t-1}, writes the gradients of a's and b's
//   // sources and d_state = d_h a (the gradient reaching h_{t-1}).
//   template <int N> void Gradient(int64_t at, int64_t r, int64_t offset, int64_t count,
//                                  const T* d_h, const T* h_previous, T* d_state) const;
//   void Clear(int64_t at) const;  // a padded step: no gradient
// Given: a and b as tensors of their own.
template <typename T>
struct GivenCoefficients {
  const T *a, *b;
  T *d_a, *d_b;
  int64_t units;

  template <int N>
  void Advance(int64_t at, int64_t offset, int64_t count, T* h) const {
    const int64_t first = at * units + offset;
    ChunkView<T, N> state(h + offset, count);
    state = ConstChunkView<T, N>(a + first, count) * state + ConstChunkView<T, N>(b + first, count);
  }
  template <int N>
  void Gradient(int64_t at, int64_t, int64_t offset, int64_t count, const T* d_h,
                const T* h_previous, T* d_state) const {
    const int64_t first = at * units + offset;
    const ConstChunkView<T, N> d_h_t(d_h + offset, count);
    ChunkView<T, N>(d_a + first, count) = d_h_t * ConstChunkView<T, N>(h_previous + offset, count);
    ChunkView<T, N>(d_b + first, count) = d_h_t;
    ChunkView<T, N>(d_state + offset, count) = d_h_t * ConstChunkView<T, N>(a + first, count);
  }
  void Clear(int64_t at) const {
    std::fill_n(d_a + at * units, units, T(0));
    std::fill_n(d_b + at * units, units, T(0));
  }
};

// g(x) = x + 1/2 for x >= 0, σ(x) otherwise, and with its derivative from the same σ(x).
template <int N, typename Values>
EIGEN_ALWAYS_INLINE Chunk<typename Values::Scalar, N> PositiveActivation(const Values& x) {
  using T = typename Values::Scalar;
  return (x >= T(0)).select(x + T(0.5), x.logistic());
}
template <int N, typename Values>
EIGEN_ALWAYS_INLINE void PositiveActivationAndDerivative(const Values& x,
                                                         Chunk<typename Values::Scalar, N>* g,
                                                         Chunk<typename Values::Scalar, N>* d_g) {
  using T = typename Values::Scalar;
  const Chunk<T, N> s = x.logistic();
  *g = (x >= T(0)).select(x + T(0.5), s);
  *d_g = (x >= T(0)).select(Chunk<T, N>::Ones(x.size()), s * (T(1) - s));
}

// Gated: a and b from the layer's projected input, in the pass that reads them.
template <typename T>
struct GatedCoefficients {
  GatedCellOptions gates;
  const T *projected, *log_base;
  T *d_projected, *d_log_base_rows;
  int64_t units;

  int64_t Width() const { return ProjectionBlocks(gates.cell) * units; }
  template <int N>
  ConstChunkView<T, N> Block(int64_t at, int block, int64_t offset, int64_t count) const {
    return ConstChunkView<T, N>(projected + at * Width() + block * units + offset, count);
  }
  template <int N>
  ChunkView<T, N> DBlock(int64_t at, int block, int64_t offset, int64_t count) const {
    return ChunkView<T, N>(d_projected + at * Width() + block * units + offset, count);
  }

  template <int N>
  void Advance(int64_t at, int64_t offset, int64_t count, T* h) const {
    ChunkView<T, N> state(h + offset, count);
    switch (gates.cell) {
      case GatedCell::kMinGru: {
        const Chunk<T, N> z = Block<N>(at, 0, offset, count).logistic();
        state = (T(1) - z) * state + z * PositiveActivation<N>(Block<N>(at, 1, offset, count));
        return;
      }
      case GatedCell::kMinLstm: {
        const Chunk<T, N> f = Block<N>(at, 0, offset, count).logistic();
        const Chunk<T, N> i = Block<N>(at, 1, offset, count).logistic();
        const Chunk<T, N> g = PositiveActivation<N>(Block<N>(at, 2, offset, count));
        state = (f * state + i * g) / (f + i);
        return;
      }
      case GatedCell::kRgLru: {
        const Chunk<T, N> log_a = T(gates.gate_exponent) *
                                  Block<N>(at, 0, offset, count).logistic() *
                                  ConstChunkView<T, N>(log_base + offset, count);
        state = log_a.exp() * state + (-(T(2) * log_a).expm1()).sqrt() *
                                          Block<N>(at, 1, offset, count).logistic() *
                                          Block<N>(at, 2, offset, count);
        return;
      }
    }
  }

  template <int N>
  void Gradient(int64_t at, int64_t r, int64_t offset, int64_t count, const T* d_h,
                const T* h_previous, T* d_state) const {
    const ConstChunkView<T, N> d_b(d_h + offset, count);
    const Chunk<T, N> d_a = d_b * ConstChunkView<T, N>(h_previous + offset, count);
    ChunkView<T, N> d_state_t(d_state + offset, count);
    switch (gates.cell) {
      case GatedCell::kMinGru: {
        const Chunk<T, N> z = Block<N>(at, 0, offset, count).logistic();
        Chunk<T, N> g(count), d_g(count);
        PositiveActivationAndDerivative<N>(Block<N>(at, 1, offset, count), &g, &d_g);
        DBlock<N>(at, 0, offset, count) = (d_b * g - d_a) * z * (T(1) - z);
        DBlock<N>(at, 1, offset, count) = d_b * z * d_g;
        d_state_t = d_b * (T(1) - z);
        return;
      }
      case GatedCell::kMinLstm: {
        const Chunk<T, N> f = Block<N>(at, 0, offset, count).logistic();
        const Chunk<T, N> i = Block<N>(at, 1, offset, count).logistic();
        Chunk<T, N> g(count), d_g(count);
        PositiveActivationAndDerivative<N>(Block<N>(at, 2, offset, count), &g, &d_g);
        const Chunk<T, N> inverse_total = (f + i).inverse();
        // d a / d f = i / (f + i)², d b / d f = -i g / (f + i)², and the same with f and i swapped.
        const Chunk<T, N> shared = (d_a - d_b * g) * inverse_total * inverse_total;
        DBlock<N>(at, 0, offset, count) = shared * i * f * (T(1) - f);
        DBlock<N>(at, 1, offset, count) = -shared * f * i * (T(1) - i);
        DBlock<N>(at, 2, offset, count) = d_b * i * inverse_total * d_g;
        d_state_t = d_b * f * inverse_total;
        return;
      }
      case GatedCell::kRgLru: {
        const ConstChunkView<T, N> base(log_base + offset, count);
        const T c = T(gates.gate_exponent);
        const Chunk<T, N> r_gate = Block<N>(at, 0, offset, count).logistic();
        const Chunk<T, N> i_gate = Block<N>(at, 1, offset, count).logistic();
        const Chunk<T, N> log_a = c * r_gate * base;
        const Chunk<T, N> a = log_a.exp();
        const Chunk<T, N> scale = (-(T(2) * log_a).expm1()).sqrt();
        const ConstChunkView<T, N> u = Block<N>(at, 2, offset, count);
        // d sqrt(1 - a²) / d log a = -a² / sqrt(1 - a²).
        const Chunk<T, N> d_log_a = d_a * a - d_b * i_gate * u * a * a / scale;
        DBlock<N>(at, 0, offset, count) = d_log_a * c * base * r_gate * (T(1) - r_gate);
        ChunkView<T, N>(d_log_base_rows + r * units + offset, count) += d_log_a * c * r_gate;
        DBlock<N>(at, 1, offset, count) = d_b * scale * u * i_gate * (T(1) - i_gate);
        DBlock<N>(at, 2, offset, count) = d_b * scale * i_gate;
        d_state_t = d_b * a;
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
    T* h = final_h + r * units;
    std::copy_n(initial_h + r * units, units, h);
    // h lives in final_h; the outputs of valid steps are copies of it.
    for (int64_t step = 0; step < time; ++step) {
      const int64_t t = rnn::TimeIndex(step, time, options.reverse);
      T* output = outputs + layout.Offset(step, r);
      if (t < lengths[r]) {
        ForEachChunk<T>(units, [&](auto size, int64_t offset, int64_t count) {
          source.template Advance<decltype(size)::value>(r * time + t, offset, count, h);
        });
        std::copy_n(h, units, output);
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
    T* d_state = d_initial_h + r * units;
    std::copy_n(d_final_h + r * units, units, d_state);
    Array<T> carried = Array<T>::Zero(units), d_h(units);
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
      d_h = ConstRow<T>(d_state, units) + d_output;
      if (any_carried) {
        d_h += carried;
        carried.setZero();
        any_carried = false;
      }
      // With right padding, every step before a valid one is valid, or none is.
      const T* h_previous = step > 0 && valid(step - 1) ? outputs + layout.Offset(step - 1, r)
                                                        : initial_h + r * units;
      ForEachChunk<T>(units, [&](auto size, int64_t offset, int64_t count) {
        source.template Gradient<decltype(size)::value>(at, r, offset, count, d_h.data(),
                                                        h_previous, d_state);
      });
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
