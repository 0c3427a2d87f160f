"""minGRU (Feng et al., 2024, "Were RNNs All We Needed?"): a GRU whose gates read only the input."""

import keras
from keras import ops

from zoo.recurrent.base import LinearScanLayer, ScanCell, log_space_recurrence

_SERIALIZATION_PACKAGE = "zoo"


def positive_activation(x):
    """g(x) = x + 1/2 for x >= 0, σ(x) otherwise (Feng et al., 2024, Sec. 3.3): continuous and
    positive, so the candidate state has a logarithm."""
    return ops.where(x >= 0, x + 0.5, ops.sigmoid(x))


def log_positive_activation(x):
    """log g(x), computed without forming g (Feng et al., 2024, App. B)."""
    return ops.where(x >= 0, ops.log(ops.relu(x) + 0.5), -ops.softplus(-x))


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class MinGRUCell(ScanCell):
    """The minGRU step (Feng et al., 2024, Sec. 3.1): the GRU without its reset gate and with
    gates that do not read the previous state:

        z_t = σ(x_t W_z + b_z),  h̃_t = g(x_t W_h + b_h),  h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t

    with g of Sec. 3.3 (`positive_activation`). The projection `kernel` [input_dim, 2 * units] holds
    W_z then W_h.

    Args:
        units: Dimensionality of the hidden state.
        (The other arguments are those of `zoo.recurrent.base.ScanCell`.)

    Call arguments:
        inputs: A 2D tensor `(batch, features)`.
        states: `[h_{t-1}]`.

    Returns:
        `(h_t, [h_t])`.

    Example:

    >>> layer = keras.layers.RNN(zoo.cells.MinGRUCell(4), return_sequences=True)
    >>> layer(np.zeros((2, 3, 5), "float32")).shape
    (2, 3, 4)
    """

    def projection_width(self):
        return 2 * self.units

    def coefficients(self, projected):
        """(1 − z_t, z_t ⊙ h̃_t) from the projected input, for a step or a sequence."""
        update, candidate = ops.split(projected, 2, axis=-1)
        z = ops.sigmoid(update)
        return 1.0 - z, z * positive_activation(candidate)

    def call(self, inputs, states):
        inputs, (h_prev,) = self.validated(inputs, states)
        a, b = self.coefficients(self.project(inputs))
        h = a * h_prev + b
        return h, [h]


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class MinGRU(LinearScanLayer):
    """minGRU sequence layer (Feng et al., 2024): `MinGRUCell` over a sequence.

    Paths (`implementation=`): `"loop"` runs the cell step by step; `"parallel"` computes every
    step at once in log space (Sec. 3.1, App. B): log(1 − z_t) = −softplus(k_z),
    log(z_t h̃_t) = −softplus(−k_z) + log g(k_h), then `log_space_recurrence`; `"fused"` forms
    the projections of every step in one product and runs the gates and
    h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t in a C++ kernel (`ops.gated_linear_recurrence`);
    `"auto"` takes the parallel form on a GPU and the fused kernel on CPU.

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

    >>> layer = zoo.layers.MinGRU(8, return_sequences=True)
    >>> layer(np.zeros((2, 5, 3), "float32")).shape
    (2, 5, 8)
    """

    cell_class = MinGRUCell
    cell_name = "min_gru_cell"
    fused_cell = "min_gru"

    def parallel_sequence(self, sequences, initial_state, mask):
        update, candidate = ops.split(self.cell.project(sequences), 2, axis=-1)
        log_keep = -ops.softplus(update)
        log_input = -ops.softplus(-update) + log_positive_activation(candidate)
        h = log_space_recurrence(log_keep, log_input, initial_state[0], mask)
        return h, [h[:, -1]]
