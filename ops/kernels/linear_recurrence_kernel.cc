// TensorFlow glue for the element-wise linear recurrence: op registration, shape functions,
// validation, allocation. The arithmetic is in linear_recurrence.cc.
#define EIGEN_USE_THREADS

#include <string>

#include "linear_recurrence.h"
#include "rnn_kernel_util.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace zoo {

using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("ZooLinearRecurrence")
    .Input("a: T")
    .Input("b: T")
    .Input("initial_h: T")
    .Input("lengths: int32")
    .Output("outputs: T")
    .Output("final_h: T")
    .Attr("T: {float, double}")
    .Attr("reverse: bool = false")
    .Attr("zero_output_for_mask: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle a, b;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &a));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &b));
      TF_RETURN_IF_ERROR(c->Merge(a, b, &a));
      c->set_output(0, a);
      c->set_output(1, c->MakeShape({c->Dim(a, 0), c->Dim(a, 2)}));
      return absl::OkStatus();
    })
    .Doc(R"doc(
The element-wise linear recurrence h_t = a_t * h_{t-1} + b_t over right-padded sequences of
per-example lengths (a padded step carries h), from initial_h. a and b are [B, T, H], indexed by
input time; outputs [B, T, H] are in processing order (t = T-1 .. 0 with reverse), with Keras's
padding rule at padded steps.
)doc");

REGISTER_OP("ZooLinearRecurrenceGrad")
    .Input("a: T")
    .Input("initial_h: T")
    .Input("lengths: int32")
    .Input("outputs: T")
    .Input("d_outputs: T")
    .Input("d_final_h: T")
    .Output("d_a: T")
    .Output("d_b: T")
    .Output("d_initial_h: T")
    .Attr("T: {float, double}")
    .Attr("reverse: bool = false")
    .Attr("zero_output_for_mask: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle a;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &a));
      c->set_output(0, a);
      c->set_output(1, a);
      c->set_output(2, c->MakeShape({c->Dim(a, 0), c->Dim(a, 2)}));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Backpropagation through ZooLinearRecurrence: the gradients of a, b (zero at padded steps) and
initial_h, from those of its outputs and final_h. Reads the forward's outputs as the states.
)doc");

namespace {

// The sizes from a [B, T, H], checked, and lengths [B] each in [0, T].
absl::Status ReadSizes(const Tensor& a, const Tensor& lengths, LinearRecurrenceSizes* sizes) {
  TF_RETURN_IF_ERROR(rnn::RequireRank(a, "a", 3));
  *sizes = {a.dim_size(0), a.dim_size(1), a.dim_size(2)};
  return rnn::ValidateLengths(lengths, sizes->batch, sizes->time);
}

}  // namespace

template <typename T>
class LinearRecurrenceOp : public rnn::SequenceKernel {
 public:
  explicit LinearRecurrenceOp(OpKernelConstruction* context) : SequenceKernel(context, nullptr) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& a = context->input(0);
    const Tensor& b = context->input(1);
    const Tensor& initial_h = context->input(2);
    const Tensor& lengths = context->input(3);
    LinearRecurrenceSizes s;
    OP_REQUIRES_OK(context, ReadSizes(a, lengths, &s));
    OP_REQUIRES_OK(context, rnn::RequireShapes({{b, "b", a.shape()},
                                                {initial_h, "initial_h", {s.batch, s.units}}}));
    std::vector<T*> out;  // outputs, final_h
    OP_REQUIRES_OK(context,
                   rnn::AllocateOutputs<T>(context, {{a.shape()}, {{s.batch, s.units}}}, &out));
    LinearRecurrenceForward<T>(rnn::KernelWorkers(context), s, options_, rnn::Data<T>(a),
                               rnn::Data<T>(b), rnn::Data<T>(initial_h),
                               rnn::Data<int32_t>(lengths), out[0], out[1]);
  }
};

template <typename T>
class LinearRecurrenceGradOp : public rnn::SequenceKernel {
 public:
  explicit LinearRecurrenceGradOp(OpKernelConstruction* context)
      : SequenceKernel(context, nullptr) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& a = context->input(0);
    const Tensor& initial_h = context->input(1);
    const Tensor& lengths = context->input(2);
    const Tensor& outputs = context->input(3);
    const Tensor& d_outputs = context->input(4);
    const Tensor& d_final_h = context->input(5);
    LinearRecurrenceSizes s;
    OP_REQUIRES_OK(context, ReadSizes(a, lengths, &s));
    OP_REQUIRES_OK(context, rnn::RequireShapes({{initial_h, "initial_h", {s.batch, s.units}},
                                                {outputs, "outputs", a.shape()},
                                                {d_outputs, "d_outputs", a.shape()},
                                                {d_final_h, "d_final_h", {s.batch, s.units}}}));
    std::vector<T*> out;  // d_a, d_b, d_initial_h
    OP_REQUIRES_OK(context, rnn::AllocateOutputs<T>(
                                context, {{a.shape()}, {a.shape()}, {{s.batch, s.units}}}, &out));
    LinearRecurrenceBackward<T>(rnn::KernelWorkers(context), s, options_, rnn::Data<T>(a),
                                rnn::Data<T>(initial_h), rnn::Data<int32_t>(lengths),
                                rnn::Data<T>(outputs), rnn::Data<T>(d_outputs),
                                rnn::Data<T>(d_final_h), out[0], out[1], out[2]);
  }
};

