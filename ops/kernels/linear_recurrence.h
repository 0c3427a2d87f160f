// The element-wise linear recurrence h_t = a_t * h_{t-1} + b_t that minGRU, minLSTM and the RG-LRU
// run after their one large input product, forward and backward, in plain C++ over raw row-major
// buffers (no TensorFlow types). Padding, `reverse` and `zero_output_for_mask` as in
// lstm_sequence.h (Keras's masking): a padded step carries h, and its output repeats the previous
// output (zero before the first valid step, or always with zero_output_for_mask).
#ifndef ZOO_OPS_KERNELS_LINEAR_RECURRENCE_H_
#define ZOO_OPS_KERNELS_LINEAR_RECURRENCE_H_

#include <cstdint>

#include "sequence_driver.h"
#include "workers.h"

namespace zoo {

// Sizes of a linear recurrence: coefficients [batch, time, units], states [batch, units].
struct LinearRecurrenceSizes {
  int64_t batch, time, units;
};

// Shapes: a, b [B,T,H] (indexed by input time t), initial_h [B,H], lengths [B] in [0, T]. Writes
// outputs [B,T,H] in processing order and final_h [B,H]. The outputs of valid steps are the
// states, which is all the backward pass needs besides a.
template <typename T>
void LinearRecurrenceForward(const rnn::Workers& workers, const LinearRecurrenceSizes& sizes,
                             const RnnOptions& options, const T* a, const T* b, const T* initial_h,
                             const int32_t* lengths, T* outputs, T* final_h);

// Gradients through LinearRecurrenceForward given those of its outputs and final_h: d_a, d_b
// [B,T,H] (zero at padded steps) and d_initial_h [B,H]. Reads the forward's outputs for the
// states each valid step started from (initial_h for the first valid step).
template <typename T>
void LinearRecurrenceBackward(const rnn::Workers& workers, const LinearRecurrenceSizes& sizes,
                              const RnnOptions& options, const T* a, const T* initial_h,
                              const int32_t* lengths, const T* outputs, const T* d_outputs,
                              const T* d_final_h, T* d_a, T* d_b, T* d_initial_h);

// The layers whose coefficients the gated recurrence forms from their projected input
// x_t W + b [B, T, k H] (k = ProjectionBlocks), with g(x) = x + 1/2 for x >= 0, σ(x) otherwise:
// - kMinGru: [k_z, k_h]: a = 1 - σ(k_z), b = σ(k_z) g(k_h);
// - kMinLstm: [k_f, k_i, k_h], f = σ(k_f), i = σ(k_i): a = f / (f + i), b = i g(k_h) / (f + i);
// - kRgLru: [k_r, k_i, u]: log a = c σ(k_r) log_base (log_base = log σ(Λ) [H], c the gate
//   exponent), b = sqrt(1 - a²) σ(k_i) u.
enum class GatedCell { kMinGru, kMinLstm, kRgLru };

inline int ProjectionBlocks(GatedCell cell) { return cell == GatedCell::kMinGru ? 2 : 3; }

struct GatedCellOptions {
  GatedCell cell;
  float gate_exponent;  // c of the RG-LRU
};

// LinearRecurrenceForward with a and b formed from `projected` [B,T,kH] by `gates` in the same
// pass; log_base [H] for the RG-LRU (else unread).
template <typename T>
void GatedLinearRecurrenceForward(const rnn::Workers& workers, const LinearRecurrenceSizes& sizes,
                                  const RnnOptions& options, const GatedCellOptions& gates,
                                  const T* projected, const T* log_base, const T* initial_h,
                                  const int32_t* lengths, T* outputs, T* final_h);

// Gradients through GatedLinearRecurrenceForward: d_projected [B,T,kH] (zero at padded steps),
// d_initial_h [B,H] and, for the RG-LRU, d_log_base_rows [B,H] (each example's share of
// log_base's gradient; unwritten for the other cells).
template <typename T>
void GatedLinearRecurrenceBackward(const rnn::Workers& workers, const LinearRecurrenceSizes& sizes,
                                   const RnnOptions& options, const GatedCellOptions& gates,
                                   const T* projected, const T* log_base, const T* initial_h,
                                   const int32_t* lengths, const T* outputs, const T* d_outputs,
                                   const T* d_final_h, T* d_projected, T* d_log_base_rows,
                                   T* d_initial_h);

}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_LINEAR_RECURRENCE_H_
