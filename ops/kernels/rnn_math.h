// Shared building blocks of the fused recurrent kernels, in plain C++ over raw row-major buffers:
// the packed-weight products of one step, batch sharding and the split of a step's units over a
// thread pool, the step layout of sequence tensors, column sums and padding masks. No TensorFlow
// types.
#ifndef ZOO_OPS_KERNELS_RNN_MATH_H_
#define ZOO_OPS_KERNELS_RNN_MATH_H_

#define EIGEN_USE_THREADS

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "Eigen/Core"
#include "amx_products.h"
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

// The threads a kernel shares its work with. Work goes to the executor's runner (TensorFlow's
// inter-op pool) where the op has one, else to the device's intra-op pool. On this machine's two
// virtual cores an inter-op thread that has just run an op keeps spinning on one core for a
// while, and an intra-op pool thread handed work meanwhile started 25 us to 2.4 ms late
// (TensorFlow's profiler, the forward op of an LSTM training step at B=32); the spinning thread
// takes work handed to the runner at once (that training step, alternated: 9.8 -> 8.4 ms). Every
// inter-op thread may be running such a kernel, so nothing may wait for scheduled work that has
// not started: ForEachBatchShard and ForEachStepInParts let their parts be claimed, and the
// calling thread does all of them when no other thread comes.
class Workers {
 public:
  using Runner = std::function<void(std::function<void()>)>;

  Workers(const Eigen::ThreadPoolDevice& device, Runner* runner)
      : device_(device), runner_(runner) {}

  const Eigen::ThreadPoolDevice& device() const { return device_; }
  int NumThreads() const { return device_.numThreads(); }

  void Schedule(std::function<void()> task) const {
    if (runner_ == nullptr) {
      device_.enqueueNoNotification(std::move(task));
      return;
    }
    // Eager execution's runner runs a closure at once on the calling thread, which would do the
    // whole task before sharing any of it: such a task goes to the intra-op pool instead.
    struct Handoff {
      std::function<void()> task;
      const Eigen::ThreadPoolDevice* device;
      std::thread::id caller;
      std::atomic<bool> in_call{true};
    };
    const auto handoff = std::make_shared<Handoff>();
    handoff->task = std::move(task);
    handoff->device = &device_;
    handoff->caller = std::this_thread::get_id();
    (*runner_)([handoff] {
      if (handoff->in_call.load(std::memory_order_acquire) &&
          std::this_thread::get_id() == handoff->caller) {
        handoff->device->enqueueNoNotification(std::move(handoff->task));
        return;
      }
      handoff->task();
    });
    handoff->in_call.store(false, std::memory_order_release);
  }

 private:
  const Eigen::ThreadPoolDevice& device_;
  Runner* const runner_;
};

// Where the loops find the rows of one step in a batch-major [batch, time, width] tensor (the
// outputs, their gradients): in place, `time * width` apart. (A time-major copy, in which a step
// of a shard is one contiguous block, cost more than the strided rows on the Intel Xeon at every
// width: the LSTM's forward and gradient ops at B=1024, T=32 took 14.3-15.0 ms in place against
// 15.3-16.5 through the copies at H=32, 7.0-8.1 against 8.2-8.6 at H=16, 34 against 36 at H=64;
// the GRU's 11.7-12.0 against 13.0-13.5 at H=32. On the AMD EPYC the copies had won below
// 512-byte rows.)
struct StepLayout {
  int64_t time, width;

  int64_t Offset(int64_t step, int64_t row) const { return (row * time + step) * width; }
  int64_t RowStride() const { return time * width; }
  // From a row at one step to the same row at the next step.
  int64_t StepStride() const { return width; }
};

// The output of one row at a padded step, columns [first, first + count) of `output_row` (that
// row's output at this step): zero at the first step or with zero_output_for_mask, else the same
// row's output one step earlier (Keras's masking).
template <typename T>
void PadOutputRow(T* output_row, int64_t first, int64_t count, int64_t step,
                  bool zero_output_for_mask, const StepLayout& layout) {
  if (zero_output_for_mask || step == 0) {
    std::fill_n(output_row + first, count, T(0));
  } else {
    std::copy_n(output_row + first - layout.StepStride(), count, output_row + first);
  }
}

