// A whole GRU sequence, forward and backward, in plain C++ over raw row-major buffers (no
// TensorFlow types). Keras semantics: gate order z, r, h; h = z * h_prev + (1 - z) * h~.
// reset_after (Keras's default): h~ = tanh(x W_h + b_in_h + r * (h_prev U_h + b_rec_h)), bias
// [2, 3H] (input row, recurrent row); otherwise h~ = tanh(x W_h + b_h + (r * h_prev) U_h), bias
// [3H]. Padding, `reverse` and `zero_output_for_mask` as in lstm_sequence.h.
#ifndef ZOO_OPS_KERNELS_GRU_SEQUENCE_H_
#define ZOO_OPS_KERNELS_GRU_SEQUENCE_H_

#include <cstdint>

#include "lstm_sequence.h"

namespace zoo {

// Width of the per-step activations kept for the backward pass: z, r, h~ and, with reset_after,
// the recurrent candidate h_prev U_h + b_rec_h.
inline int64_t GruGateWidth(int64_t units, bool reset_after) {
  return (reset_after ? 4 : 3) * units;
}

// Shapes: inputs [B,T,D], initial_h [B,H], kernel [D,3H], recurrent_kernel [H,3H], bias [2,3H]
// or [3H] (see above), lengths [B] in [0, T]. Writes outputs [B,T,H] (processing order),
// final_h [B,H], and the time-major gates [T,B,GruGateWidth] and h_prev [T,B,H] (indexed by t
// like inputs); with gates and h_prev null (nothing kept for a gradient) it keeps one step in
// cache instead.
template <typename T>
void GruSequenceForward(const rnn::Workers& workers, const RnnSizes& sizes,
                        const RnnOptions& options, bool reset_after, const T* inputs,
                        const T* initial_h, const T* kernel, const T* recurrent_kernel,
                        const T* bias, const int32_t* lengths, T* outputs, T* final_h, T* gates,
                        T* h_prev);

// Gradients through GruSequenceForward: d_inputs [B,T,D], d_initial_h [B,H], d_bias (shaped like
// bias) and the weight gradients, which are products over all steps of these time-major factors
// (zero at padded steps):
// - d_projected [T,B,3H]: the gradients of x_t W + b_in; d_kernel = inputs^T d_projected.
// - d_recurrent: with reset_after, the gradients of h_prev U + b_rec [T,B,3H], and
//   d_recurrent_kernel = h_prev^T d_recurrent; otherwise r * h_prev [T,B,H], and
//   d_recurrent_kernel = [h_prev^T d_projected[..., :2H], d_recurrent^T d_projected[..., 2H:]].
// With d_kernel null the factors go to d_projected and d_recurrent and the caller forms the
// products (TensorFlow's matmul); otherwise they are summed here into d_kernel [D,3H] and
// d_recurrent_kernel [H,3H] block by block while the factors are in cache (GradientSums), and
// d_projected and d_recurrent are not written.
template <typename T>
void GruSequenceBackward(const rnn::Workers& workers, const RnnSizes& sizes,
                         const RnnOptions& options, bool reset_after, const T* inputs,
                         const T* kernel, const T* recurrent_kernel, const int32_t* lengths,
                         const T* gates, const T* h_prev, const T* d_outputs, const T* d_final_h,
                         T* d_inputs, T* d_initial_h, T* d_projected, T* d_recurrent, T* d_kernel,
                         T* d_recurrent_kernel, T* d_bias);

}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_GRU_SEQUENCE_H_
