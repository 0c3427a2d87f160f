"""mLSTM, xLSTM's matrix-memory LSTM with a covariance update rule (Beck et al., 2024)."""

import math

import keras
import tensorflow as tf
from keras import ops

from zoo.recurrent.base import (
    LOG_ZERO,
    ScanCell,
    ScanRecurrentLayer,
    check_heads,
    linspace_initializer,
)

_SERIALIZATION_PACKAGE = "zoo"
# ε of the per-head group norm, as in the xLSTM reference code (MultiHeadLayerNorm).
HEAD_NORM_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class MLSTMCell(ScanCell):
    """The mLSTM step (Beck et al., 2024, Sec. 2.3 and App. A.3), per head of size d:

        q_t = x_t W_q + b_q,  k_t = (x_t W_k + b_k) / sqrt(d),  v_t = x_t W_v + b_v,
        ĩ_t = x_t w_i + b_i,  f̃_t = x_t w_f + b_f  (one scalar per head),  o_t = σ(x_t W_o + b_o)
        m_t = max(log σ(f̃_t) + m_{t−1}, ĩ_t)
        i'_t = exp(ĩ_t − m_t),  f'_t = exp(log σ(f̃_t) + m_{t−1} − m_t)
        C_t = f'_t C_{t−1} + i'_t v_t k_tᵀ,  n_t = f'_t n_{t−1} + i'_t k_t
        h̃_t = C_t q_t / max(|n_tᵀ q_t|, exp(−m_t)),  h_t = o_t ⊙ GN(h̃_t)

    (the stabilised form of i_t = exp(ĩ_t) with a sigmoid forget gate). GN is the mLSTM block's
    group norm (Fig. 10; the reference code's `MultiHeadLayerNorm`): each head's h̃ normalised to
    zero mean and unit variance over its d units (ε = 1e-5), times a learned scale per unit
    `head_norm_scale` (ones at first); it keeps the output's scale independent of the memory's.
    The gates read the cell's input x_t. The kernel [input_dim, 4 * units + 2 * num_heads] holds
    W_q, W_k, W_v, W_o, w_i, w_f; the forget-gate biases start spread over [3, 6] across heads
    (xLSTM's reference initialisation).

    Args:
        units: Dimensionality of the output (divisible by `num_heads`).
        num_heads: Number of heads, each with its own d × d memory (d = units / num_heads).
        head_norm: Whether h̃ goes through the per-head group norm GN (the paper's block); False
            gives h_t = o_t ⊙ h̃_t.
        (The other arguments are those of `zoo.recurrent.base.ScanCell`.)

    Call arguments:
        inputs: A 2D tensor `(batch, features)`.
        states: `[C_{t-1}, n_{t-1}, m_{t-1}]` flattened: `(batch, num_heads * d * d)`,
            `(batch, num_heads * d)`, `(batch, num_heads)`.

    Returns:
        `(h_t, [C_t, n_t, m_t])`.

    Example:

    >>> layer = keras.layers.RNN(zoo.cells.MLSTMCell(8, num_heads=2))
    >>> layer(np.zeros((2, 3, 5), "float32")).shape
    (2, 8)
    """

    def __init__(self, units, num_heads=1, head_norm=True, **kwargs):
        super().__init__(units, **kwargs)
        self.head_size = check_heads(self.__class__.__name__, units, num_heads)
        self.num_heads = num_heads
        self.head_norm = bool(head_norm)
        self.state_size = [num_heads * self.head_size**2, units, num_heads]

    def build(self, input_shape):
        super().build(input_shape)
        self.head_norm_scale = None
        if self.head_norm:
            self.head_norm_scale = self.add_weight(
                shape=(self.units,), name="head_norm_scale", initializer="ones"
            )

    def gated_output(self, h_tilde, output_gate):
        """h = o ⊙ GN(h̃) from h̃ (..., heads, d) and o (..., units), for a step or a sequence: each
        head normalised over its own d units at each step, then scaled per unit."""
        if self.head_norm:
            mean, variance = tf.nn.moments(h_tilde, axes=[-1], keepdims=True)
            h_tilde = (h_tilde - mean) * tf.math.rsqrt(variance + HEAD_NORM_EPSILON)
        h = tf.reshape(h_tilde, tf.concat([tf.shape(h_tilde)[:-2], [self.units]], axis=0))
        if self.head_norm:
            h = h * ops.cast(self.head_norm_scale, h.dtype)
        return output_gate * h

    def projection_width(self):
        return 4 * self.units + 2 * self.num_heads

    def make_bias_initializer(self):
        base, width, heads = self.bias_initializer, 4 * self.units + self.num_heads, self.num_heads
        forget = linspace_initializer(3.0, 6.0)

        def initializer(shape, dtype=None):
            return ops.concatenate([base((width,), dtype), forget((heads,), dtype)])

        return initializer

    def split_projection(self, projected):
        """q, k (scaled by 1/sqrt(d)), v as (..., heads, d); o = σ(...) as (..., units); ĩ and
        log σ(f̃) as (..., heads). Works for one step or a whole sequence."""
        units, heads, size = self.units, self.num_heads, self.head_size
        q, k, v, output_gate, input_gate, forget_gate = ops.split(
            projected, [units, 2 * units, 3 * units, 4 * units, 4 * units + heads], axis=-1
        )
        by_head = tf.concat([tf.shape(q)[:-1], [heads, size]], axis=0)
        q, k, v = (tf.reshape(t, by_head) for t in (q, k, v))
        return q, k / math.sqrt(size), v, ops.sigmoid(output_gate), input_gate, -ops.softplus(-forget_gate)

    def call(self, inputs, states):
        inputs, (c_prev, n_prev, m_prev) = self.validated(inputs, states)
        heads, size = self.num_heads, self.head_size
        q, k, v, o, input_gate, log_forget = self.split_projection(self.project(inputs))
        c_prev = ops.reshape(c_prev, (-1, heads, size, size))
        n_prev = ops.reshape(n_prev, (-1, heads, size))
        m = ops.maximum(log_forget + m_prev, input_gate)
        i = ops.exp(input_gate - m)[:, :, None]
        f = ops.exp(log_forget + m_prev - m)[:, :, None]
        c = f[:, :, :, None] * c_prev + i[:, :, :, None] * v[:, :, :, None] * k[:, :, None, :]
        n = f * n_prev + i * k
        numerator = ops.einsum("bhij,bhj->bhi", c, q)
        denominator = ops.maximum(ops.abs(ops.sum(n * q, axis=-1)), ops.exp(-m))
        h = self.gated_output(numerator / denominator[:, :, None], o)
        return h, [ops.reshape(c, (-1, heads * size * size)), ops.reshape(n, (-1, self.units)), m]

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "head_norm": self.head_norm}


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class MLSTM(ScanRecurrentLayer):
    """mLSTM sequence layer (Beck et al., 2024): `MLSTMCell` over a sequence.

    Paths (`implementation=`): `"loop"` runs the cell step by step; `"parallel"` is the paper's
    parallel form (App. A.3) with the initial state folded in: with F_t = Σ_{r≤t} log σ(f̃_r),
    log D_ts = F_t − F_s + ĩ_s (s ≤ t), m_t = max(max_s log D_ts, F_t + m_0) and
    h̃_t = (Σ_s e^{log D_ts − m_t} (q_t·k_s) v_s + e^{F_t + m_0 − m_t} C_0 q_t) / max(|den_t|, e^{−m_t}),
    den_t the same sums with 1 for v_s and n_0 for C_0; it costs O(T²) per head and equals the loop
    (m_t unrolled is exactly that maximum). `"auto"` takes the parallel form, on CPU too: the loop
    carries a d × d memory per head through every step and trains slower.

    Args:
        units: Dimensionality of the output (divisible by `num_heads`).
        num_heads: Number of heads.
        head_norm: Whether each head's output is group-normalised (`MLSTMCell`).
        use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
            kernel_constraint, bias_constraint: of the input projection (`ScanCell`).
        return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask: as in
            `zoo.layers.LSTM`.
        implementation: `"auto"`, `"loop"` or `"parallel"`.

    Call arguments:
        sequences: `(batch, time, features)` float tensor.
        initial_state: `[C_0, n_0, m_0]` flattened as the cell's (optional, zeros by default).
        mask: `(batch, time)` bool (optional).

    Example:

    >>> layer = zoo.layers.MLSTM(8, num_heads=2, return_sequences=True)
    >>> layer(np.zeros((2, 5, 3), "float32")).shape
    (2, 5, 8)
    """

    cell_class = MLSTMCell
    cell_name = "mlstm_cell"
    parallel_trains_faster_on_cpu = True

    def parallel_sequence(self, sequences, initial_state, mask):
        cell = self.cell
        heads, size = cell.num_heads, cell.head_size
        q, k, v, o, input_gate, log_forget = cell.split_projection(cell.project(sequences))
        # Heads first: (batch, heads, time, ...).
        q, k, v = (tf.transpose(t, (0, 2, 1, 3)) for t in (q, k, v))
        input_gate, log_forget = (tf.transpose(t, (0, 2, 1)) for t in (input_gate, log_forget))
        c0 = tf.reshape(initial_state[0], (-1, heads, size, size))
        n0 = tf.reshape(initial_state[1], (-1, heads, size))
        m0 = initial_state[2]
        time = tf.shape(q)[2]
        contributes = tf.linalg.band_part(tf.ones((time, time), tf.bool), -1, 0)[None, None]
        if mask is not None:
            # A padded step keeps the state: forget gate 1, input gate 0.
            log_forget = tf.where(mask[:, None, :], log_forget, tf.zeros_like(log_forget))
            contributes = tf.logical_and(contributes, mask[:, None, None, :])
        cumulative_forget = tf.cumsum(log_forget, axis=-1)
        log_weights = (
            cumulative_forget[..., :, None] - cumulative_forget[..., None, :] + input_gate[..., None, :]
        )
        log_weights = tf.where(contributes, log_weights, tf.constant(LOG_ZERO, log_weights.dtype))
        log_initial_weight = cumulative_forget + m0[:, :, None]
        m = tf.maximum(tf.reduce_max(log_weights, axis=-1), log_initial_weight)
        weights = tf.exp(log_weights - m[..., None])
        initial_weight = tf.exp(log_initial_weight - m)
        scores = tf.matmul(q, k, transpose_b=True) * weights
        numerator = tf.matmul(scores, v) + initial_weight[..., None] * tf.einsum("bhij,bhtj->bhti", c0, q)
        denominator = tf.reduce_sum(scores, axis=-1) + initial_weight * tf.einsum("bhj,bhtj->bht", n0, q)
        denominator = tf.maximum(tf.abs(denominator), tf.exp(-m))
        outputs = cell.gated_output(tf.transpose(numerator / denominator[..., None], (0, 2, 1, 3)), o)
        # The states after the last step: its row of weights applied to the outer products.
        last_weights, last_initial = weights[:, :, -1], initial_weight[:, :, -1]
        c = tf.einsum("bhs,bhsi,bhsj->bhij", last_weights, v, k) + last_initial[..., None, None] * c0
        n = tf.einsum("bhs,bhsj->bhj", last_weights, k) + last_initial[..., None] * n0
        batch = tf.shape(q)[0]
        return outputs, [tf.reshape(c, (batch, -1)), tf.reshape(n, (batch, -1)), m[:, :, -1]]