// Whole packets of float lanes (16 with AVX-512) through Eigen's packet functions, for the cell
// passes that go over each row once (FusedLstmCellStep and the like): their units must be whole
// packets. The activations are the ones Eigen's array expressions use.
namespace packets {
using Eigen::internal::padd;
using Eigen::internal::pmul;
using Eigen::internal::psub;
using Float = Eigen::internal::packet_traits<float>::type;
inline constexpr int64_t kLanes = Eigen::internal::unpacket_traits<Float>::size;
inline Float Load(const float* from) { return Eigen::internal::ploadu<Float>(from); }
inline void Store(float* to, const Float& x) { Eigen::internal::pstoreu(to, x); }
inline Float Splat(float x) { return Eigen::internal::pset1<Float>(x); }
inline Float Sigmoid(const Float& x) {
  return Eigen::internal::scalar_logistic_op<float>().packetOp(x);
}
inline Float Tanh(const Float& x) { return Eigen::internal::ptanh(x); }
}  // namespace packets

// Index of the time step processed at step `step` of a sequence of `time` steps.
inline int64_t TimeIndex(int64_t step, int64_t time, bool reverse) {
  return reverse ? time - 1 - step : step;
}

// Runs `shard(first_row, end_row)` over contiguous blocks of the batch on `workers`. Examples are
// independent through the whole recurrence, so each block runs its full time loop with no
// synchronisation between steps. Blocks are claimed: the calling thread takes every block that no
// other thread has started.
inline int64_t BatchShards(const Workers& workers, int64_t batch, int64_t work_per_example) {
  // Below ~100k multiply-adds per example the hand-off costs more than it saves.
  constexpr int64_t kMinWorkPerShard = 100000;
  const int64_t shards = std::min<int64_t>(workers.NumThreads(), batch);
  return std::min<int64_t>(shards,
                           std::max<int64_t>(1, batch * work_per_example / kMinWorkPerShard));
}

// The most rows a block of ForEachBatchShard gets.
inline int64_t BatchShardRows(const Workers& workers, int64_t batch, int64_t work_per_example) {
  const int64_t shards = std::max<int64_t>(1, BatchShards(workers, batch, work_per_example));
  return (batch + shards - 1) / shards;
}

// Work that every block of a ForEachBatchShard needs done before it starts, in `parts`
// independent pieces that the threads share (the weights split for AMX tiles,
// PackedMatrix::Prepare).
struct SharedSetup {
  int parts;
  std::function<void(int)> run;
};

// The setup of a batch split whose products read `matrices` (PackedMatrix, TransposedWeights):
// their Prepare, in pieces enough for a thread that starts late to still find some.
template <typename... Matrices>
SharedSetup PrepareAll(const Matrices&... matrices) {
  constexpr int kParts = 8;
  return {kParts, [&matrices...](int part) { (matrices.Prepare(part, kParts), ...); }};
}

inline void ForEachBatchShard(const Workers& workers, int64_t batch, int64_t work_per_example,
                              const std::function<void(int64_t, int64_t)>& shard,
                              const SharedSetup& setup = {0, nullptr}) {
  const int64_t shards = BatchShards(workers, batch, work_per_example);
  if (shards <= 1) {
    for (int part = 0; part < setup.parts; ++part) setup.run(part);
    if (batch > 0) shard(0, batch);
    return;
  }
  // Shared with pool threads that may start after this call has returned; they read `shard` and
  // `setup` only after claiming a piece of work, which cannot happen once every piece is claimed.
  // The setup's pieces are claimed first, and the blocks start once all of them are done: the
  // thread woken for the other blocks helps with the setup instead of starting after it.
  struct Claims {
    Claims(int64_t batch, int64_t shards, const std::function<void(int64_t, int64_t)>* shard,
           const SharedSetup* setup)
        : batch(batch), shards(shards), rows_per_shard((batch + shards - 1) / shards),
          shard(shard), setup(setup), setup_parts(setup->parts) {}
    const int64_t batch, shards, rows_per_shard;
    const std::function<void(int64_t, int64_t)>* const shard;
    const SharedSetup* const setup;
    const int setup_parts;
    std::atomic<int64_t> next{0}, done{0};
    std::atomic<int> next_setup{0}, setup_done{0};

    void Run() {
      for (int part = next_setup.fetch_add(1); part < setup_parts;
           part = next_setup.fetch_add(1)) {
        setup->run(part);
        setup_done.fetch_add(1, std::memory_order_acq_rel);
      }
      // The pieces still running are another thread's (microseconds).
      for (int spins = 0; setup_done.load(std::memory_order_acquire) < setup_parts; ++spins) {
        if (spins > 1000) std::this_thread::yield();
      }
      for (int64_t s = next.fetch_add(1); s < shards; s = next.fetch_add(1)) {
        const int64_t first = s * rows_per_shard;
        const int64_t end = std::min(batch, first + rows_per_shard);
        if (first < end) (*shard)(first, end);
        done.fetch_add(1, std::memory_order_acq_rel);
      }
    }
  };
  const auto claims = std::make_shared<Claims>(batch, shards, &shard, &setup);
  for (int64_t s = 1; s < shards; ++s) workers.Schedule([claims] { claims->Run(); });
  claims->Run();
  // The blocks still running are another thread's: wait for them (milliseconds at most).
  for (int spins = 0; claims->done.load(std::memory_order_acquire) < shards; ++spins) {
    if (spins > 1000) std::this_thread::yield();
  }
}

