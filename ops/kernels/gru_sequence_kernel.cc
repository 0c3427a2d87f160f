// TensorFlow glue for the fused GRU sequence: op registration, shape functions, validation,
// allocation. The arithmetic is in gru_sequence.cc.
#define EIGEN_USE_THREADS

#include "gru_sequence.h"
#include "rnn_kernel_util.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace zoo {

using rnn::shapes::Sizes;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

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
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      bool reset_after;
      TF_RETURN_IF_ERROR(c->GetAttr("reset_after", &reset_after));
      return rnn::shapes::SetForwardOutputs(c, 3, 3, 1, {{reset_after ? 4 : 3}, {1}});
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
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      Sizes s;
      bool sum_weight_gradients, reset_after;
      TF_RETURN_IF_ERROR(rnn::shapes::SetGradientOutputs(c, 2, 3, 1, &s, &sum_weight_gradients));
      TF_RETURN_IF_ERROR(c->GetAttr("reset_after", &reset_after));
      const auto factor_time = rnn::shapes::DimIf(c, !sum_weight_gradients, s.time);
      c->set_output(2, c->MakeShape({factor_time, s.batch, s.gate_width}));
      c->set_output(3, c->MakeShape({factor_time, s.batch, reset_after ? s.gate_width : s.units}));
      c->set_output(
          4, c->MakeShape({rnn::shapes::DimIf(c, sum_weight_gradients, s.input), s.gate_width}));
      c->set_output(
          5, c->MakeShape({rnn::shapes::DimIf(c, sum_weight_gradients, s.units), s.gate_width}));
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

static TensorShape GruBiasShape(int64_t units, bool reset_after) {
  return reset_after ? TensorShape({2, 3 * units}) : TensorShape({3 * units});
}

template <typename T>
class GruSequenceOp : public rnn::SequenceKernel {
 public:
  explicit GruSequenceOp(OpKernelConstruction* context)
      : SequenceKernel(context, "keep_for_gradient") {
    OP_REQUIRES_OK(context, context->GetAttr("reset_after", &reset_after_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& inputs = context->input(0);
    const Tensor& initial_h = context->input(1);
    const Tensor& kernel = context->input(2);
    const Tensor& recurrent_kernel = context->input(3);
    const Tensor& bias = context->input(4);
    const Tensor& lengths = context->input(5);
    RnnSizes s;
    OP_REQUIRES_OK(context, rnn::ReadSizes(inputs, kernel, recurrent_kernel, lengths, 3, &s));
    OP_REQUIRES_OK(context, rnn::RequireShape(initial_h, "initial_h", {s.batch, s.units}));
    const TensorShape bias_shape = GruBiasShape(s.units, reset_after_);
    OP_REQUIRES(context, bias.shape() == bias_shape,
                tensorflow::errors::InvalidArgument(
                    "bias must have shape ", bias_shape.DebugString(),
                    " (reset_after=", reset_after_, "), got ", bias.shape().DebugString()));
    const bool keep = produces_;  // keep_for_gradient
    std::vector<T*> out;          // outputs, final_h, gates, h_prev
    OP_REQUIRES_OK(context, rnn::AllocateOutputs<T>(
                                context,
                                {{{s.batch, s.time, s.units}},
                                 {{s.batch, s.units}},
                                 {{s.time, s.batch, GruGateWidth(s.units, reset_after_)}, keep},
                                 {{s.time, s.batch, s.units}, keep}},
                                &out));
    GruSequenceForward<T>(rnn::KernelWorkers(context), s, options_, reset_after_,
                          rnn::Data<T>(inputs), rnn::Data<T>(initial_h), rnn::Data<T>(kernel),
                          rnn::Data<T>(recurrent_kernel), rnn::Data<T>(bias),
                          rnn::Data<int32_t>(lengths), out[0], out[1], out[2], out[3]);
  }

 private:
  bool reset_after_;
};

template <typename T>
class GruSequenceGradOp : public rnn::SequenceKernel {
 public:
  explicit GruSequenceGradOp(OpKernelConstruction* context)
      : SequenceKernel(context, "sum_weight_gradients") {
    OP_REQUIRES_OK(context, context->GetAttr("reset_after", &reset_after_));
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
    OP_REQUIRES_OK(context, rnn::ReadSizes(inputs, kernel, recurrent_kernel, lengths, 3, &s));
    const int64_t width = 3 * s.units;
    OP_REQUIRES_OK(context,
                   rnn::RequireShapes(
                       {{gates, "gates", {s.time, s.batch, GruGateWidth(s.units, reset_after_)}},
                        {h_prev, "h_prev", {s.time, s.batch, s.units}},
                        {d_outputs, "d_outputs", {s.batch, s.time, s.units}},
                        {d_final_h, "d_final_h", {s.batch, s.units}}}));
    const bool sums = produces_;  // sum_weight_gradients
    // d_inputs, d_initial_h, d_projected, d_recurrent, d_kernel, d_recurrent_kernel, d_bias
    std::vector<T*> out;
    OP_REQUIRES_OK(context, rnn::AllocateOutputs<T>(
                                context,
                                {{inputs.shape()},
                                 {{s.batch, s.units}},
                                 {{s.time, s.batch, width}, !sums},
                                 {{s.time, s.batch, reset_after_ ? width : s.units}, !sums},
                                 {{s.input, width}, sums},
                                 {{s.units, width}, sums},
                                 {GruBiasShape(s.units, reset_after_)}},
                                &out));
    GruSequenceBackward<T>(
        rnn::KernelWorkers(context), s, options_, reset_after_, rnn::Data<T>(inputs),
        rnn::Data<T>(kernel), rnn::Data<T>(recurrent_kernel), rnn::Data<int32_t>(lengths),
        rnn::Data<T>(gates), rnn::Data<T>(h_prev), rnn::Data<T>(d_outputs), rnn::Data<T>(d_final_h),
        out[0], out[1], out[2], out[3], out[4], out[5], out[6]);
  }

 private:
  bool reset_after_;
};

#define ZOO_REGISTER_GRU(T)                                                             \
  REGISTER_KERNEL_BUILDER(                                                              \
      Name("ZooGruSequence").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),     \
      GruSequenceOp<T>);                                                                \
  REGISTER_KERNEL_BUILDER(                                                              \
      Name("ZooGruSequenceGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      GruSequenceGradOp<T>);
ZOO_REGISTER_GRU(float)
ZOO_REGISTER_GRU(double)
#undef ZOO_REGISTER_GRU

}  // namespace zoo
