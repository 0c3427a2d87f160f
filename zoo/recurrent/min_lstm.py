"""minLSTM (Feng et al., 2024, "Were RNNs All We Needed?"): an LSTM whose gates read only the input."""

import keras
from keras import ops

from zoo.recurrent.base import LinearScanLayer, ScanCell, log_space_recurrence
from zoo.recurrent.min_gru import log_positive_activation, positive_activation

_SERIALIZATION_PACKAGE = "zoo"


def normalised_log_gates(forget, input_):
    """log f'_t and log i'_t from the gate pre-activations, where f' = f / (f + i) and
    i' = i / (f + i), f = σ(forget), i = σ(input_) (Feng et al., 2024, App. B):
    log f' = −softplus(d), log i' = −softplus(−d), d = softplus(−forget) − softplus(−input_)."""
    difference = ops.softplus(-forget) - ops.softplus(-input_)
    return -ops.softplus(difference), -ops.softplus(-difference)


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class MinLSTMCell(ScanCell):
    """The minLSTM step (Feng et al., 2024, Sec. 3.2): the LSTM without output gate or cell state,
    gates that do not read the previous state, and forget and input gates normalised to sum to 1:

        f_t = σ(x_t W_f + b_f),  i_t = σ(x_t W_i + b_i),  h̃_t = g(x_t W_h + b_h),
        f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t),  h_t = f'_t ⊙ h_{t−1} + i'_t ⊙ h̃_t

    with g of Sec. 3.3. The projection `kernel` [input_dim, 3 * units] holds W_f, W_i, W_h.

    Args:
        units: Dimensionality of the hidden state.
        (The other arguments are those of `zoo.recurrent.base.ScanCell`.)

    Call arguments:
        inputs: A 2D tensor `(batch, features)`.
        states: `[h_{t-1}]`.

    Returns:
        `(h_t, [h_t])`.

    Example:

    >>> layer = keras.layers.RNN(zoo.cells.MinLSTMCell(4))
    >>> layer(np.zeros((2, 3, 5), "float32")).shape
    (2, 4)
    """

    def projection_width(self):
        return 3 * self.units

    def coefficients(self, projected):
        """(f'_t, i'_t ⊙ h̃_t) from the projected input, for a step or a sequence."""
        forget, input_, candidate = ops.split(projected, 3, axis=-1)
        f, i = ops.sigmoid(forget), ops.sigmoid(input_)
        total = f + i
        return f / total, i * positive_activation(candidate) / total

    def call(self, inputs, states):
        inputs, (h_prev,) = self.validated(inputs, states)
        a, b = self.coefficients(self.project(inputs))
        h = a * h_prev + b
        return h, [h]


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class MinLSTM(LinearScanLayer):
    """minLSTM sequence layer (Feng et al., 2024): `MinLSTMCell` over a sequence.

    Paths (`implementation=`): `"loop"` runs the cell step by step; `"parallel"` computes every
    step at once in log space (App. B: `normalised_log_gates`, log h̃_t = log g(k_h), then
    `log_space_recurrence`); `"fused"` forms the projections of every step in one product and
    runs the gates and h_t = f'_t ⊙ h_{t−1} + i'_t ⊙ h̃_t in a C++ kernel
    (`ops.gated_linear_recurrence`); `"auto"` takes the parallel form on a GPU and the fused
    kernel on CPU.

    Args:
        units: Dimensionality of the output and state.
        use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
            kernel_constraint, bias_constraint: of the input projection (`ScanCell`).
        return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask: as in
            `zoo.layers.LSTM`.
        implementation: `"auto"`, `"loop"`, `"parallel"` or `"fused"`.

    Call arguments:
        sequences: `(batch, time, features)` float tensor.
        initial_state: `[h_0]` (optional, zeros by default).
        mask: `(batch, time)` bool (optional).

    Example:

    >>> layer = zoo.layers.MinLSTM(8, return_state=True)
    >>> output, h = layer(np.zeros((2, 5, 3), "float32"))
    """

    cell_class = MinLSTMCell
    cell_name = "min_lstm_cell"
    fused_cell = "min_lstm"

    def parallel_sequence(self, sequences, initial_state, mask):
        forget, input_, candidate = ops.split(self.cell.project(sequences), 3, axis=-1)
        log_forget, log_input = normalised_log_gates(forget, input_)
        h = log_space_recurrence(
            log_forget, log_input + log_positive_activation(candidate), initial_state[0], mask
        )
        return h, [h[:, -1]]
