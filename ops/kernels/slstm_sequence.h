// A whole sLSTM sequence (xLSTM's scalar-memory LSTM with exponential gating, Beck et al., 2024),
// forward and backward, in plain C++ over raw row-major buffers (no TensorFlow types). The input
// product x_t W + b of every step is formed outside, in one large product; each step adds the
// recurrent product h_{t-1} R, block-diagonal by head, and runs the stabilised cell:
//   m_t = max(log σ(f̃) + m_{t-1}, ĩ),  i' = exp(ĩ - m_t),  f' = exp(log σ(f̃) + m_{t-1} - m_t),
//   c_t = f' c_{t-1} + i' tanh(z̃),  n_t = f' n_{t-1} + i',  h_t = σ(õ) c_t / n_t.
// Padding, `reverse` and `zero_output_for_mask` as in lstm_sequence.h (Keras's masking).
#ifndef ZOO_OPS_KERNELS_SLSTM_SEQUENCE_H_
#define ZOO_OPS_KERNELS_SLSTM_SEQUENCE_H_

#include <array>
#include <cstdint>

#include "sequence_driver.h"
#include "workers.h"

namespace zoo {

// Sizes of an sLSTM sequence: units = heads * head_size.
struct SlstmSizes {
  int64_t batch, time, heads, head_size;
  int64_t units() const { return heads * head_size; }
};

// The states h, c, n, m, in that order, [B, H] each.
constexpr int kSlstmStates = 4;

// Shapes: projected [B,T,4H] (x_t W + b, gates i, f, z, o, each H wide), recurrent_kernel
// [heads, d, 4d] (head k's gates i, f, z, o, each d wide, read by h's units [k d, (k + 1) d)),
// initial[s] [B,H], lengths [B] in [0, T]. Writes outputs [B,T,H] in processing order, final[s]
// [B,H] and, for the backward pass, batch-major and indexed by input time like projected:
// pre [B,T,4H] (each step's gate pre-activations) and previous [B,T,4H] (h, c, n, m that each
// step started from), both zero at padded steps.
template <typename T>
void SlstmSequenceForward(const rnn::Workers& workers, const SlstmSizes& sizes,
                          const RnnOptions& options, const T* projected, const T* recurrent_kernel,
                          const std::array<const T*, kSlstmStates>& initial, const int32_t* lengths,
                          T* outputs, const std::array<T*, kSlstmStates>& final, T* pre,
                          T* previous);

// Gradients through SlstmSequenceForward given those of its outputs and final states: d_projected
// [B,T,4H] (the gates' pre-activation gradients, zero at padded steps) and d_initial[s] [B,H].
// The recurrent kernel's gradient is, per head k, the sum over steps of previous h's units of
// head k, transposed, times head k's columns of d_projected (formed outside, in one product).
template <typename T>
void SlstmSequenceBackward(const rnn::Workers& workers, const SlstmSizes& sizes,
                           const RnnOptions& options, const T* recurrent_kernel,
                           const int32_t* lengths, const T* pre, const T* previous,
                           const T* d_outputs, const std::array<const T*, kSlstmStates>& d_final,
                           T* d_projected, const std::array<T*, kSlstmStates>& d_initial);

}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_SLSTM_SEQUENCE_H_
