#include "lstm_sequence.h"

#include <cstring>

namespace zoo {

using rnn::ConstRow;
using rnn::ConstStridedRows;
using rnn::Row;
using rnn::RowMatrix;

template <typename T>
void LstmSequenceForward(const Eigen::ThreadPoolDevice& device, const RnnSizes& sizes,
                         const RnnOptions& options, const T* inputs, const T* initial_h,
                         const T* initial_c, const T* kernel, const T* recurrent_kernel,
                         const T* bias, const int32_t* lengths, T* outputs, T* final_h,
                         T* final_c, T* gates, T* h_prev, T* c_prev) {
  const int64_t batch = sizes.batch, time = sizes.time, units = sizes.units;
  const int64_t width = 4 * units;
  // The input projection of every step in one product, written where the loop then turns
  // each step's pre-activations into gates in place.
  rnn::ParallelMatMul(device, inputs, false, kernel, false, batch * time, sizes.input, width,
                      gates);
  const ConstRow<T> bias_row(bias, width);
  const Eigen::Map<const RowMatrix<T>> recurrent(recurrent_kernel, units, width);

  rnn::ForEachBatchShard(device, batch, time * units * width, [&](int64_t first, int64_t end) {
    const int64_t rows = end - first;
    RowMatrix<T> h = Eigen::Map<const RowMatrix<T>>(initial_h + first * units, rows, units);
    RowMatrix<T> c = Eigen::Map<const RowMatrix<T>>(initial_c + first * units, rows, units);
    RowMatrix<T> projected(rows, width);
    for (int64_t step = 0; step < time; ++step) {
      const int64_t t = rnn::TimeIndex(step, time, options.reverse);
      projected.noalias() = h * recurrent;
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t b = first + r;
        const int64_t cell = b * time + t;
        T* gate = gates + cell * width;
        Row<T> output(outputs + (b * time + step) * units, units);
        std::memcpy(h_prev + cell * units, h.row(r).data(), units * sizeof(T));
        std::memcpy(c_prev + cell * units, c.row(r).data(), units * sizeof(T));
        if (t < lengths[b]) {
          Row<T> pre(gate, width);
          pre += projected.row(r).array() + bias_row;
          rnn::Sigmoid(gate, 2 * units);
          rnn::Tanh(gate + 2 * units, units);
          rnn::Sigmoid(gate + 3 * units, units);
          const ConstRow<T> i(gate, units), f(gate + units, units);
          const ConstRow<T> g(gate + 2 * units, units), o(gate + 3 * units, units);
          auto c_row = c.row(r).array();
          c_row = f * c_row + i * g;
          output = o * c_row.tanh();
          h.row(r).array() = output;
        } else {
          std::memset(gate, 0, width * sizeof(T));
          if (options.zero_output_for_mask || step == 0) {
            output.setZero();
          } else {
            output = ConstRow<T>(outputs + (b * time + step - 1) * units, units);
          }
        }
      }
    }
    Eigen::Map<RowMatrix<T>>(final_h + first * units, rows, units) = h;
    Eigen::Map<RowMatrix<T>>(final_c + first * units, rows, units) = c;
  });
}

