// TensorFlow glue for the fused GRU sequence: op registration, shape functions, validation,
// allocation. The arithmetic is in gru_sequence.cc.
#define EIGEN_USE_THREADS

#include "gru_sequence.h"
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

REGISTER_OP("ZooGruSequence")
    .Input("inputs: T")
    .Input("initial_h: T")
    .Input("kernel: T")
    .Input("recurrent_kernel: T")
    .Input("bias: T")
    .Input("lengths: int32")
    .Output("outputs: T")
    .Output("final_h: T")
    .Output("gates: T")
    .Output("h_prev: T")
    .Attr("T: {float, double}")
    .Attr("reset_after: bool = true")
    .Attr("reverse: bool = false")
    .Attr("zero_output_for_mask: bool = false")
    .Attr("keep_for_gradient: bool = true")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      rnn::InferredSizes s;
      TF_RETURN_IF_ERROR(rnn::InferSizes(c, 0, 3, 3, &s));
      bool reset_after;
      TF_RETURN_IF_ERROR(c->GetAttr("reset_after", &reset_after));
      shape_inference::DimensionHandle gate_width, kept_time;
      TF_RETURN_IF_ERROR(c->Multiply(s.units, reset_after ? 4 : 3, &gate_width));
      TF_RETURN_IF_ERROR(rnn::KeptTimeDim(c, s.time, &kept_time));
      c->set_output(0, c->MakeShape({s.batch, s.time, s.units}));
      c->set_output(1, c->MakeShape({s.batch, s.units}));
      c->set_output(2, c->MakeShape({kept_time, s.batch, gate_width}));
      c->set_output(3, c->MakeShape({kept_time, s.batch, s.units}));
      return absl::OkStatus();
    })
    .Doc(R"doc(
A whole GRU sequence (Keras gate order z, r, h; tanh and sigmoid) over right-padded inputs of
per-example lengths. bias is [2, 3H] with reset_after, [3H] without. gates and h_prev are kept,
time-major, for ZooGruSequenceGrad; with keep_for_gradient false (inference) they are not kept
and have no time steps.
)doc");

REGISTER_OP("ZooGruSequenceGrad")
    .Input("inputs: T")
    .Input("kernel: T")
    .Input("recurrent_kernel: T")
    .Input("lengths: int32")
    .Input("gates: T")
    .Input("h_prev: T")
    .Input("d_outputs: T")
    .Input("d_final_h: T")
    .Output("d_inputs: T")
    .Output("d_initial_h: T")
    .Output("d_projected: T")
    .Output("d_recurrent: T")
    .Output("d_kernel: T")
    .Output("d_recurrent_kernel: T")
    .Output("d_bias: T")
    .Attr("T: {float, double}")
    .Attr("reset_after: bool = true")
    .Attr("reverse: bool = false")
    .Attr("zero_output_for_mask: bool = false")
    .Attr("sum_weight_gradients: bool = false")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      rnn::InferredSizes s;
      TF_RETURN_IF_ERROR(rnn::InferSizes(c, 0, 2, 3, &s));
      bool reset_after, sum_weight_gradients;
      TF_RETURN_IF_ERROR(c->GetAttr("reset_after", &reset_after));
      TF_RETURN_IF_ERROR(c->GetAttr("sum_weight_gradients", &sum_weight_gradients));
      const auto factor_time = rnn::DimIf(c, !sum_weight_gradients, s.time);
      c->set_output(0, c->input(0));
      c->set_output(1, c->MakeShape({s.batch, s.units}));
      c->set_output(2, c->MakeShape({factor_time, s.batch, s.gate_width}));
      c->set_output(3, c->MakeShape({factor_time, s.batch, reset_after ? s.gate_width : s.units}));
      c->set_output(4, c->MakeShape({rnn::DimIf(c, sum_weight_gradients, s.input), s.gate_width}));
      c->set_output(5, c->MakeShape({rnn::DimIf(c, sum_weight_gradients, s.units), s.gate_width}));
      c->set_output(6, reset_after ? c->MakeShape({2, s.gate_width}) : c->Vector(s.gate_width));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Backpropagation through time of ZooGruSequence in one kernel: the gradients of the inputs, the
