"""Fused SimpleRNN, LSTM and GRU sequence ops: a whole sequence, forward and backward, in one C++
kernel.

The numbers equal Keras 3's own CPU loop (`keras.src.backend.tensorflow.rnn.rnn` over
`keras.layers.SimpleRNNCell` (tanh) / `LSTMCell` / `GRUCell`) with `mask = tf.sequence_mask(lengths, T)`,
`go_backwards=reverse` and `zero_output_for_mask`: at a padded step the state is carried and the
output repeats the previous output (zeros before the first valid step), or is zero when
`zero_output_for_mask`; with `reverse` the sequence runs from t = T-1 down to 0 and the outputs
come back in processing order. Activations are tanh and sigmoid.

When the compiled library does not load, the pure-TensorFlow fallbacks below give the same numbers
(and their gradients come from autodiff).
"""

import tensorflow as tf

from ops import _library

_FLOAT_DTYPES = (tf.float32, tf.float64)
# Batches of up to this many rows make short ops whose two halves (units split by rnn::UnitParts,
# or one batch shard per core) each need a core to the op's end.
_SMALL_BATCH_MAX_ROWS = 32


def _as_float_tensors(op_name, **tensors):
    """Converts the float arguments to tensors of the first one's float dtype, or raises TypeError."""
    converted = {name: tf.convert_to_tensor(value) for name, value in tensors.items()}
    first = next(iter(converted))
    dtype = converted[first].dtype
    if dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{op_name} expects float32 or float64 {first}, got {dtype.name}")
    for name, tensor in converted.items():
        if tensor.dtype != dtype:
            raise TypeError(
                f"{op_name}: {name} has dtype {tensor.dtype.name}, expected {dtype.name} like {first}"
            )
    return converted


def _as_lengths(op_name, lengths):
    lengths = tf.convert_to_tensor(lengths)
    if lengths.dtype != tf.int32:
        raise TypeError(f"{op_name}: lengths must be int32, got {lengths.dtype.name}")
    return lengths


def _zeros_if_none(gradient, like):
    return tf.zeros_like(like) if gradient is None else gradient


# ---------------------------------------------------------------------------------------------
# Pure-TensorFlow fallbacks, written from the equations.


def _masked_scan(step, projected, lengths, initial_states, reverse, zero_output_for_mask):
    """Runs `step(projected_t, states) -> (output, new_states)` over time with Keras's masking.

    Returns the outputs [B, T, H] in processing order and the final states.
    """
    tf.debugging.assert_rank(projected, 3, message="inputs must be [batch, time, features]")
    time = tf.shape(projected)[1]
    tf.debugging.assert_non_negative(lengths, message="lengths must be >= 0")
    tf.debugging.assert_less_equal(lengths, time, message="lengths must be <= the number of steps")
    mask = tf.transpose(tf.sequence_mask(lengths, time))
    projected = tf.transpose(projected, [1, 0, 2])
    if reverse:
        mask = tf.reverse(mask, [0])
        projected = tf.reverse(projected, [0])
    first = initial_states[0]

    def scan_step(carry, elements):
        states, previous_output = carry
        projected_t, mask_t = elements
        output, new_states = step(projected_t, states)
        keep = mask_t[:, None]
        fill = tf.zeros_like(output) if zero_output_for_mask else previous_output
        output = tf.where(keep, output, fill)
        new_states = tuple(tf.where(keep, new, old) for new, old in zip(new_states, states))
        return new_states, output

    states, outputs = tf.scan(
        scan_step, (projected, mask), initializer=(tuple(initial_states), tf.zeros_like(first))
    )
    final_states = tuple(
        tf.cond(time > 0, lambda s=s: s[-1], lambda i=i: i) for s, i in zip(states, initial_states)
    )
    return tf.transpose(outputs, [1, 0, 2]), final_states


def simple_rnn_sequence_fallback(
    inputs,
    initial_h,
    kernel,
    recurrent_kernel,
    bias,
    lengths,
    *,
    reverse=False,
    zero_output_for_mask=False,
):
    """Pure-TensorFlow `simple_rnn_sequence` with the same arguments and numbers."""
    projected = tf.einsum("btd,dh->bth", inputs, kernel)
    if bias is not None:
        projected += bias

    def step(projected_t, states):
        (h,) = states
        h = tf.tanh(projected_t + tf.matmul(h, recurrent_kernel))
        return h, (h,)

    outputs, (final_h,) = _masked_scan(step, projected, lengths, (initial_h,), reverse, zero_output_for_mask)
    return outputs, final_h


