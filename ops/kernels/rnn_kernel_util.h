// TensorFlow glue shared by the fused recurrent kernels (the *_sequence_kernel.cc files): their
// attributes, shape functions, input validation and output allocation. The algorithms never see a
// TensorFlow type; this header turns tensors into the sizes and raw buffers they take.
//
// Every input is checked before any output is allocated, and every failure is an InvalidArgument
// naming the input, the shape it must have and the shape it has (Python tests match these
// messages), so that a malformed call raises and never crashes the process.
#ifndef ZOO_OPS_KERNELS_RNN_KERNEL_UTIL_H_
#define ZOO_OPS_KERNELS_RNN_KERNEL_UTIL_H_

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "sequence_driver.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"
#include "workers.h"

namespace zoo {
namespace rnn {

// InvalidArgument unless `tensor` has exactly the shape `dims`.
inline absl::Status RequireShape(const tensorflow::Tensor& tensor, const char* name,
                                 const tensorflow::TensorShape& expected) {
  if (tensor.shape() == expected) return absl::OkStatus();
  return tensorflow::errors::InvalidArgument(name, " must have shape ", expected.DebugString(),
                                             ", got ", tensor.shape().DebugString());
}

inline absl::Status RequireRank(const tensorflow::Tensor& tensor, const char* name, int rank) {
  if (tensor.dims() == rank) return absl::OkStatus();
  return tensorflow::errors::InvalidArgument(name, " must have rank ", rank, ", got shape ",
                                             tensor.shape().DebugString());
}

// An input and the shape it must have.
struct ExpectedShape {
  const tensorflow::Tensor& tensor;
  const char* name;
  tensorflow::TensorShape shape;
};

// RequireShape of each, in order.
inline absl::Status RequireShapes(std::initializer_list<ExpectedShape> expected) {
  for (const ExpectedShape& e : expected)
    TF_RETURN_IF_ERROR(RequireShape(e.tensor, e.name, e.shape));
  return absl::OkStatus();
}

// InvalidArgument unless lengths is an int32 [batch] vector with every entry in [0, time].
inline absl::Status ValidateLengths(const tensorflow::Tensor& lengths, int64_t batch,
                                    int64_t time) {
  TF_RETURN_IF_ERROR(RequireShape(lengths, "lengths", {batch}));
  const auto values = lengths.flat<int32_t>();
  for (int64_t b = 0; b < batch; ++b) {
    if (values(b) < 0 || values(b) > time) {
      return tensorflow::errors::InvalidArgument("lengths[", b, "] = ", values(b),
                                                 " is outside [0, ", time, "]");
    }
  }
  return absl::OkStatus();
}

// The sizes of a fused op, checked: inputs [B, T, D], recurrent_kernel [H, gates * H], kernel
// [D, gates * H] and lengths [B], each in [0, T].
inline absl::Status ReadSizes(const tensorflow::Tensor& inputs, const tensorflow::Tensor& kernel,
                              const tensorflow::Tensor& recurrent_kernel,
                              const tensorflow::Tensor& lengths, int gates, RnnSizes* sizes) {
  TF_RETURN_IF_ERROR(RequireRank(inputs, "inputs", 3));
  TF_RETURN_IF_ERROR(RequireRank(recurrent_kernel, "recurrent_kernel", 2));
  *sizes = {inputs.dim_size(0), inputs.dim_size(1), inputs.dim_size(2),
            recurrent_kernel.dim_size(0)};
  const int64_t width = gates * sizes->units;
  TF_RETURN_IF_ERROR(RequireShapes({{recurrent_kernel, "recurrent_kernel", {sizes->units, width}},
                                    {kernel, "kernel", {sizes->input, width}}}));
  return ValidateLengths(lengths, sizes->batch, sizes->time);
}

// The kernel of a fused op, with the attributes every one has: the direction and padding rule
// (`options_`), and, where the op has one, the attribute that says what it produces (`produces_`:
// "keep_for_gradient" for a forward op, "sum_weight_gradients" for a gradient op; null for an op
// that always produces every output).
class SequenceKernel : public tensorflow::OpKernel {
 public:
  SequenceKernel(tensorflow::OpKernelConstruction* context, const char* produces)
      : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("reverse", &options_.reverse));
    OP_REQUIRES_OK(context,
                   context->GetAttr("zero_output_for_mask", &options_.zero_output_for_mask));
    if (produces != nullptr) OP_REQUIRES_OK(context, context->GetAttr(produces, &produces_));
  }

 protected:
  RnnOptions options_;
  bool produces_ = true;
};

// An output of a fused op. One that the op does not produce (the kept activations in inference,
// the factors or the sums of the weight gradients) has no rows: its first dimension is 0.
struct Output {
  tensorflow::TensorShape shape;
  bool produced = true;
};