// x in every lane of a vector. Written x - 0, which is x for every x (-0 too), so the compiler
// broadcasts straight from memory, a load; as 0 + x, which is not x for x = -0, it added and then
// broadcast from a register, on the port that AVX-512 multiply-adds share (the products' rate:
// 137 -> 180 GFLOP/s at [16, 256] x [256, 1024], one core; TransposedProduct 137 -> 170).
template <typename Vector, typename T>
inline Vector Splat(T x) {
  return x - Vector{};
}

// The right-hand matrix B of the products repeated at every time step (h * U, d * U^T), copied
// once per op call into panels of columns, each panel stored k-major and zero-padded, so that
// every step reads it sequentially. Eigen's GEMM would repack B (a megabyte for 256 units) on
// each of those small products. Single-threaded products: they run inside a batch shard.
template <typename T>
class PackedMatrix {
 public:
  // How B is laid out for the products: packed into panels at construction (kNow); read where it
  // lies if it can be (kInPlace, for the products of a split by units, see the constructor); or,
  // with kAmxTiles (float only), B is split into int8 digits for AMX tiles (amx_products.h)
  // instead of packed into panels, for Multiply and MultiplySum of whole rows, by Prepare calls
  // that must cover every part before the first product: the threads of a batch split share
  // them (ForEachBatchShard's setup, PrepareAll). On one thread the LSTM's W and U at H=256
  // took 150 us before its forward at B=32 could start; shared, the op took 3-4% less (2.80-2.89
  // against 2.90-3.27 ms, alternated processes).
  enum class Packing { kNow, kInPlace, kAmxTiles };

  // kAmxTiles where amx::Enabled(), for float products of at least 16 rows (a tile's height) by
  // weights of at least 32K values (a layer's W and U together), else kNow. At [16, 256] x
  // [256, 1024] AMX took 35 us against the panels' 55; with 8 rows, most of each tile product is
  // padding, and it was no faster; at 32 units (weights of 8K values) each product was too short to
  // pay for the tile set-up, and an LSTM's op gradient at B=1024 took 4% longer.
  static Packing PackingFor(int64_t rows, int64_t weight_values) {
    constexpr int64_t kMinAmxRows = 16, kMinAmxWeightValues = 32 * 1024;
    return std::is_same<T, float>::value && rows >= kMinAmxRows &&
                   weight_values >= kMinAmxWeightValues && amx::Enabled()
               ? Packing::kAmxTiles
               : Packing::kNow;
  }

