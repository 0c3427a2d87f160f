// Tests of LstmSequenceForward and LstmSequenceBackward against a naive LSTM in
// double: values against the reference, gradients against its central
// differences.
#include "lstm_sequence.h"

#include <cmath>
#include <random>
#include <vector>

#include "sequence_test_util.h"
#include "test_harness.h"

namespace zoo {
namespace {

using testing::ForwardResult;
using testing::Gradients;
using testing::SequenceCase;
using testing::SequenceValues;
using testing::States;

// The LSTM for testing::CheckSequence: weights kernel [D, 4H], recurrent_kernel
// [H, 4H], bias [4H]; states h, c; kept step_inputs, gates, c_prev.
struct Lstm {
  SequenceValues Values(const SequenceCase& c, std::mt19937* random) const {
    const int64_t width = 4 * c.units;
    return {testing::Uniform(c.batch * c.time * c.input, 1.0, random),
            {testing::Uniform(c.batch * c.units, 0.5, random),
             testing::Uniform(c.batch * c.units, 0.5, random)},
            {testing::Uniform(c.input * width, 0.5, random),
             testing::Uniform(c.units * width, 0.5, random), testing::Uniform(width, 0.5, random)}};
  }

  // Keras's LSTMCell (gate order i, f, c, o).
  void Reference(const SequenceCase& c, const SequenceValues& v, std::vector<double>* outputs,
                 States* final) const {
    const int64_t units = c.units, width = 4 * units;
    const std::vector<double>&kernel = v.weights[0], &recurrent_kernel = v.weights[1];
    const auto step = [&](const double* x, States* states) {
      std::vector<double>& h = (*states)[0];
      std::vector<double>& cell = (*states)[1];
      std::vector<double> z(v.weights[2]);
      for (int64_t j = 0; j < width; ++j) {
        for (int64_t d = 0; d < c.input; ++d) z[j] += x[d] * kernel[d * width + j];
        for (int64_t k = 0; k < units; ++k) z[j] += h[k] * recurrent_kernel[k * width + j];
      }
      for (int64_t j = 0; j < units; ++j) {
        const double i = testing::Sigmoid(z[j]), f = testing::Sigmoid(z[units + j]);
        const double g = std::tanh(z[2 * units + j]), o = testing::Sigmoid(z[3 * units + j]);
        cell[j] = f * cell[j] + i * g;
        h[j] = o * std::tanh(cell[j]);
      }
    };
    testing::ReferenceSequence(c, v.inputs, v.initial, step, outputs, final);
  }

  template <typename T>
  ForwardResult<T> Forward(const rnn::Workers& workers, const SequenceCase& c,
                           const SequenceValues& v, bool keep) const {
    const int64_t kept_time = keep ? c.time : 0;
    std::vector<T> outputs(c.batch * c.time * c.units), final_h(c.batch * c.units),
        final_c(c.batch * c.units);
    ForwardResult<T> result;
    // step_inputs, gates, c_prev.
    result.kept = {std::vector<T>(kept_time * c.batch * (c.input + c.units)),
                   std::vector<T>(kept_time * c.batch * 4 * c.units),
                   std::vector<T>(kept_time * c.batch * c.units)};
    const auto kept = [&](int k) { return keep ? result.kept[k].data() : nullptr; };
    LstmSequenceForward<T>(
        workers, {c.batch, c.time, c.input, c.units}, {c.reverse, c.zero_output_for_mask},
        testing::Cast<T>(v.inputs).data(), testing::Cast<T>(v.initial[0]).data(),
        testing::Cast<T>(v.initial[1]).data(), testing::Cast<T>(v.weights[0]).data(),
        testing::Cast<T>(v.weights[1]).data(), testing::Cast<T>(v.weights[2]).data(),
        c.lengths.data(), outputs.data(), final_h.data(), final_c.data(), kept(1), kept(0),
        kept(2));
    result.outputs = testing::ToDouble(outputs);
    result.final = {testing::ToDouble(final_h), testing::ToDouble(final_c)};
    return result;
  }

  template <typename T>
  Gradients Backward(const rnn::Workers& workers, const SequenceCase& c, const SequenceValues& v,
                     const ForwardResult<T>& forward, const std::vector<double>& d_outputs,
                     const States& d_final, bool sum) const {
    const int64_t units = c.units, width = 4 * units, step_width = c.input + units;
    std::vector<T> d_inputs(c.batch * c.time * c.input), d_initial_h(c.batch * units),
        d_initial_c(c.batch * units), d_bias(width);
    std::vector<T> d_pre(sum ? 0 : c.time * c.batch * width),
        d_weights(sum ? step_width * width : 0);
    LstmSequenceBackward<T>(
        workers, {c.batch, c.time, c.input, units}, {c.reverse, c.zero_output_for_mask},
        testing::Cast<T>(v.weights[0]).data(), testing::Cast<T>(v.weights[1]).data(),
        c.lengths.data(), forward.kept[1].data(), forward.kept[2].data(), forward.kept[0].data(),
        testing::Cast<T>(d_outputs).data(), testing::Cast<T>(d_final[0]).data(),
        testing::Cast<T>(d_final[1]).data(), d_inputs.data(), d_initial_h.data(),
        d_initial_c.data(), sum ? nullptr : d_pre.data(), sum ? d_weights.data() : nullptr,
        d_bias.data());
    // [D + H, 4H]: the kernel's rows, then the recurrent kernel's.
    const std::vector<double> both =
        sum ? testing::ToDouble(d_weights)
            : testing::TransposedProduct(forward.kept[0], step_width, d_pre, width,
                                         c.time * c.batch);
    return {testing::ToDouble(d_inputs),
            {testing::ToDouble(d_initial_h), testing::ToDouble(d_initial_c)},
            {std::vector<double>(both.begin(), both.begin() + c.input * width),
             std::vector<double>(both.begin() + c.input * width, both.end()),
             testing::ToDouble(d_bias)}};
  }
};

// Units of 8 and 16 take the packet passes in float (whole AVX2 or AVX-512
// packets); 6 units the array expressions, as double always does.
ZOO_TEST(EdgeCasesMatchTheReference) { testing::CheckEdgeCases(Lstm(), {6, 8, 16}); }

ZOO_TEST(BatchShardsInChunksMatchTheReference) { testing::CheckBatchShards(Lstm(), 8); }

ZOO_TEST(UnitsSplitBetweenThreadsMatchesTheReference) { testing::CheckUnitsSplit(Lstm()); }

}  // namespace
}  // namespace zoo

ZOO_TEST_MAIN()
