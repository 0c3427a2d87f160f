// Tests of SlstmSequenceForward and SlstmSequenceBackward against a naive sLSTM in double
// (block-diagonal recurrent product, stabilised exponential gating) with Keras's masking: values
// against the reference, gradients against its central differences.
#include "slstm_sequence.h"

#include <algorithm>
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

// The sLSTM for testing::CheckSequence: inputs [B, T, 4H] are the projections x_t W + b; weights
// recurrent_kernel [heads, d, 4d]; states h, c, n, m; kept pre and previous.
struct Slstm {
  int64_t heads;

  SlstmSizes Sizes(const SequenceCase& c) const {
    return {c.batch, c.time, heads, c.units / heads};
  }

  SequenceValues Values(const SequenceCase& c, std::mt19937* random) const {
    const int64_t d = c.units / heads;
    std::vector<double> n = testing::Uniform(c.batch * c.units, 0.5, random);
    for (double& value : n) value += 1.0;  // n stays positive
    return {testing::Uniform(c.batch * c.time * c.input, 1.0, random),
            {testing::Uniform(c.batch * c.units, 0.5, random),
             testing::Uniform(c.batch * c.units, 0.5, random), n,
             testing::Uniform(c.batch * c.units, 0.5, random)},
            {testing::Uniform(heads * d * 4 * d, 0.5, random)}};
  }

  void Reference(const SequenceCase& c, const SequenceValues& v, std::vector<double>* outputs,
                 States* final) const {
    const int64_t units = c.units, d = units / heads;
    const std::vector<double>& kernel = v.weights[0];
    const auto step = [&](const double* x, States* states) {
      std::vector<double>& h = (*states)[0];
      std::vector<double> gates(x, x + 4 * units);
      for (int64_t k = 0; k < heads; ++k) {
        for (int g = 0; g < 4; ++g) {
          for (int64_t e = 0; e < d; ++e) {
            for (int64_t j = 0; j < d; ++j) {
              gates[g * units + k * d + e] +=
                  h[k * d + j] * kernel[(k * d + j) * 4 * d + g * d + e];
            }
          }
        }
      }
      for (int64_t j = 0; j < units; ++j) {
        double& c_j = (*states)[1][j];
        double& n_j = (*states)[2][j];
        double& m_j = (*states)[3][j];
        const double input = gates[j], forget = gates[units + j];
        const double log_forget = -std::log1p(std::exp(-forget));
        const double m = std::max(log_forget + m_j, input);
        const double i = std::exp(input - m), f = std::exp(log_forget + m_j - m);
        c_j = f * c_j + i * std::tanh(gates[2 * units + j]);
        n_j = f * n_j + i;
        m_j = m;
        h[j] = testing::Sigmoid(gates[3 * units + j]) * c_j / n_j;
      }
    };
    testing::ReferenceSequence(c, v.inputs, v.initial, step, outputs, final);
  }

  template <typename T>
  ForwardResult<T> Forward(const rnn::Workers& workers, const SequenceCase& c,
                           const SequenceValues& v, bool) const {
    const int64_t states = c.batch * c.units;
    std::vector<T> outputs(c.batch * c.time * c.units), kept_pre(c.batch * c.time * c.input),
        kept_previous(kept_pre.size());
    std::vector<std::vector<T>> final(kSlstmStates, std::vector<T>(states));
    std::vector<std::vector<T>> initial;
    for (const std::vector<double>& state : v.initial) initial.push_back(testing::Cast<T>(state));
    SlstmSequenceForward<T>(
        workers, Sizes(c), {c.reverse, c.zero_output_for_mask}, testing::Cast<T>(v.inputs).data(),
        testing::Cast<T>(v.weights[0]).data(),
        {initial[0].data(), initial[1].data(), initial[2].data(), initial[3].data()},
        c.lengths.data(), outputs.data(),
        {final[0].data(), final[1].data(), final[2].data(), final[3].data()}, kept_pre.data(),
        kept_previous.data());
    ForwardResult<T> result;
    result.outputs = testing::ToDouble(outputs);
    for (const std::vector<T>& state : final) result.final.push_back(testing::ToDouble(state));
    result.kept = {kept_pre, kept_previous};
    return result;
  }

