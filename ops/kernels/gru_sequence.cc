#include "gru_sequence.h"

#include <cstring>

namespace zoo {

using rnn::ConstRow;
using rnn::ConstStridedRows;
using rnn::Row;
using rnn::RowMatrix;
using rnn::StridedRows;

template <typename T>
void GruSequenceForward(const Eigen::ThreadPoolDevice& device, const RnnSizes& sizes,
                        const RnnOptions& options, bool reset_after, const T* inputs,
                        const T* initial_h, const T* kernel, const T* recurrent_kernel,
                        const T* bias, const int32_t* lengths, T* projected, T* outputs,
                        T* final_h, T* gates, T* h_prev) {
  const int64_t batch = sizes.batch, time = sizes.time, units = sizes.units;
  const int64_t width = 3 * units;
  const int64_t gate_width = GruGateWidth(units, reset_after);
  rnn::ParallelMatMul(device, inputs, false, kernel, false, batch * time, sizes.input, width,
                      projected);
  const ConstRow<T> input_bias(bias, width);
  // Without reset_after there is no recurrent bias; a zero row keeps one code path.
  const Eigen::Array<T, 1, Eigen::Dynamic> recurrent_bias =
      reset_after ? Eigen::Array<T, 1, Eigen::Dynamic>(ConstRow<T>(bias + width, width))
                  : Eigen::Array<T, 1, Eigen::Dynamic>::Zero(width);
  const Eigen::Map<const RowMatrix<T>> recurrent(recurrent_kernel, units, width);
  const ConstStridedRows<T> recurrent_zr(recurrent_kernel, units, 2 * units,
                                         Eigen::OuterStride<>(width));
  const ConstStridedRows<T> recurrent_h(recurrent_kernel + 2 * units, units, units,
                                        Eigen::OuterStride<>(width));

  rnn::ForEachBatchShard(device, batch, time * units * width, [&](int64_t first, int64_t end) {
    const int64_t rows = end - first;
    RowMatrix<T> h = Eigen::Map<const RowMatrix<T>>(initial_h + first * units, rows, units);
    RowMatrix<T> from_h(rows, reset_after ? width : 2 * units);
    RowMatrix<T> reset_h(rows, units), candidate_from_h(rows, units);
    for (int64_t step = 0; step < time; ++step) {
      const int64_t t = rnn::TimeIndex(step, time, options.reverse);
      if (reset_after) {
        from_h.noalias() = h * recurrent;
      } else {
        from_h.noalias() = h * recurrent_zr;
      }
      // Update and reset gates, and the candidate when reset_after.
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t b = first + r;
        const int64_t cell = b * time + t;
        T* gate = gates + cell * gate_width;
        std::memcpy(h_prev + cell * units, h.row(r).data(), units * sizeof(T));
        if (t >= lengths[b]) {
          std::memset(gate, 0, gate_width * sizeof(T));
          if (!reset_after) reset_h.row(r).setZero();
          continue;
        }
        const T* x = projected + cell * width;
        Row<T>(gate, 2 * units) = ConstRow<T>(x, 2 * units) + input_bias.head(2 * units) +
                                  from_h.row(r).head(2 * units).array() +
                                  recurrent_bias.head(2 * units);
        rnn::Sigmoid(gate, 2 * units);
        const ConstRow<T> reset(gate + units, units);
        if (reset_after) {
          Row<T> candidate(gate + 3 * units, units);
          candidate = from_h.row(r).tail(units).array() + recurrent_bias.tail(units);
          Row<T>(gate + 2 * units, units) =
              (ConstRow<T>(x + 2 * units, units) + input_bias.tail(units) + reset * candidate)
                  .tanh();
        } else {
          reset_h.row(r).array() = reset * h.row(r).array();
        }
      }
      if (!reset_after) candidate_from_h.noalias() = reset_h * recurrent_h;
      // Candidate without reset_after, new state and outputs.
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t b = first + r;
        const int64_t cell = b * time + t;
        Row<T> output(outputs + (b * time + step) * units, units);
        if (t >= lengths[b]) {
          if (options.zero_output_for_mask || step == 0) {
            output.setZero();
          } else {
            output = ConstRow<T>(outputs + (b * time + step - 1) * units, units);
          }
          continue;
        }
        T* gate = gates + cell * gate_width;
        if (!reset_after) {
          Row<T>(gate + 2 * units, units) =
              (ConstRow<T>(projected + cell * width + 2 * units, units) + input_bias.tail(units) +
               candidate_from_h.row(r).array())
                  .tanh();
        }
        const ConstRow<T> update(gate, units), candidate(gate + 2 * units, units);
        auto h_row = h.row(r).array();
        h_row = update * h_row + (T(1) - update) * candidate;
        output = h_row;
      }
    }
    Eigen::Map<RowMatrix<T>>(final_h + first * units, rows, units) = h;
  });
}

