// Tests of LinearRecurrenceForward and LinearRecurrenceBackward against a naive recurrence in
// double with Keras's masking: values against the reference, gradients against its central
// differences. The reference sees each step's a_t and b_t side by side as one input x_t [2H].
#include "linear_recurrence.h"

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

// The linear recurrence for testing::CheckSequence: inputs [B, T, 2H] hold a_t then b_t; no
// weights; state h; kept the outputs (the backward pass reads them as the states).
struct LinearRecurrence {
  SequenceValues Values(const SequenceCase& c, std::mt19937* random) const {
    return {testing::Uniform(c.batch * c.time * c.input, 1.0, random),
            {testing::Uniform(c.batch * c.units, 0.5, random)},
            {}};
  }

  // h_t = a_t h_{t-1} + b_t.
  void Reference(const SequenceCase& c, const SequenceValues& v, std::vector<double>* outputs,
                 States* final) const {
    const auto step = [&](const double* x, States* states) {
      std::vector<double>& h = (*states)[0];
      for (int64_t j = 0; j < c.units; ++j) h[j] = x[j] * h[j] + x[c.units + j];
    };
    testing::ReferenceSequence(c, v.inputs, v.initial, step, outputs, final);
  }

  // Columns [first, first + units) of each step's inputs: a (first 0) or b (first units).
  template <typename T>
  static std::vector<T> Half(const SequenceCase& c, const std::vector<double>& inputs,
                             int64_t first) {
    std::vector<T> half(c.batch * c.time * c.units);
    for (int64_t i = 0; i < c.batch * c.time; ++i) {
      for (int64_t j = 0; j < c.units; ++j) half[i * c.units + j] = inputs[i * c.input + first + j];
    }
    return half;
  }

  template <typename T>
  ForwardResult<T> Forward(const rnn::Workers& workers, const SequenceCase& c,
                           const SequenceValues& v, bool) const {
    std::vector<T> outputs(c.batch * c.time * c.units), final_h(c.batch * c.units);
    LinearRecurrenceForward<T>(
        workers, {c.batch, c.time, c.units}, {c.reverse, c.zero_output_for_mask},
        Half<T>(c, v.inputs, 0).data(), Half<T>(c, v.inputs, c.units).data(),
        testing::Cast<T>(v.initial[0]).data(), c.lengths.data(), outputs.data(), final_h.data());
    ForwardResult<T> result;
    result.outputs = testing::ToDouble(outputs);
    result.final = {testing::ToDouble(final_h)};
    result.kept = {outputs};
    return result;
  }

  template <typename T>
  Gradients Backward(const rnn::Workers& workers, const SequenceCase& c, const SequenceValues& v,
                     const ForwardResult<T>& forward, const std::vector<double>& d_outputs,
                     const States& d_final, bool) const {
    const int64_t values = c.batch * c.time * c.units;
    std::vector<T> d_a(values), d_b(values), d_initial_h(c.batch * c.units);
    LinearRecurrenceBackward<T>(
        workers, {c.batch, c.time, c.units}, {c.reverse, c.zero_output_for_mask},
        Half<T>(c, v.inputs, 0).data(), testing::Cast<T>(v.initial[0]).data(), c.lengths.data(),
        forward.kept[0].data(), testing::Cast<T>(d_outputs).data(),
        testing::Cast<T>(d_final[0]).data(), d_a.data(), d_b.data(), d_initial_h.data());
    Gradients gradients;
    gradients.d_inputs.resize(c.batch * c.time * c.input);
    for (int64_t i = 0; i < c.batch * c.time; ++i) {
      for (int64_t j = 0; j < c.units; ++j) {
        gradients.d_inputs[i * c.input + j] = d_a[i * c.units + j];
        gradients.d_inputs[i * c.input + c.units + j] = d_b[i * c.units + j];
      }
    }
    gradients.d_initial = {testing::ToDouble(d_initial_h)};
    return gradients;
  }
};

// The gated recurrence for testing::CheckSequence: inputs [B, T, k H] are the layer's projected
// input; weights log_base [H] for the RG-LRU (none for the other cells); state h.
struct GatedLinearRecurrence {
  GatedCellOptions gates;

  bool HasLogBase() const { return gates.cell == GatedCell::kRgLru; }

  SequenceValues Values(const SequenceCase& c, std::mt19937* random) const {
    SequenceValues values{testing::Uniform(c.batch * c.time * c.input, 1.5, random),
                          {testing::Uniform(c.batch * c.units, 0.5, random)},
                          {}};
    if (HasLogBase()) {
      std::vector<double> log_base = testing::Uniform(c.units, 0.1, random);
      for (double& value : log_base) value = -0.12 + value;  // log σ(Λ) < 0
      values.weights.push_back(log_base);
    }
    return values;
  }

  // a_t and b_t of unit j from the projected input x of a step, in double.
  void Coefficients(const SequenceCase& c, const SequenceValues& v, const double* x, int64_t j,
                    double* a, double* b) const {
    const auto g = [](double k) { return k >= 0 ? k + 0.5 : testing::Sigmoid(k); };
    const int64_t units = c.units;
    switch (gates.cell) {
      case GatedCell::kMinGru: {
        const double z = testing::Sigmoid(x[j]);
        *a = 1 - z;
        *b = z * g(x[units + j]);
        return;
      }
      case GatedCell::kMinLstm: {
        const double f = testing::Sigmoid(x[j]), i = testing::Sigmoid(x[units + j]);
        *a = f / (f + i);
        *b = i * g(x[2 * units + j]) / (f + i);
        return;
      }
      case GatedCell::kRgLru: {
        *a = std::exp(gates.gate_exponent * testing::Sigmoid(x[j]) * v.weights[0][j]);
        *b = std::sqrt(1 - *a * *a) * testing::Sigmoid(x[units + j]) * x[2 * units + j];
        return;
      }
    }
  }

