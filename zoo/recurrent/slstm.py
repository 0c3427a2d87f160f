"""sLSTM, xLSTM's scalar-memory LSTM with exponential gating (Beck et al., 2024)."""

import keras
from keras import initializers, ops

import ops as zoo_ops
from zoo.recurrent.base import ScanCell, ScanRecurrentLayer, check_heads, linspace_initializer

_SERIALIZATION_PACKAGE = "zoo"


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class SLSTMCell(ScanCell):
    """The sLSTM step (Beck et al., 2024, Sec. 2.2 and App. A.2), with `num_heads` heads whose
    recurrent weights are block-diagonal (each head's gates read only its own part of h_{t−1}):

        ĩ_t, f̃_t, z̃_t, õ_t = x_t W + h_{t−1} R + b
        m_t = max(log σ(f̃_t) + m_{t−1}, ĩ_t)                   (the stabiliser state)
        i'_t = exp(ĩ_t − m_t),  f'_t = exp(log σ(f̃_t) + m_{t−1} − m_t)
        c_t = f'_t ⊙ c_{t−1} + i'_t ⊙ tanh(z̃_t),  n_t = f'_t ⊙ n_{t−1} + i'_t
        h_t = σ(õ_t) ⊙ c_t / n_t

    (the stabilised form of the exponential input gate i_t = exp(ĩ_t) with a sigmoid forget gate;
    c_t / n_t is unchanged by the stabiliser). The kernel [input_dim, 4 * units] holds the gates
    i, f, z, o; `recurrent_kernel` [num_heads, head_size, 4 * head_size] holds each head's i, f, z, o
    blocks. The forget-gate bias starts spread over [3, 6] (xLSTM's reference initialisation keeps
    the forget gate open at the start).

    Args:
        units: Dimensionality of the hidden state (divisible by `num_heads`).
        num_heads: Number of heads.
        recurrent_initializer, recurrent_regularizer, recurrent_constraint: of `recurrent_kernel`.
        (The other arguments are those of `zoo.recurrent.base.ScanCell`.)

    Call arguments:
        inputs: A 2D tensor `(batch, features)`.
        states: `[h_{t-1}, c_{t-1}, n_{t-1}, m_{t-1}]`, each `(batch, units)`.

    Returns:
        `(h_t, [h_t, c_t, n_t, m_t])`.

    Example:

    >>> layer = keras.layers.RNN(zoo.cells.SLSTMCell(8, num_heads=2))
    >>> layer(np.zeros((2, 3, 5), "float32")).shape
    (2, 8)
    """

    def __init__(
        self,
        units,
        num_heads=1,
        recurrent_initializer="orthogonal",
        recurrent_regularizer=None,
        recurrent_constraint=None,
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        self.head_size = check_heads(self.__class__.__name__, units, num_heads)
        self.num_heads = num_heads
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.state_size = [units] * 4

    def projection_width(self):
        return 4 * self.units

    def make_bias_initializer(self):
        base, units, forget = self.bias_initializer, self.units, linspace_initializer(3.0, 6.0)

        def initializer(shape, dtype=None):
            return ops.concatenate(
                [base((units,), dtype), forget((units,), dtype), base((2 * units,), dtype)]
            )

        return initializer

    def build(self, input_shape):
        super().build(input_shape)
        self.recurrent_kernel = self.add_weight(
            shape=(self.num_heads, self.head_size, 4 * self.head_size),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )

    def recurrent_projection(self, h):
        """h_{t−1} R, head by head, in the kernel's gate-major layout (batch, 4 * units)."""
        heads = ops.reshape(h, (-1, self.num_heads, self.head_size))
        gates = ops.einsum("bhd,hdk->bhk", heads, ops.cast(self.recurrent_kernel, h.dtype))
        gates = ops.transpose(ops.reshape(gates, (-1, self.num_heads, 4, self.head_size)), (0, 2, 1, 3))
        return ops.reshape(gates, (-1, 4 * self.units))

    def call(self, inputs, states):
        inputs, (h_prev, c_prev, n_prev, m_prev) = self.validated(inputs, states)
        preactivations = self.project(inputs) + self.recurrent_projection(h_prev)
        input_gate, forget_gate, candidate, output_gate = ops.split(preactivations, 4, axis=-1)
        log_forget = -ops.softplus(-forget_gate)
        m = ops.maximum(log_forget + m_prev, input_gate)
        i = ops.exp(input_gate - m)
        f = ops.exp(log_forget + m_prev - m)
        c = f * c_prev + i * ops.tanh(candidate)
        n = f * n_prev + i
        h = ops.sigmoid(output_gate) * c / n
        return h, [h, c, n, m]

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "recurrent_regularizer": keras.regularizers.serialize(self.recurrent_regularizer),
            "recurrent_constraint": keras.constraints.serialize(self.recurrent_constraint),
        }


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class SLSTM(ScanRecurrentLayer):
    """sLSTM sequence layer (Beck et al., 2024): `SLSTMCell` over a sequence.

    Its gates read h_{t−1} through the recurrent kernel, so the recurrence is not a linear scan
    and has no parallel form: `implementation="parallel"` raises a `ValueError` saying so.
    `"fused"` forms x_t W + b of every step in one product and runs the recurrence (the
    block-diagonal recurrent product and the stabilised cell) in a C++ kernel
    (`ops.slstm_sequence`); `"auto"` takes it on CPU, and the loop elsewhere.

    Args:
        units: Dimensionality of the output and states (divisible by `num_heads`).
        num_heads: Number of heads (block-diagonal recurrent weights).
        use_bias, *_initializer, *_regularizer, *_constraint: of the cell (`SLSTMCell`).
        return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask: as in
            `zoo.layers.LSTM`.
        implementation: `"auto"`, `"loop"` or `"fused"` (`"parallel"` cannot run).

    Call arguments:
        sequences: `(batch, time, features)` float tensor.
        initial_state: `[h_0, c_0, n_0, m_0]` (optional, zeros by default).
        mask: `(batch, time)` bool (optional).

    Example:

    >>> layer = zoo.layers.SLSTM(8, num_heads=2, return_state=True)
    >>> output, h, c, n, m = layer(np.zeros((2, 5, 3), "float32"))
    """

    cell_class = SLSTMCell
    cell_name = "slstm_cell"
    no_parallel_form = (
        "sLSTM's gates read h_{t-1} through its recurrent kernel, so its recurrence is not a linear "
        "scan and has no parallel form"
    )

    def fused_sequence(self, sequences, initial_state, lengths, keep_for_gradient):
        # The kernel always keeps the gates and states its gradient reads.
        del keep_for_gradient
        outputs, *states = zoo_ops.slstm_sequence(
            self.cell.project(sequences),
            ops.cast(self.cell.recurrent_kernel, sequences.dtype),
            *initial_state,
            lengths,
            reverse=self.go_backwards,
            zero_output_for_mask=self.zero_output_for_mask,
        )
        return outputs, states
