// Float32 matrix products on Intel AMX tiles, exact in integers: each factor is written in
// block floating point, a scale for each row of the left factor and for each column of the right
// one, and each scaled value as a 24-bit integer of three signed 8-bit digits,
// v = s (d0 2^16 + d1 2^8 + d2) (the Ozaki scheme's splitting, in int8). The six digit products
// that reach 2^-24 of the result (d0 e0; d0 e1, d1 e0; d0 e2, d1 e1, d2 e0) are summed exactly in
// int32 tiles, one per power of 2^8, and the three sums are scaled back to float32. The error is
// each value's rounding to 24 bits of its row's (column's) largest magnitude, and the dropped
// digit products, 2^-23 of the largest magnitudes' product per term at most; there is no rounding
// in the sums. On values of one range that is as accurate as a float32 FMA loop or more; a row
// whose values span many orders of magnitude keeps its small ones to 24 bits of its largest, not
// of their own. A TDPBSSD does twice the multiply-adds of a bfloat16 tile product, and a weight
// takes 3 bytes, so these products outrun both a bfloat16 split and the AVX-512 panels.
//
// Tile data must be granted to the process by the kernel (Linux 5.16+): Enabled() asks once.
#ifndef ZOO_OPS_KERNELS_AMX_PRODUCTS_H_
#define ZOO_OPS_KERNELS_AMX_PRODUCTS_H_

#include <algorithm>
#include <cstdint>

namespace zoo {
namespace rnn {
namespace amx {

// Whether the products are compiled in: x86-64 only. Elsewhere Enabled() is false.
#if defined(__x86_64__)
inline constexpr bool kCompiled = true;
#else
inline constexpr bool kCompiled = false;
#endif

// Whether the products here may run: the CPU has AMX-TILE, AMX-INT8 and AVX-512 (F, BW), Linux
// grants tile data to this process, and the environment variable ZOO_AMX is not "0" (read on
// every call, so that a process can compare both paths).
bool Enabled();

// The right factor B of products repeated many times (the weights of a recurrent step), split and
// laid out once: a scale for each column, and for each 16-column tile and each 64-row chunk of
// B, its three digits as 64 x 16 int8 tiles in AMX's quad-interleaved layout. K and N are
// zero-padded to 64 and 16.
class SplitMatrix {
 public:
  // B = b, a [k, n] matrix with row stride ldb, or with `transpose` B = b^T for b [n, k], split by
  // SplitGroups calls, which must cover every group before the first product (the threads of a
  // batch split share them); b must outlive those calls.
  SplitMatrix(const float* b, int64_t ldb, int64_t k, int64_t n, bool transpose);
  ~SplitMatrix();
  SplitMatrix(const SplitMatrix&) = delete;
  SplitMatrix& operator=(const SplitMatrix&) = delete;

  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  int64_t Chunks() const { return chunks_; }
  int64_t ColumnTiles() const { return column_tiles_; }
  // Column tiles go in groups of kGroupTiles, which the products compute together: a group's
  // tiles are stored chunk by chunk, so that its products read one sequential stream.
  static constexpr int64_t kGroupTiles = 2;
  // Bytes of one column tile's chunk: three digits of 64 x 16 int8.
  static constexpr int64_t kChunkBytes = 3 * 1024;
  // Where the three digits of chunk `chunk` of column tile `tile` start in the buffer, followed by
  // those of the next tile of its group.
  int64_t TileOffset(int64_t tile, int64_t chunk) const {
    const int64_t group_first = tile / kGroupTiles * kGroupTiles;
    const int64_t group_size = std::min(kGroupTiles, column_tiles_ - group_first);
    return (group_first * chunks_ + chunk * group_size + tile - group_first) * kChunkBytes;
  }
  const int8_t* Tiles(int64_t tile, int64_t chunk) const { return data_ + TileOffset(tile, chunk); }
  // Column j's value of one unit of its digits (the inverse of its scale), for j < ColumnTiles()
  // * 16.
  const float* ColumnUnits() const { return units_; }
  int64_t Groups() const { return (column_tiles_ + kGroupTiles - 1) / kGroupTiles; }
  // Splits groups [first, end) of column tiles.
  void SplitGroups(int64_t first, int64_t end) const;

 private:
  const float* b_;
  int64_t ldb_;
  bool transpose_;
  int64_t k_, n_, chunks_, column_tiles_;
  int8_t* data_;
  float* units_;
};

// One term of a product c = sum over sources of a_i * B_i: a [m, k] left factor with row stride
// lda, and B_i with k = B_i.k(). All B_i have the same n.
struct Source {
  const float* a;
  int64_t lda;
  const SplitMatrix* b;
};

// c = sum of the sources' products (c += with `accumulate`), c [m, n] with row stride ldc. Runs on
// the calling thread; the left factors are split into a buffer of that thread's.
void Multiply(const Source* sources, int count, int64_t m, float* c, int64_t ldc, bool accumulate);

// One of several products of the same left factor: c = a * b (c += with `accumulate`).
struct Product {
  const SplitMatrix* b;
  float* c;
  int64_t ldc;
  bool accumulate;
};

// Each product of a [m, k] (row stride lda), which is split once. All B have the same k.
void MultiplyEach(const float* a, int64_t lda, int64_t m, const Product* products, int count);

}  // namespace amx
}  // namespace rnn
}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_AMX_PRODUCTS_H_
