// A whole LSTM sequence, forward and backward, in plain C++ over raw row-major buffers (no
// TensorFlow types). Keras semantics: gate order i, f, c, o; right-padded sequences of
// per-example `lengths`; at a padded step the state is carried and the output repeats the
// previous output (or is zero with `zero_output_for_mask`); `reverse` processes t = T-1 .. 0 and
// writes outputs in processing order, as Keras's `go_backwards`.
#ifndef ZOO_OPS_KERNELS_LSTM_SEQUENCE_H_
#define ZOO_OPS_KERNELS_LSTM_SEQUENCE_H_

#include <cstdint>

#include "sequence_driver.h"
#include "workers.h"

namespace zoo {

// Shapes: inputs [B,T,D], initial_h/initial_c [B,H], kernel [D,4H], recurrent_kernel [H,4H],
// bias [4H], lengths [B] (each in [0, T]). Writes outputs [B,T,H], final_h/final_c [B,H] and,
// for the backward pass, time-major: the gates [T,B,4H] (activated i, f, c~, o; zero at padded
// steps), step_inputs [T,B,D+H] (x_t and the h the step started from: the left factor of the
// weight gradients) and c_prev [T,B,H] (the c the step started from). outputs are in processing
// order (index step); gates, step_inputs and c_prev are indexed by t like inputs. With all three
// null (nothing kept for a gradient, as in inference) it keeps one step of them in cache instead.
template <typename T>
void LstmSequenceForward(const rnn::Workers& workers, const RnnSizes& sizes,
                         const RnnOptions& options, const T* inputs, const T* initial_h,
                         const T* initial_c, const T* kernel, const T* recurrent_kernel,
                         const T* bias, const int32_t* lengths, T* outputs, T* final_h, T* final_c,
                         T* gates, T* step_inputs, T* c_prev);

// Gradients of a loss through LstmSequenceForward, given the gradients of its outputs, final_h
// and final_c: d_inputs [B,T,D], d_initial_h/d_initial_c [B,H] and d_bias [4H]. The weight
// gradients are the product step_inputs^T d_pre over all steps of the pre-activation gradients
// d_pre [T,B,4H]. With d_weights null, d_pre goes to pre_activation_grads (zero at padded
// steps) and the caller forms that product (TensorFlow's matmul, which reaches the machine's
// rate where an Eigen contraction here does not); otherwise it is summed here into d_weights
// [D+H,4H], block by block while d_pre is in cache (GradientSums), and
// pre_activation_grads is not read.
template <typename T>
void LstmSequenceBackward(const rnn::Workers& workers, const RnnSizes& sizes,
                          const RnnOptions& options, const T* kernel, const T* recurrent_kernel,
                          const int32_t* lengths, const T* gates, const T* c_prev,
                          const T* step_inputs, const T* d_outputs, const T* d_final_h,
                          const T* d_final_c, T* d_inputs, T* d_initial_h, T* d_initial_c,
                          T* pre_activation_grads, T* d_weights, T* d_bias);

}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_LSTM_SEQUENCE_H_
