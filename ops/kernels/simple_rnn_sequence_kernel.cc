// TensorFlow glue for the fused SimpleRNN sequence: op registration, shape functions, validation,
// allocation. The arithmetic is in simple_rnn_sequence.cc.
#define EIGEN_USE_THREADS

#include "rnn_kernel_util.h"
#include "simple_rnn_sequence.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace zoo {

using tensorflow::DEVICE_CPU;
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
namespace shape_inference = tensorflow::shape_inference;

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
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      rnn::InferredSizes s;
      TF_RETURN_IF_ERROR(rnn::InferSizes(c, 0, 3, 1, &s));
      shape_inference::DimensionHandle step_width, kept_time;
      TF_RETURN_IF_ERROR(c->Add(s.input, s.units, &step_width));
      TF_RETURN_IF_ERROR(rnn::KeptTimeDim(c, s.time, &kept_time));
      c->set_output(0, c->MakeShape({s.batch, s.time, s.units}));
      c->set_output(1, c->MakeShape({s.batch, s.units}));
      c->set_output(2, c->MakeShape({kept_time, s.batch, s.units}));
      c->set_output(3, c->MakeShape({kept_time, s.batch, step_width}));
      return absl::OkStatus();
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
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      rnn::InferredSizes s;
      TF_RETURN_IF_ERROR(rnn::InferSizes(c, 0, 2, 1, &s));
      bool sum_weight_gradients;
      TF_RETURN_IF_ERROR(c->GetAttr("sum_weight_gradients", &sum_weight_gradients));
      shape_inference::DimensionHandle step_width;
      TF_RETURN_IF_ERROR(c->Add(s.input, s.units, &step_width));
      c->set_output(0, c->input(0));
      c->set_output(1, c->MakeShape({s.batch, s.units}));
      c->set_output(2, c->MakeShape({rnn::DimIf(c, !sum_weight_gradients, s.time), s.batch,
                                     s.units}));
      c->set_output(3, c->MakeShape({rnn::DimIf(c, sum_weight_gradients, step_width), s.units}));
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

// Reads and checks the sizes shared by both SimpleRNN kernels from inputs, kernel and
// recurrent_kernel.
static absl::Status ReadSimpleRnnSizes(const Tensor& inputs, const Tensor& kernel,
                                       const Tensor& recurrent_kernel, RnnSizes* sizes) {
  TF_RETURN_IF_ERROR(rnn::RequireRank(inputs, "inputs", 3));
  TF_RETURN_IF_ERROR(rnn::RequireRank(recurrent_kernel, "recurrent_kernel", 2));
  *sizes = {inputs.dim_size(0), inputs.dim_size(1), inputs.dim_size(2),
            recurrent_kernel.dim_size(0)};
  TF_RETURN_IF_ERROR(
      rnn::RequireShape(recurrent_kernel, "recurrent_kernel", {sizes->units, sizes->units}));
  return rnn::RequireShape(kernel, "kernel", {sizes->input, sizes->units});
}

template <typename T>
class SimpleRnnSequenceOp : public OpKernel {
 public:
  explicit SimpleRnnSequenceOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("reverse", &options_.reverse));
    OP_REQUIRES_OK(context,
                   context->GetAttr("zero_output_for_mask", &options_.zero_output_for_mask));
    OP_REQUIRES_OK(context, context->GetAttr("keep_for_gradient", &keep_for_gradient_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& inputs = context->input(0);
    const Tensor& initial_h = context->input(1);
    const Tensor& kernel = context->input(2);
    const Tensor& recurrent_kernel = context->input(3);
    const Tensor& bias = context->input(4);
    const Tensor& lengths = context->input(5);
    RnnSizes s;
    OP_REQUIRES_OK(context, ReadSimpleRnnSizes(inputs, kernel, recurrent_kernel, &s));
    OP_REQUIRES_OK(context, rnn::RequireShape(initial_h, "initial_h", {s.batch, s.units}));
    OP_REQUIRES_OK(context, rnn::RequireShape(bias, "bias", {s.units}));
    OP_REQUIRES_OK(context, rnn::ValidateLengths(lengths, s.batch, s.time));

    Tensor *outputs, *final_h, *states, *step_inputs;
    const int64_t kept_time = rnn::SizeIf(keep_for_gradient_, s.time);
    OP_REQUIRES_OK(context,
                   context->allocate_output(0, TensorShape({s.batch, s.time, s.units}), &outputs));
    OP_REQUIRES_OK(context, context->allocate_output(1, initial_h.shape(), &final_h));
    OP_REQUIRES_OK(context, context->allocate_output(
                                2, TensorShape({kept_time, s.batch, s.units}), &states));
    OP_REQUIRES_OK(context,
                   context->allocate_output(
                       3, TensorShape({kept_time, s.batch, s.input + s.units}), &step_inputs));
    SimpleRnnSequenceForward<T>(
        rnn::KernelWorkers(context), s, options_, inputs.flat<T>().data(),
        initial_h.flat<T>().data(), kernel.flat<T>().data(), recurrent_kernel.flat<T>().data(),
        bias.flat<T>().data(), lengths.flat<int32_t>().data(),
        outputs->flat<T>().data(),
        final_h->flat<T>().data(), rnn::DataIf<T>(keep_for_gradient_, states),
        rnn::DataIf<T>(keep_for_gradient_, step_inputs));
  }

 private:
  RnnOptions options_;
  bool keep_for_gradient_;
};