def lstm_sequence_fallback(
    inputs,
    initial_h,
    initial_c,
    kernel,
    recurrent_kernel,
    bias,
    lengths,
    *,
    reverse=False,
    zero_output_for_mask=False,
):
    """Pure-TensorFlow `lstm_sequence` with the same arguments and numbers."""
    projected = tf.einsum("btd,dg->btg", inputs, kernel)
    if bias is not None:
        projected += bias

    def step(projected_t, states):
        h, c = states
        gates = projected_t + tf.matmul(h, recurrent_kernel)
        i, f, g, o = tf.split(gates, 4, axis=-1)
        c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
        h = tf.sigmoid(o) * tf.tanh(c)
        return h, (h, c)

    outputs, (final_h, final_c) = _masked_scan(
        step, projected, lengths, (initial_h, initial_c), reverse, zero_output_for_mask
    )
    return outputs, final_h, final_c


def gru_sequence_fallback(
    inputs,
    initial_h,
    kernel,
    recurrent_kernel,
    bias,
    lengths,
    *,
    reset_after=True,
    reverse=False,
    zero_output_for_mask=False,
):
    """Pure-TensorFlow `gru_sequence` with the same arguments and numbers."""
    projected = tf.einsum("btd,dg->btg", inputs, kernel)
    recurrent_bias = None
    if bias is not None:
        projected += bias[0] if reset_after else bias
        recurrent_bias = bias[1] if reset_after else None
    recurrent_zr, recurrent_h = tf.split(recurrent_kernel, [-1, tf.shape(recurrent_kernel)[0]], 1)

    def step(projected_t, states):
        (h,) = states
        x_z, x_r, x_h = tf.split(projected_t, 3, axis=-1)
        if reset_after:
            from_h = tf.matmul(h, recurrent_kernel)
            if recurrent_bias is not None:
                from_h += recurrent_bias
            h_z, h_r, h_h = tf.split(from_h, 3, axis=-1)
            z, r = tf.sigmoid(x_z + h_z), tf.sigmoid(x_r + h_r)
            candidate = tf.tanh(x_h + r * h_h)
        else:
            h_z, h_r = tf.split(tf.matmul(h, recurrent_zr), 2, axis=-1)
            z, r = tf.sigmoid(x_z + h_z), tf.sigmoid(x_r + h_r)
            candidate = tf.tanh(x_h + tf.matmul(r * h, recurrent_h))
        h = z * h + (1 - z) * candidate
        return h, (h,)

    outputs, (final_h,) = _masked_scan(step, projected, lengths, (initial_h,), reverse, zero_output_for_mask)
    return outputs, final_h


# ---------------------------------------------------------------------------------------------
# Fused ops.


def simple_rnn_sequence(
    inputs,
    initial_h,
    kernel,
    recurrent_kernel,
    bias,
    lengths,
    *,
    reverse=False,
    zero_output_for_mask=False,
    keep_for_gradient=True,
):
    """Runs a fully connected RNN, h_t = tanh(x_t W + h_{t-1} U + b), over a right-padded batch.

    Args:
        inputs: float32 (or float64) `[batch, time, input_dim]`.
        initial_h: `[batch, units]` initial state.
        kernel: `[input_dim, units]`; recurrent_kernel: `[units, units]`.
        bias: `[units]`, or None for no bias.
        lengths: int32 `[batch]`, each in `[0, time]`.
        reverse, zero_output_for_mask, keep_for_gradient: as in `lstm_sequence`.

    Returns:
        `(outputs, final_h)`: `[batch, time, units]` and `[batch, units]`.

    Raises:
        TypeError: a float argument is not float32/float64 or the dtypes differ, or lengths
            is not int32.
        tf.errors.InvalidArgumentError: wrong ranks or sizes, or a length outside `[0, time]`.

    Example:
        >>> outputs, h = simple_rnn_sequence(x, h0, w, u, b, tf.fill([batch], time))
    """
    lengths = _as_lengths("simple_rnn_sequence", lengths)
    t = _as_float_tensors(
        "simple_rnn_sequence",
        inputs=inputs,
        initial_h=initial_h,
        kernel=kernel,
        recurrent_kernel=recurrent_kernel,
        **({} if bias is None else {"bias": bias}),
    )
    library = _library.load()
    if library is None:
        return simple_rnn_sequence_fallback(
            t["inputs"],
            t["initial_h"],
            t["kernel"],
            t["recurrent_kernel"],
            t.get("bias"),
            lengths,
            reverse=reverse,
            zero_output_for_mask=zero_output_for_mask,
        )
    bias = t.get("bias")
    if bias is None:
        bias = tf.zeros(tf.shape(t["recurrent_kernel"])[1:], t["inputs"].dtype)
    outputs, final_h, _, _ = library.zoo_simple_rnn_sequence(
        t["inputs"],
        t["initial_h"],
        t["kernel"],
        t["recurrent_kernel"],
        bias,
        lengths,
        reverse=reverse,
        zero_output_for_mask=zero_output_for_mask,
        keep_for_gradient=keep_for_gradient,
    )
    return outputs, final_h