  // B = b, a [k, n] matrix with row stride ldb, or with `transpose` B = b^T for b [n, k]; b must
  // outlive this object. With kNow the panels are packed here, on this thread (packing on both
  // threads was no faster in a training step: the hand-off cost what it saved). With kInPlace
  // the products read B's rows where they lie when they can serve as the panels' rows
  // (ReadableInPlace; else B is packed now). A split by units reads its weights once a step, so
  // a copy costs about a step's reading of them: with no copy, the forward ops at H=256, T=35 on
  // the Intel Xeon (op alone, alternated processes) took GRU B=1 0.54-0.55 against 0.59-0.61 ms
  // with each part packing its own panels at its first step, B=4 0.77 against 0.85; LSTM B=1
  // 0.62 against 0.70, B=4 0.89 against 0.95; SimpleRNN B=1 0.35 against 0.37, B=4 0.48 against
  // 0.49. (On the AMD EPYC, with an earlier loop, the LSTM's weights read in place at B=1 had
  // been slower, 0.34 against 0.19 ms: rows 4 KB apart collided in its caches. Not measured there
  // since.) A batch split reads each panel row for several rows of the batch and packs B.
  PackedMatrix(const T* b, int64_t ldb, int64_t k, int64_t n, bool transpose,
               Packing packing = Packing::kNow)
      : b_(b), ldb_(ldb), transpose_(transpose), k_(k), n_(n),
        panel_vectors_(PanelVectors(n)), panel_(panel_vectors_ * kLanes),
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
  void MultiplySumPanels(const T* a, int64_t lda, const PackedMatrix& b2, const T* a2,
                         int64_t lda2, int64_t m, T* c, int64_t ldc, int64_t first_panel,
                         int64_t end_panel) const {
    Run(a, lda, &b2, a2, lda2, m, c, ldc, false, first_panel, end_panel);
  }

  // Columns per panel of a B with n columns: column ranges that start and end on a multiple of
  // it can be computed apart (MultiplySumPanels).
  static int64_t PanelColumns(int64_t n) { return PanelVectors(n) * kLanes; }

