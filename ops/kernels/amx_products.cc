#include "amx_products.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace zoo {
namespace rnn {
namespace amx {

SplitMatrix::~SplitMatrix() {
  std::free(data_);
  std::free(units_);
}

#if !defined(__x86_64__)

bool Enabled() { return false; }

#else

namespace {

#define ZOO_AMX_TARGET __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw")))

constexpr int kTileRows = 16;     // rows of a left-factor tile and of a result tile
constexpr int kChunk = 64;        // k of one tile product (16 quads of int8)
constexpr int kTileColumns = 16;  // int32 columns of a result tile
constexpr int kTileBytes = 1024;  // bytes of a factor tile
constexpr int kDigits = 3;
// Chunks summed in int32 before their sums are scaled into float32: the sum of weight 1 grows by
// at most 3 * 2^14 a row of k, so 512 chunks (32768 rows) stay below 2^31.
constexpr int64_t kMaxChunksPerSum = 512;
static_assert(SplitMatrix::kChunkBytes == kDigits * kTileBytes, "a chunk holds three tiles");
static_assert(SplitMatrix::kGroupTiles == 2, "AddChunk computes two column tiles");
// Scaled values are integers of magnitude at most kRange, so that the leading digit stays within
// [-127, 127] after the lower digits' rounding.
constexpr float kRange = 8388608.0f - 65536.0f;  // 2^23 - 2^16
// Rows and columns whose largest magnitude is below this are taken as zero (their scale would
// overflow float32).
constexpr float kSmallest = 7.8886e-31f;  // 2^-100

// The first `count` of 16 lanes (all for 16 or more, none for 0 or fewer).
inline __mmask16 FirstLanes(int64_t count) {
  if (count <= 0) return 0;
  return static_cast<__mmask16>(count >= 16 ? 0xffff : (1u << count) - 1);
}

// `value` rounded up to a multiple of `step`.
inline int64_t RoundUp(int64_t value, int64_t step) { return (value + step - 1) / step * step; }

bool Supported() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  const bool avx512 = (ebx >> 16 & 1) && (ebx >> 30 & 1);  // AVX512F, AVX512BW
  const bool tiles = (edx >> 24 & 1) && (edx >> 25 & 1);   // AMX-TILE, AMX-INT8
  if (!avx512 || !tiles) return false;
  // Linux keeps tile data off until a process asks for it (ARCH_REQ_XCOMP_PERM, XTILEDATA).
  constexpr int kRequestPermission = 0x1023, kTileData = 18;
  return syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
}

// Largest magnitudes, lane by lane, as the bits of non-negative floats: integer order is float
// order there, and NaN and infinity (above every finite value) stay once met.
ZOO_AMX_TARGET inline __m512i MaxMagnitudeBits(__m512i bits, __m512 x) {
  return _mm512_max_epi32(bits,
                          _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
}

// Scale and unit (its inverse) of values whose largest magnitude has the bits `largest`: NaN as
// unit where that is NaN or infinity, so that the products are too.
struct Scale {
  __m512 scale, unit;
};
ZOO_AMX_TARGET inline Scale ScaleFor(__m512i largest) {
  const __m512 magnitude = _mm512_castsi512_ps(largest);
  const __mmask16 finite = _mm512_cmplt_epi32_mask(largest, _mm512_set1_epi32(0x7f800000));
  const __mmask16 scaled =
      finite & _mm512_cmp_ps_mask(magnitude, _mm512_set1_ps(kSmallest), _CMP_GE_OQ);
  const __m512 range = _mm512_set1_ps(kRange);
  Scale s;
  s.scale = _mm512_maskz_div_ps(scaled, range, magnitude);
  s.unit = _mm512_mask_blend_ps(finite, _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN()),
                                _mm512_maskz_div_ps(scaled, magnitude, range));
  return s;
}

// The three signed digits of 16 scaled values, v = d0 2^16 + d1 2^8 + d2, each in [-128, 127]
// (the lower two balanced around zero), in 32-bit lanes.
struct Digits {
  __m512i digit[kDigits];
};
// The lowest signed digit of v, in [-128, 127]. A function, not a lambda: a lambda does not take
// its caller's target attribute, and compilers without -mavx512f then refuse to inline into it.
ZOO_AMX_TARGET inline __m512i LowDigit(__m512i v) {
  const __m512i half = _mm512_set1_epi32(128), low_byte = _mm512_set1_epi32(255);
  return _mm512_sub_epi32(_mm512_and_si512(_mm512_add_epi32(v, half), low_byte), half);
}
ZOO_AMX_TARGET inline Digits Split(__m512 x, __m512 scale) {
  const __m512i value = _mm512_cvtps_epi32(_mm512_mul_ps(x, scale));  // to nearest
  Digits d;
  d.digit[2] = LowDigit(value);
  const __m512i upper = _mm512_srai_epi32(_mm512_sub_epi32(value, d.digit[2]), 8);
  d.digit[1] = LowDigit(upper);
  d.digit[0] = _mm512_srai_epi32(_mm512_sub_epi32(upper, d.digit[1]), 8);
  return d;
}

// Row kk of B (b, or b^T with `transpose`), columns [first, first + 16): masked past n, zero
// past k.
ZOO_AMX_TARGET inline __m512 LoadRow(const float* b, int64_t ldb, int64_t k, int64_t n,
                                     bool transpose, int64_t kk, int64_t first) {
  if (kk >= k) return _mm512_setzero_ps();
  const __mmask16 mask = FirstLanes(n - first);
  if (!transpose) return _mm512_maskz_loadu_ps(mask, b + kk * ldb + first);
  // B[kk, j] = b[j, kk]: 16 rows of b, ldb apart.
  const __m512i offsets =
      _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                         _mm512_set1_epi32(static_cast<int>(ldb)));
  return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mask, offsets, b + first * ldb + kk, 4);
}