def lstm_sequence(
    inputs,
    initial_h,
    initial_c,
    kernel,
    recurrent_kernel,
    bias,
    lengths,
    *,
    reverse=False,
    zero_output_for_mask=False,
    keep_for_gradient=True,
):
    """Runs an LSTM (Keras gate order i, f, c, o) over a right-padded batch of sequences.

    Args:
        inputs: float32 (or float64) `[batch, time, input_dim]`.
        initial_h, initial_c: `[batch, units]` initial states.
        kernel: `[input_dim, 4 * units]`; recurrent_kernel: `[units, 4 * units]`.
        bias: `[4 * units]`, or None for no bias.
        lengths: int32 `[batch]`, each in `[0, time]`: the valid prefix of each sequence.
        reverse: process t = time-1 .. 0 and return the outputs in that order (`go_backwards`).
        zero_output_for_mask: zero outputs at padded steps instead of repeating the last output.
        keep_for_gradient: keep the activations that the gradient reads (time-major copies of
            the gates, the step inputs and the cell states). False, for inference, skips writing
            them, which saves memory and time; a gradient is still right, but runs the forward a
            second time to get them.

    Returns:
        `(outputs, final_h, final_c)`: `[batch, time, units]`, `[batch, units]`, `[batch, units]`.

    Raises:
        TypeError: a float argument is not float32/float64 or the dtypes differ, or lengths
            is not int32.
        tf.errors.InvalidArgumentError: wrong ranks or sizes, or a length outside `[0, time]`.

    Example:
        >>> outputs, h, c = lstm_sequence(x, h0, c0, w, u, b, tf.fill([batch], time))
    """
    lengths = _as_lengths("lstm_sequence", lengths)
    t = _as_float_tensors(
        "lstm_sequence",
        inputs=inputs,
        initial_h=initial_h,
        initial_c=initial_c,
        kernel=kernel,
        recurrent_kernel=recurrent_kernel,
        **({} if bias is None else {"bias": bias}),
    )
    library = _library.load()
    if library is None:
        return lstm_sequence_fallback(
            t["inputs"],
            t["initial_h"],
            t["initial_c"],
            t["kernel"],
            t["recurrent_kernel"],
            t.get("bias"),
            lengths,
            reverse=reverse,
            zero_output_for_mask=zero_output_for_mask,
        )
    bias = t.get("bias")
    if bias is None:
        bias = tf.zeros(tf.shape(t["recurrent_kernel"])[1:], t["inputs"].dtype)
    outputs, final_h, final_c, _, _, _ = library.zoo_lstm_sequence(
        t["inputs"],
        t["initial_h"],
        t["initial_c"],
        t["kernel"],
        t["recurrent_kernel"],
        bias,
        lengths,
        reverse=reverse,
        zero_output_for_mask=zero_output_for_mask,
        keep_for_gradient=keep_for_gradient,
    )
    return outputs, final_h, final_c


def _weight_gradient(factors, d_projected):
    """sum over steps and examples of factors^T d_projected, for time-major `[T, B, ·]` tensors:
    one large matrix product (TensorFlow's matmul runs it at the machine's rate)."""
    return tf.matmul(
        tf.reshape(factors, [-1, tf.shape(factors)[-1]]),
        tf.reshape(d_projected, [-1, tf.shape(d_projected)[-1]]),
        transpose_a=True,
    )


# The gradient ops sum the weight gradients themselves, block of rows by block of rows while the
# pre-activation gradients are in cache, for weights of at most this many bytes: then the
# [T, B, gates * H] gradients are never written out and read back for one large product and a
# column sum. Larger weights' sums no longer share the L2 cache with the weights, and TensorFlow's
# one large product is faster (BUILD.md, "Weight gradients").
_MAX_SUMMED_WEIGHT_BYTES = 512 * 1024