 private:
  typedef T Vector __attribute__((vector_size(64)));
  static constexpr int kLanes = 64 / sizeof(T);

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
    // in L1 (a plain column walk of a 1 MB matrix took longer than a whole time step).
    constexpr int64_t kTile = 16;
    for (int64_t first = 0; first < k_; first += kTile) {
      const int64_t end = std::min(k_, first + kTile);
      for (int64_t j = 0; j < cols; ++j) {
        const T* source = b_ + (p * panel_ + j) * ldb_;
        for (int64_t kk = first; kk < end; ++kk) panel[kk * panel_ + j] = source[kk];
      }
    }
  }

  // Panels of 4 vectors, or of 2 where that pads fewer columns (n = 32 or 96 floats).
  static int PanelVectors(int64_t n) {
    const auto padding = [n](int64_t panel) { return (n + panel - 1) / panel * panel - n; };
    return padding(4 * kLanes) <= padding(2 * kLanes) ? 4 : 2;
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
    if (panel_vectors_ == 4) {
      Run<4, 6>(a, lda, b2, a2, lda2, m, c, ldc, accumulate, first_panel, end_panel);
    } else {
      Run<2, 8>(a, lda, b2, a2, lda2, m, c, ldc, accumulate, first_panel, end_panel);
    }
  }

  // kRows rows x kVectors vectors of accumulators in the 32 vector registers of AVX-512, with a
  // panel row; the remaining rows go in blocks of 8, 4, 2, 1. Two-vector panels take 8 rows: with
  // 12 (24 accumulators, like 6 rows of 4 vectors) they ran at 75 GFLOP/s against 166 at
  // [48, 96] x [96, 32], one core.
  template <int kVectors, int kRows>
  void Run(const T* a, int64_t lda, const PackedMatrix* b2, const T* a2, int64_t lda2, int64_t m,
           T* c, int64_t ldc, bool accumulate, int64_t first_panel, int64_t end_panel) const {
    const Source second_none{nullptr, 0, nullptr, 0, 0};
    for (int64_t p = first_panel; p < end_panel; ++p) {
      // Panel-outer, so a panel stays in cache across the row blocks of a step.
      Source first{a, lda, PanelData(p), k_, RowStride()};
      Source second = b2 == nullptr ? second_none
                                    : Source{a2, lda2, b2->PanelData(p), b2->k_, b2->RowStride()};
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
  // (no padding to add), and every panel row 64-byte aligned, as the micro-kernel loads them.
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
// and the panels hold H + D columns (at H = D = 32, two products of 32 columns took 5.7 us for 32
// rows, one of 64 columns 3.4 us; an LSTM's gradient op at B=1024 9.5-10.1 -> 7.9-8.1 ms). AMX
// tiles already share d's split between the two (MultiplyBoth), and there the stacked product was
// slower (2.9-3.1 against 2.8-3.0 ms at B=32, H=256).
template <typename T>
class TransposedWeights {
 public:
  using Packing = typename PackedMatrix<T>::Packing;

  // recurrent_kernel [H, width] and kernel [D, width].
  TransposedWeights(const T* recurrent_kernel, int64_t units, const T* kernel, int64_t input,
                    int64_t width, Packing packing)
      : units_(units), input_(input) {
    if (packing == Packing::kAmxTiles) {
      recurrent_ = std::make_unique<PackedMatrix<T>>(recurrent_kernel, width, width, units, true,
                                                     packing);
      input_weights_ = std::make_unique<PackedMatrix<T>>(kernel, width, width, input, true,
                                                         packing);
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
    // Eigen's copies of the row blocks: copy_n called memmove twice per row, and the LSTM's
    // forward and gradient ops at B=1024, H=32 took 5% more CPU time (perf samples).
    StridedRows<T>(c, m, units_, Eigen::OuterStride<>(ldc)) =
        ConstStridedRows<T>(scratch, m, units_, both);
    StridedRows<T>(c2, m, input_, Eigen::OuterStride<>(ldc2)) =
        ConstStridedRows<T>(scratch + units_, m, input_, both);
  }

 private:
  const int64_t units_, input_;
  std::unique_ptr<PackedMatrix<T>> recurrent_, input_weights_;  // with AMX tiles
  RowMatrix<T> stacked_;                                         // [U; W], else
  std::unique_ptr<PackedMatrix<T>> both_;
};

// c += a^T b for a [rows, k] (row stride lda), b [rows, n] (row stride ldb) and c [k, n] (row
// stride ldc): a block of rows' share of a weight gradient, added while the block is in cache.
// Blocks of 6 rows of c by 4 vectors of columns (then 4, 2, 1 rows; 2, 1 vectors) stay in
// registers over all the rows.
template <typename T>
class TransposedProduct {
 public:
  static void Add(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t rows, int64_t k,
                  int64_t n, T* c, int64_t ldc) {
    int64_t column = 0;
    for (; column + 4 * kLanes <= n; column += 4 * kLanes) {
      Columns<4>(a, lda, b + column, ldb, rows, k, c + column, ldc);
    }
    if (column + 2 * kLanes <= n) {
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
  typedef T Vector __attribute__((vector_size(64)));
  static constexpr int kLanes = 64 / sizeof(T);

  // The rows of b and c are not vector-aligned. (Loaded straight into an array of vectors,
  // through memcpy, the sums went back to the stack at every row: 3.5x slower.)
  static Vector Load(const T* values) {
    Vector vector;
    std::memcpy(&vector, values, sizeof(vector));
    return vector;
  }

  template <int kVectors>
  static void Columns(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t rows, int64_t k,
                      T* c, int64_t ldc) {
    int64_t i = 0;
    for (; i + 6 <= k; i += 6) Block<6, kVectors>(a + i, lda, b, ldb, rows, c + i * ldc, ldc);
    const auto block = [&](auto rows_tag) {
      constexpr int kRows = decltype(rows_tag)::value;
      Block<kRows, kVectors>(a + i, lda, b, ldb, rows, c + i * ldc, ldc);
      i += kRows;
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

// Runs `task(step, part)` for every step in [0, steps) and part in [0, parts): the parts of a
// step at once on `workers`, each step after every part of the one before. For
// sequences split by units, the parts are ranges of units. Each thread does its own part of a
// step first, so that a part's weights stay in one core's cache, then any part still unclaimed:
// the calling thread goes on alone while a pool thread is slow to wake (on this machine's virtual
// cores 25 us to 0.6 ms, as long as a whole forward pass at batch 32) and the others join when
// they start. Returns when every task has run, without waiting for pool threads that have not
// started yet: those find every part claimed and leave. Waiting never deadlocks.
inline void ForEachStepInParts(const Workers& workers, int64_t steps, int parts,
                               const std::function<void(int64_t, int)>& task) {
  // Shared with pool threads that may start after this call has returned; they read `task`
  // only after claiming a part, which cannot happen once every part is claimed.
  struct Progress {
    Progress(int64_t steps, int parts, const std::function<void(int64_t, int)>* task)
        : steps(steps), parts(parts), task(task), next_step(parts) {
      for (auto& next : next_step) next.store(0, std::memory_order_relaxed);
    }
    const int64_t steps;
    const int parts;
    const std::function<void(int64_t, int)>* const task;
    // next_step[part]: the first step whose `part` nobody has claimed.
    std::vector<std::atomic<int64_t>> next_step;
    std::atomic<int64_t> finished{0};

    void Run(int own) {
      for (int64_t step = 0; step < steps; ++step) {
        for (int i = 0; i < parts; ++i) {
          const int part = (own + i) % parts;
          int64_t expected = step;
          if (!next_step[part].compare_exchange_strong(expected, step + 1,
                                                       std::memory_order_acq_rel)) {
            continue;
          }
          // Spin (a step takes microseconds), but give way if the thread being waited for is
          // descheduled.
          for (int spins = 0; finished.load(std::memory_order_acquire) < step * parts; ++spins) {
            if (spins > 1000) std::this_thread::yield();
          }
          (*task)(step, part);
          finished.fetch_add(1, std::memory_order_acq_rel);
        }
      }
    }
  };
  const auto progress = std::make_shared<Progress>(steps, parts, &task);
  const int helpers = std::min(workers.NumThreads(), parts) - 1;
  for (int own = 1; own <= helpers; ++own) {
    workers.Schedule([progress, own] { progress->Run(own); });
  }
  progress->Run(0);
  for (int spins = 0; progress->finished.load(std::memory_order_acquire) < steps * parts;
       ++spins) {
    if (spins > 1000) std::this_thread::yield();
  }
}

// Runs sequences with their units split into `parts` ranges (multiples of `unit_multiple`, whole
// panels of the weights, which then stay in one core's cache) that meet at every step
// (ForEachStepInParts): for one sequence, which has no examples to share out, and for small
// batches, where a thread that wakes late would hold up a batch split.
// `cell(t, valid, all_valid, first, count, h, h_next)` runs the cell at time index t for units
// [first, first + count) of every row: it reads all of the previous states h [batch, units] and
// writes those units of h_next, and zeroes what it keeps for the gradient in rows that are not
// `valid` at t. This function keeps the state each step started from (at h_prev + (t * batch +
// row) * h_prev_stride, unless h_prev is null), carries the state over padded steps, writes the
// outputs (processing order: h_next, or at a padded step the previous output, zero at the first
// step or with zero_output_for_mask) and final_h.
template <typename T, typename Cell>
void RunSequencesByUnits(const Workers& workers, int64_t batch, int64_t time,
                         int64_t units, int64_t unit_multiple, int parts, bool reverse,
                         bool zero_output_for_mask, const int32_t* lengths, const T* initial_h,
                         const StepLayout& layout, T* outputs, T* h_prev, int64_t h_prev_stride,
                         T* final_h, const Cell& cell) {
  // The states of the step being computed and of the next one, in turn: one part may still read
  // h while another writes h_next.
  std::vector<T> h_buffers(2 * batch * units);
  std::copy_n(initial_h, batch * units, h_buffers.data());
  std::vector<std::vector<char>> valid_by_part(parts, std::vector<char>(batch));
  const int64_t blocks = units / unit_multiple;
  ForEachStepInParts(workers, time, parts, [&](int64_t step, int part) {
    const int64_t first = part * blocks / parts * unit_multiple;
    const int64_t count = (part + 1) * blocks / parts * unit_multiple - first;
    const int64_t t = TimeIndex(step, time, reverse);
    const T* h = h_buffers.data() + step % 2 * batch * units;
    T* h_next = h_buffers.data() + (step + 1) % 2 * batch * units;
    std::vector<char>& valid = valid_by_part[part];
    const bool all_valid = MarkValidRows(lengths, 0, batch, t, &valid);
    if (h_prev != nullptr) {
      for (int64_t r = 0; r < batch; ++r) {
        std::copy_n(h + r * units + first, count, h_prev + (t * batch + r) * h_prev_stride + first);
      }
    }
    cell(t, valid, all_valid, first, count, h, h_next);
    for (int64_t r = 0; r < batch; ++r) {
      T* output = outputs + layout.Offset(step, r);
      if (valid[r]) {
        std::copy_n(h_next + r * units + first, count, output + first);
      } else {
        std::copy_n(h + r * units + first, count, h_next + r * units + first);
        PadOutputRow(output, first, count, step, zero_output_for_mask, layout);
      }
    }
  });
  std::copy_n(h_buffers.data() + time % 2 * batch * units, batch * units, final_h);
}

// step_inputs[t, r, :input] = inputs[r, t, :]: the x_t part of a kept [T, B, D + H] record of
// each step's [x_t, h] (the left factor of the weight gradients), when the products read the
// inputs directly.
template <typename T>
void KeepStepInputs(const T* inputs, int64_t batch, int64_t time, int64_t input,
                    int64_t step_width, T* step_inputs) {
  for (int64_t t = 0; t < time; ++t) {
    for (int64_t r = 0; r < batch; ++r) {
      std::copy_n(inputs + (r * time + t) * input, input, step_inputs + (t * batch + r) * step_width);
    }
  }
}

// How many unit ranges RunSequencesByUnits splits `batch` sequences into, or 0 to split the batch
// instead (ForEachBatchShard): whole panels of `panel` columns, at most one range per thread, and
// only for small batches, past which a batch split of whole time loops costs less than meeting
// at every step. How small depends on whether a core's L2 cache holds all `packed_weight_bytes`
// (each thread of a batch split reads all the weights at every step): with 1 MB per core (AMD
// EPYC) and the LSTM's 1.1 MB at H=256 a split by units was faster up to 32 rows; with 2 MB
// (Intel Xeon) only up to 4 (at 32 rows the batch split took a sixth off the LSTM forward, a
// quarter off the GRU's).
inline int UnitParts(const Workers& workers, int64_t batch, int64_t units, int64_t panel,
                     int64_t packed_weight_bytes) {
  const bool weights_fit_in_l2 = packed_weight_bytes <= Eigen::l2CacheSize() * 3 / 4;
  const int64_t max_rows = weights_fit_in_l2 ? 4 : 32;
  const int64_t parts = std::min<int64_t>(workers.NumThreads(), units / panel);
  return batch <= max_rows && parts > 1 && units % panel == 0 ? static_cast<int>(parts) : 0;
}

// sums[j] = sum over rows of a[row, j] for a row-major [rows, cols] buffer: each shard adds its
// contiguous rows into a private row, then into `sums` under a lock. Memory-bound, one pass
// (Eigen's tensor reduction over the outer axis of a row-major buffer is many times slower).
template <typename T>
void ParallelColumnSums(const Workers& workers, const T* a, int64_t rows,
                        int64_t cols, T* sums) {
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

// What a forward keeps for its gradient, time-major [time, batch, width], seen from one batch
// shard (rows [first, first + rows)): At(t) is the shard's block of step t. Without a buffer
// (`kept` null: nothing is kept, as in inference) every step gets the same block, the shard's
// own, which stays in cache instead of streaming time * batch * width values to memory.
template <typename T>
class ShardStepRows {
 public:
  ShardStepRows(T* kept, int64_t batch, int64_t first, int64_t rows, int64_t width)
      : kept_(kept), batch_(batch), first_(first), width_(width),
        scratch_(kept == nullptr ? rows * width : 0) {}

  T* At(int64_t t) { return kept_ ? kept_ + (t * batch_ + first_) * width_ : scratch_.data(); }

 private:
  T* const kept_;
  const int64_t batch_, first_, width_;
  Eigen::Matrix<T, Eigen::Dynamic, 1> scratch_;  // aligned for the products' vector stores
};

// Where a batch shard's state lives at each step of a forward pass: in the rows where the step
// keeps it for the gradient (columns [offset, offset + units) of `kept`'s block of the step; one
// block for every step when nothing is kept), and after the last step in the final state. A
// step's cell pass writes the next state straight there, and h into the outputs: copying the
// states into the kept buffers and h into the outputs after each step took a sixth of the LSTM's
// forward op at B=1024, H=32.
template <typename T>
class StepStates {
 public:
  // `final_state`: the shard's rows of it.
  StepStates(ShardStepRows<T>* kept, int64_t offset, int64_t stride, T* final_state,
             int64_t rows, int64_t units, int64_t time, bool reverse)
      : kept_(kept), offset_(offset), stride_(stride), final_state_(final_state), rows_(rows),
        units_(units), time_(time), reverse_(reverse) {}

  // The state that step `step` (in processing order) starts from; At(time) is the final state.
  StridedRows<T> At(int64_t step) const {
    if (step == time_) {
      return StridedRows<T>(final_state_, rows_, units_, Eigen::OuterStride<>(units_));
    }
    return StridedRows<T>(kept_->At(TimeIndex(step, time_, reverse_)) + offset_, rows_, units_,
                          Eigen::OuterStride<>(stride_));
  }

 private:
  ShardStepRows<T>* const kept_;
  const int64_t offset_, stride_;
  T* const final_state_;
  const int64_t rows_, units_, time_;
  const bool reverse_;
};

// The rows of a shard at a forward step that is padded for some of them: `take(r)` gives row r,
// inside its sequence, its new state and output; a padded row keeps its state (`carry(r)` puts
// it where the next step reads it), has what the step kept for the gradient zeroed in `kept` (so
// that the backward pass skips it) and gets the padding rule's output.
template <typename T, typename Kept, typename Take, typename Carry>
void CommitPartlyValidStep(const std::vector<char>& valid, Kept&& kept,
                           StridedRows<T> output, int64_t step, bool zero_output_for_mask,
                           const StepLayout& layout, const Take& take, const Carry& carry) {
  for (int64_t r = 0; r < output.rows(); ++r) {
    if (valid[r]) {
      take(r);
    } else {
      carry(r);
      kept.row(r).setZero();
      PadOutputRow(output.data() + r * output.outerStride(), 0, output.cols(), step,
                   zero_output_for_mask, layout);
    }
  }
}

// What padded steps of a backward pass over a batch shard pass on to the step before: a padded
// row's output repeats the previous step's (unless zero_output_for_mask), so the gradient reaching
// it goes on to that output. `any` is false while every value is zero, which spares the steps of
// unpadded rows a pass over it.
template <typename T>
struct CarriedGradient {
  CarriedGradient(int64_t rows, int64_t units) : values(RowMatrix<T>::Zero(rows, units)) {}
  RowMatrix<T> values;
  bool any = false;
};

// The gradient reaching a shard's state at one step of a backward pass, into d_h_total: from
// the step's output rows, from later padded steps whose outputs repeated this one (`carried`)
// and through the recurrence (`dh`). Then `carried` becomes what moves on to the step before.
template <typename T>
void GradientReachingState(const T* d_output_rows, const StepLayout& layout, int64_t step,
                           int64_t first, const std::vector<char>& valid, bool all_valid,
                           bool zero_output_for_mask, const RowMatrix<T>& dh,
                           CarriedGradient<T>* carried, RowMatrix<T>* d_h_total) {
  const int64_t rows = dh.rows(), units = dh.cols();
  const ConstStridedRows<T> d_outputs(d_output_rows + layout.Offset(step, first), rows, units,
                                      Eigen::OuterStride<>(layout.RowStride()));
  if (carried->any) {
    *d_h_total = d_outputs + carried->values + dh;
  } else {
    *d_h_total = d_outputs + dh;
  }
  if (all_valid || zero_output_for_mask) {
    if (carried->any) carried->values.setZero();
    carried->any = false;
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    if (valid[r]) {
      carried->values.row(r).setZero();
    } else {
      carried->values.row(r) += d_outputs.row(r);
    }
  }
  carried->any = true;
}

// Rows of a batch shard that a step takes at a time, forward and backward, through its products
// and the element-wise passes over their results: with weights small enough to stay in L1 beside
// them, blocks of about 16 KB of gates, so that the passes hit L1 (over a 512-row shard at H=32
// each pass streamed from L2: at B=1024 the LSTM's gradient op took 5% longer, the GRU's forward
// op 6%, the LSTM's 8%); otherwise the whole shard, so that each product streams the weights once
// per step.
template <typename T>
int64_t StepChunkRows(int64_t width, int64_t packed_weight_elements) {
  constexpr int64_t kChunkBytes = 16 * 1024, kMaxWeightBytes = 64 * 1024;
  if (packed_weight_elements * static_cast<int64_t>(sizeof(T)) > kMaxWeightBytes) {
    return std::numeric_limits<int64_t>::max();
  }
  return std::max<int64_t>(8, kChunkBytes / (width * static_cast<int64_t>(sizeof(T))));
}

// state = next in the rows that are inside their sequence (by a swap when all are); the others
// keep their state over the padded step.
template <typename T>
void TakeValidRows(bool all_valid, const std::vector<char>& valid, RowMatrix<T>* next,
                   RowMatrix<T>* state) {
  if (all_valid) {
    state->swap(*next);
    return;
  }
  for (int64_t r = 0; r < state->rows(); ++r) {
    if (valid[r]) state->row(r) = next->row(r);
  }
}

}  // namespace rnn
}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_RNN_MATH_H_
