#include "amx_products.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace zoo {
namespace rnn {
namespace amx {

SplitMatrix::~SplitMatrix() { std::free(data_); }

#if !defined(__x86_64__)

bool Enabled() { return false; }

#else

namespace {

#define ZOO_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw")))

constexpr int kTileRows = 16;        // rows of a left-factor tile and of a result tile
constexpr int kChunk = 32;           // k of one tile product (16 pairs of bfloat16)
constexpr int kTileColumns = 16;     // float32 columns of a result tile
constexpr int kTileValues = 512;     // bfloat16 values of a factor tile
constexpr int kTerms = 3;
static_assert(SplitMatrix::kChunkValues == kTerms * kTileValues, "a chunk holds three tiles");

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
  const bool tiles = (edx >> 24 & 1) && (edx >> 22 & 1);   // AMX-TILE, AMX-BF16
  if (!avx512 || !tiles) return false;
  // Linux keeps tile data off until a process asks for it (ARCH_REQ_XCOMP_PERM, XTILEDATA).
  constexpr int kRequestPermission = 0x1023, kTileData = 18;
  return syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
}

// The three bfloat16 terms of 16 floats, each as the high half of 32-bit lanes: rounded to
// nearest even, then the remainder (exact in float32) rounded again.
struct Terms {
  __m512i term[kTerms];
};

ZOO_AMX_TARGET inline Terms Split(__m512 x) {
  Terms terms;
  for (int p = 0; p < kTerms; ++p) {
    const __m512i bits = _mm512_castps_si512(x);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_and_si512(
        _mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))),
        _mm512_set1_epi32(static_cast<int>(0xffff0000u)));
    terms.term[p] = rounded;
    x = _mm512_sub_ps(x, _mm512_castsi512_ps(rounded));
  }
  return terms;
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
// into `data` (its buffer).
ZOO_AMX_TARGET void SplitColumns(const float* b, int64_t ldb, bool transpose,
                                 const SplitMatrix& layout, int64_t first_tile, int64_t end_tile,
                                 uint16_t* data) {
  const int64_t k = layout.k(), n = layout.n();
  for (int64_t tile = first_tile; tile < end_tile; ++tile) {
    for (int64_t chunk = 0; chunk < layout.Chunks(); ++chunk) {
      uint16_t* tiles = data + layout.TileOffset(tile, chunk);
      for (int pair = 0; pair < kChunk / 2; ++pair) {
        const int64_t kk = chunk * kChunk + 2 * pair;
        // Rows kk and kk + 1 interleave: each 32-bit lane holds column j of both.
        const Terms even = Split(LoadRow(b, ldb, k, n, transpose, kk, tile * kTileColumns));
        const Terms odd = Split(LoadRow(b, ldb, k, n, transpose, kk + 1, tile * kTileColumns));
        for (int p = 0; p < kTerms; ++p) {
          const __m512i pairs = _mm512_or_si512(_mm512_srli_epi32(even.term[p], 16),
                                                odd.term[p]);
          _mm512_store_si512(tiles + p * kTileValues + pair * 32, pairs);
        }
      }
    }
  }
}

// 64-byte aligned scratch that only grows.
class Scratch {
 public:
  ~Scratch() { std::free(data_); }
  uint16_t* Get(size_t values) {
    if (values > size_) {
      std::free(data_);
      size_ = values;
      data_ = static_cast<uint16_t*>(std::aligned_alloc(64, RoundUp(values * 2, 64)));
    }
    return data_;
  }

 private:
  uint16_t* data_ = nullptr;
  size_t size_ = 0;
};

// The calling thread's buffer for split left factors, `values` long at least.
uint16_t* SplitBuffer(size_t values) {
  thread_local Scratch scratch;
  return scratch.Get(values);
}

// a [m, k] into rows_padded x k_padded values per term, term-major, zero-padded.
ZOO_AMX_TARGET void SplitRows(const float* a, int64_t lda, int64_t m, int64_t k,
                              int64_t rows_padded, int64_t k_padded, uint16_t* out) {
  const int64_t term_values = rows_padded * k_padded;
  for (int64_t r = 0; r < rows_padded; ++r) {
    uint16_t* row = out + r * k_padded;
    for (int64_t kk = 0; kk < k_padded; kk += 16) {
      const __mmask16 mask = r < m ? FirstLanes(k - kk) : 0;
      const Terms terms = Split(_mm512_maskz_loadu_ps(mask, a + r * lda + kk));
      for (int p = 0; p < kTerms; ++p) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(row + p * term_values + kk),
                           _mm512_cvtepi32_epi16(_mm512_srli_epi32(terms.term[p], 16)));
      }
    }
  }
}

struct TileConfig {
  uint8_t palette;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t bytes_per_row[16];
  uint8_t rows[16];
};

// Result tiles 0-3 (four column tiles), left-factor term in tile 4, right-factor terms in 5-7.
// The six term products, as (left term, right term).
constexpr int kLeftTerm[6] = {0, 1, 2, 0, 1, 0};
constexpr int kRightTerm[6] = {0, 0, 0, 1, 1, 2};

