// Tests of MaskToLengths against its definition: the number of true entries of each row, and
// whether every row is a run of true followed only by false.
#include "mask_to_lengths.h"

#include <memory>
#include <random>
#include <vector>

#include "test_harness.h"

namespace zoo {
namespace {

ZOO_TEST(LengthsAndRightPaddingOfRandomMasks) {
  std::mt19937 random(1);
  for (int64_t batch : {0, 1, 5}) {
    for (int64_t time : {0, 1, 7}) {
      for (int trial = 0; trial < 20; ++trial) {
        // bool, not std::vector<bool>: MaskToLengths reads a plain bool buffer.
        std::unique_ptr<bool[]> mask(new bool[batch * time + 1]);
        std::vector<int32_t> expected(batch, 0);
        bool right_padded = true;
        for (int64_t b = 0; b < batch; ++b) {
          // Right-padded rows most of the time, any row otherwise.
          const int64_t length = random() % (time + 1);
          for (int64_t t = 0; t < time; ++t) {
            mask[b * time + t] = trial % 3 == 0 ? random() % 2 == 1 : t < length;
            expected[b] += mask[b * time + t];
            if (t > 0 && mask[b * time + t] && !mask[b * time + t - 1]) right_padded = false;
          }
        }
        std::vector<int32_t> lengths(batch, -1);
        EXPECT_EQ(MaskToLengths(mask.get(), batch, time, lengths.data()), right_padded);
        EXPECT_TRUE(lengths == expected);
      }
    }
  }
}

}  // namespace
}  // namespace zoo

ZOO_TEST_MAIN()
