// Shared building blocks of the fused recurrent kernels, in plain C++ over raw row-major buffers:
// matrix products spread over a thread pool, column sums, batch sharding and padding masks. No
// TensorFlow types.
#ifndef ZOO_OPS_KERNELS_RNN_MATH_H_
#define ZOO_OPS_KERNELS_RNN_MATH_H_

#define EIGEN_USE_THREADS

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <type_traits>
#include <vector>

#include "Eigen/Core"
#include "unsupported/Eigen/CXX11/Tensor"

namespace zoo {
namespace rnn {

template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
// A block of contiguous rows, such as one time step of a shard in a time-major buffer.
template <typename T>
using Rows = Eigen::Map<RowMatrix<T>>;
template <typename T>
using ConstRows = Eigen::Map<const RowMatrix<T>>;
// One row of H (or k*H) values, as an array for element-wise gate arithmetic.
template <typename T>
using Row = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
template <typename T>
using ConstRow = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>;

// Rows of one step of a shard in a batch-major [batch, time, width] tensor: `time * width` apart.
template <typename T>
using StridedRows = Eigen::Map<RowMatrix<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using ConstStridedRows = Eigen::Map<const RowMatrix<T>, 0, Eigen::OuterStride<>>;

// Where the loops find the rows of one step in a batch-major [batch, time, width] tensor (the
// outputs, their gradients). Rows of at least kMinInPlaceRowBytes are used in place; shorter ones
// go through a time-major copy turned by SwapLeadingAxes, in which a step of a shard is one
// contiguous block (in place, a step of a shard at B=1024, H=32 touched one page per row). At
// H=256 the copy cost more than the strided rows.
struct StepLayout {
  static constexpr int64_t kMinInPlaceRowBytes = 512;
  int64_t batch, time, width;
  bool in_place;

  template <typename T>
  static StepLayout For(int64_t batch, int64_t time, int64_t width) {
    return {batch, time, width, width * static_cast<int64_t>(sizeof(T)) >= kMinInPlaceRowBytes};
  }
  int64_t Offset(int64_t step, int64_t row) const {
    return in_place ? (row * time + step) * width : (step * batch + row) * width;
  }
  int64_t RowStride() const { return in_place ? time * width : width; }
  // From a row at one step to the same row at the next step.
  int64_t StepStride() const { return in_place ? width : batch * width; }
  // Elements of the time-major copy (none in place).
  int64_t ScratchElements() const { return in_place ? 0 : batch * time * width; }
};

// dst[j, i, :] = src[i, j, :] for src [rows, cols, width]: turns [batch, time, width] into the
// time-major [time, batch, width] that the recurrent loops read (each step's rows contiguous) and
// back.
template <typename T>
void SwapLeadingAxes(const Eigen::ThreadPoolDevice& device, const T* src, int64_t rows,
                     int64_t cols, int64_t width, T* dst) {
  if (rows == 0 || cols == 0 || width == 0) return;
  Eigen::TensorMap<Eigen::Tensor<const T, 3, Eigen::RowMajor>> in(src, rows, cols, width);
  Eigen::TensorMap<Eigen::Tensor<T, 3, Eigen::RowMajor>> out(dst, cols, rows, width);
  out.device(device) = in.shuffle(Eigen::array<int, 3>{1, 0, 2});
}

// The right-hand matrix B of the products repeated at every time step (h * U, d * U^T), copied
// once per op call into panels of columns, each panel stored k-major and zero-padded, so that
// every step reads it sequentially. Eigen's GEMM would repack B (a megabyte for 256 units) on
// each of those small products. Single-threaded products: they run inside a batch shard.
template <typename T>
class PackedMatrix {
 public:
  // B = b, a [k, n] matrix with row stride ldb, or with `transpose` B = b^T for b [n, k].
  PackedMatrix(const T* b, int64_t ldb, int64_t k, int64_t n, bool transpose)
      : k_(k), n_(n), panel_vectors_(PanelVectors(n)), panel_(panel_vectors_ * kLanes),
        panels_((n + panel_ - 1) / panel_),
        data_(static_cast<T*>(Eigen::internal::aligned_malloc(
            sizeof(T) * std::max<int64_t>(1, panels_ * k * panel_)))) {
    for (int64_t p = 0; p < panels_; ++p) {
      const int64_t cols = std::min<int64_t>(panel_, n - p * panel_);
      T* panel = data_ + p * k * panel_;
      for (int64_t kk = 0; kk < k; ++kk) {
        std::fill(panel + kk * panel_ + cols, panel + (kk + 1) * panel_, T(0));
      }
      if (!transpose) {
        for (int64_t kk = 0; kk < k; ++kk) {
          std::copy_n(b + kk * ldb + p * panel_, cols, panel + kk * panel_);
        }
        continue;
      }
      // Tiles of kTile source columns, so that both the rows read and the panel rows written
      // stay in L1 (a plain column walk of a 1 MB matrix took longer than a whole time step).
      constexpr int64_t kTile = 16;
      for (int64_t first = 0; first < k; first += kTile) {
        const int64_t end = std::min(k, first + kTile);
        for (int64_t j = 0; j < cols; ++j) {
          const T* source = b + (p * panel_ + j) * ldb;
          for (int64_t kk = first; kk < end; ++kk) panel[kk * panel_ + j] = source[kk];
        }
      }
    }
  }
  ~PackedMatrix() { Eigen::internal::aligned_free(data_); }
  PackedMatrix(const PackedMatrix&) = delete;
  PackedMatrix& operator=(const PackedMatrix&) = delete;

