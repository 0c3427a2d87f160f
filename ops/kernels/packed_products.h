// The hand-written products of the recurrent kernels: the small products repeated at every time
// step, and the sums of the weight gradients over all steps.
//
// A step multiplies a few rows (a block of the batch, or one sequence) by the same weights, time
// after time. Eigen's GEMM repacks its right factor on every call; here the weights are laid out
// once per op call instead (PackedMatrix: k-major panels of a few vectors of columns, zero-padded,
// or the weights' own rows where they are already laid out so) and a register-blocked micro-kernel
// keeps a block of rows by one panel of sums in vector registers over the whole of k. Where the CPU
// has AMX-INT8 tiles, the same calls run on them instead (amx_products.h). The backward pass's two
// products of a step's gradients, by U^T and by W^T, are one product by the stacked [U; W]^T
// (TransposedWeights), and the weight gradients of small layers are summed while each block of
// gradients is in cache (TransposedProduct, GradientSums).
//
// Invariants: the products are single-threaded (they run inside one thread's part of the work) and
// allocate nothing; the factors they read must outlive them; a panel's columns past n are zero, so
// the micro-kernel needs no edge case in k or n; results are written, or added with
// `accumulate`, exactly once per call. The arithmetic is float32 (or float64) multiply-adds in the
// order of k, so results equal a plain loop's up to the rounding of the vector sums.
#ifndef ZOO_OPS_KERNELS_PACKED_PRODUCTS_H_
#define ZOO_OPS_KERNELS_PACKED_PRODUCTS_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "amx_products.h"
#include "packet_math.h"
#include "workers.h"

namespace zoo {
namespace rnn {

// The register blocks of the products, from the target's vector registers at compile time. A
// block's sums, the row of the right factor it multiplies and a broadcast left value must fit in
// the registers together: a block any larger keeps its sums on the stack and reloads them at
// every multiply-add. With AVX-512, 32 registers of 64 bytes; otherwise the width of Eigen's float
// packets (32 bytes with AVX2, 16 with SSE) and 16 registers.
namespace blocks {
#if defined(__AVX512F__)
inline constexpr int kVectorBytes = 64;
// PackedMatrix: panels of 4 vectors with 6 rows of sums (24 registers), or of 2 vectors with 8
// rows (16; more rows left too few registers for the loads) where that pads fewer columns.
inline constexpr int kWidePanelVectors = 4, kWidePanelRows = 6;
inline constexpr int kNarrowPanelVectors = 2, kNarrowPanelRows = 8;
// TransposedProduct: 6 rows of c by up to 4 vectors of columns.
inline constexpr int kTransposedRows = 6, kTransposedVectors = 4;
#else
inline constexpr int kVectorBytes = static_cast<int>(packets::kLanes * sizeof(float));
// Panels of 2 vectors with 6 rows of sums (12 registers, 2 for the panel row, 1 broadcast).
inline constexpr int kWidePanelVectors = 2, kWidePanelRows = 6;
inline constexpr int kNarrowPanelVectors = kWidePanelVectors, kNarrowPanelRows = kWidePanelRows;
inline constexpr int kTransposedRows = 6, kTransposedVectors = 2;
#endif
}  // namespace blocks

// The right-hand matrix B of the products repeated at every time step (h * U, d * U^T), laid out
// once per op call as panels of columns, each stored k-major and zero-padded, so that every step
// reads it sequentially.
template <typename T>
class PackedMatrix {
 public:
  // How B is laid out for the products: packed into panels at construction (kNow); read where it
  // lies if it can be (kInPlace, for the products of a split by units, see the constructor); or,
  // with kAmxTiles (float only), B is split into int8 digits for AMX tiles (amx_products.h)
  // instead of packed into panels, for Multiply and MultiplySum of whole rows, by Prepare calls
  // that must cover every part before the first product: the threads of a batch split share
  // them (ForEachBatchShard's setup, PrepareAll), so that no thread waits for one thread's split.
  enum class Packing { kNow, kInPlace, kAmxTiles };

  // kAmxTiles where amx::Enabled(), for float products of at least 16 rows (a tile's height) by
  // weights of at least 32K values (a layer's W and U together), else kNow: with fewer rows most
  // of each tile product is padding, and smaller products do not pay for the tiles' set-up.
  static Packing PackingFor(int64_t rows, int64_t weight_values) {
    constexpr int64_t kMinAmxRows = 16, kMinAmxWeightValues = 32 * 1024;
    return std::is_same<T, float>::value && rows >= kMinAmxRows &&
                   weight_values >= kMinAmxWeightValues && amx::Enabled()
               ? Packing::kAmxTiles
               : Packing::kNow;
  }

