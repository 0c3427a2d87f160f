// TensorFlow glue for the fused LSTM sequence: op registration, shape functions, validation,
// allocation. The arithmetic is in lstm_sequence.cc.
#define EIGEN_USE_THREADS

#include "lstm_sequence.h"
#include "rnn_kernel_util.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace zoo {

using rnn::shapes::Sizes;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;

REGISTER_OP("ZooLstmSequence")
    .Input("inputs: T")
    .Input("initial_h: T")
    .Input("initial_c: T")
    .Input("kernel: T")
    .Input("recurrent_kernel: T")
    .Input("bias: T")
    .Input("lengths: int32")
    .Output("outputs: T")
    .Output("final_h: T")
    .Output("final_c: T")
    .Output("gates: T")
    .Output("step_inputs: T")
    .Output("c_prev: T")
    .Attr("T: {float, double}")
    .Attr("reverse: bool = false")
    .Attr("zero_output_for_mask: bool = false")
    .Attr("keep_for_gradient: bool = true")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      return rnn::shapes::SetForwardOutputs(c, 4, 4, 2, {{4}, {1, true}, {1}});
    })
    .Doc(R"doc(
A whole LSTM sequence (Keras gate order i, f, c, o; tanh and sigmoid) over right-padded inputs
of per-example lengths. gates and c_prev are kept, time-major, for ZooLstmSequenceGrad, and
step_inputs [T, B, D + H] (x_t and the h each step started from) for the weight gradients; with
keep_for_gradient false (inference) they are not kept and have no time steps.
)doc");

REGISTER_OP("ZooLstmSequenceGrad")
    .Input("inputs: T")
    .Input("kernel: T")
    .Input("recurrent_kernel: T")
    .Input("lengths: int32")
    .Input("gates: T")
    .Input("c_prev: T")
    .Input("step_inputs: T")
    .Input("d_outputs: T")
    .Input("d_final_h: T")
    .Input("d_final_c: T")
    .Output("d_inputs: T")
    .Output("d_initial_h: T")
    .Output("d_initial_c: T")
    .Output("d_gates: T")
    .Output("d_weights: T")
    .Output("d_bias: T")
    .Attr("T: {float, double}")
    .Attr("reverse: bool = false")
    .Attr("zero_output_for_mask: bool = false")
    .Attr("sum_weight_gradients: bool = false")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      Sizes s;
      bool sum_weight_gradients;
      TF_RETURN_IF_ERROR(rnn::shapes::SetGradientOutputs(c, 2, 4, 2, &s, &sum_weight_gradients));
      c->set_output(3, c->MakeShape({rnn::shapes::DimIf(c, !sum_weight_gradients, s.time), s.batch,
                                     s.gate_width}));
      c->set_output(4, c->MakeShape({rnn::shapes::DimIf(c, sum_weight_gradients, s.step_width),
                                     s.gate_width}));
      c->set_output(5, c->Vector(s.gate_width));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Backpropagation through time of ZooLstmSequence in one kernel: the gradients of the inputs, the
initial states and the bias, and those of the kernel and the recurrent kernel, step_inputs^T
d_gates ([D + H, 4H]: the kernel's rows first) for the time-major [T, B, 4H] gradients d_gates of
the gates' pre-activations. With sum_weight_gradients the kernel sums that product itself, block
by block while the gradients are in cache (d_weights; d_gates has no time steps); otherwise it
returns d_gates for the caller to form it as one large matrix product (d_weights has no rows).
)doc");

template <typename T>
class LstmSequenceOp : public rnn::SequenceKernel {
 public:
  explicit LstmSequenceOp(OpKernelConstruction* context)
      : SequenceKernel(context, "keep_for_gradient") {}

