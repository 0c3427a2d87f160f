// What the sequence kernels' tests share: the cases they run, a naive reference
// of a recurrent sequence with Keras's masking in double (plain loops, one
// example at a time), numeric gradients of that reference, and the threads the
// kernels run on.
#ifndef ZOO_OPS_KERNELS_SEQUENCE_TEST_UTIL_H_
#define ZOO_OPS_KERNELS_SEQUENCE_TEST_UTIL_H_

#define EIGEN_USE_THREADS

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "test_harness.h"
#include "unsupported/Eigen/CXX11/Tensor"
#include "workers.h"

namespace zoo {
namespace testing {

// `threads` threads for the kernels to share their work with, as TensorFlow's
// intra-op pool.
class TestWorkers {
 public:
  explicit TestWorkers(int threads)
      : pool_(threads), device_(&pool_, threads), workers_(device_, nullptr) {}
  const rnn::Workers& get() const { return workers_; }

 private:
  Eigen::ThreadPool pool_;
  Eigen::ThreadPoolDevice device_;
  rnn::Workers workers_;
};

// One call of a sequence op: sizes, direction, masking and each example's
// length.
struct SequenceCase {
  int64_t batch, time, input, units;
  bool reverse = false, zero_output_for_mask = false;
  std::vector<int32_t> lengths;  // [batch]

