#include "mask_to_lengths.h"

namespace zoo {

bool MaskToLengths(const bool* mask, int64_t batch, int64_t time, int32_t* lengths) {
  bool right_padded = true;
  for (int64_t b = 0; b < batch; ++b) {
    const bool* row = mask + b * time;
    int32_t count = 0;
    bool seen_padding = false;
    for (int64_t t = 0; t < time; ++t) {
      if (row[t]) {
        ++count;
        if (seen_padding) right_padded = false;
      } else {
        seen_padding = true;
      }
    }
    lengths[b] = count;
  }
  return right_padded;
}

}  // namespace zoo
