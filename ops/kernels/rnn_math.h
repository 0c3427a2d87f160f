// Shared building blocks of the fused recurrent kernels, in plain C++ over raw row-major buffers:
// matrix products spread over a thread pool, column sums, batch sharding and padding masks. No
// TensorFlow types.
#ifndef ZOO_OPS_KERNELS_RNN_MATH_H_
#define ZOO_OPS_KERNELS_RNN_MATH_H_

#define EIGEN_USE_THREADS

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "Eigen/Core"
#include "unsupported/Eigen/CXX11/Tensor"

namespace zoo {
namespace rnn {

template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
// A block of rows that lie `stride` elements apart, such as the rows of one time step in a
// [batch, time, width] buffer (stride time * width).
template <typename T>
using StridedRows = Eigen::Map<RowMatrix<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using ConstStridedRows = Eigen::Map<const RowMatrix<T>, 0, Eigen::OuterStride<>>;

// One row of H (or k*H) values, as an array for element-wise gate arithmetic.
template <typename T>
using Row = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
template <typename T>
using ConstRow = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>;

// c[m, n] = op(a) * op(b) (+ c when `accumulate`), op transposing when asked; a is [m, k] or
// [k, m], b is [k, n] or [n, k]. Uses every thread of `device`: meant for the products over all
// time steps at once.
template <typename T>
void ParallelMatMul(const Eigen::ThreadPoolDevice& device, const T* a, bool transpose_a,
                    const T* b, bool transpose_b, int64_t m, int64_t k, int64_t n, T* c) {
  using ConstMap = Eigen::TensorMap<Eigen::Tensor<const T, 2, Eigen::RowMajor>>;
  Eigen::TensorMap<Eigen::Tensor<T, 2, Eigen::RowMajor>> out(c, m, n);
  if (m == 0 || n == 0) return;
  if (k == 0) {
    out.device(device) = out.constant(T(0));
    return;
  }
  ConstMap lhs(a, transpose_a ? k : m, transpose_a ? m : k);
  ConstMap rhs(b, transpose_b ? n : k, transpose_b ? k : n);
  const Eigen::array<Eigen::IndexPair<Eigen::Index>, 1> contract = {
      Eigen::IndexPair<Eigen::Index>(transpose_a ? 0 : 1, transpose_b ? 1 : 0)};
  out.device(device) = lhs.contract(rhs, contract);
}

// c[:, first:first+count] = a^T * b[:, first:first+count], for a [k, m], b [k, width] and c
// [m, width]: the weight gradient of one block of gates.
template <typename T>
void ParallelTransposedMatMulColumns(const Eigen::ThreadPoolDevice& device, const T* a,
                                     const T* b, int64_t k, int64_t m, int64_t width,
                                     int64_t first, int64_t count, T* c) {
  using Index2 = Eigen::array<Eigen::Index, 2>;
  Eigen::TensorMap<Eigen::Tensor<T, 2, Eigen::RowMajor>> out(c, m, width);
  auto out_block = out.slice(Index2{0, first}, Index2{m, count});
  if (k == 0) {
    out_block.device(device) = out_block.constant(T(0));
    return;
  }
  Eigen::TensorMap<Eigen::Tensor<const T, 2, Eigen::RowMajor>> lhs(a, k, m), rhs(b, k, width);
  const Eigen::array<Eigen::IndexPair<Eigen::Index>, 1> contract = {
      Eigen::IndexPair<Eigen::Index>(0, 0)};
  out_block.device(device) = lhs.contract(rhs.slice(Index2{0, first}, Index2{k, count}), contract);
}

// sums[j] = sum over rows of a[row, j] for a row-major [rows, cols] buffer. One pass over
// contiguous rows: memory-bound, so a single thread suffices (Eigen's tensor reduction over the
// outer axis of a row-major buffer is many times slower).
template <typename T>
void ColumnSums(const T* a, int64_t rows, int64_t cols, T* sums) {
  Row<T> out(sums, cols);
  out.setZero();
  for (int64_t r = 0; r < rows; ++r) out += ConstRow<T>(a + r * cols, cols);
}

// Runs `shard(first_row, end_row)` over contiguous blocks of the batch on the threads of
// `device`. Examples are independent through the whole recurrence, so each block runs its
// full time loop with no synchronisation between steps.
inline void ForEachBatchShard(const Eigen::ThreadPoolDevice& device, int64_t batch,
                              int64_t work_per_example,
                              const std::function<void(int64_t, int64_t)>& shard) {
  // Below ~100k multiply-adds per example the hand-off costs more than it saves.
  constexpr int64_t kMinWorkPerShard = 100000;
  int64_t shards = std::min<int64_t>(device.numThreads(), batch);
  shards = std::min<int64_t>(shards, std::max<int64_t>(1, batch * work_per_example / kMinWorkPerShard));
  if (shards <= 1) {
    if (batch > 0) shard(0, batch);
    return;
  }
  const int64_t rows_per_shard = (batch + shards - 1) / shards;
  Eigen::Barrier barrier(static_cast<unsigned int>(shards - 1));
  for (int64_t s = 1; s < shards; ++s) {
    const int64_t first = s * rows_per_shard;
    const int64_t end = std::min(batch, first + rows_per_shard);
    device.enqueueNoNotification([&shard, &barrier, first, end] {
      if (first < end) shard(first, end);
      barrier.Notify();
    });
  }
  shard(0, std::min(batch, rows_per_shard));
  barrier.Wait();
}

// Index of the time step processed at step `step` of a sequence of `time` steps.
inline int64_t TimeIndex(int64_t step, int64_t time, bool reverse) {
  return reverse ? time - 1 - step : step;
}

// Which rows of a shard are inside their sequence at time index t; true when all are.
inline bool MarkValidRows(const int32_t* lengths, int64_t first, int64_t rows, int64_t t,
                          std::vector<char>* valid) {
  bool all_valid = true;
  for (int64_t r = 0; r < rows; ++r) {
    (*valid)[r] = t < lengths[first + r];
    all_valid = all_valid && (*valid)[r];
  }
  return all_valid;
}

}  // namespace rnn
}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_RNN_MATH_H_
