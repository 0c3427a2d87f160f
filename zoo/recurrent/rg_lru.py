"""RG-LRU, the Real-Gated Linear Recurrent Unit of Griffin and Hawk (De et al., 2024)."""

import keras
from keras import ops

from zoo.recurrent.base import LinearScanLayer, ScanCell, linear_recurrence

_SERIALIZATION_PACKAGE = "zoo"
# The constant c of a_t = a^(c r_t) (De et al., 2024, Sec. 2.4).
GATE_EXPONENT = 8.0
# a = σ(Λ) starts with a² uniform in [0.9², 0.999²] (De et al., 2024, App. A; recurrentgemma's
# `rnn_param_init`).
MIN_DECAY, MAX_DECAY = 0.9, 0.999


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class DecayParameterInitializer(keras.initializers.RandomUniform):
    """Λ such that a = σ(Λ) has a² uniform in [minval, maxval] (by default [MIN_DECAY², MAX_DECAY²]).

    A seeded Keras initializer, so that a model built inside a traced function draws its values
    without Keras's global seed generator, and `keras.utils.set_random_seed` makes them repeat.

    Args:
        minval, maxval: The range of a².
        seed: As in `keras.initializers.RandomUniform`.
    """

    def __init__(self, minval=MIN_DECAY**2, maxval=MAX_DECAY**2, seed=None):
        super().__init__(minval=minval, maxval=maxval, seed=seed)

    def __call__(self, shape, dtype=None):
        a = ops.sqrt(super().__call__(shape, dtype="float32"))
        return ops.cast(ops.log(a) - ops.log1p(-a), dtype or "float32")


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class RGLRUCell(ScanCell):
    """The RG-LRU step (De et al., 2024, Sec. 2.4):

        r_t = σ(x_t W_a + b_a),  i_t = σ(x_t W_x + b_x),  u_t = x_t W_u + b_u,
        log a_t = −c r_t softplus(−Λ)   (a_t = σ(Λ)^(c r_t), c = 8),
        h_t = a_t ⊙ h_{t−1} + sqrt(1 − a_t²) ⊙ (i_t ⊙ u_t).

    The paper's RG-LRU reads its width-D input x_t directly (u_t = x_t); here a projection u_t of
    the layer's input takes its place, so that `units` may differ from the input size, and the
    gates read the same input. The projection `kernel` [input_dim, 3 * units] holds W_a, W_x, W_u;
    `decay_parameter` is Λ [units], initialised as in App. A (`DecayParameterInitializer`).

    Args:
        units: Dimensionality of the hidden state.
        (The other arguments are those of `zoo.recurrent.base.ScanCell`.)

    Call arguments:
        inputs: A 2D tensor `(batch, features)`.
        states: `[h_{t-1}]`.

    Returns:
        `(h_t, [h_t])`.

    Example:

    >>> layer = keras.layers.RNN(zoo.cells.RGLRUCell(4))
    >>> layer(np.zeros((2, 3, 5), "float32")).shape
    (2, 4)
    """

    def projection_width(self):
        return 3 * self.units

    def build(self, input_shape):
        super().build(input_shape)
        self.decay_parameter = self.add_weight(
            shape=(self.units,), name="decay_parameter", initializer=DecayParameterInitializer()
        )

    def log_base(self, dtype):
        """log σ(Λ) = −softplus(−Λ) [units], in `dtype`."""
        return -ops.softplus(-ops.cast(self.decay_parameter, dtype))

    def coefficients(self, projected):
        """(a_t, sqrt(1 − a_t²) ⊙ i_t ⊙ u_t) from the projected input, for a step or a sequence."""
        recurrence_gate, input_gate, values = ops.split(projected, 3, axis=-1)
        log_a = GATE_EXPONENT * ops.sigmoid(recurrence_gate) * self.log_base(projected.dtype)
        # 1 − a² = −expm1(2 log a), exact as a approaches 1.
        scale = ops.sqrt(-ops.expm1(2.0 * log_a))
        return ops.exp(log_a), scale * ops.sigmoid(input_gate) * values

    def call(self, inputs, states):
        inputs, (h_prev,) = self.validated(inputs, states)
        a, b = self.coefficients(self.project(inputs))
        h = a * h_prev + b
        return h, [h]


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class RGLRU(LinearScanLayer):
    """RG-LRU sequence layer (De et al., 2024): `RGLRUCell` over a sequence.

    Paths (`implementation=`): `"loop"` runs the cell step by step; `"parallel"` computes the
    coefficients of every step at once and runs the linear recurrence h_t = a_t h_{t−1} + b_t as
    an associative scan (`linear_recurrence`); `"fused"` forms the projections in one product and
    the same coefficients and recurrence in a C++ kernel (`ops.gated_linear_recurrence`); `"auto"`
    takes the parallel form on a GPU and the fused kernel on CPU.

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

    >>> layer = zoo.layers.RGLRU(8, return_sequences=True)
    >>> layer(np.zeros((2, 5, 3), "float32")).shape
    (2, 5, 8)
    """

    cell_class = RGLRUCell
    cell_name = "rg_lru_cell"
    fused_cell = "rg_lru"

    def fused_cell_arguments(self, dtype):
        return {"log_base": self.cell.log_base(dtype), "gate_exponent": GATE_EXPONENT}

    def parallel_sequence(self, sequences, initial_state, mask):
        a, b = self.cell.coefficients(self.cell.project(sequences))
        h = linear_recurrence(a, b, initial_state[0], mask)
        return h, [h[:, -1]]
