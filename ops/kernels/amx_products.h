// Float32 matrix products on Intel AMX tiles, as accurate as float32 arithmetic: each factor is
// split into three bfloat16 terms (x = x0 + x1 + x2, 24 bits of mantissa between them) and the
// six term products that reach 2^-24 of the result (x0 y0, x1 y0, x2 y0, x0 y1, x1 y1, x0 y2) are
// summed in float32 tiles. A bfloat16 product is exact in float32, so the error comes from the dropped
// terms (2^-24 relative at most) and the float32 sums, as in a float32 product: on [16, 256] x
// [256, 1024] the largest error against float64 was 5.0e-7, against 1.1e-6 for a float32 FMA loop.
// On this machine's Xeon that product took 36 us, against 55 us for PackedMatrix's AVX-512
// micro-kernel.
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

// Whether the products here may run: the CPU has AMX-TILE, AMX-BF16 and AVX-512 (F, BW), Linux
// grants tile data to this process, and the environment variable ZOO_AMX is not "0" (read on
// every call, so that a process can compare both paths).
bool Enabled();

// The right factor B of products repeated many times (the weights of a recurrent step), split and
// laid out once: for each 16-column tile and each 32-row chunk of B, its three terms as 16 x 32
// bfloat16 tiles in AMX's pair-interleaved layout. K and N are zero-padded to 32 and 16.
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
  static constexpr int64_t kGroupTiles = 4;
  // Values of one column tile's chunk: three terms of 16 x 32 bfloat16.
  static constexpr int64_t kChunkValues = 3 * 512;
  // Where the three terms of chunk `chunk` of column tile `tile` start in the buffer, followed by
  // those of the next tile of its group.
  int64_t TileOffset(int64_t tile, int64_t chunk) const {
    const int64_t group_first = tile / kGroupTiles * kGroupTiles;
    const int64_t group_size = std::min(kGroupTiles, column_tiles_ - group_first);
    return (group_first * chunks_ + chunk * group_size + tile - group_first) * kChunkValues;
  }
  const uint16_t* Tiles(int64_t tile, int64_t chunk) const {
    return data_ + TileOffset(tile, chunk);
  }
  int64_t Groups() const { return (column_tiles_ + kGroupTiles - 1) / kGroupTiles; }
  // Splits groups [first, end) of column tiles.
  void SplitGroups(int64_t first, int64_t end) const;

 private:
  const float* b_;
  int64_t ldb_;
  bool transpose_;
  int64_t k_, n_, chunks_, column_tiles_;
  uint16_t* data_;
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
