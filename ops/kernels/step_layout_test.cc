// Tests of the step layout and masks (step_layout.h) against their definitions written out.
#include "step_layout.h"

#include <vector>

#include "sequence_test_util.h"
#include "test_harness.h"

namespace zoo {
namespace {

ZOO_TEST(TimeIndexAndLayoutFollowTheDirection) {
  EXPECT_EQ(rnn::TimeIndex(0, 5, false), 0);
  EXPECT_EQ(rnn::TimeIndex(0, 5, true), 4);
  EXPECT_EQ(rnn::TimeIndex(4, 5, true), 0);
  const rnn::StepLayout layout{7, 3};  // [batch, 7, 3]
  EXPECT_EQ(layout.Offset(2, 4), (4 * 7 + 2) * 3);
  EXPECT_EQ(layout.RowStride(), 21);
  EXPECT_EQ(layout.StepStride(), 3);
}

ZOO_TEST(ValidRowsAreThoseBeforeTheirLength) {
  const std::vector<int32_t> lengths = {3, 0, 5, 1};
  std::vector<char> valid(3);
  EXPECT_TRUE(!rnn::MarkValidRows(lengths.data(), 1, 3, 0, &valid));
  EXPECT_EQ(int(valid[0]), 0);
  EXPECT_EQ(int(valid[1]), 1);
  EXPECT_EQ(int(valid[2]), 1);
  EXPECT_TRUE(rnn::MarkValidRows(lengths.data(), 2, 1, 4, &valid));
}

// A padded step's output: zero at the first step or with zero_output_for_mask, else the output
// one step earlier; only the given columns.
ZOO_TEST(PaddedOutputsRepeatOrZero) {
  const rnn::StepLayout layout{3, 4};
  for (bool zero_output : {false, true}) {
    std::vector<double> row = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};  // 3 steps of 4 units
    rnn::PadOutputRow(row.data() + 4, 1, 2, 1, zero_output, layout);
    const std::vector<double> expected =
        zero_output ? std::vector<double>{1, 2, 3, 4, 5, 0, 0, 8, 9, 10, 11, 12}
                    : std::vector<double>{1, 2, 3, 4, 5, 2, 3, 8, 9, 10, 11, 12};
    EXPECT_ALL_NEAR(row, expected, 0.0, 0.0);
    rnn::PadOutputRow(row.data(), 0, 4, 0, false, layout);
    EXPECT_ALL_NEAR(std::vector<double>(row.begin(), row.begin() + 4), std::vector<double>(4, 0.0),
                    0.0, 0.0);
  }
}

// Without a buffer every step gets the shard's one block; with one, block t of the shard's rows.
ZOO_TEST(KeptRowsOfAShard) {
  std::vector<float> kept(5 * 6 * 2);
  rnn::ShardStepRows<float> with(kept.data(), 6, 2, 3, 2);
  EXPECT_TRUE(with.At(4) == kept.data() + (4 * 6 + 2) * 2);
  rnn::ShardStepRows<float> without(nullptr, 6, 2, 3, 2);
  EXPECT_TRUE(without.At(0) == without.At(3));
}

// The gradient reaching the state at a step: the output's, the recurrence's and what padded later
// steps carried back; a padded row passes its output's gradient on to the step before.
ZOO_TEST(GradientReachingStateCarriesPaddedOutputs) {
  const int64_t rows = 2, units = 2, time = 3;
  const rnn::StepLayout layout{time, units};
  std::vector<double> d_outputs(rows * time * units);
  for (size_t i = 0; i < d_outputs.size(); ++i) d_outputs[i] = i + 1;
  rnn::RowMatrix<double> dh = rnn::RowMatrix<double>::Constant(rows, units, 0.5), total;
  rnn::CarriedGradient<double> carried(rows, units);
  // Step 2: row 1 is padded (its output repeats step 1's).
  std::vector<char> valid = {1, 0};
  rnn::GradientReachingState(d_outputs.data(), layout, 2, 0, valid, false, false, dh, &carried,
                             &total);
  EXPECT_ALL_NEAR(std::vector<double>(total.data(), total.data() + 4),
                  (std::vector<double>{5.5, 6.5, 11.5, 12.5}), 0.0, 0.0);
  EXPECT_TRUE(carried.any);
  // Step 1, all valid: row 1 gets its own output's gradient and the one carried from step 2.
  valid = {1, 1};
  rnn::GradientReachingState(d_outputs.data(), layout, 1, 0, valid, true, false, dh, &carried,
                             &total);
  EXPECT_ALL_NEAR(std::vector<double>(total.data(), total.data() + 4),
                  (std::vector<double>{3.5, 4.5, 9.5 + 11, 10.5 + 12}), 0.0, 0.0);
  EXPECT_TRUE(!carried.any);
}

ZOO_TEST(OnlyValidRowsTakeTheNextState) {
  rnn::RowMatrix<double> state = rnn::RowMatrix<double>::Zero(3, 2);
  rnn::RowMatrix<double> next = rnn::RowMatrix<double>::Ones(3, 2);
  rnn::TakeValidRows(false, {1, 0, 1}, &next, &state);
  EXPECT_ALL_NEAR(std::vector<double>(state.data(), state.data() + 6),
                  (std::vector<double>{1, 1, 0, 0, 1, 1}), 0.0, 0.0);
  rnn::TakeValidRows(true, {1, 1, 1}, &next, &state);
  EXPECT_ALL_NEAR(std::vector<double>(state.data(), state.data() + 6), std::vector<double>(6, 1.0),
                  0.0, 0.0);
}

}  // namespace
}  // namespace zoo

ZOO_TEST_MAIN()
