// Tests of GruSequenceForward and GruSequenceBackward, with and without
// reset_after, against a naive GRU in double: values against the reference,
// gradients against its central differences.
#include "gru_sequence.h"

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

// The GRU for testing::CheckSequence: weights kernel [D, 3H], recurrent_kernel
// [H, 3H], bias [2, 3H] with reset_after (input row, recurrent row), else [3H];
// state h; kept gates, h_prev.
struct Gru {
  bool reset_after;

  SequenceValues Values(const SequenceCase& c, std::mt19937* random) const {
    const int64_t width = 3 * c.units;
    return {testing::Uniform(c.batch * c.time * c.input, 1.0, random),
            {testing::Uniform(c.batch * c.units, 0.5, random)},
            {testing::Uniform(c.input * width, 0.5, random),
             testing::Uniform(c.units * width, 0.5, random),
             testing::Uniform((reset_after ? 2 : 1) * width, 0.5, random)}};
  }

  // Keras's GRUCell (gate order z, r, h): h = z * h_prev + (1 - z) * h~.
  void Reference(const SequenceCase& c, const SequenceValues& v, std::vector<double>* outputs,
                 States* final) const {
    const int64_t units = c.units, width = 3 * units;
    const std::vector<double>&kernel = v.weights[0], &recurrent_kernel = v.weights[1],
          &bias = v.weights[2];
    const auto step = [&](const double* x, States* states) {
      std::vector<double>& h = (*states)[0];
      // x W + b_in and h U (+ b_rec with reset_after).
      std::vector<double> from_x(bias.begin(), bias.begin() + width), from_h(width, 0.0);
      if (reset_after) from_h.assign(bias.begin() + width, bias.end());
      for (int64_t j = 0; j < width; ++j) {
        for (int64_t d = 0; d < c.input; ++d) from_x[j] += x[d] * kernel[d * width + j];
        for (int64_t k = 0; k < units; ++k) from_h[j] += h[k] * recurrent_kernel[k * width + j];
      }
      std::vector<double> next(units);
      for (int64_t j = 0; j < units; ++j) {
        const double z = testing::Sigmoid(from_x[j] + from_h[j]);
        const double r = testing::Sigmoid(from_x[units + j] + from_h[units + j]);
        double candidate_from_h = r * from_h[2 * units + j];
        if (!reset_after) {  // (r * h) U_h
          candidate_from_h = 0;
          for (int64_t k = 0; k < units; ++k) {
            const double r_k = testing::Sigmoid(from_x[units + k] + from_h[units + k]);
            candidate_from_h += r_k * h[k] * recurrent_kernel[k * width + 2 * units + j];
          }
        }
        const double candidate = std::tanh(from_x[2 * units + j] + candidate_from_h);
        next[j] = z * h[j] + (1 - z) * candidate;
      }
      h = next;
    };
    testing::ReferenceSequence(c, v.inputs, v.initial, step, outputs, final);
  }

  template <typename T>
  ForwardResult<T> Forward(const rnn::Workers& workers, const SequenceCase& c,
                           const SequenceValues& v, bool keep) const {
    const int64_t kept_time = keep ? c.time : 0;
    std::vector<T> outputs(c.batch * c.time * c.units), final_h(c.batch * c.units);
    ForwardResult<T> result;
    result.kept = {std::vector<T>(kept_time * c.batch * GruGateWidth(c.units, reset_after)),
                   std::vector<T>(kept_time * c.batch * c.units)};
    GruSequenceForward<T>(
        workers, {c.batch, c.time, c.input, c.units}, {c.reverse, c.zero_output_for_mask},
        reset_after, testing::Cast<T>(v.inputs).data(), testing::Cast<T>(v.initial[0]).data(),
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
    const int64_t units = c.units, width = 3 * units, rows = c.time * c.batch;
    const std::vector<T> inputs = testing::Cast<T>(v.inputs);
    std::vector<T> d_inputs(c.batch * c.time * c.input), d_initial_h(c.batch * units),
        d_bias(v.weights[2].size());
    std::vector<T> d_projected(sum ? 0 : rows * width),
        d_recurrent(sum ? 0 : rows * (reset_after ? width : units));
    std::vector<T> d_kernel(sum ? c.input * width : 0), d_recurrent_kernel(sum ? units * width : 0);
    GruSequenceBackward<T>(
        workers, {c.batch, c.time, c.input, units}, {c.reverse, c.zero_output_for_mask},
        reset_after, inputs.data(), testing::Cast<T>(v.weights[0]).data(),
        testing::Cast<T>(v.weights[1]).data(), c.lengths.data(), forward.kept[0].data(),
        forward.kept[1].data(), testing::Cast<T>(d_outputs).data(),
        testing::Cast<T>(d_final[0]).data(), d_inputs.data(), d_initial_h.data(),
        sum ? nullptr : d_projected.data(), sum ? nullptr : d_recurrent.data(),
        sum ? d_kernel.data() : nullptr, sum ? d_recurrent_kernel.data() : nullptr, d_bias.data());
    Gradients gradients{testing::ToDouble(d_inputs), {testing::ToDouble(d_initial_h)}, {}};
    if (sum) {
      gradients.d_weights = {testing::ToDouble(d_kernel), testing::ToDouble(d_recurrent_kernel),
                             testing::ToDouble(d_bias)};
      return gradients;
    }
    // The products that ops/rnn.py forms: the inputs time-major, like
    // d_projected.
    std::vector<T> inputs_by_time(rows * c.input);
    for (int64_t t = 0; t < c.time; ++t) {
      for (int64_t r = 0; r < c.batch; ++r) {
        std::copy_n(inputs.begin() + (r * c.time + t) * c.input, c.input,
                    inputs_by_time.begin() + (t * c.batch + r) * c.input);
      }
    }
    std::vector<double> d_recurrent_kernel_double;
    if (reset_after) {
      d_recurrent_kernel_double =
          testing::TransposedProduct(forward.kept[1], units, d_recurrent, width, rows);
    } else {
      // z and r act on h_prev, the candidate on r * h_prev (d_recurrent).
      const std::vector<double> from_h =
          testing::TransposedProduct(forward.kept[1], units, d_projected, width, rows);
      std::vector<T> d_candidate(rows * units);
      for (int64_t row = 0; row < rows; ++row) {
        std::copy_n(d_projected.begin() + row * width + 2 * units, units,
                    d_candidate.begin() + row * units);
      }
      const std::vector<double> candidate =
          testing::TransposedProduct(d_recurrent, units, d_candidate, units, rows);
      d_recurrent_kernel_double = from_h;
      for (int64_t k = 0; k < units; ++k) {
        for (int64_t j = 0; j < units; ++j) {
          d_recurrent_kernel_double[k * width + 2 * units + j] = candidate[k * units + j];
        }
      }
    }
    gradients.d_weights = {
        testing::TransposedProduct(inputs_by_time, c.input, d_projected, width, rows),
        d_recurrent_kernel_double, testing::ToDouble(d_bias)};
    return gradients;
  }
};

ZOO_TEST(EdgeCasesMatchTheReference) {
  for (bool reset_after : {true, false}) testing::CheckEdgeCases(Gru{reset_after}, {6, 8, 16});
}

ZOO_TEST(BatchShardsInChunksMatchTheReference) {
  for (bool reset_after : {true, false}) testing::CheckBatchShards(Gru{reset_after}, 8);
}

// With reset_after the units are split between the two threads.
ZOO_TEST(UnitsSplitBetweenThreadsMatchesTheReference) { testing::CheckUnitsSplit(Gru{true}); }

}  // namespace
}  // namespace zoo

ZOO_TEST_MAIN()