initial state and the bias, and the time-major factors of the weight gradients, which the caller
forms as large matrix products: d_projected [T, B, 3H], the gradients of inputs * kernel
(d_kernel = inputs^T d_projected); d_recurrent, with reset_after the gradients of
h_prev * recurrent_kernel (d_recurrent_kernel = h_prev^T d_recurrent), otherwise r * h_prev
[T, B, H] (the recurrent kernel's last H columns get d_recurrent^T d_projected[..., 2H:], the
others h_prev^T d_projected[..., :2H]). With sum_weight_gradients the kernel sums those products
itself, block by block while the factors are in cache, into d_kernel and d_recurrent_kernel, and
d_projected and d_recurrent have no time steps; otherwise d_kernel and d_recurrent_kernel have no
rows.
)doc");

static absl::Status ReadGruSizes(const Tensor& inputs, const Tensor& recurrent_kernel,
                                 RnnSizes* sizes) {
  TF_RETURN_IF_ERROR(rnn::RequireRank(inputs, "inputs", 3));
  TF_RETURN_IF_ERROR(rnn::RequireRank(recurrent_kernel, "recurrent_kernel", 2));
  *sizes = {inputs.dim_size(0), inputs.dim_size(1), inputs.dim_size(2),
            recurrent_kernel.dim_size(0)};
  return rnn::RequireShape(recurrent_kernel, "recurrent_kernel",
                           {sizes->units, 3 * sizes->units});
}

static TensorShape GruBiasShape(int64_t units, bool reset_after) {
  return reset_after ? TensorShape({2, 3 * units}) : TensorShape({3 * units});
}

// Attributes shared by both GRU kernels.
struct GruAttributes {
  RnnOptions options;
  bool reset_after;

  explicit GruAttributes(OpKernelConstruction* context) {
    OP_REQUIRES_OK(context, context->GetAttr("reverse", &options.reverse));
    OP_REQUIRES_OK(context,
                   context->GetAttr("zero_output_for_mask", &options.zero_output_for_mask));
    OP_REQUIRES_OK(context, context->GetAttr("reset_after", &reset_after));
  }
};

template <typename T>
class GruSequenceOp : public OpKernel {
 public:
  explicit GruSequenceOp(OpKernelConstruction* context) : OpKernel(context), attrs_(context) {
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
    OP_REQUIRES_OK(context, ReadGruSizes(inputs, recurrent_kernel, &s));
    const int64_t width = 3 * s.units;
    OP_REQUIRES_OK(context, rnn::RequireShape(initial_h, "initial_h", {s.batch, s.units}));
    OP_REQUIRES_OK(context, rnn::RequireShape(kernel, "kernel", {s.input, width}));
    const TensorShape bias_shape = GruBiasShape(s.units, attrs_.reset_after);
    OP_REQUIRES(context, bias.shape() == bias_shape,
                tensorflow::errors::InvalidArgument(
                    "bias must have shape ", bias_shape.DebugString(), " (reset_after=",
                    attrs_.reset_after, "), got ", bias.shape().DebugString()));
    OP_REQUIRES_OK(context, rnn::ValidateLengths(lengths, s.batch, s.time));

    Tensor *outputs, *final_h, *gates, *h_prev;
    OP_REQUIRES_OK(context,
                   context->allocate_output(0, TensorShape({s.batch, s.time, s.units}), &outputs));
    OP_REQUIRES_OK(context, context->allocate_output(1, initial_h.shape(), &final_h));
    const int64_t kept_time = rnn::SizeIf(keep_for_gradient_, s.time);
    OP_REQUIRES_OK(
        context,
        context->allocate_output(
            2, TensorShape({kept_time, s.batch, GruGateWidth(s.units, attrs_.reset_after)}),
            &gates));
    OP_REQUIRES_OK(context,
                   context->allocate_output(3, TensorShape({kept_time, s.batch, s.units}), &h_prev));
    GruSequenceForward<T>(rnn::KernelWorkers(context), s, attrs_.options,
                          attrs_.reset_after, inputs.flat<T>().data(),
                          initial_h.flat<T>().data(), kernel.flat<T>().data(),
                          recurrent_kernel.flat<T>().data(), bias.flat<T>().data(),
                          lengths.flat<int32_t>().data(), outputs->flat<T>().data(),
                          final_h->flat<T>().data(),
                          rnn::DataIf<T>(keep_for_gradient_, gates),
                          rnn::DataIf<T>(keep_for_gradient_, h_prev));
  }

 private:
  GruAttributes attrs_;
  bool keep_for_gradient_;
};

