"""The sLSTM sequence (xLSTM's scalar-memory LSTM, Beck et al., 2024) in one C++ kernel, forward
and backward: the recurrent product, block-diagonal by head, and the stabilised exponential gating
at every step, after the input product that the caller forms for the whole sequence.

Masking, direction and padding rule are those of `ops.rnn` (Keras's loop with
`mask = tf.sequence_mask(lengths, T)`). When the compiled library does not load,
`slstm_sequence_fallback` gives the same numbers (and its gradients come from autodiff).
"""

import tensorflow as tf

from ops import _library
from ops.rnn import _as_float_tensors, _as_lengths, _masked_scan, _zeros_if_none

_STATES = ("h", "c", "n", "m")


def _recurrent_product(h, recurrent_kernel):
    """h R, head by head, in the gate-major layout [batch, 4 * units] (gates i, f, z, o)."""
    heads, size = tf.shape(recurrent_kernel)[0], tf.shape(recurrent_kernel)[1]
    gates = tf.einsum("bkd,kde->bke", tf.reshape(h, [-1, heads, size]), recurrent_kernel)
    gates = tf.transpose(tf.reshape(gates, [-1, heads, 4, size]), [0, 2, 1, 3])
    return tf.reshape(gates, [-1, 4 * heads * size])


def slstm_sequence_fallback(
    projected, recurrent_kernel, initial_states, lengths, *, reverse=False, zero_output_for_mask=False
):
    """Pure-TensorFlow `slstm_sequence` with the same arguments (the initial states as a tuple
    (h, c, n, m)) and numbers."""

    def step(projected_t, states):
        h, c, n, m = states
        input_gate, forget_gate, candidate, output_gate = tf.split(
            projected_t + _recurrent_product(h, recurrent_kernel), 4, axis=-1
        )
        log_forget = -tf.math.softplus(-forget_gate)
        m_next = tf.maximum(log_forget + m, input_gate)
        i = tf.exp(input_gate - m_next)
        f = tf.exp(log_forget + m - m_next)
        c = f * c + i * tf.tanh(candidate)
        n = f * n + i
        h = tf.sigmoid(output_gate) * c / n
        return h, (h, c, n, m_next)

    outputs, final = _masked_scan(
        step, projected, lengths, tuple(initial_states), reverse, zero_output_for_mask
    )
    return (outputs, *final)


def slstm_sequence(
    projected,
    recurrent_kernel,
    initial_h,
    initial_c,
    initial_n,
    initial_m,
    lengths,
    *,
    reverse=False,
    zero_output_for_mask=False,
):
    """Runs an sLSTM with `heads` block-diagonal recurrent weights over a right-padded batch.

    Args:
        projected: float32 (or float64) `[batch, time, 4 * units]`, x_t W + b of every step (gates
            i, f, z, o, each `units` wide).
        recurrent_kernel: `[heads, head_size, 4 * head_size]`, each head's gates i, f, z, o; units
            = heads * head_size.
        initial_h, initial_c, initial_n, initial_m: `[batch, units]` initial states (n > 0).
        lengths: int32 `[batch]`, each in `[0, time]`: the valid prefix of each sequence.
        reverse: process t = time-1 .. 0 and return the outputs in that order (`go_backwards`).
        zero_output_for_mask: zero outputs at padded steps instead of repeating the last output.

    Returns:
        `(outputs, h, c, n, m)`: `[batch, time, units]` and the final states `[batch, units]`.

    Raises:
        TypeError: a float argument is not float32/float64 or the dtypes differ, or lengths
            is not int32.
        tf.errors.InvalidArgumentError: wrong ranks or shapes, or a length outside `[0, time]`.

    Example:
        >>> outputs, h, c, n, m = slstm_sequence(x @ w + b, r, h0, c0, n0, m0, lengths)
    """
    lengths = _as_lengths("slstm_sequence", lengths)
    t = _as_float_tensors(
        "slstm_sequence",
        projected=projected,
        recurrent_kernel=recurrent_kernel,
        initial_h=initial_h,
        initial_c=initial_c,
        initial_n=initial_n,
        initial_m=initial_m,
    )
    initial = [t[f"initial_{state}"] for state in _STATES]
    library = _library.load()
    if library is None:
        return slstm_sequence_fallback(
            t["projected"],
            t["recurrent_kernel"],
            initial,
            lengths,
            reverse=reverse,
            zero_output_for_mask=zero_output_for_mask,
        )
    outputs, h, c, n, m, _, _ = library.zoo_slstm_sequence(
        t["projected"],
        t["recurrent_kernel"],
        *initial,
        lengths,
        reverse=reverse,
        zero_output_for_mask=zero_output_for_mask,
    )
    return outputs, h, c, n, m


@tf.RegisterGradient("ZooSlstmSequence")
def _slstm_sequence_gradient(op, d_outputs, d_h, d_c, d_n, d_m, *_):
    _, recurrent_kernel, *_, lengths = op.inputs
    outputs, *final, pre, previous = op.outputs
    d_final = [_zeros_if_none(d, state) for d, state in zip((d_h, d_c, d_n, d_m), final)]
    d_projected, *d_initial = _library.load().zoo_slstm_sequence_grad(
        pre,
        recurrent_kernel,
        lengths,
        previous,
        _zeros_if_none(d_outputs, outputs),
        *d_final,
        reverse=op.get_attr("reverse"),
        zero_output_for_mask=op.get_attr("zero_output_for_mask"),
    )
    # Head k's block: the h each step started from (its units of head k), transposed, times the
    # gradients of head k's gates, summed over all steps in one product.
    heads, size = tf.shape(recurrent_kernel)[0], tf.shape(recurrent_kernel)[1]
    h_previous = tf.reshape(previous[..., : heads * size], [-1, heads, size])
    d_gates = tf.reshape(d_projected, [-1, 4, heads, size])
    d_recurrent_kernel = tf.reshape(
        tf.einsum("rkj,rgke->kjge", h_previous, d_gates), tf.shape(recurrent_kernel)
    )
    return [d_projected, d_recurrent_kernel, *d_initial, None]