  // B = b, a [k, n] matrix with row stride ldb, or with `transpose` B = b^T for b [n, k]; b must
  // outlive this object. With kNow the panels are packed here, on this thread (packing is short
  // beside the hand-off to another thread). With kInPlace the products read B's rows where they
  // lie when they can serve as the panels' rows (ReadableInPlace; else B is packed now): a split
  // by units reads its weights once a step, so a copy would cost about a step's reading of them,
  // while a batch split reads each panel row for several rows of the batch.
  PackedMatrix(const T* b, int64_t ldb, int64_t k, int64_t n, bool transpose,
               Packing packing = Packing::kNow)
      : b_(b),
        ldb_(ldb),
        transpose_(transpose),
        k_(k),
        n_(n),
        panel_vectors_(PanelVectors(n)),
        panel_(panel_vectors_ * kLanes),
        panels_((n + panel_ - 1) / panel_),
        in_place_(packing == Packing::kInPlace && ReadableInPlace(b, ldb, n, panel_, transpose)),
        data_(static_cast<T*>(Eigen::internal::aligned_malloc(
            sizeof(T) * (packing == Packing::kAmxTiles || in_place_
                             ? 1
                             : std::max<int64_t>(1, panels_ * k * panel_))))) {
    if (packing != Packing::kAmxTiles && !in_place_) {
      for (int64_t p = 0; p < panels_; ++p) Pack(p);
    }
    if constexpr (std::is_same<T, float>::value && amx::kCompiled) {
      if (packing == Packing::kAmxTiles) {
        tiles_ = std::make_unique<amx::SplitMatrix>(b, ldb, k, n, transpose);
      }
    }
  }
  ~PackedMatrix() { Eigen::internal::aligned_free(data_); }
  PackedMatrix(const PackedMatrix&) = delete;
  PackedMatrix& operator=(const PackedMatrix&) = delete;

  // Part `part` of `parts` of the work that kAmxTiles leaves to Prepare (none otherwise).
  void Prepare(int part, int parts) const {
    if constexpr (std::is_same<T, float>::value && amx::kCompiled) {
      if (tiles_ != nullptr) {
        const int64_t groups = tiles_->Groups();
        tiles_->SplitGroups(part * groups / parts, (part + 1) * groups / parts);
      }
    }
  }

  // c = a * B (c += a * B when `accumulate`) for a [m, k] with row stride lda and c [m, n]
  // with row stride ldc.
  void Multiply(const T* a, int64_t lda, int64_t m, T* c, int64_t ldc, bool accumulate) const {
    Run(a, lda, nullptr, nullptr, 0, m, c, ldc, accumulate, 0, panels_);
  }

  // c = a * B + a2 * B2, for B2 packed with the same n (one step's gate pre-activations
  // x_t * W + h * U): the sums of both products stay in registers and c is written once.
  void MultiplySum(const T* a, int64_t lda, const PackedMatrix& b2, const T* a2, int64_t lda2,
                   int64_t m, T* c, int64_t ldc) const {
    Run(a, lda, &b2, a2, lda2, m, c, ldc, false, 0, panels_);
  }

  // c = a * B (c += with `accumulate`) and c2 = a * B2, for B2 packed the same way with the same
  // k (the two products of a backward step's gradient): with AMX tiles, a is split once.
  void MultiplyBoth(const T* a, int64_t lda, int64_t m, T* c, int64_t ldc, bool accumulate,
                    const PackedMatrix& b2, T* c2, int64_t ldc2) const {
    if constexpr (std::is_same<T, float>::value && amx::kCompiled) {
      if (tiles_ != nullptr) {
        const amx::Product products[2] = {{tiles_.get(), c, ldc, accumulate},
                                          {b2.tiles_.get(), c2, ldc2, false}};
        amx::MultiplyEach(a, lda, m, products, 2);
        return;
      }
    }
    Multiply(a, lda, m, c, ldc, accumulate);
    b2.Multiply(a, lda, m, c2, ldc2, false);
  }