template <typename T>
void LstmSequenceBackward(const Eigen::ThreadPoolDevice& device, const RnnSizes& sizes,
                          const RnnOptions& options, const T* inputs, const T* kernel,
                          const T* recurrent_kernel, const int32_t* lengths, const T* gates,
                          const T* h_prev, const T* c_prev, const T* d_outputs,
                          const T* d_final_h, const T* d_final_c, T* pre_activation_grads,
                          T* d_inputs, T* d_initial_h, T* d_initial_c, T* d_kernel,
                          T* d_recurrent_kernel, T* d_bias) {
  const int64_t batch = sizes.batch, time = sizes.time, units = sizes.units;
  const int64_t width = 4 * units;
  const Eigen::Map<const RowMatrix<T>> recurrent(recurrent_kernel, units, width);

  rnn::ForEachBatchShard(device, batch, time * units * width, [&](int64_t first, int64_t end) {
    const int64_t rows = end - first;
    RowMatrix<T> dh = Eigen::Map<const RowMatrix<T>>(d_final_h + first * units, rows, units);
    RowMatrix<T> dc = Eigen::Map<const RowMatrix<T>>(d_final_c + first * units, rows, units);
    // Gradient reaching a padded step's output, which is the previous step's output.
    RowMatrix<T> carried = RowMatrix<T>::Zero(rows, units);
    RowMatrix<T> d_out(rows, units);
    RowMatrix<T> through_recurrence(rows, units);
    for (int64_t step = time - 1; step >= 0; --step) {
      const int64_t t = rnn::TimeIndex(step, time, options.reverse);
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t b = first + r;
        const int64_t cell = b * time + t;
        T* d_pre = pre_activation_grads + cell * width;
        auto d_out_row = d_out.row(r).array();
        d_out_row = ConstRow<T>(d_outputs + (b * time + step) * units, units) + carried.row(r).array();
        if (t < lengths[b]) {
          const T* gate = gates + cell * width;
          const ConstRow<T> i(gate, units), f(gate + units, units);
          const ConstRow<T> g(gate + 2 * units, units), o(gate + 3 * units, units);
          const ConstRow<T> c_before(c_prev + cell * units, units);
          const Eigen::Array<T, 1, Eigen::Dynamic> tanh_c = (f * c_before + i * g).tanh();
          auto dh_row = dh.row(r).array();
          auto dc_row = dc.row(r).array();
          dh_row += d_out_row;
          dc_row += dh_row * o * (T(1) - tanh_c * tanh_c);
          Row<T>(d_pre, units) = dc_row * g * i * (T(1) - i);
          Row<T>(d_pre + units, units) = dc_row * c_before * f * (T(1) - f);
          Row<T>(d_pre + 2 * units, units) = dc_row * i * (T(1) - g * g);
          Row<T>(d_pre + 3 * units, units) = dh_row * tanh_c * o * (T(1) - o);
          dc_row *= f;
          carried.row(r).setZero();
        } else {
          std::memset(d_pre, 0, width * sizeof(T));
          if (options.zero_output_for_mask) {
            carried.row(r).setZero();
          } else {
            carried.row(r) = d_out.row(r);
          }
        }
      }
      const ConstStridedRows<T> d_pre_step(pre_activation_grads + (first * time + t) * width, rows,
                                           width, Eigen::OuterStride<>(time * width));
      through_recurrence.noalias() = d_pre_step * recurrent.transpose();
      for (int64_t r = 0; r < rows; ++r) {
        if (t < lengths[first + r]) dh.row(r) = through_recurrence.row(r);
      }
    }
    Eigen::Map<RowMatrix<T>>(d_initial_h + first * units, rows, units) = dh;
    Eigen::Map<RowMatrix<T>>(d_initial_c + first * units, rows, units) = dc;
  });

  const int64_t cells = batch * time;
  rnn::ParallelMatMul(device, pre_activation_grads, false, kernel, true, cells, width, sizes.input,
                      d_inputs);
  rnn::ParallelMatMul(device, inputs, true, pre_activation_grads, false, sizes.input, cells, width,
                      d_kernel);
  rnn::ParallelMatMul(device, h_prev, true, pre_activation_grads, false, units, cells, width,
                      d_recurrent_kernel);
  rnn::ParallelColumnSums(device, pre_activation_grads, cells, width, d_bias);
}

#define ZOO_INSTANTIATE_LSTM(T)                                                                  \
  template void LstmSequenceForward<T>(const Eigen::ThreadPoolDevice&, const RnnSizes&,          \
                                       const RnnOptions&, const T*, const T*, const T*, const T*, \
                                       const T*, const T*, const int32_t*, T*, T*, T*, T*, T*,   \
                                       T*);                                                      \
  template void LstmSequenceBackward<T>(                                                         \
      const Eigen::ThreadPoolDevice&, const RnnSizes&, const RnnOptions&, const T*, const T*,    \
      const T*, const int32_t*, const T*, const T*, const T*, const T*, const T*, const T*, T*,  \
      T*, T*, T*, T*, T*, T*);
ZOO_INSTANTIATE_LSTM(float)
ZOO_INSTANTIATE_LSTM(double)
#undef ZOO_INSTANTIATE_LSTM

}  // namespace zoo
