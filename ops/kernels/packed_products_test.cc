// Tests of the hand-written products (packed_products.h) against plain loops in double: every
// row-block and panel edge (rows 1..17, columns around the panel widths, k from 1), transposed and
// not, packed and read in place, accumulating and not.
#include "packed_products.h"

#include <random>
#include <sstream>
#include <vector>

#include "sequence_test_util.h"
#include "test_harness.h"

namespace zoo {
namespace {

using rnn::PackedMatrix;

// c = a b (+ c with `accumulate`) for a [m, k] (row stride lda), b [k, n] (or b^T for b [n, k])
// with row stride ldb, c [m, n] (row stride ldc).
template <typename T>
void NaiveProduct(const std::vector<T>& a, int64_t lda, const std::vector<T>& b, int64_t ldb,
                  bool transpose, int64_t m, int64_t k, int64_t n, std::vector<double>* c,
                  int64_t ldc, bool accumulate) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = accumulate ? (*c)[i * ldc + j] : 0.0;
      for (int64_t kk = 0; kk < k; ++kk) {
        sum +=
            static_cast<double>(a[i * lda + kk]) * (transpose ? b[j * ldb + kk] : b[kk * ldb + j]);
      }
      (*c)[i * ldc + j] = sum;
    }
  }
}

// Sums of k products of values in [-1, 1]: the float32 rounding of each term and partial sum.
template <typename T>
double ProductTolerance(int64_t k) {
  return (sizeof(T) == 4 ? 2e-6 : 1e-14) * (k + 1);
}

template <typename T>
std::vector<T> Random(int64_t size, std::mt19937* random) {
  return testing::Cast<T>(testing::Uniform(size, 1.0, random));
}

template <typename T>
void CheckPackedMatrix(std::mt19937* random) {
  for (int64_t m : {1, 2, 3, 5, 8, 13, 17}) {
    for (int64_t k : {1, 7, 64}) {
      for (int64_t n : {1, 5, 16, 32, 33, 64, 96, 130}) {
        for (bool transpose : {false, true}) {
          std::ostringstream name;
          name << "m=" << m << " k=" << k << " n=" << n << (transpose ? " transposed" : "")
               << (sizeof(T) == 4 ? " float" : " double");
          testing::ScopedCase scope(name.str());
          // Row strides past the rows' widths, as in the kernels' buffers.
          const int64_t lda = k + 3, ldb = (transpose ? k : n) + 2, ldc = n + 1;
          const std::vector<T> a = Random<T>(m * lda, random), a2 = Random<T>(m * lda, random);
          const std::vector<T> b = Random<T>((transpose ? n : k) * ldb, random);
          const std::vector<T> b2 = Random<T>((transpose ? n : k) * ldb, random);
          const PackedMatrix<T> packed(b.data(), ldb, k, n, transpose);
          const PackedMatrix<T> packed2(b2.data(), ldb, k, n, transpose);
          const std::vector<T> before = Random<T>(m * ldc, random);
          std::vector<double> expected = testing::ToDouble(before);
          std::vector<T> c = before;
          packed.Multiply(a.data(), lda, m, c.data(), ldc, true);
          NaiveProduct(a, lda, b, ldb, transpose, m, k, n, &expected, ldc, true);
          EXPECT_ALL_NEAR(c, expected, ProductTolerance<T>(k), 0.0);
          packed.MultiplySum(a.data(), lda, packed2, a2.data(), lda, m, c.data(), ldc);
          NaiveProduct(a, lda, b, ldb, transpose, m, k, n, &expected, ldc, false);
          NaiveProduct(a2, lda, b2, ldb, transpose, m, k, n, &expected, ldc, true);
          EXPECT_ALL_NEAR(c, expected, ProductTolerance<T>(2 * k), 0.0);
          // MultiplyBoth: c = a B, c2 = a B2 (the products of a backward step).
          std::vector<T> c2 = before;  // its padding columns, as expected's
          packed.MultiplyBoth(a.data(), lda, m, c.data(), ldc, false, packed2, c2.data(), ldc);
          NaiveProduct(a, lda, b, ldb, transpose, m, k, n, &expected, ldc, false);
          EXPECT_ALL_NEAR(c, expected, ProductTolerance<T>(k), 0.0);
          NaiveProduct(a, lda, b2, ldb, transpose, m, k, n, &expected, ldc, false);
          EXPECT_ALL_NEAR(c2, expected, ProductTolerance<T>(k), 0.0);
        }
      }
    }
  }
}