  std::string Name() const {
    std::ostringstream name;
    name << "B=" << batch << " T=" << time << " D=" << input << " H=" << units
         << (reverse ? " reverse" : "") << (zero_output_for_mask ? " zero_output_for_mask" : "")
         << " lengths";
    for (int32_t length : lengths) name << " " << length;
    return name.str();
  }
};

// A case whose sequences all have every step.
inline SequenceCase FullCase(int64_t batch, int64_t time, int64_t input, int64_t units) {
  return {batch, time, input, units, false, false, std::vector<int32_t>(batch, time)};
}

// The input edge cases every kind is tested on: batch 1, zero steps, an empty
// batch, padded rows (a length of 0, short ones and a full one) in both
// directions and with both padding rules.
inline std::vector<SequenceCase> EdgeCases(int64_t input, int64_t units) {
  std::vector<SequenceCase> cases = {FullCase(1, 5, input, units), FullCase(3, 0, input, units),
                                     FullCase(0, 4, input, units)};
  for (bool reverse : {false, true}) {
    for (bool zero_output : {false, true}) {
      cases.push_back({4, 6, input, units, reverse, zero_output, {6, 3, 0, 1}});
    }
  }
  return cases;
}

// Values uniform in [-scale, scale].
inline std::vector<double> Uniform(int64_t size, double scale, std::mt19937* random) {
  std::uniform_real_distribution<double> value(-scale, scale);
  std::vector<double> values(size);
  for (double& v : values) v = value(*random);
  return values;
}

template <typename T>
std::vector<T> Cast(const std::vector<double>& values) {
  return std::vector<T>(values.begin(), values.end());
}

template <typename T>
std::vector<double> ToDouble(const std::vector<T>& values) {
  return std::vector<double>(values.begin(), values.end());
}

inline double Sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

// The states of a reference cell for one example: states[s] holds `units`
// values; states[0] is the output.
using States = std::vector<std::vector<double>>;

// A recurrent sequence with Keras's masking, in double, given the cell's step
// for one example: `step(x, &states)` replaces the states with the next ones
// from x_t [input]. inputs [B, T, D]; initial[s] [B, H]. Writes outputs [B, T,
// H] in processing order and final[s] [B, H].
template <typename Step>
void ReferenceSequence(const SequenceCase& c, const std::vector<double>& inputs,
                       const States& initial, const Step& step, std::vector<double>* outputs,
                       States* final) {
  const int64_t units = c.units;
  outputs->assign(c.batch * c.time * units, 0.0);
  final->assign(initial.size(), std::vector<double>(c.batch * units));
  for (int64_t r = 0; r < c.batch; ++r) {
    States states(initial.size());
    for (size_t s = 0; s < initial.size(); ++s) {
      states[s].assign(initial[s].begin() + r * units, initial[s].begin() + (r + 1) * units);
    }
    std::vector<double> output(units, 0.0);
    for (int64_t i = 0; i < c.time; ++i) {
      const int64_t t = c.reverse ? c.time - 1 - i : i;
      if (t < c.lengths[r]) {
        step(&inputs[(r * c.time + t) * c.input], &states);
        output = states[0];
      } else if (c.zero_output_for_mask) {
        std::fill(output.begin(), output.end(), 0.0);
      }
      std::copy(output.begin(), output.end(), outputs->begin() + (r * c.time + i) * units);
    }
    for (size_t s = 0; s < states.size(); ++s) {
      std::copy(states[s].begin(), states[s].end(), (*final)[s].begin() + r * units);
    }
  }
}

// The loss whose gradients the tests check: outputs and final states, each
// projected on fixed random values (d_outputs and d_final).
inline double ProjectedLoss(const std::vector<double>& outputs, const States& final,
                            const std::vector<double>& d_outputs, const States& d_final) {
  double loss = 0;
  for (size_t i = 0; i < outputs.size(); ++i) loss += outputs[i] * d_outputs[i];
  for (size_t s = 0; s < final.size(); ++s) {
    for (size_t i = 0; i < final[s].size(); ++i) loss += final[s][i] * d_final[s][i];
  }
  return loss;
}

// Up to `most` indices of [0, size): all of them, or a sorted random sample.
inline std::vector<int64_t> SomeIndices(int64_t size, int64_t most, std::mt19937* random) {
  std::vector<int64_t> indices(size);
  for (int64_t i = 0; i < size; ++i) indices[i] = i;
  if (size <= most) return indices;
  std::shuffle(indices.begin(), indices.end(), *random);
  indices.resize(most);
  std::sort(indices.begin(), indices.end());
  return indices;
}

// d loss / d values[i] for each of `indices`, by central differences (`loss()`
// reads `values`).
template <typename Loss>
std::vector<double> NumericGradient(const Loss& loss, std::vector<double>* values,
                                    const std::vector<int64_t>& indices) {
  constexpr double kStep = 1e-5;
  std::vector<double> gradient;
  for (int64_t i : indices) {
    const double value = (*values)[i];
    (*values)[i] = value + kStep;
    const double above = loss();
    (*values)[i] = value - kStep;
    const double below = loss();
    (*values)[i] = value;
    gradient.push_back((above - below) / (2 * kStep));
  }
  return gradient;
}

template <typename T>
std::vector<T> Pick(const std::vector<T>& values, const std::vector<int64_t>& indices) {
  std::vector<T> picked;
  for (int64_t i : indices) picked.push_back(values[i]);
  return picked;
}

// Tolerances of a kernel's values against the reference in double: float32
// rounding, or double's.
template <typename T>
struct Tolerance {
  // Outputs and states, which tanh and sigmoid keep within [-1, 1].
  static constexpr double kValue = sizeof(T) == 4 ? 1e-5 : 1e-12;
  // Gradients against central differences, whose own error is about 1e-9.
  static constexpr double kGradient = sizeof(T) == 4 ? 1e-4 : 1e-7;
};

// The values of one sequence op's call, in double: its inputs [B, T, D],
// initial states
// ([B, H] each) and weights (the kind's, in the order of its op's arguments).
struct SequenceValues {
  std::vector<double> inputs;
  States initial;
  std::vector<std::vector<double>> weights;
};

// What a forward kernel returned, in double, and what it kept for the backward
// pass.
template <typename T>
struct ForwardResult {
  std::vector<double> outputs;
  States final;
  std::vector<std::vector<T>> kept;
};

// What a backward kernel returned, in double, shaped like SequenceValues.
struct Gradients {
  std::vector<double> d_inputs;
  States d_initial;
  std::vector<std::vector<double>> d_weights;
};

// Tests one kind of sequence op through its adaptor `kind`, which provides:
//   SequenceValues Values(const SequenceCase&, std::mt19937*) const;
//   void Reference(const SequenceCase&, const SequenceValues&, outputs*,
//   States* final) const; template <typename T> ForwardResult<T>
//   Forward(workers, case, values, bool keep) const; template <typename T>
//   Gradients Backward(workers, case, values, const ForwardResult<T>&,
//                                            d_outputs, d_final, bool
//                                            sum_weight_gradients) const;
// The forward's values against the reference, keeping activations and not; the
// backward's gradients, summing the weight gradients in the kernel and not,
// against central differences of the reference (for up to 150 values of each
// tensor).
template <typename T, typename Kind>
void CheckSequence(const rnn::Workers& workers, const Kind& kind, const SequenceCase& c,
                   std::mt19937* random, bool check_backward = true) {
  ScopedCase scope(c.Name() + (sizeof(T) == 4 ? " float" : " double"));
  SequenceValues values = kind.Values(c, random);
  std::vector<double> outputs;
  States final;
  kind.Reference(c, values, &outputs, &final);
  for (bool keep : {true, false}) {
    ScopedCase keeping(keep ? "keeping activations" : "keeping nothing");
    const ForwardResult<T> result = kind.template Forward<T>(workers, c, values, keep);
    EXPECT_ALL_NEAR(result.outputs, outputs, Tolerance<T>::kValue, Tolerance<T>::kValue);
    for (size_t s = 0; s < final.size(); ++s) {
      EXPECT_ALL_NEAR(result.final[s], final[s], Tolerance<T>::kValue, Tolerance<T>::kValue);
    }
  }
  if (!check_backward) return;
  const std::vector<double> d_outputs = Uniform(outputs.size(), 1.0, random);
  States d_final;
  for (const std::vector<double>& state : final)
    d_final.push_back(Uniform(state.size(), 1.0, random));
  const ForwardResult<T> forward = kind.template Forward<T>(workers, c, values, true);
  const auto loss = [&] {
    std::vector<double> outputs;
    States final;
    kind.Reference(c, values, &outputs, &final);
    return ProjectedLoss(outputs, final, d_outputs, d_final);
  };
  const auto check = [&](const std::string& what, std::vector<double>* of,
                         const std::vector<double>& gradient) {
    ScopedCase checking(what);
    const std::vector<int64_t> indices = SomeIndices(of->size(), 150, random);
    EXPECT_ALL_NEAR(Pick(gradient, indices), NumericGradient(loss, of, indices),
                    Tolerance<T>::kGradient, Tolerance<T>::kGradient);
  };
  for (bool sum : {true, false}) {
    ScopedCase summing(sum ? "weight gradients summed in the kernel" : "weight gradients outside");
    const Gradients gradients =
        kind.template Backward<T>(workers, c, values, forward, d_outputs, d_final, sum);
    check("d_inputs", &values.inputs, gradients.d_inputs);
    for (size_t s = 0; s < values.initial.size(); ++s) {
      check("d_initial state " + std::to_string(s), &values.initial[s], gradients.d_initial[s]);
    }
    for (size_t w = 0; w < values.weights.size(); ++w) {
      check("d_weights " + std::to_string(w), &values.weights[w], gradients.d_weights[w]);
    }
  }
}

// The cases every kind's test runs through CheckSequence, on two threads:
// - the edge cases (EdgeCases) at each of `units` (units that take the packet
// passes in float and
//   units that do not), in float and double;
template <typename Kind>
void CheckEdgeCases(const Kind& kind, std::initializer_list<int64_t> units) {
  const TestWorkers workers(2);
  std::mt19937 random(1);
  for (int64_t unit_count : units) {
    for (const SequenceCase& c : EdgeCases(3, unit_count)) {
      CheckSequence<float>(workers.get(), kind, c, &random);
      CheckSequence<double>(workers.get(), kind, c, &random);
    }
  }
}

// - enough work for two batch shards, and rows enough for several chunks of
// each (StepChunkRows),
//   some of them padded, forward in float and reversed in double;
template <typename Kind>
void CheckBatchShards(const Kind& kind, int64_t units) {
  const TestWorkers workers(2);
  std::mt19937 random(2);
  SequenceCase c = FullCase(300, 3, 2, units);
  for (int64_t r = 0; r < c.batch; r += 7) c.lengths[r] = r % 4;
  CheckSequence<float>(workers.get(), kind, c, &random);
  c.reverse = true;
  CheckSequence<double>(workers.get(), kind, c, &random);
}

// - a few rows of 128 units, which the forward splits by units between the two
// threads
//   (dense_cell.h), in both directions.
template <typename Kind>
void CheckUnitsSplit(const Kind& kind) {
  const TestWorkers workers(2);
  std::mt19937 random(3);
  for (bool reverse : {false, true}) {
    const SequenceCase c{3, 5, 4, 128, reverse, reverse, {5, 2, 0}};
    CheckSequence<float>(workers.get(), kind, c, &random, false);
    CheckSequence<double>(workers.get(), kind, c, &random, false);
  }
}

// sum over rows of a[row, :]^T d[row, :], for a [rows, k] and d [rows, n]: the
// weight gradients that ops/rnn.py forms with one large product from the
// factors a gradient op returns.
template <typename T>
std::vector<double> TransposedProduct(const std::vector<T>& a, int64_t k, const std::vector<T>& d,
                                      int64_t n, int64_t rows) {
  std::vector<double> product(k * n, 0.0);
  for (int64_t row = 0; row < rows; ++row) {
    for (int64_t i = 0; i < k; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        product[i * n + j] += static_cast<double>(a[row * k + i]) * d[row * n + j];
      }
    }
  }
  return product;
}

}  // namespace testing
}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_SEQUENCE_TEST_UTIL_H_