  // c = a * B (c += a * B when `accumulate`) for a [m, k] with row stride lda and c [m, n]
  // with row stride ldc.
  void Multiply(const T* a, int64_t lda, int64_t m, T* c, int64_t ldc, bool accumulate) const {
    Run(a, lda, nullptr, nullptr, 0, m, c, ldc, accumulate);
  }

  // c = a * B + a2 * B2, for B2 packed with the same n (one step's gate pre-activations
  // x_t * W + h * U): the sums of both products stay in registers and c is written once.
  void MultiplySum(const T* a, int64_t lda, const PackedMatrix& b2, const T* a2, int64_t lda2,
                   int64_t m, T* c, int64_t ldc) const {
    Run(a, lda, &b2, a2, lda2, m, c, ldc, false);
  }

 private:
  typedef T Vector __attribute__((vector_size(64)));
  static constexpr int kLanes = 64 / sizeof(T);

  // Panels of 4 vectors, or of 2 where that pads fewer columns (n = 32 or 96 floats).
  static int PanelVectors(int64_t n) {
    const auto padding = [n](int64_t panel) { return (n + panel - 1) / panel * panel - n; };
    return padding(4 * kLanes) <= padding(2 * kLanes) ? 4 : 2;
  }

  void Run(const T* a, int64_t lda, const PackedMatrix* b2, const T* a2, int64_t lda2, int64_t m,
           T* c, int64_t ldc, bool accumulate) const {
    if (panel_vectors_ == 4) {
      Run<4, 6>(a, lda, b2, a2, lda2, m, c, ldc, accumulate);
    } else {
      Run<2, 12>(a, lda, b2, a2, lda2, m, c, ldc, accumulate);
    }
  }