template <typename T>
class GruSequenceGradOp : public OpKernel {
 public:
  explicit GruSequenceGradOp(OpKernelConstruction* context)
      : OpKernel(context), attrs_(context) {
    OP_REQUIRES_OK(context, context->GetAttr("sum_weight_gradients", &sum_weight_gradients_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& inputs = context->input(0);
    const Tensor& kernel = context->input(1);
    const Tensor& recurrent_kernel = context->input(2);
    const Tensor& lengths = context->input(3);
    const Tensor& gates = context->input(4);
    const Tensor& h_prev = context->input(5);
    const Tensor& d_outputs = context->input(6);
    const Tensor& d_final_h = context->input(7);
    RnnSizes s;
    OP_REQUIRES_OK(context, ReadGruSizes(inputs, recurrent_kernel, &s));
    const int64_t width = 3 * s.units;
    OP_REQUIRES_OK(context, rnn::RequireShape(kernel, "kernel", {s.input, width}));
    OP_REQUIRES_OK(context, rnn::ValidateLengths(lengths, s.batch, s.time));
    OP_REQUIRES_OK(context,
                   rnn::RequireShape(gates, "gates",
                                     {s.time, s.batch, GruGateWidth(s.units, attrs_.reset_after)}));
    OP_REQUIRES_OK(context, rnn::RequireShape(h_prev, "h_prev", {s.time, s.batch, s.units}));
    OP_REQUIRES_OK(context,
                   rnn::RequireShape(d_outputs, "d_outputs", {s.batch, s.time, s.units}));
    OP_REQUIRES_OK(context, rnn::RequireShape(d_final_h, "d_final_h", {s.batch, s.units}));

    Tensor *d_inputs, *d_initial_h, *d_projected, *d_recurrent, *d_kernel, *d_recurrent_kernel,
        *d_bias;
    const int64_t factor_time = rnn::SizeIf(!sum_weight_gradients_, s.time);
    OP_REQUIRES_OK(context, context->allocate_output(0, inputs.shape(), &d_inputs));
    OP_REQUIRES_OK(context, context->allocate_output(1, d_final_h.shape(), &d_initial_h));
    OP_REQUIRES_OK(context, context->allocate_output(2, TensorShape({factor_time, s.batch, width}),
                                                     &d_projected));
    OP_REQUIRES_OK(context,
                   context->allocate_output(
                       3, TensorShape({factor_time, s.batch, attrs_.reset_after ? width : s.units}),
                       &d_recurrent));
    const int64_t kernel_rows = rnn::SizeIf(sum_weight_gradients_, s.input);
    const int64_t recurrent_rows = rnn::SizeIf(sum_weight_gradients_, s.units);
    OP_REQUIRES_OK(context,
                   context->allocate_output(4, TensorShape({kernel_rows, width}), &d_kernel));
    OP_REQUIRES_OK(context, context->allocate_output(5, TensorShape({recurrent_rows, width}),
                                                     &d_recurrent_kernel));
    OP_REQUIRES_OK(context, context->allocate_output(
                                6, GruBiasShape(s.units, attrs_.reset_after), &d_bias));
    GruSequenceBackward<T>(
        rnn::KernelWorkers(context), s, attrs_.options, attrs_.reset_after,
        inputs.flat<T>().data(), kernel.flat<T>().data(), recurrent_kernel.flat<T>().data(),
        lengths.flat<int32_t>().data(), gates.flat<T>().data(), h_prev.flat<T>().data(),
        d_outputs.flat<T>().data(), d_final_h.flat<T>().data(),
        d_inputs->flat<T>().data(),
        d_initial_h->flat<T>().data(),
        rnn::DataIf<T>(!sum_weight_gradients_, d_projected),
        rnn::DataIf<T>(!sum_weight_gradients_, d_recurrent),
        rnn::DataIf<T>(sum_weight_gradients_, d_kernel),
        rnn::DataIf<T>(sum_weight_gradients_, d_recurrent_kernel),
        d_bias->flat<T>().data());
  }

 private:
  GruAttributes attrs_;
  bool sum_weight_gradients_;
};

#define ZOO_REGISTER_GRU(T)                                                                   \
  REGISTER_KERNEL_BUILDER(Name("ZooGruSequence").Device(DEVICE_CPU).TypeConstraint<T>("T"),  \
                          GruSequenceOp<T>);                                                  \
  REGISTER_KERNEL_BUILDER(Name("ZooGruSequenceGrad").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
                          GruSequenceGradOp<T>);
ZOO_REGISTER_GRU(float)
ZOO_REGISTER_GRU(double)
#undef ZOO_REGISTER_GRU

}  // namespace zoo