// Column tiles [first_tile, end_tile) of `layout` (a SplitMatrix's sizes and Tiles()) from B,
// into `data` (its buffer) and `units` (its column units).
ZOO_AMX_TARGET void SplitColumns(const float* b, int64_t ldb, bool transpose,
                                 const SplitMatrix& layout, int64_t first_tile, int64_t end_tile,
                                 int8_t* data, float* units) {
  const int64_t k = layout.k(), n = layout.n();
  for (int64_t tile = first_tile; tile < end_tile; ++tile) {
    const int64_t first_column = tile * kTileColumns;
    __m512i largest = _mm512_setzero_si512();
    for (int64_t kk = 0; kk < k; ++kk) {
      largest = MaxMagnitudeBits(largest, LoadRow(b, ldb, k, n, transpose, kk, first_column));
    }
    const Scale scale = ScaleFor(largest);
    _mm512_storeu_ps(units + first_column, scale.unit);
    for (int64_t chunk = 0; chunk < layout.Chunks(); ++chunk) {
      int8_t* tiles = data + layout.TileOffset(tile, chunk);
      for (int quad = 0; quad < kChunk / 4; ++quad) {
        // Rows 4 quad to 4 quad + 3 interleave: each 32-bit lane holds their bytes of column j.
        __m512i quads[kDigits] = {};
        for (int q = 0; q < 4; ++q) {
          const int64_t kk = chunk * kChunk + 4 * quad + q;
          const Digits d = Split(LoadRow(b, ldb, k, n, transpose, kk, first_column), scale.scale);
          for (int p = 0; p < kDigits; ++p) {
            quads[p] = _mm512_or_si512(
                quads[p],
                _mm512_slli_epi32(_mm512_and_si512(d.digit[p], _mm512_set1_epi32(255)), 8 * q));
          }
        }
        for (int p = 0; p < kDigits; ++p) {
          _mm512_store_si512(tiles + p * kTileBytes + quad * 64, quads[p]);
        }
      }
    }
  }
}

// 64-byte aligned scratch that only grows.
class Scratch {
 public:
  ~Scratch() { std::free(data_); }
  char* Get(size_t bytes) {
    if (bytes > size_) {
      std::free(data_);
      size_ = bytes;
      data_ = static_cast<char*>(std::aligned_alloc(64, RoundUp(bytes, 64)));
    }
    return data_;
  }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
};

// The calling thread's buffer for split left factors, `bytes` long at least.
char* SplitBuffer(size_t bytes) {
  thread_local Scratch scratch;
  return scratch.Get(bytes);
}

// A left factor split for the tiles: rows_padded x k_padded bytes per digit, digit-major, and
// each row's unit.
struct SplitRows {
  const int8_t* digits;
  const float* units;
  int64_t k_padded;
  int64_t DigitBytes(int64_t rows_padded) const { return rows_padded * k_padded; }
  // Bytes of buffer it takes.
  static size_t Bytes(int64_t rows_padded, int64_t k_padded) {
    return RoundUp(rows_padded * sizeof(float), 64) + kDigits * rows_padded * k_padded;
  }
};

