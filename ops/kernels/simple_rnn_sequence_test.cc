// Tests of SimpleRnnSequenceForward and SimpleRnnSequenceBackward against a
// naive fully connected RNN in double: values against the reference, gradients
// against its central differences.
#include "simple_rnn_sequence.h"

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

// The SimpleRNN for testing::CheckSequence: weights kernel [D, H],
// recurrent_kernel [H, H], bias [H]; state h; kept states, step_inputs.
struct SimpleRnn {
  SequenceValues Values(const SequenceCase& c, std::mt19937* random) const {
    return {
        testing::Uniform(c.batch * c.time * c.input, 1.0, random),
        {testing::Uniform(c.batch * c.units, 0.5, random)},
        {testing::Uniform(c.input * c.units, 0.5, random),
         testing::Uniform(c.units * c.units, 0.5, random), testing::Uniform(c.units, 0.5, random)}};
  }

  // h_t = tanh(x_t W + h_{t-1} U + b).
  void Reference(const SequenceCase& c, const SequenceValues& v, std::vector<double>* outputs,
                 States* final) const {
    const int64_t units = c.units;
    const auto step = [&](const double* x, States* states) {
      std::vector<double>& h = (*states)[0];
      std::vector<double> z(v.weights[2]);
      for (int64_t j = 0; j < units; ++j) {
        for (int64_t d = 0; d < c.input; ++d) z[j] += x[d] * v.weights[0][d * units + j];
        for (int64_t k = 0; k < units; ++k) z[j] += h[k] * v.weights[1][k * units + j];
      }
      for (int64_t j = 0; j < units; ++j) h[j] = std::tanh(z[j]);
    };
    testing::ReferenceSequence(c, v.inputs, v.initial, step, outputs, final);
  }

  template <typename T>
  ForwardResult<T> Forward(const rnn::Workers& workers, const SequenceCase& c,
                           const SequenceValues& v, bool keep) const {
    const int64_t kept_time = keep ? c.time : 0;
    std::vector<T> outputs(c.batch * c.time * c.units), final_h(c.batch * c.units);
    ForwardResult<T> result;
    result.kept = {std::vector<T>(kept_time * c.batch * c.units),
                   std::vector<T>(kept_time * c.batch * (c.input + c.units))};
    SimpleRnnSequenceForward<T>(
        workers, {c.batch, c.time, c.input, c.units}, {c.reverse, c.zero_output_for_mask},
        testing::Cast<T>(v.inputs).data(), testing::Cast<T>(v.initial[0]).data(),
        testing::Cast<T>(v.weights[0]).data(), testing::Cast<T>(v.weights[1]).data(),
        testing::Cast<T>(v.weights[2]).data(), c.lengths.data(), outputs.data(), final_h.data(),
        keep ? result.kept[0].data() : nullptr, keep ? result.kept[1].data() : nullptr);
    result.outputs = testing::ToDouble(outputs);
    result.final = {testing::ToDouble(final_h)};
    return result;
  }

  template <typename T>
  Gradients Backward(const rnn::Workers& workers, const SequenceCase& c, const SequenceValues& v,
                     const ForwardResult<T>& forward, const std::vector<double>& d_outputs,
                     const States& d_final, bool sum) const {
    const int64_t units = c.units, step_width = c.input + units;
    std::vector<T> d_inputs(c.batch * c.time * c.input), d_initial_h(c.batch * units),
        d_bias(units);
    std::vector<T> d_pre(sum ? 0 : c.time * c.batch * units),
        d_weights(sum ? step_width * units : 0);
    SimpleRnnSequenceBackward<T>(
        workers, {c.batch, c.time, c.input, units}, {c.reverse, c.zero_output_for_mask},
        testing::Cast<T>(v.weights[0]).data(), testing::Cast<T>(v.weights[1]).data(),
        c.lengths.data(), forward.kept[0].data(), forward.kept[1].data(),
        testing::Cast<T>(d_outputs).data(), testing::Cast<T>(d_final[0]).data(), d_inputs.data(),
        d_initial_h.data(), sum ? nullptr : d_pre.data(), sum ? d_weights.data() : nullptr,
        d_bias.data());
    const std::vector<double> both =
        sum ? testing::ToDouble(d_weights)
            : testing::TransposedProduct(forward.kept[1], step_width, d_pre, units,
                                         c.time * c.batch);
    return {testing::ToDouble(d_inputs),
            {testing::ToDouble(d_initial_h)},
            {std::vector<double>(both.begin(), both.begin() + c.input * units),
             std::vector<double>(both.begin() + c.input * units, both.end()),
             testing::ToDouble(d_bias)}};
  }
};

ZOO_TEST(EdgeCasesMatchTheReference) { testing::CheckEdgeCases(SimpleRnn(), {6, 16}); }

ZOO_TEST(BatchShardsMatchTheReference) { testing::CheckBatchShards(SimpleRnn(), 16); }

ZOO_TEST(UnitsSplitBetweenThreadsMatchesTheReference) { testing::CheckUnitsSplit(SimpleRnn()); }

}  // namespace
}  // namespace zoo

ZOO_TEST_MAIN()
