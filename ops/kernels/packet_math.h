// Row views and packet math: how the recurrent kernels look at their raw row-major buffers.
//
// A kernel never copies a tensor to work on it: a block of rows is viewed in place as an Eigen
// matrix (Rows; StridedRows when its rows are further apart than their width, as one time step of
// a batch-major [batch, time, width] tensor is), and one row as an array for element-wise gate
// arithmetic (Row). The cell passes that go over each row once use Eigen's packet functions
// directly (namespace packets), with the same logistic and tanh as Eigen's array expressions, so
// a fused pass and the expressions it stands for agree to float32 rounding. The hand-written
// products (packed_products.h) use GCC vector extensions instead, which compile for any x86-64
// target, and broadcast with Splat.
//
// Invariants: views never own memory; strides are in elements; a packet pass covers whole
// packets only (its caller falls back to the array expressions for other widths and for double).
#ifndef ZOO_OPS_KERNELS_PACKET_MATH_H_
#define ZOO_OPS_KERNELS_PACKET_MATH_H_

#include <cstdint>

#include "Eigen/Core"

namespace zoo {
namespace rnn {

template <typename T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
// A block of contiguous rows, such as one time step of a shard in a time-major buffer.
template <typename T>
using Rows = Eigen::Map<RowMatrix<T>>;
template <typename T>
using ConstRows = Eigen::Map<const RowMatrix<T>>;
// One row of H (or k*H) values, as an array for element-wise gate arithmetic.
template <typename T>
using Row = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>;
template <typename T>
using ConstRow = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>;

// Rows of one step of a shard in a batch-major [batch, time, width] tensor: `time * width` apart.
template <typename T>
using StridedRows = Eigen::Map<RowMatrix<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using ConstStridedRows = Eigen::Map<const RowMatrix<T>, 0, Eigen::OuterStride<>>;

// Whole packets of float lanes (8 with AVX2, 16 with AVX-512) through Eigen's packet functions,
// for the cell passes that go over each row once (FusedLstmCellStep and the like): their units
// must be whole packets. The activations are the ones Eigen's array expressions use.
namespace packets {
using Eigen::internal::padd;
using Eigen::internal::pmul;
using Eigen::internal::psub;
using Float = Eigen::internal::packet_traits<float>::type;
inline constexpr int64_t kLanes = Eigen::internal::unpacket_traits<Float>::size;
inline Float Load(const float* from) { return Eigen::internal::ploadu<Float>(from); }
inline void Store(float* to, const Float& x) { Eigen::internal::pstoreu(to, x); }
inline Float Splat(float x) { return Eigen::internal::pset1<Float>(x); }
inline Float Sigmoid(const Float& x) {
  return Eigen::internal::scalar_logistic_op<float>().packetOp(x);
}
inline Float Tanh(const Float& x) { return Eigen::internal::ptanh(x); }
}  // namespace packets

// x in every lane of a GCC vector. Written x - 0, which is x for every x (-0 too), so that the
// compiler broadcasts straight from memory; 0 + x is not x for x = -0, and costs an add and a
// register broadcast on the port that the products' multiply-adds need.
template <typename Vector, typename T>
inline Vector Splat(T x) {
  return x - Vector{};
}

}  // namespace rnn
}  // namespace zoo

#endif  // ZOO_OPS_KERNELS_PACKET_MATH_H_
