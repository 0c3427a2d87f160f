"""The element-wise linear recurrence h_t = a_t * h_{t-1} + b_t in one C++ kernel, forward and
backward: what minGRU, minLSTM and the RG-LRU run after their one large input product. Either a_t
and b_t are given (`linear_recurrence`), or the kernel forms them from the layer's projected input
in the same pass (`gated_linear_recurrence`, which the layers use).

Masking, direction and padding rule are those of `ops.rnn` (Keras's loop with
`mask = tf.sequence_mask(lengths, T)`): a padded step carries h, its output repeats the previous
output (zeros before the first valid step) or is zero with `zero_output_for_mask`; with `reverse`
the sequence runs from t = T-1 down to 0 and the outputs come back in processing order.

When the compiled library does not load, `linear_recurrence_fallback` gives the same numbers (and
its gradients come from autodiff).
"""

import tensorflow as tf

from ops import _library
from ops.rnn import _as_float_tensors, _as_lengths, _masked_scan, _zeros_if_none


def linear_recurrence_fallback(a, b, initial_h, lengths, *, reverse=False, zero_output_for_mask=False):
    """Pure-TensorFlow `linear_recurrence` with the same arguments and numbers."""
    units = tf.shape(a)[-1]

    def step(coefficients_t, states):
        a_t, b_t = coefficients_t[:, :units], coefficients_t[:, units:]
        h = a_t * states[0] + b_t
        return h, (h,)

    outputs, (final_h,) = _masked_scan(
        step, tf.concat([a, b], axis=-1), lengths, (initial_h,), reverse, zero_output_for_mask
    )
    return outputs, final_h


def linear_recurrence(a, b, initial_h, lengths, *, reverse=False, zero_output_for_mask=False):
    """Runs h_t = a_t * h_{t-1} + b_t (element-wise) over a right-padded batch of sequences.

    Args:
        a: float32 (or float64) `[batch, time, units]`, the coefficients of h_{t-1}.
        b: `[batch, time, units]`, the inputs, like `a`.
        initial_h: `[batch, units]` initial state.
        lengths: int32 `[batch]`, each in `[0, time]`: the valid prefix of each sequence.
        reverse: process t = time-1 .. 0 and return the outputs in that order (`go_backwards`).
        zero_output_for_mask: zero outputs at padded steps instead of repeating the last output.

    Returns:
        `(outputs, final_h)`: `[batch, time, units]` and `[batch, units]`.

    Raises:
        TypeError: a float argument is not float32/float64 or the dtypes differ, or lengths
            is not int32.
        tf.errors.InvalidArgumentError: wrong ranks or shapes, or a length outside `[0, time]`.

    Example:
        >>> outputs, h = linear_recurrence(a, b, h0, tf.fill([batch], time))
    """
    lengths = _as_lengths("linear_recurrence", lengths)
    t = _as_float_tensors("linear_recurrence", a=a, b=b, initial_h=initial_h)
    library = _library.load()
    if library is None:
        return linear_recurrence_fallback(
            t["a"],
            t["b"],
            t["initial_h"],
            lengths,
            reverse=reverse,
            zero_output_for_mask=zero_output_for_mask,
        )
    return library.zoo_linear_recurrence(
        t["a"], t["b"], t["initial_h"], lengths, reverse=reverse, zero_output_for_mask=zero_output_for_mask
    )


@tf.RegisterGradient("ZooLinearRecurrence")
def _linear_recurrence_gradient(op, d_outputs, d_final_h):
    a, _, initial_h, lengths = op.inputs
    outputs, final_h = op.outputs
    d_a, d_b, d_initial_h = _library.load().zoo_linear_recurrence_grad(
        a,
        initial_h,
        lengths,
        outputs,
        _zeros_if_none(d_outputs, outputs),
        _zeros_if_none(d_final_h, final_h),
        reverse=op.get_attr("reverse"),
        zero_output_for_mask=op.get_attr("zero_output_for_mask"),
    )
    return [d_a, d_b, d_initial_h, None]


# Columns of the projected input, in blocks of `units`, for each cell of the gated recurrence.
GATED_CELLS = {"min_gru": 2, "min_lstm": 3, "rg_lru": 3}


def _positive_activation(x):
    return tf.where(x >= 0, x + 0.5, tf.sigmoid(x))


