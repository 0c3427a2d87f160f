// Step layout and masks: where a step of a sequence op finds its rows, and what
// padding does to them.
//
// The ops take and return batch-major [batch, time, width] tensors like Keras:
// the rows of one step are `time * width` apart (StepLayout), and the kernels
// read and write them in place. What a forward keeps for its gradient is
// time-major [time, batch, width] and indexed by input time t, so that one step
// of a block of rows is contiguous and the weight gradients' products over all
// steps line up; outputs are in processing order (step), which is t reversed
// with `reverse`.
//
// Masking (Keras's): sequences are right-padded, example r being valid at t <
// lengths[r]. At a padded step a row keeps its state, its output repeats the
// previous step's output (zero at the first step, or always with
// zero_output_for_mask), and what the step kept for the gradient is zero, so
// that the backward pass adds nothing from it. Backward, the gradient reaching
// a padded step's output goes on to the output it repeated (CarriedGradient).
#ifndef ZOO_OPS_KERNELS_STEP_LAYOUT_H_
#define ZOO_OPS_KERNELS_STEP_LAYOUT_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "packet_math.h"

namespace zoo {
namespace rnn {

// Index of the time step processed at step `step` of a sequence of `time`
// steps.
inline int64_t TimeIndex(int64_t step, int64_t time, bool reverse) {
  return reverse ? time - 1 - step : step;
}

// Where the loops find the rows of one step in a batch-major [batch, time,
// width] tensor (the outputs, their gradients): in place, `time * width` apart
// (a time-major copy would cost two more passes over the tensor).
struct StepLayout {
  int64_t time, width;

  int64_t Offset(int64_t step, int64_t row) const { return (row * time + step) * width; }
  int64_t RowStride() const { return time * width; }
  // From a row at one step to the same row at the next step.
  int64_t StepStride() const { return width; }
};

// The output of one row at a padded step, columns [first, first + count) of
// `output_row` (that row's output at this step): zero at the first step or with
// zero_output_for_mask, else the same row's output one step earlier (Keras's
// masking).
template <typename T>
void PadOutputRow(T* output_row, int64_t first, int64_t count, int64_t step,
                  bool zero_output_for_mask, const StepLayout& layout) {
  if (zero_output_for_mask || step == 0) {
    std::fill_n(output_row + first, count, T(0));
  } else {
    std::copy_n(output_row + first - layout.StepStride(), count, output_row + first);
  }
}

// Which rows of a shard are inside their sequence at time index t; true when
// all are.
inline bool MarkValidRows(const int32_t* lengths, int64_t first, int64_t rows, int64_t t,
                          std::vector<char>* valid) {
  bool all_valid = true;
  for (int64_t r = 0; r < rows; ++r) {
    (*valid)[r] = t < lengths[first + r];
    all_valid = all_valid && (*valid)[r];
  }
  return all_valid;
}

// What a forward keeps for its gradient, time-major [time, batch, width], seen
// from one batch shard (rows [first, first + rows)): At(t) is the shard's block
// of step t. Without a buffer
// (`kept` null: nothing is kept, as in inference) every step gets the same
// block, the shard's own, which stays in cache instead of streaming time *
// batch * width values to memory.
template <typename T>
class ShardStepRows {
 public:
  ShardStepRows(T* kept, int64_t batch, int64_t first, int64_t rows, int64_t width)
      : kept_(kept),
        batch_(batch),
        first_(first),
        width_(width),
        scratch_(kept == nullptr ? rows * width : 0) {}

  T* At(int64_t t) { return kept_ ? kept_ + (t * batch_ + first_) * width_ : scratch_.data(); }

 private:
  T* const kept_;
  const int64_t batch_, first_, width_;
  Eigen::Matrix<T, Eigen::Dynamic, 1> scratch_;  // aligned for the products' vector stores
};

// Where a batch shard's state lives at each step of a forward pass: in the rows
// where the step keeps it for the gradient (columns [offset, offset + units) of
// `kept`'s block of the step; one block for every step when nothing is kept),
// and after the last step in the final state. A step's cell pass writes the
// next state straight there, and h into the outputs, from its registers,
// instead of copying them there after the step.
template <typename T>
class StepStates {
 public:
  // `final_state`: the shard's rows of it.
  StepStates(ShardStepRows<T>* kept, int64_t offset, int64_t stride, T* final_state, int64_t rows,
             int64_t units, int64_t time, bool reverse)
      : kept_(kept),
        offset_(offset),
        stride_(stride),
        final_state_(final_state),
        rows_(rows),
        units_(units),
        time_(time),
        reverse_(reverse) {}

  // The state that step `step` (in processing order) starts from; At(time) is
  // the final state.
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

// What padded steps of a backward pass over a batch shard pass on to the step
// before: a padded row's output repeats the previous step's (unless
// zero_output_for_mask), so the gradient reaching it goes on to that output.
// `any` is false while every value is zero, which spares the steps of unpadded
// rows a pass over it.
template <typename T>
struct CarriedGradient {
  CarriedGradient(int64_t rows, int64_t units) : values(RowMatrix<T>::Zero(rows, units)) {}
  RowMatrix<T> values;
  bool any = false;
};

// The gradient reaching a shard's state at one step of a backward pass, into
// d_h_total: from the step's output rows, from later padded steps whose outputs
// repeated this one (`carried`) and through the recurrence (`dh`). Then
// `carried` becomes what moves on to the step before.
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

// Zeroes the rows of `block` that are padded at the step (not `valid`): they
// add nothing to the gradients.
template <typename Block>
void ClearPaddedRows(const char* valid, bool all_valid, Block&& block) {
  if (all_valid) return;
  for (int64_t r = 0; r < block.rows(); ++r) {
    if (!valid[r]) block.row(r).setZero();
  }
}

// state = next in the rows that are inside their sequence (by a swap when all
// are); the others keep their state over the padded step.
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

// step_inputs[t, r, :input] = inputs[r, t, :]: the x_t part of a kept [T, B, D
// + H] record of each step's [x_t, h] (the left factor of the weight
// gradients), when the products read the inputs directly.
template <typename T>
void KeepStepInputs(const T* inputs, int64_t batch, int64_t time, int64_t input, int64_t step_width,
                    T* step_inputs) {
  for (int64_t t = 0; t < time; ++t) {
    for (int64_t r = 0; r < batch; ++r) {
      std::copy_n(inputs + (r * time + t) * input, input,
                  step_inputs + (t * batch + r) * step_width);
    }
  }
}

}  // namespace rnn
}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_STEP_LAYOUT_H_