// a [m, k] split into `buffer` (SplitRows::Bytes long), zero-padded.
ZOO_AMX_TARGET SplitRows Split(const float* a, int64_t lda, int64_t m, int64_t k,
                               int64_t rows_padded, int64_t k_padded, char* buffer) {
  float* units = reinterpret_cast<float*>(buffer);
  int8_t* digits = reinterpret_cast<int8_t*>(buffer + RoundUp(rows_padded * sizeof(float), 64));
  const int64_t digit_bytes = rows_padded * k_padded;
  for (int64_t r = 0; r < rows_padded; ++r) {
    const float* row = a + r * lda;
    __m512i largest = _mm512_setzero_si512();
    if (r < m) {
      for (int64_t kk = 0; kk < k; kk += 16) {
        largest = MaxMagnitudeBits(largest, _mm512_maskz_loadu_ps(FirstLanes(k - kk), row + kk));
      }
    }
    const Scale scale = ScaleFor(_mm512_set1_epi32(_mm512_reduce_max_epi32(largest)));
    units[r] = _mm512_cvtss_f32(scale.unit);
    int8_t* out = digits + r * k_padded;
    for (int64_t kk = 0; kk < k_padded; kk += 16) {
      const __mmask16 mask = r < m ? FirstLanes(k - kk) : 0;
      const Digits d = Split(_mm512_maskz_loadu_ps(mask, row + kk), scale.scale);
      for (int p = 0; p < kDigits; ++p) {
        _mm_store_si128(reinterpret_cast<__m128i*>(out + p * digit_bytes + kk),
                        _mm512_cvtepi32_epi8(d.digit[p]));
      }
    }
  }
  return {digits, units, k_padded};
}

struct TileConfig {
  uint8_t palette;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t bytes_per_row[16];
  uint8_t rows[16];
};

// Result tiles 0-2: the first column tile's sums of digit products of weight 2^16, 2^8 and 1
// (d0 e0; d0 e1 + d1 e0; d0 e2 + d1 e1 + d2 e0); 3-5: the second column tile's. The left
// factor's digit in tile 6, the right factor's in tile 7, ordered so that each load feeds the
// next product.
//
// Result tiles += one 64-row chunk of the product: the left factor's three digits at a_chunk
// (rows a_stride bytes apart, digits digit_bytes apart) by `group` (1 or 2) column tiles of B at
// b_chunk (a group's tiles, consecutive).
ZOO_AMX_TARGET inline void AddChunk(const int8_t* a_chunk, int64_t a_stride, int64_t digit_bytes,
                                    const int8_t* b_chunk, int64_t group) {
  const int8_t* e0 = b_chunk;  // digits of the first column tile, kTileBytes apart
  const int8_t* f0 = b_chunk + SplitMatrix::kChunkBytes;  // of the second
  const bool pair = group > 1;
  _tile_loadd(6, a_chunk, a_stride);  // d0
  _tile_loadd(7, e0, 64);
  _tile_dpbssd(0, 6, 7);
  _tile_loadd(7, e0 + kTileBytes, 64);
  _tile_dpbssd(1, 6, 7);
  _tile_loadd(7, e0 + 2 * kTileBytes, 64);
  _tile_dpbssd(2, 6, 7);
  if (pair) {
    _tile_loadd(7, f0 + 2 * kTileBytes, 64);
    _tile_dpbssd(5, 6, 7);
    _tile_loadd(7, f0 + kTileBytes, 64);
    _tile_dpbssd(4, 6, 7);
    _tile_loadd(7, f0, 64);
    _tile_dpbssd(3, 6, 7);
  }
  _tile_loadd(6, a_chunk + digit_bytes, a_stride);  // d1
  if (pair) {
    _tile_dpbssd(4, 6, 7);
    _tile_loadd(7, f0 + kTileBytes, 64);
    _tile_dpbssd(5, 6, 7);
  }
  _tile_loadd(7, e0 + kTileBytes, 64);
  _tile_dpbssd(2, 6, 7);
  _tile_loadd(7, e0, 64);
  _tile_dpbssd(1, 6, 7);
  _tile_loadd(6, a_chunk + 2 * digit_bytes, a_stride);  // d2
  _tile_dpbssd(2, 6, 7);
  if (pair) {
    _tile_loadd(7, f0, 64);
    _tile_dpbssd(5, 6, 7);
  }
}

