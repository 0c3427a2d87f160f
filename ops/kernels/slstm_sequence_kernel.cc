// TensorFlow glue for the fused sLSTM sequence: op registration, shape functions, validation,
// allocation. The arithmetic is in slstm_sequence.cc.
#define EIGEN_USE_THREADS

#include "rnn_kernel_util.h"
#include "slstm_sequence.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace zoo {

using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

namespace {

// The shapes of an sLSTM op's outputs from `gates` [B, T, 4H] (input 0) and the recurrent kernel
// [heads, d, 4d] (input `kernel_index`): `sequences` outputs [B, T, H] then `states` of [B, H],
// then `kept` of [B, T, 4H].
absl::Status SetSlstmShapes(InferenceContext* c, int kernel_index, int sequences, int states,
                            int kept) {
  ShapeHandle gates, kernel;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &gates));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(kernel_index), 3, &kernel));
  DimensionHandle units, width;
  TF_RETURN_IF_ERROR(c->Multiply(c->Dim(kernel, 0), c->Dim(kernel, 1), &units));
  TF_RETURN_IF_ERROR(c->Multiply(units, 4, &width));
  TF_RETURN_IF_ERROR(c->Merge(width, c->Dim(gates, 2), &width));
  int index = 0;
  for (int i = 0; i < sequences; ++i) {
    c->set_output(index++, c->MakeShape({c->Dim(gates, 0), c->Dim(gates, 1), units}));
  }
  for (int i = 0; i < states; ++i) c->set_output(index++, c->MakeShape({c->Dim(gates, 0), units}));
  for (int i = 0; i < kept; ++i) {
    c->set_output(index++, c->MakeShape({c->Dim(gates, 0), c->Dim(gates, 1), width}));
  }
  return absl::OkStatus();
}

// The sizes from `gates` [B, T, 4H] (named `name`) and recurrent_kernel [heads, d, 4d], checked,
// and lengths [B] each in [0, T].
absl::Status ReadSizes(const Tensor& gates, const char* name, const Tensor& recurrent_kernel,
                       const Tensor& lengths, SlstmSizes* sizes) {
  TF_RETURN_IF_ERROR(rnn::RequireRank(gates, name, 3));
  TF_RETURN_IF_ERROR(rnn::RequireRank(recurrent_kernel, "recurrent_kernel", 3));
  *sizes = {gates.dim_size(0), gates.dim_size(1), recurrent_kernel.dim_size(0),
            recurrent_kernel.dim_size(1)};
  const int64_t units = sizes->units();
  TF_RETURN_IF_ERROR(rnn::RequireShapes({{recurrent_kernel,
                                          "recurrent_kernel",
                                          {sizes->heads, sizes->head_size, 4 * sizes->head_size}},
                                         {gates, name, {sizes->batch, sizes->time, 4 * units}}}));
  return rnn::ValidateLengths(lengths, sizes->batch, sizes->time);
}

}  // namespace

REGISTER_OP("ZooSlstmSequence")
    .Input("projected: T")
    .Input("recurrent_kernel: T")
    .Input("initial_h: T")
    .Input("initial_c: T")
    .Input("initial_n: T")
    .Input("initial_m: T")
    .Input("lengths: int32")
    .Output("outputs: T")
    .Output("final_h: T")
    .Output("final_c: T")
    .Output("final_n: T")
    .Output("final_m: T")
    .Output("pre: T")
    .Output("previous: T")
    .Attr("T: {float, double}")
    .Attr("reverse: bool = false")
    .Attr("zero_output_for_mask: bool = false")
    .SetShapeFn([](InferenceContext* c) { return SetSlstmShapes(c, 1, 1, 4, 2); })
    .Doc(R"doc(
A whole sLSTM sequence with num_heads block-diagonal recurrent weights over right-padded inputs
of per-example lengths. projected [B, T, 4H] is x_t W + b (gates i, f, z, o); recurrent_kernel
[heads, d, 4d] holds each head's gates. pre (each step's gate pre-activations) and previous (the
h, c, n, m each step started from), [B, T, 4H] and zero at padded steps, are kept for
ZooSlstmSequenceGrad.
)doc");

REGISTER_OP("ZooSlstmSequenceGrad")
    .Input("pre: T")
    .Input("recurrent_kernel: T")
    .Input("lengths: int32")
    .Input("previous: T")
    .Input("d_outputs: T")
    .Input("d_final_h: T")
    .Input("d_final_c: T")
    .Input("d_final_n: T")
    .Input("d_final_m: T")
    .Output("d_projected: T")
    .Output("d_initial_h: T")
    .Output("d_initial_c: T")
    .Output("d_initial_n: T")
    .Output("d_initial_m: T")
    .Attr("T: {float, double}")
    .Attr("reverse: bool = false")
    .Attr("zero_output_for_mask: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(SetSlstmShapes(c, 1, 0, 0, 0));
      c->set_output(0, c->input(0));
      ShapeHandle final_h;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(5), 2, &final_h));
      for (int s = 1; s <= 4; ++s) c->set_output(s, final_h);
      return absl::OkStatus();
    })
    .Doc(R"doc(
Backpropagation through time of ZooSlstmSequence: the gradients of projected (zero at padded
steps) and of the initial states. The recurrent kernel's gradient is formed outside from
previous's h and d_projected, head by head.
)doc");