  template <typename T>
  Gradients Backward(const rnn::Workers& workers, const SequenceCase& c, const SequenceValues& v,
                     const ForwardResult<T>& forward, const std::vector<double>& d_outputs,
                     const States& d_final, bool) const {
    const int64_t units = c.units, d = units / heads, states = c.batch * units;
    std::vector<T> d_projected(c.batch * c.time * c.input);
    std::vector<std::vector<T>> d_initial(kSlstmStates, std::vector<T>(states)), d_final_t;
    for (const std::vector<double>& state : d_final) d_final_t.push_back(testing::Cast<T>(state));
    SlstmSequenceBackward<T>(
        workers, Sizes(c), {c.reverse, c.zero_output_for_mask},
        testing::Cast<T>(v.weights[0]).data(), c.lengths.data(), forward.kept[0].data(),
        forward.kept[1].data(), testing::Cast<T>(d_outputs).data(),
        {d_final_t[0].data(), d_final_t[1].data(), d_final_t[2].data(), d_final_t[3].data()},
        d_projected.data(),
        {d_initial[0].data(), d_initial[1].data(), d_initial[2].data(), d_initial[3].data()});
    Gradients gradients;
    gradients.d_inputs = testing::ToDouble(d_projected);
    for (const std::vector<T>& state : d_initial) {
      gradients.d_initial.push_back(testing::ToDouble(state));
    }
    // The recurrent kernel's gradient as ops/slstm.py forms it: per head, previous h^T times
    // d_projected.
    std::vector<double> d_kernel(heads * d * 4 * d, 0.0);
    for (int64_t row = 0; row < c.batch * c.time; ++row) {
      const T* h = forward.kept[1].data() + row * 4 * units;
      const T* d_gates = d_projected.data() + row * 4 * units;
      for (int64_t k = 0; k < heads; ++k) {
        for (int64_t j = 0; j < d; ++j) {
          for (int g = 0; g < 4; ++g) {
            for (int64_t e = 0; e < d; ++e) {
              d_kernel[(k * d + j) * 4 * d + g * d + e] +=
                  static_cast<double>(h[k * d + j]) * d_gates[g * units + k * d + e];
            }
          }
        }
      }
    }
    gradients.d_weights = {d_kernel};
    return gradients;
  }
};

// Batch 1, zero steps, an empty batch, padded rows in both directions and padding rules; one
// head and several, heads of sizes that fill whole vectors and sizes that do not.
ZOO_TEST(SlstmEdgeCases) {
  const testing::TestWorkers workers(2);
  std::mt19937 random(1);
  for (const auto& [units, heads] : {std::pair<int64_t, int64_t>{4, 2}, {12, 1}, {32, 4}}) {
    for (const SequenceCase& c : testing::EdgeCases(4 * units, units)) {
      testing::CheckSequence<float>(workers.get(), Slstm{heads}, c, &random);
      testing::CheckSequence<double>(workers.get(), Slstm{heads}, c, &random);
    }
  }
}

// Enough rows for two batch shards, some of them padded, in both directions.
ZOO_TEST(SlstmBatchShards) {
  const testing::TestWorkers workers(2);
  std::mt19937 random(2);
  SequenceCase c = testing::FullCase(120, 4, 4 * 16, 16);
  for (int64_t r = 0; r < c.batch; r += 7) c.lengths[r] = r % 5;
  testing::CheckSequence<float>(workers.get(), Slstm{2}, c, &random);
  c.reverse = true;
  testing::CheckSequence<double>(workers.get(), Slstm{2}, c, &random);
}

}  // namespace
}  // namespace zoo

ZOO_TEST_MAIN()