  // Multiply and MultiplySum over the columns of panels [first_panel, end_panel) only; c still
  // points at column 0.
  void MultiplyPanels(const T* a, int64_t lda, int64_t m, T* c, int64_t ldc, int64_t first_panel,
                      int64_t end_panel) const {
    Run(a, lda, nullptr, nullptr, 0, m, c, ldc, false, first_panel, end_panel);
  }
  void MultiplySumPanels(const T* a, int64_t lda, const PackedMatrix& b2, const T* a2, int64_t lda2,
                         int64_t m, T* c, int64_t ldc, int64_t first_panel,
                         int64_t end_panel) const {
    Run(a, lda, &b2, a2, lda2, m, c, ldc, false, first_panel, end_panel);
  }

  // Columns per panel of a B with n columns: column ranges that start and end on a multiple of
  // it can be computed apart (MultiplySumPanels).
  static int64_t PanelColumns(int64_t n) { return PanelVectors(n) * kLanes; }

 private:
  typedef T Vector __attribute__((vector_size(blocks::kVectorBytes)));
  static constexpr int kLanes = blocks::kVectorBytes / sizeof(T);

  // Packs panel p.
  void Pack(int64_t p) {
    const int64_t cols = std::min<int64_t>(panel_, n_ - p * panel_);
    T* panel = data_ + p * k_ * panel_;
    for (int64_t kk = 0; kk < k_; ++kk) {
      std::fill(panel + kk * panel_ + cols, panel + (kk + 1) * panel_, T(0));
    }
    if (!transpose_) {
      for (int64_t kk = 0; kk < k_; ++kk) {
        std::copy_n(b_ + kk * ldb_ + p * panel_, cols, panel + kk * panel_);
      }
      return;
    }
    // Tiles of kTile source columns, so that both the rows read and the panel rows written stay
    // in L1 (a plain walk down the columns of a large matrix misses the cache at every value).
    constexpr int64_t kTile = 16;
    for (int64_t first = 0; first < k_; first += kTile) {
      const int64_t end = std::min(k_, first + kTile);
      for (int64_t j = 0; j < cols; ++j) {
        const T* source = b_ + (p * panel_ + j) * ldb_;
        for (int64_t kk = first; kk < end; ++kk) panel[kk * panel_ + j] = source[kk];
      }
    }
  }

  // Wide panels, or narrow ones where that pads fewer columns (with AVX-512, n = 32 or 96 floats).
  static int PanelVectors(int64_t n) {
    const auto padding = [n](int64_t panel) { return (n + panel - 1) / panel * panel - n; };
    return padding(blocks::kWidePanelVectors * kLanes) <=
                   padding(blocks::kNarrowPanelVectors * kLanes)
               ? blocks::kWidePanelVectors
               : blocks::kNarrowPanelVectors;
  }

  void Run(const T* a, int64_t lda, const PackedMatrix* b2, const T* a2, int64_t lda2, int64_t m,
           T* c, int64_t ldc, bool accumulate, int64_t first_panel, int64_t end_panel) const {
    if constexpr (std::is_same<T, float>::value && amx::kCompiled) {
      // Whole rows only: kAmxTiles is not for the products of a split by units.
      if (tiles_ != nullptr) {
        const amx::Source sources[2] = {{a, lda, tiles_.get()},
                                        {a2, lda2, b2 == nullptr ? nullptr : b2->tiles_.get()}};
        amx::Multiply(sources, b2 == nullptr ? 1 : 2, m, c, ldc, accumulate);
        return;
      }
    }
    if (panel_vectors_ == blocks::kWidePanelVectors) {
      Run<blocks::kWidePanelVectors, blocks::kWidePanelRows>(a, lda, b2, a2, lda2, m, c, ldc,
                                                             accumulate, first_panel, end_panel);
    } else {
      Run<blocks::kNarrowPanelVectors, blocks::kNarrowPanelRows>(
          a, lda, b2, a2, lda2, m, c, ldc, accumulate, first_panel, end_panel);
    }
  }

  // kRows rows x kVectors vectors of accumulators (blocks::) with a panel row; the remaining rows
  // go in blocks of 4, 2, 1.
  template <int kVectors, int kRows>
  void Run(const T* a, int64_t lda, const PackedMatrix* b2, const T* a2, int64_t lda2, int64_t m,
           T* c, int64_t ldc, bool accumulate, int64_t first_panel, int64_t end_panel) const {
    const Source second_none{nullptr, 0, nullptr, 0, 0};
    for (int64_t p = first_panel; p < end_panel; ++p) {
      // Panel-outer, so a panel stays in cache across the row blocks of a step.
      Source first{a, lda, PanelData(p), k_, RowStride()};
      Source second =
          b2 == nullptr ? second_none : Source{a2, lda2, b2->PanelData(p), b2->k_, b2->RowStride()};
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
      if (r + 4 <= m) block(std::integral_constant<int, 4>());
      if (r + 2 <= m) block(std::integral_constant<int, 2>());
      if (r < m) block(std::integral_constant<int, 1>());
    }
  }