  // kRows rows x kVectors vectors of accumulators plus a panel row fill the 32 vector
  // registers of AVX-512; the remaining rows go in blocks of 8, 4, 2, 1.
  template <int kVectors, int kRows>
  void Run(const T* a, int64_t lda, const PackedMatrix* b2, const T* a2, int64_t lda2, int64_t m,
           T* c, int64_t ldc, bool accumulate) const {
    const Source second_none{nullptr, 0, nullptr, 0};
    for (int64_t p = 0; p < panels_; ++p) {
      // Panel-outer, so a panel stays in cache across the row blocks of a step.
      Source first{a, lda, data_ + p * k_ * panel_, k_};
      Source second = b2 == nullptr ? second_none
                                    : Source{a2, lda2, b2->data_ + p * b2->k_ * panel_, b2->k_};
      const int cols = static_cast<int>(std::min<int64_t>(panel_, n_ - p * panel_));
      T* c_panel = c + p * panel_;
      int64_t r = 0;
      const auto block = [&](auto rows_tag) {
        constexpr int kBlockRows = decltype(rows_tag)::value;
        Block<kVectors, kBlockRows>(first.At(r), second.At(r), c_panel + r * ldc, ldc, cols,
                                    accumulate);
        r += kBlockRows;
      };
      while (r + kRows <= m) block(std::integral_constant<int, kRows>());
      if (kRows > 8 && r + 8 <= m) block(std::integral_constant<int, 8>());
      if (r + 4 <= m) block(std::integral_constant<int, 4>());
      if (r + 2 <= m) block(std::integral_constant<int, 2>());
      if (r < m) block(std::integral_constant<int, 1>());
    }
  }

  // The left factor of one product and the panel of its packed right factor.
  struct Source {
    const T* a;
    int64_t lda;
    const T* panel;
    int64_t k;
    Source At(int64_t row) const { return Source{a == nullptr ? a : a + row * lda, lda, panel, k}; }
  };

  template <int kVectors, int kRows>
  static inline __attribute__((always_inline)) void AddProducts(const Source& source,
                                                                Vector (&sums)[kRows][kVectors]) {
    for (int64_t kk = 0; kk < source.k; ++kk) {
      const Vector* b = reinterpret_cast<const Vector*>(source.panel + kk * kVectors * kLanes);
      for (int r = 0; r < kRows; ++r) {
        const Vector a_value = Vector{} + source.a[r * source.lda + kk];
        for (int v = 0; v < kVectors; ++v) sums[r][v] += a_value * b[v];
      }
    }
  }

  // kRows rows of c, one panel of columns: the accumulators stay in registers over all of k
  // (of both products for MultiplySum).
  template <int kVectors, int kRows>
  static void Block(const Source& first, const Source& second, T* c, int64_t ldc, int cols,
                    bool accumulate) {
    Vector sums[kRows][kVectors] = {};
    AddProducts<kVectors, kRows>(first, sums);
    if (second.a != nullptr) AddProducts<kVectors, kRows>(second, sums);
    for (int r = 0; r < kRows; ++r) {
      T* row = c + r * ldc;
      if (cols == kVectors * kLanes) {
        for (int v = 0; v < kVectors; ++v) {
          Vector out = sums[r][v];
          if (accumulate) {
            Vector before;
            std::memcpy(&before, row + v * kLanes, sizeof(Vector));
            out += before;
          }
          std::memcpy(row + v * kLanes, &out, sizeof(Vector));
        }
      } else {
        T values[kVectors * kLanes];
        std::memcpy(values, sums[r], sizeof(values));
        for (int j = 0; j < cols; ++j) row[j] = accumulate ? row[j] + values[j] : values[j];
      }
    }
  }

  int64_t k_, n_;
  int panel_vectors_;
  int64_t panel_, panels_;
  T* data_;
};

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

// sums[j] = sum over rows of a[row, j] for a row-major [rows, cols] buffer: each shard adds its
// contiguous rows into a private row, then into `sums` under a lock. Memory-bound, one pass
// (Eigen's tensor reduction over the outer axis of a row-major buffer is many times slower).
template <typename T>
void ParallelColumnSums(const Eigen::ThreadPoolDevice& device, const T* a, int64_t rows,
                        int64_t cols, T* sums) {
  Row<T> total(sums, cols);
  total.setZero();
  std::mutex lock;
  ForEachBatchShard(device, rows, cols, [&](int64_t first, int64_t end) {
    Eigen::Array<T, 1, Eigen::Dynamic> partial = Eigen::Array<T, 1, Eigen::Dynamic>::Zero(cols);
    for (int64_t r = first; r < end; ++r) partial += ConstRow<T>(a + r * cols, cols);
    std::lock_guard<std::mutex> guard(lock);
    total += partial;
  });
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
