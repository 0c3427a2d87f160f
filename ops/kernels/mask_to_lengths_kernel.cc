// TensorFlow glue for MaskToLengths: op registration, shape function, validation, allocation.
#include <limits>

#include "mask_to_lengths.h"
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
using tensorflow::TensorShapeUtils;
namespace errors = tensorflow::errors;
namespace shape_inference = tensorflow::shape_inference;

REGISTER_OP("ZooMaskToLengths")
    .Input("mask: bool")
    .Output("lengths: int32")
    .Output("is_right_padded: bool")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle mask;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &mask));
      c->set_output(0, c->Vector(c->Dim(mask, 0)));
      c->set_output(1, c->Scalar());
      return absl::OkStatus();
    })
    .Doc(R"doc(
Lengths of each row of a [batch, time] mask and whether all rows are right-padded.
)doc");

class MaskToLengthsOp : public OpKernel {
 public:
  explicit MaskToLengthsOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    const Tensor& mask = context->input(0);
    OP_REQUIRES(context, TensorShapeUtils::IsMatrix(mask.shape()),
                errors::InvalidArgument("mask must be a [batch, time] matrix, got shape ",
                                        mask.shape().DebugString()));
    const int64_t batch = mask.dim_size(0);
    const int64_t time = mask.dim_size(1);
    OP_REQUIRES(context, time <= std::numeric_limits<int32_t>::max(),
                errors::InvalidArgument("mask has ", time, " steps, more than int32 lengths hold"));
    Tensor* lengths = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({batch}), &lengths));
    Tensor* right_padded = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(1, TensorShape({}), &right_padded));
    right_padded->scalar<bool>()() =
        MaskToLengths(mask.flat<bool>().data(), batch, time, lengths->flat<int32_t>().data());
  }
};

REGISTER_KERNEL_BUILDER(Name("ZooMaskToLengths").Device(DEVICE_CPU), MaskToLengthsOp);

}  // namespace zoo