  // The left factor of one product and the panel of its right factor, its k rows `stride` apart.
  struct Source {
    const T* a;
    int64_t lda;
    const T* panel;
    int64_t k;
    int64_t stride;
    Source At(int64_t row) const {
      return Source{a == nullptr ? a : a + row * lda, lda, panel, k, stride};
    }
  };

  // Whether B's rows can serve as the panels' rows where they lie: not transposed, n whole panels
  // (no padding to add), and every panel row vector-aligned, as the micro-kernel loads them.
  static bool ReadableInPlace(const T* b, int64_t ldb, int64_t n, int64_t panel, bool transpose) {
    constexpr uintptr_t kAlignment = sizeof(Vector);
    return !transpose && n % panel == 0 && reinterpret_cast<uintptr_t>(b) % kAlignment == 0 &&
           (ldb * sizeof(T)) % kAlignment == 0;
  }
  // Where panel p starts, and from one of its rows to the next.
  const T* PanelData(int64_t p) const {
    return in_place_ ? b_ + p * panel_ : data_ + p * k_ * panel_;
  }
  int64_t RowStride() const { return in_place_ ? ldb_ : panel_; }

  template <int kVectors, int kRows>
  static inline __attribute__((always_inline)) void AddProducts(const Source& source,
                                                                Vector (&sums)[kRows][kVectors]) {
    for (int64_t kk = 0; kk < source.k; ++kk) {
      const Vector* b = reinterpret_cast<const Vector*>(source.panel + kk * source.stride);
      for (int r = 0; r < kRows; ++r) {
        const Vector a_value = Splat<Vector>(source.a[r * source.lda + kk]);
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

  const T* b_;
  int64_t ldb_;
  bool transpose_;
  int64_t k_, n_;
  int panel_vectors_;
  int64_t panel_, panels_;
  // B read where it lies (ReadableInPlace) instead of packed into data_.
  bool in_place_;
  T* data_;
  // B split for AMX tiles (Packing::kAmxTiles), else null.
  std::unique_ptr<amx::SplitMatrix> tiles_;
};

// A backward step's two products of the pre-activation gradients d [m, width]: d U^T (through
// the recurrence, [m, H]) and d W^T (the input gradient, [m, D]). On panels they are one product
// by [U; W]^T, the weights' rows stacked once per op call, so that each block of d is read once
// and the panels are H + D columns wide (small H and D make narrow panels, which leave the
// micro-kernel's registers half used). AMX tiles already share d's split between the two
// products (MultiplyBoth), so there they stay two.
template <typename T>
class TransposedWeights {
 public:
  using Packing = typename PackedMatrix<T>::Packing;

  // recurrent_kernel [H, width] and kernel [D, width].
  TransposedWeights(const T* recurrent_kernel, int64_t units, const T* kernel, int64_t input,
                    int64_t width, Packing packing)
      : units_(units), input_(input) {
    if (packing == Packing::kAmxTiles) {
      recurrent_ =
          std::make_unique<PackedMatrix<T>>(recurrent_kernel, width, width, units, true, packing);
      input_weights_ =
          std::make_unique<PackedMatrix<T>>(kernel, width, width, input, true, packing);
      return;
    }
    stacked_.resize(units + input, width);
    stacked_.topRows(units) = ConstRows<T>(recurrent_kernel, units, width);
    stacked_.bottomRows(input) = ConstRows<T>(kernel, input, width);
    both_ = std::make_unique<PackedMatrix<T>>(stacked_.data(), width, width, units + input, true,
                                              packing);
  }

  // Part `part` of `parts` of the weights' split for AMX tiles (PackedMatrix::Prepare).
  void Prepare(int part, int parts) const {
    if (both_ != nullptr) return;
    recurrent_->Prepare(part, parts);
    input_weights_->Prepare(part, parts);
  }

  // Values of the scratch that Multiply needs for m rows.
  int64_t ScratchElements(int64_t m) const { return both_ ? m * (units_ + input_) : 0; }

  // c = d U^T ([m, H], row stride ldc) and c2 = d W^T ([m, D], row stride ldc2), for d [m, width]
  // with row stride ldd.
  void Multiply(const T* d, int64_t ldd, int64_t m, T* c, int64_t ldc, T* c2, int64_t ldc2,
                T* scratch) const {
    if (both_ == nullptr) {
      recurrent_->MultiplyBoth(d, ldd, m, c, ldc, false, *input_weights_, c2, ldc2);
      return;
    }
    const Eigen::OuterStride<> both(units_ + input_);
    both_->Multiply(d, ldd, m, scratch, both.outer(), false);
    // Eigen's copies of the row blocks, which inline: copy_n called memmove twice per row.
    StridedRows<T>(c, m, units_, Eigen::OuterStride<>(ldc)) =
        ConstStridedRows<T>(scratch, m, units_, both);
    StridedRows<T>(c2, m, input_, Eigen::OuterStride<>(ldc2)) =
        ConstStridedRows<T>(scratch + units_, m, input_, both);
  }

 private:
  const int64_t units_, input_;
  std::unique_ptr<PackedMatrix<T>> recurrent_, input_weights_;  // with AMX tiles
  RowMatrix<T> stacked_;                                        // [U; W], else
  std::unique_ptr<PackedMatrix<T>> both_;
};

// c += a^T b for a [rows, k] (row stride lda), b [rows, n] (row stride ldb) and c [k, n] (row
// stride ldc): a block of rows' share of a weight gradient, added while the block is in cache.
// Blocks of 6 rows of c by blocks::kTransposedVectors vectors of columns (then 4, 2, 1 rows;
// 2, 1 vectors) stay in registers over all the rows.
template <typename T>
class TransposedProduct {
 public:
  static void Add(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t rows, int64_t k,
                  int64_t n, T* c, int64_t ldc) {
    constexpr int kVectors = blocks::kTransposedVectors;
    int64_t column = 0;
    for (; column + kVectors * kLanes <= n; column += kVectors * kLanes) {
      Columns<kVectors>(a, lda, b + column, ldb, rows, k, c + column, ldc);
    }
    if (kVectors > 2 && column + 2 * kLanes <= n) {
      Columns<2>(a, lda, b + column, ldb, rows, k, c + column, ldc);
      column += 2 * kLanes;
    }
    if (column + kLanes <= n) {
      Columns<1>(a, lda, b + column, ldb, rows, k, c + column, ldc);
      column += kLanes;
    }
    for (int64_t i = 0; i < k; ++i) {
      for (int64_t j = column; j < n; ++j) {
        T sum = 0;
        for (int64_t r = 0; r < rows; ++r) sum += a[r * lda + i] * b[r * ldb + j];
        c[i * ldc + j] += sum;
      }
    }
  }

 private:
  typedef T Vector __attribute__((vector_size(blocks::kVectorBytes)));
  static constexpr int kLanes = blocks::kVectorBytes / sizeof(T);

  // The rows of b and c are not vector-aligned. A vector at a time, so that the sums stay in
  // registers (loaded into an array of vectors, they went back to the stack at every row).
  static Vector Load(const T* values) {
    Vector vector;
    std::memcpy(&vector, values, sizeof(vector));
    return vector;
  }

  template <int kVectors>
  static void Columns(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t rows, int64_t k,
                      T* c, int64_t ldc) {
    constexpr int kRows = blocks::kTransposedRows;
    int64_t i = 0;
    for (; i + kRows <= k; i += kRows) {
      Block<kRows, kVectors>(a + i, lda, b, ldb, rows, c + i * ldc, ldc);
    }
    const auto block = [&](auto rows_tag) {
      constexpr int kBlockRows = decltype(rows_tag)::value;
      Block<kBlockRows, kVectors>(a + i, lda, b, ldb, rows, c + i * ldc, ldc);
      i += kBlockRows;
    };
    if (i + 4 <= k) block(std::integral_constant<int, 4>());
    if (i + 2 <= k) block(std::integral_constant<int, 2>());
    if (i < k) block(std::integral_constant<int, 1>());
  }

  template <int kRows, int kVectors>
  static void Block(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t rows, T* c,
                    int64_t ldc) {
    Vector sums[kRows][kVectors] = {};
    for (int64_t r = 0; r < rows; ++r) {
      Vector b_row[kVectors];
      for (int v = 0; v < kVectors; ++v) b_row[v] = Load(b + r * ldb + v * kLanes);
      for (int i = 0; i < kRows; ++i) {
        const Vector a_value = Splat<Vector>(a[r * lda + i]);
        for (int v = 0; v < kVectors; ++v) sums[i][v] += a_value * b_row[v];
      }
    }
    for (int i = 0; i < kRows; ++i) {
      for (int v = 0; v < kVectors; ++v) {
        const Vector sum = Load(c + i * ldc + v * kLanes) + sums[i][v];
        std::memcpy(c + i * ldc + v * kLanes, &sum, sizeof(sum));
      }
    }
  }
};

// The weight and bias gradients of a backward pass summed inside it (`enabled`), block of rows by
// block of rows while the block's pre-activation gradients are in cache, instead of written out as
// [T, B, width] buffers that the caller reads back for one large product per weight and a column
// sum per bias. Each batch shard sums into buffers of its own (Shard), which Take adds to the
// outputs once the shard is done.
template <typename T>
class GradientSums {
 public:
  struct Output {
    T* values;
    int64_t size;
  };

  // Zeroes the outputs; when not `enabled` nothing is summed here.
  GradientSums(bool enabled, std::vector<Output> outputs)
      : outputs_(enabled ? std::move(outputs) : std::vector<Output>()) {
    for (const Output& output : outputs_) std::fill_n(output.values, output.size, T(0));
  }

  bool enabled() const { return !outputs_.empty(); }

  class Shard {
   public:
    // Where a block's gradients go: scratch block i here, or `kept` when the caller sums.
    T* Block(int i, T* kept) { return blocks_.empty() ? kept : blocks_[i].data(); }

    // Output i, seen as [k, ldc] from column `column`, += a^T d for a [rows, k] and d [rows, n]
    // (row strides lda and ldd).
    void AddProduct(int i, int64_t column, int64_t ldc, const T* a, int64_t lda, int64_t k,
                    const T* d, int64_t ldd, int64_t rows, int64_t n) {
      if (sums_.empty()) return;
      TransposedProduct<T>::Add(a, lda, d, ldd, rows, k, n, sums_[i].data() + column, ldc);
    }

    // Output i from `column` += the column sums of d [rows, n] (row stride ldd).
    void AddColumnSums(int i, int64_t column, const T* d, int64_t ldd, int64_t rows, int64_t n) {
      if (sums_.empty()) return;
      Row<T> sums(sums_[i].data() + column, n);
      for (int64_t r = 0; r < rows; ++r) sums += ConstRow<T>(d + r * ldd, n);
    }

   private:
    friend class GradientSums;
    std::vector<Eigen::Matrix<T, Eigen::Dynamic, 1>> sums_, blocks_;
  };

  // The sums of one shard, with scratch blocks of the given numbers of elements.
  Shard ForShard(std::initializer_list<int64_t> block_elements) const {
    Shard shard;
    if (!enabled()) return shard;
    for (const Output& output : outputs_) {
      shard.sums_.push_back(Eigen::Matrix<T, Eigen::Dynamic, 1>::Zero(output.size));
    }
    for (int64_t elements : block_elements) shard.blocks_.emplace_back(elements);
    return shard;
  }

  void Take(const Shard& shard) {
    if (!enabled()) return;
    std::lock_guard<std::mutex> guard(lock_);
    for (size_t i = 0; i < outputs_.size(); ++i) {
      Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>(outputs_[i].values, outputs_[i].size) +=
          shard.sums_[i];
    }
  }

 private:
  const std::vector<Output> outputs_;
  std::mutex lock_;
};

// sums[j] = sum over rows of a[row, j] for a row-major [rows, cols] buffer: each shard adds its
// contiguous rows into a private row, then into `sums` under a lock. Memory-bound, one pass
// (Eigen's tensor reduction over the outer axis of a row-major buffer strides across rows).
template <typename T>
void ParallelColumnSums(const Workers& workers, const T* a, int64_t rows, int64_t cols, T* sums) {
  Row<T> total(sums, cols);
  total.setZero();
  std::mutex lock;
  ForEachBatchShard(workers, rows, cols, [&](int64_t first, int64_t end) {
    Eigen::Array<T, 1, Eigen::Dynamic> partial = Eigen::Array<T, 1, Eigen::Dynamic>::Zero(cols);
    for (int64_t r = first; r < end; ++r) partial += ConstRow<T>(a + r * cols, cols);
    std::lock_guard<std::mutex> guard(lock);
    total += partial;
  });
}

}  // namespace rnn
}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_PACKED_PRODUCTS_H_