def _sums_weight_gradients(*weights):
    """Whether a gradient op sums the gradients of these weights itself (sum_weight_gradients);
    False where their static shapes are unknown."""
    values = [weight.shape.num_elements() for weight in weights]
    if None in values:
        return False
    return sum(values) * weights[0].dtype.size <= _MAX_SUMMED_WEIGHT_BYTES


def _kept_outputs(op, forward, attributes):
    """The op's outputs, with what its gradient reads: when the op kept nothing for a gradient
    (`keep_for_gradient=False`), the outputs of the same forward run again keeping it."""
    if op.get_attr("keep_for_gradient"):
        return op.outputs
    return forward(*op.inputs, keep_for_gradient=True, **{name: op.get_attr(name) for name in attributes})


def _split_rows(d_weights, kernel):
    """The product step_inputs^T d_pre split into the kernel's rows and the recurrent kernel's."""
    input_size = tf.shape(kernel)[0]
    return d_weights[:input_size], d_weights[input_size:]


@tf.RegisterGradient("ZooSimpleRnnSequence")
def _simple_rnn_sequence_gradient(op, d_outputs, d_final_h, *_):
    inputs, _, kernel, recurrent_kernel, _, lengths = op.inputs
    outputs, final_h, states, step_inputs = _kept_outputs(
        op, _library.load().zoo_simple_rnn_sequence, ("reverse", "zero_output_for_mask")
    )
    sums = _sums_weight_gradients(kernel, recurrent_kernel)
    d_inputs, d_initial_h, d_pre, d_weights, d_bias = _library.load().zoo_simple_rnn_sequence_grad(
        inputs,
        kernel,
        recurrent_kernel,
        lengths,
        states,
        step_inputs,
        _zeros_if_none(d_outputs, outputs),
        _zeros_if_none(d_final_h, final_h),
        reverse=op.get_attr("reverse"),
        zero_output_for_mask=op.get_attr("zero_output_for_mask"),
        sum_weight_gradients=sums,
    )
    if not sums:
        d_weights = _weight_gradient(step_inputs, d_pre)
    d_kernel, d_recurrent_kernel = _split_rows(d_weights, kernel)
    return [d_inputs, d_initial_h, d_kernel, d_recurrent_kernel, d_bias, None]


@tf.RegisterGradient("ZooLstmSequence")
def _lstm_sequence_gradient(op, d_outputs, d_final_h, d_final_c, *_):
    inputs, _, _, kernel, recurrent_kernel, _, lengths = op.inputs
    outputs, final_h, final_c, gates, step_inputs, c_prev = _kept_outputs(
        op, _library.load().zoo_lstm_sequence, ("reverse", "zero_output_for_mask")
    )
    sums = _sums_weight_gradients(kernel, recurrent_kernel)
    d_inputs, d_initial_h, d_initial_c, d_gates, d_weights, d_bias = _library.load().zoo_lstm_sequence_grad(
        inputs,
        kernel,
        recurrent_kernel,
        lengths,
        gates,
        c_prev,
        step_inputs,
        _zeros_if_none(d_outputs, outputs),
        _zeros_if_none(d_final_h, final_h),
        _zeros_if_none(d_final_c, final_c),
        reverse=op.get_attr("reverse"),
        zero_output_for_mask=op.get_attr("zero_output_for_mask"),
        sum_weight_gradients=sums,
    )
    # step_inputs holds [x_t, h_prev] of every step: both weight gradients in one product.
    if not sums:
        d_weights = _weight_gradient(step_inputs, d_gates)
    d_kernel, d_recurrent_kernel = _split_rows(d_weights, kernel)
    return [d_inputs, d_initial_h, d_initial_c, d_kernel, d_recurrent_kernel, d_bias, None]