// Allocates the op's outputs in order, and gives each one's data to the kernels, or null for one
// that the op does not produce.
template <typename T>
absl::Status AllocateOutputs(tensorflow::OpKernelContext* context,
                             std::initializer_list<Output> outputs, std::vector<T*>* data) {
  data->clear();
  for (const Output& output : outputs) {
    tensorflow::TensorShape shape = output.shape;
    if (!output.produced) shape.set_dim(0, 0);
    tensorflow::Tensor* tensor = nullptr;
    TF_RETURN_IF_ERROR(context->allocate_output(static_cast<int>(data->size()), shape, &tensor));
    data->push_back(output.produced ? tensor->flat<T>().data() : nullptr);
  }
  return absl::OkStatus();
}

template <typename T>
const T* Data(const tensorflow::Tensor& tensor) {
  return tensor.flat<T>().data();
}

// The threads a kernel shares its work with (see Workers): the executor's runner and the
// device's intra-op pool.
inline Workers KernelWorkers(tensorflow::OpKernelContext* context) {
  return Workers(context->eigen_device<Eigen::ThreadPoolDevice>(), context->runner());
}

// Shape inference.
namespace shapes {

using tensorflow::shape_inference::DimensionHandle;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

// Sizes of a fused op from inputs [B, T, D] and recurrent_kernel [H, gates * H].
struct Sizes {
  DimensionHandle batch, time, input, units, gate_width, step_width;  // step_width: D + H
};

inline absl::Status InferSizes(InferenceContext* c, int recurrent_kernel_index, int gates,
                               Sizes* sizes) {
  ShapeHandle inputs, recurrent_kernel;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &inputs));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(recurrent_kernel_index), 2, &recurrent_kernel));
  sizes->batch = c->Dim(inputs, 0);
  sizes->time = c->Dim(inputs, 1);
  sizes->input = c->Dim(inputs, 2);
  sizes->units = c->Dim(recurrent_kernel, 0);
  TF_RETURN_IF_ERROR(c->Multiply(sizes->units, gates, &sizes->gate_width));
  TF_RETURN_IF_ERROR(c->Add(sizes->input, sizes->units, &sizes->step_width));
  DimensionHandle merged;
  return c->Merge(sizes->gate_width, c->Dim(recurrent_kernel, 1), &merged);
}

// `dim` where the op produces the output, else 0 (see Output).
inline DimensionHandle DimIf(InferenceContext* c, bool produced, DimensionHandle dim) {
  return produced ? dim : c->MakeDim(0);
}

// The width of a buffer that a forward op keeps for its gradient: `units` times H, plus D
// `with_inputs` (a step's [x_t, h]).
struct KeptWidth {
  int units;
  bool with_inputs = false;
};

// The outputs of a fused forward op (inputs first, recurrent_kernel at `recurrent_kernel_index`):
// outputs [B, T, H], `states` final states [B, H], then each kept buffer [T, B, width], with no
// steps when the op does not keep them (keep_for_gradient false).
inline absl::Status SetForwardOutputs(InferenceContext* c, int recurrent_kernel_index, int gates,
                                      int states, std::initializer_list<KeptWidth> kept_widths) {
  Sizes s;
  TF_RETURN_IF_ERROR(InferSizes(c, recurrent_kernel_index, gates, &s));
  bool keep_for_gradient;
  TF_RETURN_IF_ERROR(c->GetAttr("keep_for_gradient", &keep_for_gradient));
  const DimensionHandle kept_time = DimIf(c, keep_for_gradient, s.time);
  int index = 0;
  c->set_output(index++, c->MakeShape({s.batch, s.time, s.units}));
  for (int state = 0; state < states; ++state)
    c->set_output(index++, c->MakeShape({s.batch, s.units}));
  for (const KeptWidth& kept : kept_widths) {
    DimensionHandle width;
    TF_RETURN_IF_ERROR(c->Multiply(s.units, kept.units, &width));
    if (kept.with_inputs) TF_RETURN_IF_ERROR(c->Add(width, s.input, &width));
    c->set_output(index++, c->MakeShape({kept_time, s.batch, width}));
  }
  return absl::OkStatus();
}

// The outputs that every fused gradient op starts with: d_inputs like inputs, then `states`
// gradients of the initial states [B, H]. Gives the sizes and `sum_weight_gradients`.
inline absl::Status SetGradientOutputs(InferenceContext* c, int recurrent_kernel_index, int gates,
                                       int states, Sizes* sizes, bool* sum_weight_gradients) {
  TF_RETURN_IF_ERROR(InferSizes(c, recurrent_kernel_index, gates, sizes));
  TF_RETURN_IF_ERROR(c->GetAttr("sum_weight_gradients", sum_weight_gradients));
  c->set_output(0, c->input(0));
  for (int state = 1; state <= states; ++state) {
    c->set_output(state, c->MakeShape({sizes->batch, sizes->units}));
  }
  return absl::OkStatus();
}

}  // namespace shapes
}  // namespace rnn
}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_RNN_KERNEL_UTIL_H_