  void Reference(const SequenceCase& c, const SequenceValues& v, std::vector<double>* outputs,
                 States* final) const {
    const auto step = [&](const double* x, States* states) {
      std::vector<double>& h = (*states)[0];
      for (int64_t j = 0; j < c.units; ++j) {
        double a, b;
        Coefficients(c, v, x, j, &a, &b);
        h[j] = a * h[j] + b;
      }
    };
    testing::ReferenceSequence(c, v.inputs, v.initial, step, outputs, final);
  }

  template <typename T>
  ForwardResult<T> Forward(const rnn::Workers& workers, const SequenceCase& c,
                           const SequenceValues& v, bool) const {
    std::vector<T> outputs(c.batch * c.time * c.units), final_h(c.batch * c.units);
    const std::vector<T> log_base =
        testing::Cast<T>(HasLogBase() ? v.weights[0] : std::vector<double>());
    GatedLinearRecurrenceForward<T>(
        workers, {c.batch, c.time, c.units}, {c.reverse, c.zero_output_for_mask}, gates,
        testing::Cast<T>(v.inputs).data(), log_base.data(), testing::Cast<T>(v.initial[0]).data(),
        c.lengths.data(), outputs.data(), final_h.data());
    ForwardResult<T> result;
    result.outputs = testing::ToDouble(outputs);
    result.final = {testing::ToDouble(final_h)};
    result.kept = {outputs};
    return result;
  }

  template <typename T>
  Gradients Backward(const rnn::Workers& workers, const SequenceCase& c, const SequenceValues& v,
                     const ForwardResult<T>& forward, const std::vector<double>& d_outputs,
                     const States& d_final, bool) const {
    std::vector<T> d_projected(c.batch * c.time * c.input), d_initial_h(c.batch * c.units);
    std::vector<T> d_log_base_rows(HasLogBase() ? c.batch * c.units : 0);
    const std::vector<T> log_base =
        testing::Cast<T>(HasLogBase() ? v.weights[0] : std::vector<double>());
    GatedLinearRecurrenceBackward<T>(
        workers, {c.batch, c.time, c.units}, {c.reverse, c.zero_output_for_mask}, gates,
        testing::Cast<T>(v.inputs).data(), log_base.data(), testing::Cast<T>(v.initial[0]).data(),
        c.lengths.data(), forward.kept[0].data(), testing::Cast<T>(d_outputs).data(),
        testing::Cast<T>(d_final[0]).data(), d_projected.data(), d_log_base_rows.data(),
        d_initial_h.data());
    Gradients gradients;
    gradients.d_inputs = testing::ToDouble(d_projected);
    gradients.d_initial = {testing::ToDouble(d_initial_h)};
    if (HasLogBase()) {
      // log_base's gradient as ops/linear_recurrence.py forms it: the sum of the examples' shares.
      std::vector<double> d_log_base(c.units, 0.0);
      for (int64_t r = 0; r < c.batch; ++r) {
        for (int64_t j = 0; j < c.units; ++j) d_log_base[j] += d_log_base_rows[r * c.units + j];
      }
      gradients.d_weights = {d_log_base};
    }
    return gradients;
  }
};

// Each cell's coefficients on the edge cases and on two batch shards.
ZOO_TEST(GatedLinearRecurrenceCells) {
  const testing::TestWorkers workers(2);
  std::mt19937 random(3);
  for (GatedCell cell : {GatedCell::kMinGru, GatedCell::kMinLstm, GatedCell::kRgLru}) {
    const GatedLinearRecurrence kind{{cell, 8.0f}};
    const int64_t blocks = ProjectionBlocks(cell);
    for (int64_t units : {3, 16}) {
      for (const SequenceCase& c : testing::EdgeCases(blocks * units, units)) {
        testing::CheckSequence<float>(workers.get(), kind, c, &random);
        testing::CheckSequence<double>(workers.get(), kind, c, &random);
      }
    }
    SequenceCase c = testing::FullCase(200, 3, blocks * 24, 24);
    for (int64_t r = 0; r < c.batch; r += 7) c.lengths[r] = r % 4;
    c.reverse = true;
    testing::CheckSequence<float>(workers.get(), kind, c, &random);
  }
}

// Batch 1, zero steps, an empty batch, padded rows in both directions and padding rules; units
// that fill whole vectors and units that do not.
ZOO_TEST(LinearRecurrenceEdgeCases) {
  const testing::TestWorkers workers(2);
  std::mt19937 random(1);
  for (int64_t units : {3, 16}) {
    for (const SequenceCase& c : testing::EdgeCases(2 * units, units)) {
      testing::CheckSequence<float>(workers.get(), LinearRecurrence(), c, &random);
      testing::CheckSequence<double>(workers.get(), LinearRecurrence(), c, &random);
    }
  }
}

// Enough rows for two batch shards, some of them padded, in both directions.
ZOO_TEST(LinearRecurrenceBatchShards) {
  const testing::TestWorkers workers(2);
  std::mt19937 random(2);
  SequenceCase c = testing::FullCase(300, 4, 2 * 40, 40);
  for (int64_t r = 0; r < c.batch; r += 7) c.lengths[r] = r % 5;
  testing::CheckSequence<float>(workers.get(), LinearRecurrence(), c, &random);
  c.reverse = true;
  testing::CheckSequence<double>(workers.get(), LinearRecurrence(), c, &random);
}

}  // namespace
}  // namespace zoo

ZOO_TEST_MAIN()
