// Lengths of right-padded masks, in plain C++ over raw buffers (no TensorFlow types).
#ifndef ZOO_OPS_KERNELS_MASK_TO_LENGTHS_H_
#define ZOO_OPS_KERNELS_MASK_TO_LENGTHS_H_

#include <cstdint>

namespace zoo {

// For a row-major [batch, time] mask, writes the number of true entries of each row to
// `lengths` and returns whether every row is a run of true followed only by false.
bool MaskToLengths(const bool* mask, int64_t batch, int64_t time, int32_t* lengths);

}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_MASK_TO_LENGTHS_H_