// Result tiles 0 to group - 1 += one 32-row chunk of the product: the left factor's three terms
// at a_chunk (rows a_stride bytes apart, terms term_values apart) by `group` column tiles of B
// at b_chunk (a group's tiles, consecutive).
ZOO_AMX_TARGET inline void AddChunk(const uint16_t* a_chunk, int64_t a_stride,
                                    int64_t term_values, const uint16_t* b_chunk, int64_t group) {
  constexpr int64_t kTileStride = SplitMatrix::kChunkValues;
  for (int q = 0; q < 6; ++q) {
    _tile_loadd(4, a_chunk + kLeftTerm[q] * term_values, a_stride);
    const uint16_t* right = b_chunk + kRightTerm[q] * kTileValues;
    _tile_loadd(5, right, 64);
    _tile_dpbf16ps(0, 4, 5);
    if (group > 1) {
      _tile_loadd(6, right + kTileStride, 64);
      _tile_dpbf16ps(1, 4, 6);
    }
    if (group > 2) {
      _tile_loadd(7, right + 2 * kTileStride, 64);
      _tile_dpbf16ps(2, 4, 7);
    }
    if (group > 3) {
      _tile_loadd(5, right + 3 * kTileStride, 64);
      _tile_dpbf16ps(3, 4, 5);
    }
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

ZOO_AMX_TARGET void MultiplyTiles(const Source* sources, int count, const uint16_t* const* split,
                                  const int64_t* k_padded, int64_t rows_padded, int64_t m,
                                  float* c, int64_t ldc, bool accumulate) {
  ConfigureTiles();
  const int64_t n = sources[0].b->n();
  const int64_t column_tiles = sources[0].b->ColumnTiles();
  alignas(64) float result[kTileRows * kTileColumns];
  for (int64_t first_row = 0; first_row < m; first_row += kTileRows) {
    const int64_t rows = std::min<int64_t>(kTileRows, m - first_row);
    for (int64_t first_tile = 0; first_tile < column_tiles;
         first_tile += SplitMatrix::kGroupTiles) {
      const int64_t group = std::min(SplitMatrix::kGroupTiles, column_tiles - first_tile);
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int s = 0; s < count; ++s) {
        const SplitMatrix& b = *sources[s].b;
        const int64_t a_stride = k_padded[s] * 2;
        const int64_t term_values = rows_padded * k_padded[s];
        const uint16_t* a_rows = split[s] + first_row * k_padded[s];
        for (int64_t chunk = 0; chunk < b.Chunks(); ++chunk) {
          const uint16_t* a_chunk = a_rows + chunk * kChunk;
          const uint16_t* b_chunk = b.Tiles(first_tile, chunk);
          AddChunk(a_chunk, a_stride, term_values, b_chunk, group);
        }
      }
      for (int64_t g = 0; g < group; ++g) {
        switch (g) {
          case 0: _tile_stored(0, result, 64); break;
          case 1: _tile_stored(1, result, 64); break;
          case 2: _tile_stored(2, result, 64); break;
          default: _tile_stored(3, result, 64); break;
        }
        const int64_t first_column = (first_tile + g) * kTileColumns;
        const __mmask16 mask = FirstLanes(n - first_column);
        for (int64_t r = 0; r < rows; ++r) {
          float* out = c + (first_row + r) * ldc + first_column;
          __m512 value = _mm512_load_ps(result + r * kTileColumns);
          if (accumulate) value = _mm512_add_ps(value, _mm512_maskz_loadu_ps(mask, out));
          _mm512_mask_storeu_ps(out, mask, value);
        }
      }
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
    : b_(b), ldb_(ldb), transpose_(transpose), k_(k), n_(n), chunks_((k + kChunk - 1) / kChunk),
      column_tiles_((n + kTileColumns - 1) / kTileColumns) {
  const size_t values =
      static_cast<size_t>(std::max<int64_t>(1, column_tiles_ * chunks_)) * kChunkValues;
  data_ = static_cast<uint16_t*>(std::aligned_alloc(64, values * 2));
}

void SplitMatrix::SplitGroups(int64_t first, int64_t end) const {
  SplitColumns(b_, ldb_, transpose_, *this, first * kGroupTiles,
               std::min(column_tiles_, end * kGroupTiles), data_);
}

void Multiply(const Source* sources, int count, int64_t m, float* c, int64_t ldc, bool accumulate) {
  if (m <= 0) return;
  constexpr int kMaxSources = 2;
  const int64_t rows_padded = RoundUp(m, kTileRows);
  int64_t k_padded[kMaxSources];
  size_t values = 0;
  for (int s = 0; s < count; ++s) {
    k_padded[s] = sources[s].b->Chunks() * kChunk;
    values += kTerms * rows_padded * k_padded[s];
  }
  uint16_t* buffer = SplitBuffer(values);
  const uint16_t* split[kMaxSources];
  for (int s = 0; s < count; ++s) {
    SplitRows(sources[s].a, sources[s].lda, m, sources[s].b->k(), rows_padded, k_padded[s],
              buffer);
    split[s] = buffer;
    buffer += kTerms * rows_padded * k_padded[s];
  }
  MultiplyTiles(sources, count, split, k_padded, rows_padded, m, c, ldc, accumulate);
}

void MultiplyEach(const float* a, int64_t lda, int64_t m, const Product* products, int count) {
  if (m <= 0 || count == 0) return;
  const int64_t rows_padded = RoundUp(m, kTileRows);
  const int64_t k_padded = products[0].b->Chunks() * kChunk;
  uint16_t* split = SplitBuffer(kTerms * rows_padded * k_padded);
  SplitRows(a, lda, m, products[0].b->k(), rows_padded, k_padded, split);
  for (int j = 0; j < count; ++j) {
    const Source source{a, lda, products[j].b};
    const uint16_t* const splits[1] = {split};
    MultiplyTiles(&source, 1, splits, &k_padded, rows_padded, m, products[j].c, products[j].ldc,
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