def gru_sequence(
    inputs,
    initial_h,
    kernel,
    recurrent_kernel,
    bias,
    lengths,
    *,
    reset_after=True,
    reverse=False,
    zero_output_for_mask=False,
    keep_for_gradient=True,
):
    """Runs a GRU (Keras gate order z, r, h) over a right-padded batch of sequences.

    Args:
        inputs: float32 (or float64) `[batch, time, input_dim]`.
        initial_h: `[batch, units]` initial state.
        kernel: `[input_dim, 3 * units]`; recurrent_kernel: `[units, 3 * units]`.
        bias: `[2, 3 * units]` (input bias row, recurrent bias row) when `reset_after`,
            `[3 * units]` otherwise, or None for no bias.
        lengths: int32 `[batch]`, each in `[0, time]`.
        reset_after: apply the reset gate after the recurrent product (Keras's default, and
            cuDNN's convention) rather than before.
        reverse, zero_output_for_mask, keep_for_gradient: as in `lstm_sequence`.

    Returns:
        `(outputs, final_h)`: `[batch, time, units]` and `[batch, units]`.

    Raises:
        TypeError: a float argument is not float32/float64 or the dtypes differ, or lengths
            is not int32.
        tf.errors.InvalidArgumentError: wrong ranks or sizes, or a length outside `[0, time]`.

    Example:
        >>> outputs, h = gru_sequence(x, h0, w, u, b, tf.fill([batch], time))
    """
    lengths = _as_lengths("gru_sequence", lengths)
    t = _as_float_tensors(
        "gru_sequence",
        inputs=inputs,
        initial_h=initial_h,
        kernel=kernel,
        recurrent_kernel=recurrent_kernel,
        **({} if bias is None else {"bias": bias}),
    )
    library = _library.load()
    if library is None:
        return gru_sequence_fallback(
            t["inputs"],
            t["initial_h"],
            t["kernel"],
            t["recurrent_kernel"],
            t.get("bias"),
            lengths,
            reset_after=reset_after,
            reverse=reverse,
            zero_output_for_mask=zero_output_for_mask,
        )
    bias = t.get("bias")
    if bias is None:
        width = tf.shape(t["recurrent_kernel"])[1:]
        bias = tf.zeros(tf.concat([[2], width], 0) if reset_after else width, t["inputs"].dtype)
    outputs, final_h, _, _ = library.zoo_gru_sequence(
        t["inputs"],
        t["initial_h"],
        t["kernel"],
        t["recurrent_kernel"],
        bias,
        lengths,
        reset_after=reset_after,
        reverse=reverse,
        zero_output_for_mask=zero_output_for_mask,
        keep_for_gradient=keep_for_gradient,
    )
    return outputs, final_h


@tf.RegisterGradient("ZooGruSequence")
def _gru_sequence_gradient(op, d_outputs, d_final_h, *_):
    inputs, _, kernel, recurrent_kernel, _, lengths = op.inputs
    outputs, final_h, gates, h_prev = _kept_outputs(
        op, _library.load().zoo_gru_sequence, ("reset_after", "reverse", "zero_output_for_mask")
    )
    reset_after = op.get_attr("reset_after")
    sums = _sums_weight_gradients(kernel, recurrent_kernel)
    d_inputs, d_initial_h, d_projected, d_recurrent, d_kernel, d_recurrent_kernel, d_bias = (
        _library.load().zoo_gru_sequence_grad(
            inputs,
            kernel,
            recurrent_kernel,
            lengths,
            gates,
            h_prev,
            _zeros_if_none(d_outputs, outputs),
            _zeros_if_none(d_final_h, final_h),
            reset_after=reset_after,
            reverse=op.get_attr("reverse"),
            zero_output_for_mask=op.get_attr("zero_output_for_mask"),
            sum_weight_gradients=sums,
        )
    )
    if sums:
        return [d_inputs, d_initial_h, d_kernel, d_recurrent_kernel, d_bias, None]
    # The inputs time-major, like d_projected. Small batches: only once the gradient op is done.
    # A small batch's gradient op runs on all cores in parts that meet at every step, and an op
    # that the executor runs beside it holds up one of them; beside a large batch's long op, whose
    # parts run apart, the overlap helps.
    batch = inputs.shape[0]
    if batch is None or batch <= _SMALL_BATCH_MAX_ROWS:
        with tf.control_dependencies([d_projected]):
            inputs = tf.identity(inputs)
    d_kernel = _weight_gradient(tf.transpose(inputs, [1, 0, 2]), d_projected)
    if reset_after:
        d_recurrent_kernel = _weight_gradient(h_prev, d_recurrent)
    else:
        # The candidate's recurrent product acts on r * h_prev (d_recurrent), the others on h_prev.
        units = tf.shape(h_prev)[-1]
        d_recurrent_kernel = tf.concat(
            [
                _weight_gradient(h_prev, d_projected[..., : 2 * units]),
                _weight_gradient(d_recurrent, d_projected[..., 2 * units :]),
            ],
            axis=1,
        )
    return [d_inputs, d_initial_h, d_kernel, d_recurrent_kernel, d_bias, None]