template <typename T>
class SlstmSequenceOp : public rnn::SequenceKernel {
 public:
  explicit SlstmSequenceOp(OpKernelConstruction* context) : SequenceKernel(context, nullptr) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& projected = context->input(0);
    const Tensor& recurrent_kernel = context->input(1);
    const Tensor& lengths = context->input(6);
    SlstmSizes s;
    OP_REQUIRES_OK(context, ReadSizes(projected, "projected", recurrent_kernel, lengths, &s));
    const int64_t units = s.units();
    OP_REQUIRES_OK(context,
                   rnn::RequireShapes({{context->input(2), "initial_h", {s.batch, units}},
                                       {context->input(3), "initial_c", {s.batch, units}},
                                       {context->input(4), "initial_n", {s.batch, units}},
                                       {context->input(5), "initial_m", {s.batch, units}}}));
    std::vector<T*> out;  // outputs, final h, c, n, m, pre, previous
    OP_REQUIRES_OK(context, rnn::AllocateOutputs<T>(context,
                                                    {{{s.batch, s.time, units}},
                                                     {{s.batch, units}},
                                                     {{s.batch, units}},
                                                     {{s.batch, units}},
                                                     {{s.batch, units}},
                                                     {projected.shape()},
                                                     {projected.shape()}},
                                                    &out));
    SlstmSequenceForward<T>(rnn::KernelWorkers(context), s, options_, rnn::Data<T>(projected),
                            rnn::Data<T>(recurrent_kernel),
                            {rnn::Data<T>(context->input(2)), rnn::Data<T>(context->input(3)),
                             rnn::Data<T>(context->input(4)), rnn::Data<T>(context->input(5))},
                            rnn::Data<int32_t>(lengths), out[0], {out[1], out[2], out[3], out[4]},
                            out[5], out[6]);
  }
};

template <typename T>
class SlstmSequenceGradOp : public rnn::SequenceKernel {
 public:
  explicit SlstmSequenceGradOp(OpKernelConstruction* context) : SequenceKernel(context, nullptr) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& pre = context->input(0);
    const Tensor& recurrent_kernel = context->input(1);
    const Tensor& lengths = context->input(2);
    const Tensor& previous = context->input(3);
    const Tensor& d_outputs = context->input(4);
    SlstmSizes s;
    OP_REQUIRES_OK(context, ReadSizes(pre, "pre", recurrent_kernel, lengths, &s));
    const int64_t units = s.units();
    OP_REQUIRES_OK(context,
                   rnn::RequireShapes({{previous, "previous", pre.shape()},
                                       {d_outputs, "d_outputs", {s.batch, s.time, units}},
                                       {context->input(5), "d_final_h", {s.batch, units}},
                                       {context->input(6), "d_final_c", {s.batch, units}},
                                       {context->input(7), "d_final_n", {s.batch, units}},
                                       {context->input(8), "d_final_m", {s.batch, units}}}));
    std::vector<T*> out;  // d_projected, d_initial h, c, n, m
    OP_REQUIRES_OK(context, rnn::AllocateOutputs<T>(context,
                                                    {{pre.shape()},
                                                     {{s.batch, units}},
                                                     {{s.batch, units}},
                                                     {{s.batch, units}},
                                                     {{s.batch, units}}},
                                                    &out));
    SlstmSequenceBackward<T>(rnn::KernelWorkers(context), s, options_,
                             rnn::Data<T>(recurrent_kernel), rnn::Data<int32_t>(lengths),
                             rnn::Data<T>(pre), rnn::Data<T>(previous), rnn::Data<T>(d_outputs),
                             {rnn::Data<T>(context->input(5)), rnn::Data<T>(context->input(6)),
                              rnn::Data<T>(context->input(7)), rnn::Data<T>(context->input(8))},
                             out[0], {out[1], out[2], out[3], out[4]});
  }
};

#define ZOO_REGISTER_SLSTM(T)                                                             \
  REGISTER_KERNEL_BUILDER(                                                                \
      Name("ZooSlstmSequence").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),     \
      SlstmSequenceOp<T>);                                                                \
  REGISTER_KERNEL_BUILDER(                                                                \
      Name("ZooSlstmSequenceGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      SlstmSequenceGradOp<T>);
ZOO_REGISTER_SLSTM(float)
ZOO_REGISTER_SLSTM(double)
#undef ZOO_REGISTER_SLSTM

}  // namespace zoo