template <typename T>
void GruSequenceBackward(const Eigen::ThreadPoolDevice& device, const RnnSizes& sizes,
                         const RnnOptions& options, bool reset_after, const T* inputs,
                         const T* kernel, const T* recurrent_kernel, const int32_t* lengths,
                         const T* gates, const T* h_prev, const T* d_outputs, const T* d_final_h,
                         T* d_projected, T* d_recurrent, T* d_inputs, T* d_initial_h,
                         T* d_kernel, T* d_recurrent_kernel, T* d_bias) {
  const int64_t batch = sizes.batch, time = sizes.time, units = sizes.units;
  const int64_t width = 3 * units;
  const int64_t gate_width = GruGateWidth(units, reset_after);
  const Eigen::Map<const RowMatrix<T>> recurrent(recurrent_kernel, units, width);
  const ConstStridedRows<T> recurrent_zr(recurrent_kernel, units, 2 * units,
                                         Eigen::OuterStride<>(width));
  const ConstStridedRows<T> recurrent_h(recurrent_kernel + 2 * units, units, units,
                                        Eigen::OuterStride<>(width));
  const Eigen::OuterStride<> step_stride(time * width);

  rnn::ForEachBatchShard(device, batch, time * units * width, [&](int64_t first, int64_t end) {
    const int64_t rows = end - first;
    RowMatrix<T> dh = Eigen::Map<const RowMatrix<T>>(d_final_h + first * units, rows, units);
    RowMatrix<T> carried = RowMatrix<T>::Zero(rows, units);
    RowMatrix<T> d_out(rows, units), d_reset_h(rows, units);
    RowMatrix<T> through_recurrence(rows, units);
    for (int64_t step = time - 1; step >= 0; --step) {
      const int64_t t = rnn::TimeIndex(step, time, options.reverse);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t b = first + r;
        const int64_t cell = b * time + t;
        T* dx = d_projected + cell * width;
        auto d_out_row = d_out.row(r).array();
        d_out_row = ConstRow<T>(d_outputs + (b * time + step) * units, units) +
                    carried.row(r).array();
        if (t >= lengths[b]) {
          std::memset(dx, 0, width * sizeof(T));
          if (reset_after) {
            std::memset(d_recurrent + cell * width, 0, width * sizeof(T));
          } else {
            std::memset(d_recurrent + cell * units, 0, units * sizeof(T));
          }
          if (options.zero_output_for_mask) {
            carried.row(r).setZero();
          } else {
            carried.row(r) = d_out.row(r);
          }
          continue;
        }
        carried.row(r).setZero();
        const T* gate = gates + cell * gate_width;
        const ConstRow<T> update(gate, units), reset(gate + units, units);
        const ConstRow<T> candidate(gate + 2 * units, units);
        const ConstRow<T> before(h_prev + cell * units, units);
        auto dh_row = dh.row(r).array();
        dh_row += d_out_row;
        Row<T>(dx, units) = dh_row * (before - candidate) * update * (T(1) - update);
        Row<T> d_candidate(dx + 2 * units, units);
        d_candidate = dh_row * (T(1) - update) * (T(1) - candidate * candidate);
        if (reset_after) {
          const ConstRow<T> candidate_from_h(gate + 3 * units, units);
          Row<T>(dx + units, units) = d_candidate * candidate_from_h * reset * (T(1) - reset);
          T* d_from_h = d_recurrent + cell * width;
          std::memcpy(d_from_h, dx, 2 * units * sizeof(T));
          Row<T>(d_from_h + 2 * units, units) = d_candidate * reset;
        }
        dh_row *= update;
      }
      if (reset_after) {
        const ConstStridedRows<T> d_from_h(d_recurrent + (first * time + t) * width, rows, width,
                                           step_stride);
        through_recurrence.noalias() = d_from_h * recurrent.transpose();
      } else {
        // The reset gate acts before U_h: its gradient needs d(r * h_prev) first.
        const ConstStridedRows<T> d_candidate(d_projected + (first * time + t) * width + 2 * units,
                                              rows, units, step_stride);
        d_reset_h.noalias() = d_candidate * recurrent_h.transpose();
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t b = first + r;
          if (t >= lengths[b]) continue;
          const int64_t cell = b * time + t;
          const ConstRow<T> reset(gates + cell * gate_width + units, units);
          const ConstRow<T> before(h_prev + cell * units, units);
          const auto d_rh = d_reset_h.row(r).array();
          Row<T>(d_projected + cell * width + units, units) =
              d_rh * before * reset * (T(1) - reset);
          dh.row(r).array() += d_rh * reset;
          Row<T>(d_recurrent + cell * units, units) = reset * before;
        }
        const ConstStridedRows<T> d_zr(d_projected + (first * time + t) * width, rows, 2 * units,
                                       step_stride);
        through_recurrence.noalias() = d_zr * recurrent_zr.transpose();
      }
      for (int64_t r = 0; r < rows; ++r) {
        if (t < lengths[first + r]) dh.row(r) += through_recurrence.row(r);
      }
    }
    Eigen::Map<RowMatrix<T>>(d_initial_h + first * units, rows, units) = dh;
  });

  const int64_t cells = batch * time;
  rnn::ParallelMatMul(device, d_projected, false, kernel, true, cells, width, sizes.input,
                      d_inputs);
  rnn::ParallelMatMul(device, inputs, true, d_projected, false, sizes.input, cells, width,
                      d_kernel);
  rnn::ParallelColumnSums(device, d_projected, cells, width, d_bias);
  if (reset_after) {
    rnn::ParallelMatMul(device, h_prev, true, d_recurrent, false, units, cells, width,
                        d_recurrent_kernel);
    rnn::ParallelColumnSums(device, d_recurrent, cells, width, d_bias + width);
  } else {
    rnn::ParallelTransposedMatMulColumns(device, h_prev, d_projected, cells, units, width, 0,
                                         2 * units, d_recurrent_kernel);
    rnn::ParallelTransposedMatMulColumns(device, d_recurrent, d_projected, cells, units, width,
                                         2 * units, units, d_recurrent_kernel);
  }
}

#define ZOO_INSTANTIATE_GRU(T)                                                                   \
  template void GruSequenceForward<T>(const Eigen::ThreadPoolDevice&, const RnnSizes&,           \
                                      const RnnOptions&, bool, const T*, const T*, const T*,     \
                                      const T*, const T*, const int32_t*, T*, T*, T*, T*, T*);   \
  template void GruSequenceBackward<T>(const Eigen::ThreadPoolDevice&, const RnnSizes&,          \
                                       const RnnOptions&, bool, const T*, const T*, const T*,    \
                                       const int32_t*, const T*, const T*, const T*, const T*,   \
                                       T*, T*, T*, T*, T*, T*, T*);
ZOO_INSTANTIATE_GRU(float)
ZOO_INSTANTIATE_GRU(double)
#undef ZOO_INSTANTIATE_GRU

}  // namespace zoo