template <typename T>
class SimpleRnnSequenceGradOp : public OpKernel {
 public:
  explicit SimpleRnnSequenceGradOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("reverse", &options_.reverse));
    OP_REQUIRES_OK(context,
                   context->GetAttr("zero_output_for_mask", &options_.zero_output_for_mask));
    OP_REQUIRES_OK(context, context->GetAttr("sum_weight_gradients", &sum_weight_gradients_));
  }

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
    OP_REQUIRES_OK(context, ReadSimpleRnnSizes(inputs, kernel, recurrent_kernel, &s));
    OP_REQUIRES_OK(context, rnn::ValidateLengths(lengths, s.batch, s.time));
    OP_REQUIRES_OK(context, rnn::RequireShape(states, "states", {s.time, s.batch, s.units}));
    OP_REQUIRES_OK(context, rnn::RequireShape(step_inputs, "step_inputs",
                                              {s.time, s.batch, s.input + s.units}));
    OP_REQUIRES_OK(context,
                   rnn::RequireShape(d_outputs, "d_outputs", {s.batch, s.time, s.units}));
    OP_REQUIRES_OK(context, rnn::RequireShape(d_final_h, "d_final_h", {s.batch, s.units}));

    Tensor *d_inputs, *d_initial_h, *d_pre, *d_weights, *d_bias;
    OP_REQUIRES_OK(context, context->allocate_output(0, inputs.shape(), &d_inputs));
    OP_REQUIRES_OK(context, context->allocate_output(1, d_final_h.shape(), &d_initial_h));
    const int64_t factor_time = rnn::SizeIf(!sum_weight_gradients_, s.time);
    const int64_t weight_rows = rnn::SizeIf(sum_weight_gradients_, s.input + s.units);
    OP_REQUIRES_OK(context, context->allocate_output(
                                2, TensorShape({factor_time, s.batch, s.units}), &d_pre));
    OP_REQUIRES_OK(context,
                   context->allocate_output(3, TensorShape({weight_rows, s.units}), &d_weights));
    OP_REQUIRES_OK(context, context->allocate_output(4, TensorShape({s.units}), &d_bias));
    SimpleRnnSequenceBackward<T>(
        rnn::KernelWorkers(context), s, options_, kernel.flat<T>().data(),
        recurrent_kernel.flat<T>().data(), lengths.flat<int32_t>().data(),
        states.flat<T>().data(), step_inputs.flat<T>().data(), d_outputs.flat<T>().data(),
        d_final_h.flat<T>().data(), d_inputs->flat<T>().data(), d_initial_h->flat<T>().data(),
        rnn::DataIf<T>(!sum_weight_gradients_, d_pre),
        rnn::DataIf<T>(sum_weight_gradients_, d_weights), d_bias->flat<T>().data());
  }

 private:
  RnnOptions options_;
  bool sum_weight_gradients_;
};

#define ZOO_REGISTER_SIMPLE_RNN(T)                                                           \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("ZooSimpleRnnSequence").Device(DEVICE_CPU).TypeConstraint<T>("T"),                \
      SimpleRnnSequenceOp<T>);                                                               \
  REGISTER_KERNEL_BUILDER(                                                                   \
      Name("ZooSimpleRnnSequenceGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"),            \
      SimpleRnnSequenceGradOp<T>);
ZOO_REGISTER_SIMPLE_RNN(float)
ZOO_REGISTER_SIMPLE_RNN(double)
#undef ZOO_REGISTER_SIMPLE_RNN

}  // namespace zoo