  void Compute(OpKernelContext* context) override {
    const Tensor& inputs = context->input(0);
    const Tensor& initial_h = context->input(1);
    const Tensor& initial_c = context->input(2);
    const Tensor& kernel = context->input(3);
    const Tensor& recurrent_kernel = context->input(4);
    const Tensor& bias = context->input(5);
    const Tensor& lengths = context->input(6);
    RnnSizes s;
    OP_REQUIRES_OK(context, rnn::ReadSizes(inputs, kernel, recurrent_kernel, lengths, 4, &s));
    const int64_t width = 4 * s.units;
    OP_REQUIRES_OK(context, rnn::RequireShapes({{initial_h, "initial_h", {s.batch, s.units}},
                                                {initial_c, "initial_c", {s.batch, s.units}},
                                                {bias, "bias", {width}}}));
    const bool keep = produces_;  // keep_for_gradient
    std::vector<T*> out;          // outputs, final_h, final_c, gates, step_inputs, c_prev
    OP_REQUIRES_OK(context, rnn::AllocateOutputs<T>(context,
                                                    {{{s.batch, s.time, s.units}},
                                                     {{s.batch, s.units}},
                                                     {{s.batch, s.units}},
                                                     {{s.time, s.batch, width}, keep},
                                                     {{s.time, s.batch, s.input + s.units}, keep},
                                                     {{s.time, s.batch, s.units}, keep}},
                                                    &out));
    LstmSequenceForward<T>(rnn::KernelWorkers(context), s, options_, rnn::Data<T>(inputs),
                           rnn::Data<T>(initial_h), rnn::Data<T>(initial_c), rnn::Data<T>(kernel),
                           rnn::Data<T>(recurrent_kernel), rnn::Data<T>(bias),
                           rnn::Data<int32_t>(lengths), out[0], out[1], out[2], out[3], out[4],
                           out[5]);
  }
};

template <typename T>
class LstmSequenceGradOp : public rnn::SequenceKernel {
 public:
  explicit LstmSequenceGradOp(OpKernelConstruction* context)
      : SequenceKernel(context, "sum_weight_gradients") {}

  void Compute(OpKernelContext* context) override {
    const Tensor& inputs = context->input(0);
    const Tensor& kernel = context->input(1);
    const Tensor& recurrent_kernel = context->input(2);
    const Tensor& lengths = context->input(3);
    const Tensor& gates = context->input(4);
    const Tensor& c_prev = context->input(5);
    const Tensor& step_inputs = context->input(6);
    const Tensor& d_outputs = context->input(7);
    const Tensor& d_final_h = context->input(8);
    const Tensor& d_final_c = context->input(9);
    RnnSizes s;
    OP_REQUIRES_OK(context, rnn::ReadSizes(inputs, kernel, recurrent_kernel, lengths, 4, &s));
    const int64_t width = 4 * s.units;
    OP_REQUIRES_OK(context, rnn::RequireShapes(
                                {{gates, "gates", {s.time, s.batch, width}},
                                 {c_prev, "c_prev", {s.time, s.batch, s.units}},
                                 {step_inputs, "step_inputs", {s.time, s.batch, s.input + s.units}},
                                 {d_outputs, "d_outputs", {s.batch, s.time, s.units}},
                                 {d_final_h, "d_final_h", {s.batch, s.units}},
                                 {d_final_c, "d_final_c", {s.batch, s.units}}}));
    const bool sums = produces_;  // sum_weight_gradients
    std::vector<T*> out;          // d_inputs, d_initial_h, d_initial_c, d_gates, d_weights, d_bias
    OP_REQUIRES_OK(context, rnn::AllocateOutputs<T>(context,
                                                    {{inputs.shape()},
                                                     {{s.batch, s.units}},
                                                     {{s.batch, s.units}},
                                                     {{s.time, s.batch, width}, !sums},
                                                     {{s.input + s.units, width}, sums},
                                                     {{width}}},
                                                    &out));
    LstmSequenceBackward<T>(rnn::KernelWorkers(context), s, options_, rnn::Data<T>(kernel),
                            rnn::Data<T>(recurrent_kernel), rnn::Data<int32_t>(lengths),
                            rnn::Data<T>(gates), rnn::Data<T>(c_prev), rnn::Data<T>(step_inputs),
                            rnn::Data<T>(d_outputs), rnn::Data<T>(d_final_h),
                            rnn::Data<T>(d_final_c), out[0], out[1], out[2], out[3], out[4],
                            out[5]);
  }
};

#define ZOO_REGISTER_LSTM(T)                                                             \
  REGISTER_KERNEL_BUILDER(                                                               \
      Name("ZooLstmSequence").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),     \
      LstmSequenceOp<T>);                                                                \
  REGISTER_KERNEL_BUILDER(                                                               \
      Name("ZooLstmSequenceGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      LstmSequenceGradOp<T>);
ZOO_REGISTER_LSTM(float)
ZOO_REGISTER_LSTM(double)
#undef ZOO_REGISTER_LSTM

}  // namespace zoo