ZOO_TEST(PackedMatrixProductsMatchPlainLoops) {
  std::mt19937 random(1);
  CheckPackedMatrix<float>(&random);
  CheckPackedMatrix<double>(&random);
}

// Weights read where they lie (kInPlace) and a range of panels at a time, as a split by units
// reads them: the same products, column range by column range; columns outside the ranges
// untouched.
ZOO_TEST(PanelRangesOfWeightsInPlaceMatchPlainLoops) {
  std::mt19937 random(2);
  const int64_t m = 3, k = 40, n = 256;
  const int64_t panel = PackedMatrix<float>::PanelColumns(n);
  EXPECT_EQ(n % panel, 0);
  // 64-byte aligned rows: the weights are read in place.
  Eigen::Matrix<float, Eigen::Dynamic, 1> b(k * n);
  const std::vector<float> values = Random<float>(k * n, &random);
  std::copy(values.begin(), values.end(), b.data());
  const std::vector<float> b_copy(values);
  const std::vector<float> a = Random<float>(m * k, &random), a2 = Random<float>(m * k, &random);
  const PackedMatrix<float> in_place(b.data(), n, k, n, false,
                                     PackedMatrix<float>::Packing::kInPlace);
  std::vector<float> c(m * n, -7.0f);
  in_place.MultiplySumPanels(a.data(), k, in_place, a2.data(), k, m, c.data(), n, 1, 3);
  std::vector<double> expected(m * n, 0.0), second(m * n, 0.0);
  NaiveProduct(a, k, b_copy, n, false, m, k, n, &expected, n, false);
  NaiveProduct(a2, k, b_copy, n, false, m, k, n, &second, n, false);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const bool inside = j >= panel && j < 3 * panel;
      expected[i * n + j] = inside ? expected[i * n + j] + second[i * n + j] : -7.0;
    }
  }
  EXPECT_ALL_NEAR(c, expected, ProductTolerance<float>(2 * k), 0.0);
}

// The stacked backward product: c = d U^T and c2 = d W^T, into row-strided blocks.
ZOO_TEST(TransposedWeightsMatchPlainLoops) {
  std::mt19937 random(3);
  for (int64_t units : {5, 32}) {
    for (int64_t input : {3, 32}) {
      testing::ScopedCase scope("H=" + std::to_string(units) + " D=" + std::to_string(input));
      const int64_t width = 4 * units, m = 9;
      const std::vector<float> u = Random<float>(units * width, &random);
      const std::vector<float> w = Random<float>(input * width, &random);
      const std::vector<float> d = Random<float>(m * width, &random);
      const rnn::TransposedWeights<float> weights(u.data(), units, w.data(), input, width,
                                                  PackedMatrix<float>::Packing::kNow);
      std::vector<float> scratch(weights.ScratchElements(m)), c(m * (units + 1)),
          c2(m * (input + 2));
      weights.Multiply(d.data(), width, m, c.data(), units + 1, c2.data(), input + 2,
                       scratch.data());
      std::vector<double> expected(m * (units + 1)), expected2(m * (input + 2));
      NaiveProduct(d, width, u, width, true, m, width, units, &expected, units + 1, false);
      NaiveProduct(d, width, w, width, true, m, width, input, &expected2, input + 2, false);
      // The padding columns of c and c2 are not written: compare the blocks only.
      for (int64_t i = 0; i < m; ++i) {
        c[i * (units + 1) + units] = 0, expected[i * (units + 1) + units] = 0;
        for (int j : {0, 1})
          c2[i * (input + 2) + input + j] = 0, expected2[i * (input + 2) + input + j] = 0;
      }
      EXPECT_ALL_NEAR(c, expected, ProductTolerance<float>(width), 0.0);
      EXPECT_ALL_NEAR(c2, expected2, ProductTolerance<float>(width), 0.0);
    }
  }
}