REGISTER_OP("ZooGatedLinearRecurrence")
    .Input("projected: T")
    .Input("log_base: T")
    .Input("initial_h: T")
    .Input("lengths: int32")
    .Output("outputs: T")
    .Output("final_h: T")
    .Attr("T: {float, double}")
    .Attr("cell: {'min_gru', 'min_lstm', 'rg_lru'}")
    .Attr("gate_exponent: float = 8.0")
    .Attr("reverse: bool = false")
    .Attr("zero_output_for_mask: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle projected, initial_h;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &projected));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &initial_h));
      c->set_output(
          0, c->MakeShape({c->Dim(projected, 0), c->Dim(projected, 1), c->Dim(initial_h, 1)}));
      c->set_output(1, initial_h);
      return absl::OkStatus();
    })
    .Doc(R"doc(
ZooLinearRecurrence with a_t and b_t formed from a layer's projected input x_t W + b
[B, T, k H] in the same pass: minGRU (k = 2: a = 1 - σ(k_z), b = σ(k_z) g(k_h)), minLSTM (k = 3:
a = f / (f + i), b = i g(k_h) / (f + i)) or the RG-LRU (k = 3: log a = gate_exponent σ(k_r)
log_base, b = sqrt(1 - a²) σ(k_i) u; log_base [H] is log σ(Λ), and has no entries for the other
cells).
)doc");

REGISTER_OP("ZooGatedLinearRecurrenceGrad")
    .Input("projected: T")
    .Input("log_base: T")
    .Input("initial_h: T")
    .Input("lengths: int32")
    .Input("outputs: T")
    .Input("d_outputs: T")
    .Input("d_final_h: T")
    .Output("d_projected: T")
    .Output("d_log_base_rows: T")
    .Output("d_initial_h: T")
    .Attr("T: {float, double}")
    .Attr("cell: {'min_gru', 'min_lstm', 'rg_lru'}")
    .Attr("gate_exponent: float = 8.0")
    .Attr("reverse: bool = false")
    .Attr("zero_output_for_mask: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle log_base, initial_h;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 1, &log_base));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(2), 2, &initial_h));
      c->set_output(0, c->input(0));
      c->set_output(1, c->MakeShape({c->Dim(initial_h, 0), c->Dim(log_base, 0)}));
      c->set_output(2, initial_h);
      return absl::OkStatus();
    })
    .Doc(R"doc(
Backpropagation through ZooGatedLinearRecurrence: the gradients of projected (zero at padded
steps) and initial_h, and each example's share of log_base's gradient [B, H] (no columns but for
the RG-LRU).
)doc");

namespace {

// The cell and its sizes: projected [B, T, k H] with H from initial_h [B, H]; log_base [H] for
// the RG-LRU, [0] otherwise; lengths [B] each in [0, T].
absl::Status ReadGatedSizes(const GatedCellOptions& gates, const Tensor& projected,
                            const Tensor& log_base, const Tensor& initial_h, const Tensor& lengths,
                            LinearRecurrenceSizes* sizes) {
  TF_RETURN_IF_ERROR(rnn::RequireRank(projected, "projected", 3));
  TF_RETURN_IF_ERROR(rnn::RequireRank(initial_h, "initial_h", 2));
  *sizes = {projected.dim_size(0), projected.dim_size(1), initial_h.dim_size(1)};
  const int64_t log_base_size = gates.cell == GatedCell::kRgLru ? sizes->units : 0;
  TF_RETURN_IF_ERROR(rnn::RequireShapes(
      {{projected,
        "projected",
        {sizes->batch, sizes->time, ProjectionBlocks(gates.cell) * sizes->units}},
       {initial_h, "initial_h", {sizes->batch, sizes->units}},
       {log_base, "log_base", {log_base_size}}}));
  return rnn::ValidateLengths(lengths, sizes->batch, sizes->time);
}

// The cell and gate exponent of a gated op.
absl::Status ReadGates(OpKernelConstruction* context, GatedCellOptions* gates) {
  std::string cell;
  TF_RETURN_IF_ERROR(context->GetAttr("cell", &cell));
  TF_RETURN_IF_ERROR(context->GetAttr("gate_exponent", &gates->gate_exponent));
  gates->cell = cell == "min_lstm" ? GatedCell::kMinLstm
                : cell == "rg_lru" ? GatedCell::kRgLru
                                   : GatedCell::kMinGru;
  return absl::OkStatus();
}

}  // namespace

