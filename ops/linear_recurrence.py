"""The element-wise linear recurrence h_t = a_t * h_{t-1} + b_t in one C++ kernel, forward and
backward: what minGRU, minLSTM and the RG-LRU run after their one large input product.

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
