// What the cells whose step multiplies x_t and h by dense weights share (the
// LSTM, the GRU and the SimpleRNN): how their work is split and their weights
// laid out, and their per-step products over a range of units.
//
// A step reads all of its weights. A batch split has each thread read them all
// for its rows at every step, so its weights are packed into panels (or split
// for AMX tiles) once per op call. A split by units has each thread read only
// the panels of its units, where they lie in memory: for a few rows, whose step
// is bound by reading the weights, two cores then read half each, and for
// weights larger than a core's L2 cache each core keeps its half there. Unit
// ranges are whole panels, so that a range's products are the panels' products.
#ifndef ZOO_OPS_KERNELS_DENSE_CELL_H_
#define ZOO_OPS_KERNELS_DENSE_CELL_H_

#include <algorithm>
#include <cstdint>
#include <limits>

#include "packed_products.h"
#include "sequence_driver.h"
#include "workers.h"

namespace zoo {
namespace rnn {

// How many unit ranges a forward splits `batch` sequences into, or 0 to split
// the batch instead: whole panels of `panel` columns, at most one range per
// thread, and only for small batches, past which a batch split of whole time
// loops costs less than meeting at every step. How small depends on whether a
// core's L2 cache holds all `packed_weight_bytes` (each thread of a batch split
// reads all the weights at every step): where it does not, a split by units, in
// which each core reads only its part, pays for meeting at every step up to 32
// rows; where it does, only up to 4.
inline int UnitParts(const Workers& workers, int64_t batch, int64_t units, int64_t panel,
                     int64_t packed_weight_bytes) {
  const bool weights_fit_in_l2 = packed_weight_bytes <= Eigen::l2CacheSize() * 3 / 4;
  const int64_t max_rows = weights_fit_in_l2 ? 4 : 32;
  const int64_t parts = std::min<int64_t>(workers.NumThreads(), units / panel);
  return batch <= max_rows && parts > 1 && units % panel == 0 ? static_cast<int>(parts) : 0;
}

// Rows of a batch shard that a step takes at a time, forward and backward,
// through its products and the element-wise passes over their results: with
// weights small enough to stay in L1 beside them, blocks of about 16 KB of
// `width` columns, so that the passes find them in L1; otherwise the whole
// shard, so that each product streams the weights once per step.
template <typename T>
int64_t StepChunkRows(int64_t width, int64_t packed_weight_elements) {
  constexpr int64_t kChunkBytes = 16 * 1024, kMaxWeightBytes = 64 * 1024;
  if (packed_weight_elements * static_cast<int64_t>(sizeof(T)) > kMaxWeightBytes) {
    return std::numeric_limits<int64_t>::max();
  }
  return std::max<int64_t>(8, kChunkBytes / (width * static_cast<int64_t>(sizeof(T))));
}

// The split of a dense cell's pass and the packing of its weights.
template <typename T>
struct DensePlan {
  Split split;
  typename PackedMatrix<T>::Packing packing;
};

// A forward whose step multiplies [x_t, h] by weights [D + H, width] (`gates`
// blocks of H columns): split by units where UnitParts says so and the cell
// allows it (`by_units`), else by batch, in chunks of StepChunkRows of
// `chunk_width` columns (0: whole shards).
template <typename T>
DensePlan<T> PlanDenseForward(const Workers& workers, const RnnSizes& sizes, int gates,
                              int64_t work_per_example, bool by_units, int64_t chunk_width) {
  const int64_t width = gates * sizes.units, weight_values = (sizes.input + sizes.units) * width;
  DensePlan<T> plan;
  plan.split.work_per_example = work_per_example;
  plan.split.unit_multiple = PackedMatrix<T>::PanelColumns(width);
  plan.split.unit_parts = by_units ? UnitParts(workers, sizes.batch, sizes.units,
                                               plan.split.unit_multiple, weight_values * sizeof(T))
                                   : 0;
  if (chunk_width > 0) plan.split.chunk_rows = StepChunkRows<T>(chunk_width, weight_values);
  plan.packing = plan.split.unit_parts > 0
                     ? PackedMatrix<T>::Packing::kInPlace
                     : PackedMatrix<T>::PackingFor(
                           BatchShardRows(workers, sizes.batch, work_per_example), weight_values);
  return plan;
}

// The backward pass of such a cell: a batch split in chunks of StepChunkRows of
// `chunk_width` columns (0: whole shards), whose products take a chunk's rows
// at a time.
template <typename T>
DensePlan<T> PlanDenseBackward(const Workers& workers, const RnnSizes& sizes, int gates,
                               int64_t work_per_example, int64_t chunk_width) {
  const int64_t weight_values = (sizes.input + sizes.units) * gates * sizes.units;
  DensePlan<T> plan;
  plan.split.work_per_example = work_per_example;
  if (chunk_width > 0) plan.split.chunk_rows = StepChunkRows<T>(chunk_width, weight_values);
  plan.packing = PackedMatrix<T>::PackingFor(
      std::min(plan.split.chunk_rows, BatchShardRows(workers, sizes.batch, work_per_example)),
      weight_values);
  return plan;
}

// The per-step products of a dense cell for units [first, first + count) of
// each of `gates` blocks of `units` columns: all the panels for all the units
// (count == units), else the panels of the range in each block.
template <typename T>
class UnitRangeProducts {
 public:
  UnitRangeProducts(int64_t units, int gates, int64_t first, int64_t count)
      : units_(units), gates_(gates), first_(first), count_(count) {}