ZOO_AMX_TARGET void ConfigureTiles() {
  TileConfig config = {};
  config.palette = 1;
  for (int t = 0; t < 8; ++t) {
    config.rows[t] = kTileRows;
    config.bytes_per_row[t] = 64;
  }
  _tile_loadconfig(&config);
}

// Columns of the float block that a column-tile group's products are scaled into.
constexpr int64_t kBlockColumns = SplitMatrix::kGroupTiles * kTileColumns;

// 16 int32 sums as floats.
ZOO_AMX_TARGET inline __m512 RowAsFloats(const int32_t* sums) {
  return _mm512_cvtepi32_ps(_mm512_load_si512(sums));
}

// block (16 rows of kBlockColumns floats) += the result tiles' sums of one product, scaled
// back: row r, column j gets (s0 2^16 + s1 2^8 + s2) row_units[r] column_units[j] 2^16, for
// `group` column tiles.
ZOO_AMX_TARGET void AddScaledSums(int64_t group, const float* row_units, const float* column_units,
                                  float* block) {
  alignas(64) int32_t sums[kDigits * SplitMatrix::kGroupTiles][kTileRows * kTileColumns];
  _tile_stored(0, sums[0], 64);
  _tile_stored(1, sums[1], 64);
  _tile_stored(2, sums[2], 64);
  if (group > 1) {
    _tile_stored(3, sums[3], 64);
    _tile_stored(4, sums[4], 64);
    _tile_stored(5, sums[5], 64);
  }
  for (int64_t g = 0; g < group; ++g) {
    const __m512 columns = _mm512_loadu_ps(column_units + g * kTileColumns);
    for (int r = 0; r < kTileRows; ++r) {
      const __m512 value = _mm512_fmadd_ps(
          RowAsFloats(sums[kDigits * g] + r * kTileColumns), _mm512_set1_ps(65536.0f),
          _mm512_fmadd_ps(RowAsFloats(sums[kDigits * g + 1] + r * kTileColumns),
                          _mm512_set1_ps(256.0f),
                          RowAsFloats(sums[kDigits * g + 2] + r * kTileColumns)));
      float* out = block + r * kBlockColumns + g * kTileColumns;
      _mm512_store_ps(out, _mm512_add_ps(_mm512_load_ps(out),
                                         _mm512_mul_ps(_mm512_mul_ps(value, columns),
                                                       _mm512_set1_ps(row_units[r] * 65536.0f))));
    }
  }
}

// block += rows [r, r + 16) of a left factor by the column-tile group of B that starts at
// first_tile (`group` tiles): the left factor's digits at a_rows (rows a_stride bytes apart,
// digits digit_bytes apart) and row_units its rows' units.
ZOO_AMX_TARGET void AddRowTileProduct(const int8_t* a_rows, int64_t a_stride, int64_t digit_bytes,
                                      const float* row_units, const SplitMatrix& b,
                                      int64_t first_tile, int64_t group, float* block) {
  for (int64_t first = 0; first < b.Chunks(); first += kMaxChunksPerSum) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_zero(4);
    _tile_zero(5);
    const int64_t end = std::min(b.Chunks(), first + kMaxChunksPerSum);
    for (int64_t chunk = first; chunk < end; ++chunk) {
      AddChunk(a_rows + chunk * kChunk, a_stride, digit_bytes, b.Tiles(first_tile, chunk), group);
    }
    AddScaledSums(group, row_units, b.ColumnUnits() + first_tile * kTileColumns, block);
  }
}

// Rows [0, rows) of c (row stride ldc, n columns) at the columns of the group that starts at
// first_tile = block (+= with `accumulate`).
ZOO_AMX_TARGET void StoreBlock(const float* block, int64_t rows, int64_t group, int64_t first_tile,
                               int64_t n, float* c, int64_t ldc, bool accumulate) {
  for (int64_t g = 0; g < group; ++g) {
    const int64_t first_column = (first_tile + g) * kTileColumns;
    const __mmask16 mask = FirstLanes(n - first_column);
    for (int64_t r = 0; r < rows; ++r) {
      float* out = c + r * ldc + first_column;
      __m512 value = _mm512_load_ps(block + r * kBlockColumns + g * kTileColumns);
      if (accumulate) value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(mask, out));
      _mm512_mask_storeu_ps(out, mask, value);
    }
  }
}