template <typename T>
class GatedLinearRecurrenceOp : public rnn::SequenceKernel {
 public:
  explicit GatedLinearRecurrenceOp(OpKernelConstruction* context)
      : SequenceKernel(context, nullptr) {
    OP_REQUIRES_OK(context, ReadGates(context, &gates_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& projected = context->input(0);
    const Tensor& log_base = context->input(1);
    const Tensor& initial_h = context->input(2);
    const Tensor& lengths = context->input(3);
    LinearRecurrenceSizes s;
    OP_REQUIRES_OK(context, ReadGatedSizes(gates_, projected, log_base, initial_h, lengths, &s));
    std::vector<T*> out;  // outputs, final_h
    OP_REQUIRES_OK(context,
                   rnn::AllocateOutputs<T>(
                       context, {{{s.batch, s.time, s.units}}, {{s.batch, s.units}}}, &out));
    GatedLinearRecurrenceForward<T>(rnn::KernelWorkers(context), s, options_, gates_,
                                    rnn::Data<T>(projected), rnn::Data<T>(log_base),
                                    rnn::Data<T>(initial_h), rnn::Data<int32_t>(lengths), out[0],
                                    out[1]);
  }

 private:
  GatedCellOptions gates_;
};

template <typename T>
class GatedLinearRecurrenceGradOp : public rnn::SequenceKernel {
 public:
  explicit GatedLinearRecurrenceGradOp(OpKernelConstruction* context)
      : SequenceKernel(context, nullptr) {
    OP_REQUIRES_OK(context, ReadGates(context, &gates_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& projected = context->input(0);
    const Tensor& log_base = context->input(1);
    const Tensor& initial_h = context->input(2);
    const Tensor& lengths = context->input(3);
    const Tensor& outputs = context->input(4);
    const Tensor& d_outputs = context->input(5);
    const Tensor& d_final_h = context->input(6);
    LinearRecurrenceSizes s;
    OP_REQUIRES_OK(context, ReadGatedSizes(gates_, projected, log_base, initial_h, lengths, &s));
    OP_REQUIRES_OK(context,
                   rnn::RequireShapes({{outputs, "outputs", {s.batch, s.time, s.units}},
                                       {d_outputs, "d_outputs", {s.batch, s.time, s.units}},
                                       {d_final_h, "d_final_h", {s.batch, s.units}}}));
    std::vector<T*> out;  // d_projected, d_log_base_rows, d_initial_h
    OP_REQUIRES_OK(
        context,
        rnn::AllocateOutputs<T>(
            context, {{projected.shape()}, {{s.batch, log_base.dim_size(0)}}, {{s.batch, s.units}}},
            &out));
    GatedLinearRecurrenceBackward<T>(rnn::KernelWorkers(context), s, options_, gates_,
                                     rnn::Data<T>(projected), rnn::Data<T>(log_base),
                                     rnn::Data<T>(initial_h), rnn::Data<int32_t>(lengths),
                                     rnn::Data<T>(outputs), rnn::Data<T>(d_outputs),
                                     rnn::Data<T>(d_final_h), out[0], out[1], out[2]);
  }

 private:
  GatedCellOptions gates_;
};

#define ZOO_REGISTER_LINEAR_RECURRENCE(T)                                                         \
  REGISTER_KERNEL_BUILDER(                                                                        \
      Name("ZooLinearRecurrence").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),          \
      LinearRecurrenceOp<T>);                                                                     \
  REGISTER_KERNEL_BUILDER(                                                                        \
      Name("ZooLinearRecurrenceGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),      \
      LinearRecurrenceGradOp<T>);                                                                 \
  REGISTER_KERNEL_BUILDER(                                                                        \
      Name("ZooGatedLinearRecurrence").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),     \
      GatedLinearRecurrenceOp<T>);                                                                \
  REGISTER_KERNEL_BUILDER(                                                                        \
      Name("ZooGatedLinearRecurrenceGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
      GatedLinearRecurrenceGradOp<T>);
ZOO_REGISTER_LINEAR_RECURRENCE(float)
ZOO_REGISTER_LINEAR_RECURRENCE(double)
#undef ZOO_REGISTER_LINEAR_RECURRENCE

}  // namespace zoo
