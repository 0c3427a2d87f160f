#include "linear_recurrence.h"

#include <algorithm>

#include "packet_math.h"
#include "step_layout.h"

namespace zoo {

using rnn::ConstRow;
using rnn::Row;

namespace {

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

}  // namespace

template <typename T>
void LinearRecurrenceForward(const rnn::Workers& workers, const LinearRecurrenceSizes& sizes,
                             const RnnOptions& options, const T* a, const T* b, const T* initial_h,
                             const int32_t* lengths, T* outputs, T* final_h) {
  const int64_t time = sizes.time, units = sizes.units;
  const rnn::StepLayout layout{time, units};
  ForEachExample(workers, sizes, [&](int64_t r) {
    Row<T> final(final_h + r * units, units);
    final = ConstRow<T>(initial_h + r * units, units);
    // h lives in final_h; the outputs of valid steps are copies of it.
    for (int64_t step = 0; step < time; ++step) {
      const int64_t t = rnn::TimeIndex(step, time, options.reverse);
      T* output = outputs + layout.Offset(step, r);
      if (t < lengths[r]) {
        const int64_t at = (r * time + t) * units;
        final = ConstRow<T>(a + at, units) * final + ConstRow<T>(b + at, units);
        std::copy_n(final.data(), units, output);
      } else {
        rnn::PadOutputRow(output, 0, units, step, options.zero_output_for_mask, layout);
      }
    }
  });
}

template <typename T>
void LinearRecurrenceBackward(const rnn::Workers& workers, const LinearRecurrenceSizes& sizes,
                              const RnnOptions& options, const T* a, const T* initial_h,
                              const int32_t* lengths, const T* outputs, const T* d_outputs,
                              const T* d_final_h, T* d_a, T* d_b, T* d_initial_h) {
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
    Eigen::Array<T, 1, Eigen::Dynamic> carried = Eigen::Array<T, 1, Eigen::Dynamic>::Zero(units);
    bool any_carried = false;
    for (int64_t step = time - 1; step >= 0; --step) {
      const int64_t at = (r * time + rnn::TimeIndex(step, time, options.reverse)) * units;
      const ConstRow<T> d_output(d_outputs + layout.Offset(step, r), units);
      Row<T> d_b_t(d_b + at, units);
      if (!valid(step)) {
        std::fill_n(d_a + at, units, T(0));
        d_b_t.setZero();
        if (!options.zero_output_for_mask) {
          carried += d_output;
          any_carried = true;
        }
        continue;
      }
      // The gradient reaching h_t: its output's, the padded outputs' that repeat it, and the
      // recurrence's.
      if (any_carried) {
        d_b_t = d_state + d_output + carried;
        carried.setZero();
        any_carried = false;
      } else {
        d_b_t = d_state + d_output;
      }
      // With right padding, every step before a valid one is valid, or none is.
      const T* h_previous = step > 0 && valid(step - 1) ? outputs + layout.Offset(step - 1, r)
                                                        : initial_h + r * units;
      Row<T>(d_a + at, units) = d_b_t * ConstRow<T>(h_previous, units);
      d_state = d_b_t * ConstRow<T>(a + at, units);
    }
  });
}

#define ZOO_INSTANTIATE_LINEAR_RECURRENCE(T)                                                       \
  template void LinearRecurrenceForward<T>(const rnn::Workers&, const LinearRecurrenceSizes&,      \
                                           const RnnOptions&, const T*, const T*, const T*,        \
                                           const int32_t*, T*, T*);                                \
  template void LinearRecurrenceBackward<T>(const rnn::Workers&, const LinearRecurrenceSizes&,     \
                                            const RnnOptions&, const T*, const T*, const int32_t*, \
                                            const T*, const T*, const T*, T*, T*, T*);
ZOO_INSTANTIATE_LINEAR_RECURRENCE(float)
ZOO_INSTANTIATE_LINEAR_RECURRENCE(double)
#undef ZOO_INSTANTIATE_LINEAR_RECURRENCE

}  // namespace zoo
