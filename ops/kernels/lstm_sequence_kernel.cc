// TensorFlow glue for the fused LSTM sequence: op registration, shape functions, validation,
// allocation. The arithmetic is in lstm_sequence.cc.
#define EIGEN_USE_THREADS

#include "lstm_sequence.h"
#include "rnn_kernel_util.h"
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
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      rnn::InferredSizes s;
      TF_RETURN_IF_ERROR(rnn::InferSizes(c, 0, 4, 4, &s));
      auto state = c->MakeShape({s.batch, s.units});
      shape_inference::DimensionHandle step_width, kept_time;
      TF_RETURN_IF_ERROR(c->Add(s.input, s.units, &step_width));
      TF_RETURN_IF_ERROR(rnn::KeptTimeDim(c, s.time, &kept_time));
      c->set_output(0, c->MakeShape({s.batch, s.time, s.units}));
      c->set_output(1, state);
      c->set_output(2, state);
      c->set_output(3, c->MakeShape({kept_time, s.batch, s.gate_width}));
      c->set_output(4, c->MakeShape({kept_time, s.batch, step_width}));
      c->set_output(5, c->MakeShape({kept_time, s.batch, s.units}));
      return absl::OkStatus();
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
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      rnn::InferredSizes s;
      TF_RETURN_IF_ERROR(rnn::InferSizes(c, 0, 2, 4, &s));
      bool sum_weight_gradients;
      TF_RETURN_IF_ERROR(c->GetAttr("sum_weight_gradients", &sum_weight_gradients));
      auto state = c->MakeShape({s.batch, s.units});
      shape_inference::DimensionHandle step_width;
      TF_RETURN_IF_ERROR(c->Add(s.input, s.units, &step_width));
      c->set_output(0, c->input(0));
      c->set_output(1, state);
      c->set_output(2, state);
      c->set_output(3, c->MakeShape({rnn::DimIf(c, !sum_weight_gradients, s.time), s.batch,
                                     s.gate_width}));
      c->set_output(4, c->MakeShape({rnn::DimIf(c, sum_weight_gradients, step_width),
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

// Reads and checks the sizes shared by both LSTM kernels from inputs and recurrent_kernel.
static absl::Status ReadLstmSizes(const Tensor& inputs, const Tensor& recurrent_kernel,
                                  RnnSizes* sizes) {
  TF_RETURN_IF_ERROR(rnn::RequireRank(inputs, "inputs", 3));
  TF_RETURN_IF_ERROR(rnn::RequireRank(recurrent_kernel, "recurrent_kernel", 2));
  *sizes = {inputs.dim_size(0), inputs.dim_size(1), inputs.dim_size(2),
            recurrent_kernel.dim_size(0)};
  return rnn::RequireShape(recurrent_kernel, "recurrent_kernel",
                           {sizes->units, 4 * sizes->units});
}

template <typename T>
class LstmSequenceOp : public OpKernel {
 public:
  explicit LstmSequenceOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("reverse", &options_.reverse));
    OP_REQUIRES_OK(context,
                   context->GetAttr("zero_output_for_mask", &options_.zero_output_for_mask));
    OP_REQUIRES_OK(context, context->GetAttr("keep_for_gradient", &keep_for_gradient_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& inputs = context->input(0);
    const Tensor& initial_h = context->input(1);
    const Tensor& initial_c = context->input(2);
    const Tensor& kernel = context->input(3);
    const Tensor& recurrent_kernel = context->input(4);
    const Tensor& bias = context->input(5);
    const Tensor& lengths = context->input(6);
    RnnSizes s;
    OP_REQUIRES_OK(context, ReadLstmSizes(inputs, recurrent_kernel, &s));
    const int64_t width = 4 * s.units;
    OP_REQUIRES_OK(context, rnn::RequireShape(initial_h, "initial_h", {s.batch, s.units}));
    OP_REQUIRES_OK(context, rnn::RequireShape(initial_c, "initial_c", {s.batch, s.units}));
    OP_REQUIRES_OK(context, rnn::RequireShape(kernel, "kernel", {s.input, width}));
    OP_REQUIRES_OK(context, rnn::RequireShape(bias, "bias", {width}));
    OP_REQUIRES_OK(context, rnn::ValidateLengths(lengths, s.batch, s.time));

    Tensor *outputs, *final_h, *final_c, *gates, *step_inputs, *c_prev;
    const int64_t kept_time = rnn::SizeIf(keep_for_gradient_, s.time);
    OP_REQUIRES_OK(context,
                   context->allocate_output(0, TensorShape({s.batch, s.time, s.units}), &outputs));
    OP_REQUIRES_OK(context, context->allocate_output(1, initial_h.shape(), &final_h));
    OP_REQUIRES_OK(context, context->allocate_output(2, initial_c.shape(), &final_c));
    OP_REQUIRES_OK(context,
                   context->allocate_output(3, TensorShape({kept_time, s.batch, width}), &gates));
    OP_REQUIRES_OK(context,
                   context->allocate_output(
                       4, TensorShape({kept_time, s.batch, s.input + s.units}), &step_inputs));
    OP_REQUIRES_OK(context, context->allocate_output(
                                5, TensorShape({kept_time, s.batch, s.units}), &c_prev));
    LstmSequenceForward<T>(
        rnn::KernelWorkers(context), s, options_, inputs.flat<T>().data(),
        initial_h.flat<T>().data(), initial_c.flat<T>().data(), kernel.flat<T>().data(),
        recurrent_kernel.flat<T>().data(), bias.flat<T>().data(), lengths.flat<int32_t>().data(),
        outputs->flat<T>().data(), final_h->flat<T>().data(),
        final_c->flat<T>().data(), rnn::DataIf<T>(keep_for_gradient_, gates),
        rnn::DataIf<T>(keep_for_gradient_, step_inputs),
        rnn::DataIf<T>(keep_for_gradient_, c_prev));
  }

 private:
  RnnOptions options_;
  bool keep_for_gradient_;
};

template <typename T>
class LstmSequenceGradOp : public OpKernel {
 public:
  explicit LstmSequenceGradOp(OpKernelConstruction* context) : OpKernel(context) {
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
    const Tensor& gates = context->input(4);
    const Tensor& c_prev = context->input(5);
    const Tensor& step_inputs = context->input(6);
    const Tensor& d_outputs = context->input(7);
    const Tensor& d_final_h = context->input(8);
    const Tensor& d_final_c = context->input(9);
    RnnSizes s;
    OP_REQUIRES_OK(context, ReadLstmSizes(inputs, recurrent_kernel, &s));
    const int64_t width = 4 * s.units;
    OP_REQUIRES_OK(context, rnn::RequireShape(kernel, "kernel", {s.input, width}));
    OP_REQUIRES_OK(context, rnn::ValidateLengths(lengths, s.batch, s.time));
    OP_REQUIRES_OK(context, rnn::RequireShape(gates, "gates", {s.time, s.batch, width}));
    OP_REQUIRES_OK(context, rnn::RequireShape(c_prev, "c_prev", {s.time, s.batch, s.units}));
    OP_REQUIRES_OK(context, rnn::RequireShape(step_inputs, "step_inputs",
                                              {s.time, s.batch, s.input + s.units}));
    OP_REQUIRES_OK(context,
                   rnn::RequireShape(d_outputs, "d_outputs", {s.batch, s.time, s.units}));
    OP_REQUIRES_OK(context, rnn::RequireShape(d_final_h, "d_final_h", {s.batch, s.units}));
    OP_REQUIRES_OK(context, rnn::RequireShape(d_final_c, "d_final_c", {s.batch, s.units}));

    Tensor *d_inputs, *d_initial_h, *d_initial_c, *d_gates, *d_weights, *d_bias;
    OP_REQUIRES_OK(context, context->allocate_output(0, inputs.shape(), &d_inputs));
    OP_REQUIRES_OK(context, context->allocate_output(1, d_final_h.shape(), &d_initial_h));
    OP_REQUIRES_OK(context, context->allocate_output(2, d_final_c.shape(), &d_initial_c));
    const int64_t factor_time = rnn::SizeIf(!sum_weight_gradients_, s.time);
    const int64_t weight_rows = rnn::SizeIf(sum_weight_gradients_, s.input + s.units);
    OP_REQUIRES_OK(context, context->allocate_output(
                                3, TensorShape({factor_time, s.batch, width}), &d_gates));
    OP_REQUIRES_OK(context,
                   context->allocate_output(4, TensorShape({weight_rows, width}), &d_weights));
    OP_REQUIRES_OK(context, context->allocate_output(5, TensorShape({width}), &d_bias));
    LstmSequenceBackward<T>(
        rnn::KernelWorkers(context), s, options_, kernel.flat<T>().data(),
        recurrent_kernel.flat<T>().data(), lengths.flat<int32_t>().data(),
        gates.flat<T>().data(), c_prev.flat<T>().data(), step_inputs.flat<T>().data(),
        d_outputs.flat<T>().data(), d_final_h.flat<T>().data(), d_final_c.flat<T>().data(),
        d_inputs->flat<T>().data(),
        d_initial_h->flat<T>().data(), d_initial_c->flat<T>().data(),
        rnn::DataIf<T>(!sum_weight_gradients_, d_gates),
        rnn::DataIf<T>(sum_weight_gradients_, d_weights), d_bias->flat<T>().data());
  }

 private:
  RnnOptions options_;
  bool sum_weight_gradients_;
};

#define ZOO_REGISTER_LSTM(T)                                                                \
  REGISTER_KERNEL_BUILDER(                                                                  \
      Name("ZooLstmSequence").Device(DEVICE_CPU).TypeConstraint<T>("T"), LstmSequenceOp<T>); \
  REGISTER_KERNEL_BUILDER(Name("ZooLstmSequenceGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
                          LstmSequenceGradOp<T>);
ZOO_REGISTER_LSTM(float)
ZOO_REGISTER_LSTM(double)
#undef ZOO_REGISTER_LSTM

}  // namespace zoo