// c += a^T b, and GradientSums's shards adding their rows' products and column sums.
ZOO_TEST(TransposedProductAndGradientSumsMatchPlainLoops) {
  std::mt19937 random(4);
  for (int64_t n : {1, 15, 16, 40, 64, 100}) {
    for (int64_t k : {1, 5, 6, 13}) {
      testing::ScopedCase scope("k=" + std::to_string(k) + " n=" + std::to_string(n));
      const int64_t rows = 11;
      const std::vector<double> a = testing::Uniform(rows * k, 1.0, &random);
      const std::vector<double> b = testing::Uniform(rows * n, 1.0, &random);
      std::vector<double> c = testing::Uniform(k * n, 1.0, &random);
      const std::vector<double> expected_sum = [&] {
        std::vector<double> sum = c;
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t i = 0; i < k; ++i) {
            for (int64_t j = 0; j < n; ++j) sum[i * n + j] += a[r * k + i] * b[r * n + j];
          }
        }
        return sum;
      }();
      rnn::TransposedProduct<double>::Add(a.data(), k, b.data(), n, rows, k, n, c.data(), n);
      EXPECT_ALL_NEAR(c, expected_sum, 1e-12, 0.0);
    }
  }
  // Two shards of rows summed apart and taken, and the column sums of the same rows.
  const int64_t k = 3, n = 20, rows = 8;
  const std::vector<double> a = testing::Uniform(rows * k, 1.0, &random);
  const std::vector<double> d = testing::Uniform(rows * n, 1.0, &random);
  std::vector<double> weights(k * n, 5.0), bias(n, 5.0);
  rnn::GradientSums<double> sums(true, {{weights.data(), k * n}, {bias.data(), n}});
  for (int64_t first : {int64_t{0}, rows / 2}) {
    auto shard = sums.ForShard({});
    shard.AddProduct(0, 0, n, a.data() + first * k, k, k, d.data() + first * n, n, rows / 2, n);
    shard.AddColumnSums(1, 0, d.data() + first * n, n, rows / 2, n);
    sums.Take(shard);
  }
  std::vector<double> expected_weights(k * n, 0.0), expected_bias(n, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < n; ++j) {
      expected_bias[j] += d[r * n + j];
      for (int64_t i = 0; i < k; ++i) expected_weights[i * n + j] += a[r * k + i] * d[r * n + j];
    }
  }
  EXPECT_ALL_NEAR(weights, expected_weights, 1e-12, 0.0);
  EXPECT_ALL_NEAR(bias, expected_bias, 1e-12, 0.0);
}

ZOO_TEST(ParallelColumnSumsMatchPlainLoops) {
  std::mt19937 random(5);
  const testing::TestWorkers workers(2);
  for (int64_t rows : {0, 1, 7, 100000}) {
    testing::ScopedCase scope("rows=" + std::to_string(rows));
    const int64_t cols = 12;
    const std::vector<double> a = testing::Uniform(rows * cols, 1.0, &random);
    std::vector<double> sums(cols, 3.0), expected(cols, 0.0);
    rnn::ParallelColumnSums(workers.get(), a.data(), rows, cols, sums.data());
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < cols; ++j) expected[j] += a[r * cols + j];
    }
    EXPECT_ALL_NEAR(sums, expected, 1e-9, 0.0);
  }
}

}  // namespace
}  // namespace zoo

ZOO_TEST_MAIN()