  // c = a * B over the range (see PackedMatrix::Multiply).
  void Multiply(const PackedMatrix<T>& b, const T* a, int64_t lda, int64_t m, T* c,
                int64_t ldc) const {
    if (count_ == units_) {
      b.Multiply(a, lda, m, c, ldc, false);
      return;
    }
    const int64_t panel = PackedMatrix<T>::PanelColumns(gates_ * units_);
    for (int k = 0; k < gates_; ++k) {
      const int64_t column = k * units_ + first_;
      b.MultiplyPanels(a, lda, m, c, ldc, column / panel, (column + count_) / panel);
    }
  }

  // c = a * B + a2 * B2 over the range (see PackedMatrix::MultiplySum).
  void MultiplySum(const PackedMatrix<T>& b, const T* a, int64_t lda, const PackedMatrix<T>& b2,
                   const T* a2, int64_t lda2, int64_t m, T* c, int64_t ldc) const {
    if (count_ == units_) {
      b.MultiplySum(a, lda, b2, a2, lda2, m, c, ldc);
      return;
    }
    const int64_t panel = PackedMatrix<T>::PanelColumns(gates_ * units_);
    for (int k = 0; k < gates_; ++k) {
      const int64_t column = k * units_ + first_;
      b.MultiplySumPanels(a, lda, b2, a2, lda2, m, c, ldc, column / panel,
                          (column + count_) / panel);
    }
  }

 private:
  const int64_t units_;
  const int gates_;
  const int64_t first_, count_;
};

// The end of the backward step of a cell whose kept [x_t, h] records are the
// left factor of its weights [W; U] (the LSTM, the SimpleRNN), from the
// pre-activation gradients d [rows, width] of a block: d [U; W]^T into the
// gradient reaching h and d x_t, and the block's share of the weight and bias
// gradients (outputs 0 and 1 of `sums`) while d is in cache.
template <typename T, int kStates>
void BackpropagateRecords(const TransposedWeights<T>& weights, const T* d, int64_t width,
                          const BackwardStep<T, kStates>& step, int64_t units, const T* records,
                          int64_t record_width, typename GradientSums<T>::Shard* sums, T* scratch) {
  // d x_t straight into the batch-major d_inputs.
  weights.Multiply(d, width, step.rows, step.d_previous[0], units, step.d_inputs.data,
                   step.d_inputs.stride, scratch);
  sums->AddProduct(0, 0, width, records, record_width, record_width, d, width, step.rows, width);
  sums->AddColumnSums(1, 0, d, width, step.rows, width);
}

}  // namespace rnn
}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_DENSE_CELL_H_