def gated_coefficients(projected, log_base, cell, gate_exponent=8.0):
    """(a, b) of `cell` from its projected input, in TensorFlow (see `gated_linear_recurrence`)."""
    blocks = tf.split(projected, GATED_CELLS[cell], axis=-1)
    if cell == "min_gru":
        z = tf.sigmoid(blocks[0])
        return 1.0 - z, z * _positive_activation(blocks[1])
    if cell == "min_lstm":
        f, i = tf.sigmoid(blocks[0]), tf.sigmoid(blocks[1])
        return f / (f + i), i * _positive_activation(blocks[2]) / (f + i)
    log_a = gate_exponent * tf.sigmoid(blocks[0]) * log_base
    return tf.exp(log_a), tf.sqrt(-tf.math.expm1(2.0 * log_a)) * tf.sigmoid(blocks[1]) * blocks[2]


def gated_linear_recurrence_fallback(
    projected,
    log_base,
    initial_h,
    lengths,
    *,
    cell,
    gate_exponent=8.0,
    reverse=False,
    zero_output_for_mask=False,
):
    """Pure-TensorFlow `gated_linear_recurrence` with the same arguments and numbers."""
    a, b = gated_coefficients(projected, log_base, cell, gate_exponent)
    return linear_recurrence_fallback(
        a, b, initial_h, lengths, reverse=reverse, zero_output_for_mask=zero_output_for_mask
    )


def gated_linear_recurrence(
    projected,
    log_base,
    initial_h,
    lengths,
    *,
    cell,
    gate_exponent=8.0,
    reverse=False,
    zero_output_for_mask=False,
):
    """`linear_recurrence` with a_t and b_t formed from a layer's projected input x_t W + b in the
    kernel's pass over it, so that no [batch, time, units] coefficient tensor is written, read back
    or differentiated op by op. With g(x) = x + 1/2 for x >= 0, σ(x) otherwise:

    - `"min_gru"`, projected `[k_z, k_h]`: a = 1 − σ(k_z), b = σ(k_z) g(k_h);
    - `"min_lstm"`, `[k_f, k_i, k_h]`, f = σ(k_f), i = σ(k_i): a = f / (f + i), b = i g(k_h) / (f + i);
    - `"rg_lru"`, `[k_r, k_i, u]`: log a = gate_exponent σ(k_r) log_base, b = sqrt(1 − a²) σ(k_i) u.

    Args:
        projected: float32 (or float64) `[batch, time, blocks * units]`, blocks as above.
        log_base: `[units]`, log σ(Λ) of the RG-LRU; `[0]` (no entries) for the other cells.
        initial_h: `[batch, units]` initial state.
        lengths: int32 `[batch]`, each in `[0, time]`.
        cell: `"min_gru"`, `"min_lstm"` or `"rg_lru"`.
        gate_exponent: the RG-LRU's constant c.
        reverse, zero_output_for_mask: as in `linear_recurrence`.

    Returns:
        `(outputs, final_h)`: `[batch, time, units]` and `[batch, units]`.

    Raises:
        ValueError: an unknown cell.
        TypeError: a float argument is not float32/float64 or the dtypes differ, or lengths
            is not int32.
        tf.errors.InvalidArgumentError: wrong ranks or shapes, or a length outside `[0, time]`.

    Example:
        >>> outputs, h = gated_linear_recurrence(x @ w + b, tf.zeros([0]), h0, lengths, cell="min_gru")
    """
    if cell not in GATED_CELLS:
        raise ValueError(f"gated_linear_recurrence: cell must be one of {sorted(GATED_CELLS)}; got {cell!r}")
    lengths = _as_lengths("gated_linear_recurrence", lengths)
    t = _as_float_tensors(
        "gated_linear_recurrence", projected=projected, log_base=log_base, initial_h=initial_h
    )
    options = dict(
        cell=cell, gate_exponent=gate_exponent, reverse=reverse, zero_output_for_mask=zero_output_for_mask
    )
    library = _library.load()
    if library is None:
        return gated_linear_recurrence_fallback(
            t["projected"], t["log_base"], t["initial_h"], lengths, **options
        )
    return library.zoo_gated_linear_recurrence(
        t["projected"], t["log_base"], t["initial_h"], lengths, **options
    )


@tf.RegisterGradient("ZooGatedLinearRecurrence")
def _gated_linear_recurrence_gradient(op, d_outputs, d_final_h):
    projected, log_base, initial_h, lengths = op.inputs
    outputs, final_h = op.outputs
    d_projected, d_log_base_rows, d_initial_h = _library.load().zoo_gated_linear_recurrence_grad(
        projected,
        log_base,
        initial_h,
        lengths,
        outputs,
        _zeros_if_none(d_outputs, outputs),
        _zeros_if_none(d_final_h, final_h),
        **{name: op.get_attr(name) for name in ("cell", "gate_exponent", "reverse", "zero_output_for_mask")},
    )
    return [d_projected, tf.reduce_sum(d_log_base_rows, axis=0), d_initial_h, None]
