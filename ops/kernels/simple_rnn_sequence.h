// A whole fully connected RNN sequence (Keras's SimpleRNN with tanh), forward and backward, in
// plain C++ over raw row-major buffers (no TensorFlow types): h_t = tanh(x_t W + h_{t-1} U + b).
// Padding, `reverse` and `zero_output_for_mask` as in lstm_sequence.h.
#ifndef ZOO_OPS_KERNELS_SIMPLE_RNN_SEQUENCE_H_
#define ZOO_OPS_KERNELS_SIMPLE_RNN_SEQUENCE_H_

#include <cstdint>

#include "lstm_sequence.h"

namespace zoo {

// Shapes: inputs [B,T,D], initial_h [B,H], kernel [D,H], recurrent_kernel [H,H], bias [H],
// lengths [B] in [0, T]. Writes outputs [B,T,H] (processing order), final_h [B,H] and, for the
// backward pass, time-major and indexed by t like inputs: states [T,B,H] (each step's new state,
// zero at padded steps) and step_inputs [T,B,D+H] (x_t and the h the step started from: the left
// factor of the weight gradients). With states and step_inputs null (nothing kept for a
// gradient, as in inference) it keeps one step of them in cache instead.
template <typename T>
void SimpleRnnSequenceForward(const rnn::Workers& workers, const RnnSizes& sizes,
                              const RnnOptions& options, const T* inputs, const T* initial_h,
                              const T* kernel, const T* recurrent_kernel, const T* bias,
                              const int32_t* lengths, T* outputs, T* final_h, T* states,
                              T* step_inputs);

// Gradients through SimpleRnnSequenceForward, given the gradients of its outputs and final_h:
// d_inputs [B,T,D], d_initial_h [B,H] and d_bias [H]. The weight gradients are the product
// step_inputs^T d_pre over all steps of the pre-activation gradients d_pre [T,B,H] ([D+H, H]:
// the kernel's rows first). With d_weights null, d_pre is written (zero at padded steps) and the
// caller forms that product; otherwise it is summed here into d_weights, block by block while
// d_pre is in cache (GradientSums).
template <typename T>
void SimpleRnnSequenceBackward(const rnn::Workers& workers, const RnnSizes& sizes,
                               const RnnOptions& options, const T* kernel,
                               const T* recurrent_kernel, const int32_t* lengths, const T* states,
                               const T* step_inputs, const T* d_outputs, const T* d_final_h,
                               T* d_inputs, T* d_initial_h, T* d_pre, T* d_weights, T* d_bias);

}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_SIMPLE_RNN_SEQUENCE_H_
