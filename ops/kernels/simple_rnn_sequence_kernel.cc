// TensorFlow glue for the fused SimpleRNN sequence: op registration, shape functions, validation,
// allocation. The arithmetic is in simple_rnn_sequence.cc.
#define EIGEN_USE_THREADS

#include "rnn_kernel_util.h"
#include "simple_rnn_sequence.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace zoo {

using rnn::shapes::Sizes;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;

REGISTER_OP("ZooSimpleRnnSequence")
    .Input("inputs: T")
    .Input("initial_h: T")
    .Input("kernel: T")
    .Input("recurrent_kernel: T")
    .Input("bias: T")
    .Input("lengths: int32")
    .Output("outputs: T")
    .Output("final_h: T")
    .Output("states: T")
    .Output("step_inputs: T")
    .Attr("T: {float, double}")
    .Attr("reverse: bool = false")
    .Attr("zero_output_for_mask: bool = false")
    .Attr("keep_for_gradient: bool = true")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      return rnn::shapes::SetForwardOutputs(c, 3, 1, 1, {{1}, {1, true}});
    })
    .Doc(R"doc(
A whole fully connected RNN sequence, h_t = tanh(x_t W + h_{t-1} U + b), over right-padded
inputs of per-example lengths. states (each step's new state) is kept, time-major, for
ZooSimpleRnnSequenceGrad, and step_inputs [T, B, D + H] (x_t and the h each step started from)
for the weight gradients; with keep_for_gradient false (inference) they are not kept and have no
time steps.
)doc");

REGISTER_OP("ZooSimpleRnnSequenceGrad")
    .Input("inputs: T")
    .Input("kernel: T")
    .Input("recurrent_kernel: T")
    .Input("lengths: int32")
    .Input("states: T")
    .Input("step_inputs: T")
    .Input("d_outputs: T")
    .Input("d_final_h: T")
    .Output("d_inputs: T")
    .Output("d_initial_h: T")
    .Output("d_pre_activations: T")
    .Output("d_weights: T")
    .Output("d_bias: T")
    .Attr("T: {float, double}")
    .Attr("reverse: bool = false")
    .Attr("zero_output_for_mask: bool = false")
    .Attr("sum_weight_gradients: bool = false")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      Sizes s;
      bool sum_weight_gradients;
      TF_RETURN_IF_ERROR(rnn::shapes::SetGradientOutputs(c, 2, 1, 1, &s, &sum_weight_gradients));
      c->set_output(2, c->MakeShape({rnn::shapes::DimIf(c, !sum_weight_gradients, s.time), s.batch,
                                     s.units}));
      c->set_output(
          3, c->MakeShape({rnn::shapes::DimIf(c, sum_weight_gradients, s.step_width), s.units}));
      c->set_output(4, c->Vector(s.units));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Backpropagation through time of ZooSimpleRnnSequence in one kernel: the gradients of the inputs,
the initial state and the bias, and those of the kernel and the recurrent kernel,
step_inputs^T d_pre_activations ([D + H, H]: the kernel's rows first) for the time-major
[T, B, H] gradients d_pre_activations of x_t W + h_{t-1} U + b. With sum_weight_gradients the
kernel sums that product itself, block by block while the gradients are in cache (d_weights;
d_pre_activations has no time steps); otherwise it returns d_pre_activations for the caller to
form it as one large matrix product (d_weights has no rows).
)doc");

template <typename T>
class SimpleRnnSequenceOp : public rnn::SequenceKernel {
 public:
  explicit SimpleRnnSequenceOp(OpKernelConstruction* context)
      : SequenceKernel(context, "keep_for_gradient") {}

  void Compute(OpKernelContext* context) override {
    const Tensor& inputs = context->input(0);
    const Tensor& initial_h = context->input(1);
    const Tensor& kernel = context->input(2);
    const Tensor& recurrent_kernel = context->input(3);
    const Tensor& bias = context->input(4);
    const Tensor& lengths = context->input(5);
    RnnSizes s;
    OP_REQUIRES_OK(context, rnn::ReadSizes(inputs, kernel, recurrent_kernel, lengths, 1, &s));
    OP_REQUIRES_OK(context, rnn::RequireShapes({{initial_h, "initial_h", {s.batch, s.units}},
                                                {bias, "bias", {s.units}}}));
    const bool keep = produces_;  // keep_for_gradient
    std::vector<T*> out;          // outputs, final_h, states, step_inputs
    OP_REQUIRES_OK(context, rnn::AllocateOutputs<T>(context,
                                                    {{{s.batch, s.time, s.units}},
                                                     {{s.batch, s.units}},
                                                     {{s.time, s.batch, s.units}, keep},
                                                     {{s.time, s.batch, s.input + s.units}, keep}},
                                                    &out));
    SimpleRnnSequenceForward<T>(rnn::KernelWorkers(context), s, options_, rnn::Data<T>(inputs),
                                rnn::Data<T>(initial_h), rnn::Data<T>(kernel),
                                rnn::Data<T>(recurrent_kernel), rnn::Data<T>(bias),
                                rnn::Data<int32_t>(lengths), out[0], out[1], out[2], out[3]);
  }
};

template <typename T>
class SimpleRnnSequenceGradOp : public rnn::SequenceKernel {
 public:
  explicit SimpleRnnSequenceGradOp(OpKernelConstruction* context)
      : SequenceKernel(context, "sum_weight_gradients") {}

  void Compute(OpKernelContext* context) override {
    const Tensor& inputs = context->input(0);
    const Tensor& kernel = context->input(1);
    const Tensor& recurrent_kernel = context->input(2);
    const Tensor& lengths = context->input(3);
    const Tensor& states = context->input(4);
    const Tensor& step_inputs = context->input(5);
    const Tensor& d_outputs = context->input(6);
    const Tensor& d_final_h = context->input(7);
    RnnSizes s;
    OP_REQUIRES_OK(context, rnn::ReadSizes(inputs, kernel, recurrent_kernel, lengths, 1, &s));
    OP_REQUIRES_OK(context, rnn::RequireShapes(
                                {{states, "states", {s.time, s.batch, s.units}},
                                 {step_inputs, "step_inputs", {s.time, s.batch, s.input + s.units}},
                                 {d_outputs, "d_outputs", {s.batch, s.time, s.units}},
                                 {d_final_h, "d_final_h", {s.batch, s.units}}}));
    const bool sums = produces_;  // sum_weight_gradients
    std::vector<T*> out;          // d_inputs, d_initial_h, d_pre_activations, d_weights, d_bias
    OP_REQUIRES_OK(context, rnn::AllocateOutputs<T>(context,
                                                    {{inputs.shape()},
                                                     {{s.batch, s.units}},
                                                     {{s.time, s.batch, s.units}, !sums},
                                                     {{s.input + s.units, s.units}, sums},
                                                     {{s.units}}},
                                                    &out));
    SimpleRnnSequenceBackward<T>(rnn::KernelWorkers(context), s, options_, rnn::Data<T>(kernel),
                                 rnn::Data<T>(recurrent_kernel), rnn::Data<int32_t>(lengths),
                                 rnn::Data<T>(states), rnn::Data<T>(step_inputs),
                                 rnn::Data<T>(d_outputs), rnn::Data<T>(d_final_h), out[0], out[1],
                                 out[2], out[3], out[4]);
  }
};

#define ZOO_REGISTER_SIMPLE_RNN(T)                                                            \
  REGISTER_KERNEL_BUILDER(                                                                    \
      Name("ZooSimpleRnnSequence").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),     \
      SimpleRnnSequenceOp<T>);                                                                \
  REGISTER_KERNEL_BUILDER(                                                                    \
      Name("ZooSimpleRnnSequenceGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      SimpleRnnSequenceGradOp<T>);
ZOO_REGISTER_SIMPLE_RNN(float)
ZOO_REGISTER_SIMPLE_RNN(double)
#undef ZOO_REGISTER_SIMPLE_RNN

}  // namespace zoo
