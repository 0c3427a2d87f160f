// The sequence driver of the fused recurrent kernels.
#ifndef ZOO_OPS_KERNELS_SEQUENCE_DRIVER_H_
#define ZOO_OPS_KERNELS_SEQUENCE_DRIVER_H_

#include <cstdint>

namespace zoo {

// Sizes of a sequence op: inputs [batch, time, input], states [batch, units].
struct RnnSizes {
  int64_t batch;
  int64_t time;
  int64_t input;
  int64_t units;
};

// Keras's direction and padding rule: `reverse` processes t = T-1 .. 0 (go_backwards);
// zero_output_for_mask gives padded steps a zero output instead of the previous one.
struct RnnOptions {
  bool reverse;
  bool zero_output_for_mask;
};

}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_SEQUENCE_DRIVER_H_