// c = sum over sources of split[s] * sources[s].b (c += with `accumulate`).
ZOO_AMX_TARGET void MultiplyTiles(const Source* sources, int count, const SplitRows* split,
                                  int64_t rows_padded, int64_t m, float* c, int64_t ldc,
                                  bool accumulate) {
  ConfigureTiles();
  const int64_t n = sources[0].b->n();
  const int64_t column_tiles = sources[0].b->ColumnTiles();
  alignas(64) float block[kTileRows * kBlockColumns];
  for (int64_t first_row = 0; first_row < m; first_row += kTileRows) {
    for (int64_t first_tile = 0; first_tile < column_tiles;
         first_tile += SplitMatrix::kGroupTiles) {
      const int64_t group = std::min(SplitMatrix::kGroupTiles, column_tiles - first_tile);
      std::fill_n(block, kTileRows * kBlockColumns, 0.0f);
      for (int s = 0; s < count; ++s) {
        const SplitRows& a = split[s];
        AddRowTileProduct(a.digits + first_row * a.k_padded, a.k_padded, a.DigitBytes(rows_padded),
                          a.units + first_row, *sources[s].b, first_tile, group, block);
      }
      StoreBlock(block, std::min<int64_t>(kTileRows, m - first_row), group, first_tile, n,
                 c + first_row * ldc, ldc, accumulate);
    }
  }
  _tile_release();
}

}  // namespace

bool Enabled() {
  static const bool supported = Supported();
  const char* setting = std::getenv("ZOO_AMX");
  return supported && !(setting != nullptr && std::strcmp(setting, "0") == 0);
}

SplitMatrix::SplitMatrix(const float* b, int64_t ldb, int64_t k, int64_t n, bool transpose)
    : b_(b),
      ldb_(ldb),
      transpose_(transpose),
      k_(k),
      n_(n),
      chunks_((k + kChunk - 1) / kChunk),
      column_tiles_((n + kTileColumns - 1) / kTileColumns) {
  const size_t bytes =
      static_cast<size_t>(std::max<int64_t>(1, column_tiles_ * chunks_)) * kChunkBytes;
  data_ = static_cast<int8_t*>(std::aligned_alloc(64, bytes));
  units_ = static_cast<float*>(
      std::aligned_alloc(64, RoundUp(std::max<int64_t>(1, column_tiles_) * kTileColumns * 4, 64)));
}

void SplitMatrix::SplitGroups(int64_t first, int64_t end) const {
  SplitColumns(b_, ldb_, transpose_, *this, first * kGroupTiles,
               std::min(column_tiles_, end * kGroupTiles), data_, units_);
}

void Multiply(const Source* sources, int count, int64_t m, float* c, int64_t ldc, bool accumulate) {
  if (m <= 0) return;
  constexpr int kMaxSources = 2;
  const int64_t rows_padded = RoundUp(m, kTileRows);
  int64_t k_padded[kMaxSources];
  size_t bytes = 0;
  for (int s = 0; s < count; ++s) {
    k_padded[s] = sources[s].b->Chunks() * kChunk;
    bytes += SplitRows::Bytes(rows_padded, k_padded[s]);
  }
  char* buffer = SplitBuffer(bytes);
  SplitRows split[kMaxSources];
  for (int s = 0; s < count; ++s) {
    split[s] =
        Split(sources[s].a, sources[s].lda, m, sources[s].b->k(), rows_padded, k_padded[s], buffer);
    buffer += SplitRows::Bytes(rows_padded, k_padded[s]);
  }
  MultiplyTiles(sources, count, split, rows_padded, m, c, ldc, accumulate);
}

void MultiplyEach(const float* a, int64_t lda, int64_t m, const Product* products, int count) {
  if (m <= 0 || count == 0) return;
  const int64_t rows_padded = RoundUp(m, kTileRows);
  const int64_t k_padded = products[0].b->Chunks() * kChunk;
  const SplitRows split = Split(a, lda, m, products[0].b->k(), rows_padded, k_padded,
                                SplitBuffer(SplitRows::Bytes(rows_padded, k_padded)));
  for (int j = 0; j < count; ++j) {
    const Source source{a, lda, products[j].b};
    MultiplyTiles(&source, 1, &split, rows_padded, m, products[j].c, products[j].ldc,
                  products[j].accumulate);
  }
}

#endif  // defined(__x86_64__)

}  // namespace amx
}  // namespace rnn
}  // namespace zoo

// For Python (ops._library.amx_tiles_enabled, through ctypes): whether the kernels run their
// products on AMX tiles now.
extern "C" __attribute__((visibility("default"))) bool ZooAmxTilesEnabled() {
  return zoo::rnn::amx::Enabled();
}
