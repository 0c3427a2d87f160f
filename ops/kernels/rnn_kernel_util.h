// TensorFlow glue shared by the fused recurrent kernels: input validation and shape inference.
#ifndef ZOO_OPS_KERNELS_RNN_KERNEL_UTIL_H_
#define ZOO_OPS_KERNELS_RNN_KERNEL_UTIL_H_

#include <cstdint>
#include <initializer_list>
#include <string>

#include "workers.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/framework/tensor_shape.h"

namespace zoo {
namespace rnn {

// InvalidArgument unless `tensor` has exactly the shape `dims`.
inline absl::Status RequireShape(const tensorflow::Tensor& tensor, const char* name,
                                 std::initializer_list<int64_t> dims) {
  const tensorflow::TensorShape expected(dims);
  if (tensor.shape() == expected) return absl::OkStatus();
  return tensorflow::errors::InvalidArgument(name, " must have shape ", expected.DebugString(),
                                             ", got ", tensor.shape().DebugString());
}

inline absl::Status RequireRank(const tensorflow::Tensor& tensor, const char* name, int rank) {
  if (tensor.dims() == rank) return absl::OkStatus();
  return tensorflow::errors::InvalidArgument(name, " must have rank ", rank, ", got shape ",
                                             tensor.shape().DebugString());
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

// Sizes of a recurrent op from inputs [B,T,D] and recurrent_kernel [H, gates*H].
struct InferredSizes {
  tensorflow::shape_inference::DimensionHandle batch, time, input, units, gate_width;
};

inline absl::Status InferSizes(tensorflow::shape_inference::InferenceContext* c, int inputs_index,
                               int recurrent_kernel_index, int gates, InferredSizes* sizes) {
  tensorflow::shape_inference::ShapeHandle inputs, recurrent_kernel;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(inputs_index), 3, &inputs));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(recurrent_kernel_index), 2, &recurrent_kernel));
  sizes->batch = c->Dim(inputs, 0);
  sizes->time = c->Dim(inputs, 1);
  sizes->input = c->Dim(inputs, 2);
  sizes->units = c->Dim(recurrent_kernel, 0);
  TF_RETURN_IF_ERROR(c->Multiply(sizes->units, gates, &sizes->gate_width));
  tensorflow::shape_inference::DimensionHandle merged;
  return c->Merge(sizes->gate_width, c->Dim(recurrent_kernel, 1), &merged);
}

// The size of an optional output's leading dimension: `size` where the op produces it, else 0.
// The forward ops' kept buffers (keep_for_gradient) have no time steps in inference; the gradient
// ops give either the per-step factors of the weight gradients or, summed in the op
// (sum_weight_gradients), the weight gradients themselves, the other output having no rows.
inline int64_t SizeIf(bool produced, int64_t size) { return produced ? size : 0; }

inline tensorflow::shape_inference::DimensionHandle DimIf(
    tensorflow::shape_inference::InferenceContext* c, bool produced,
    tensorflow::shape_inference::DimensionHandle dim) {
  return produced ? dim : c->MakeDim(0);
}

// An optional output's data for the kernels, or null where the op does not produce it.
template <typename T>
T* DataIf(bool produced, tensorflow::Tensor* output) {
  return produced ? output->flat<T>().data() : nullptr;
}

// The forward ops' `keep_for_gradient` attribute: true keeps, time-major, what the gradient op
// reads; false (inference) keeps nothing, and those outputs have no time steps.
inline absl::Status KeptTimeDim(tensorflow::shape_inference::InferenceContext* c,
                                tensorflow::shape_inference::DimensionHandle time,
                                tensorflow::shape_inference::DimensionHandle* kept_time) {
  bool keep_for_gradient;
  TF_RETURN_IF_ERROR(c->GetAttr("keep_for_gradient", &keep_for_gradient));
  *kept_time = DimIf(c, keep_for_gradient, time);
  return absl::OkStatus();
}

// The threads a kernel shares its work with (see Workers): the executor's runner and the
// device's intra-op pool.
inline Workers KernelWorkers(tensorflow::OpKernelContext* context) {
  return Workers(context->eigen_device<Eigen::ThreadPoolDevice>(), context->runner());
}

}  // namespace rnn
}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_RNN_KERNEL_UTIL_H_
