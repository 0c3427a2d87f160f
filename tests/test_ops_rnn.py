"""Fused SimpleRNN/LSTM/GRU sequence ops against Keras's own RNN loop, the pure-TF fallback, and numeric
gradients; plus input validation."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import ops
import ops.rnn
from ops import _library
from ops.rnn import gru_sequence_fallback, lstm_sequence_fallback, simple_rnn_sequence_fallback

BATCH, TIME, FEATURES, UNITS = 5, 6, 3, 4
LENGTHS = np.array([0, TIME, 3, 1, 5], np.int32)  # includes 0 and T
# The narrowest layer whose steps the kernels split by units between two threads at small
# batches: two panels of 64 columns.
WIDE_UNITS = 128

requires_library = pytest.mark.skipif(not _library.is_available(), reason="op library not built")

# kind: (Keras cell class, fused op, fallback, number of states)
KINDS = {
    "simple_rnn": (keras.layers.SimpleRNNCell, ops.simple_rnn_sequence, simple_rnn_sequence_fallback, 1),
    "lstm": (keras.layers.LSTMCell, ops.lstm_sequence, lstm_sequence_fallback, 2),
    "gru": (keras.layers.GRUCell, ops.gru_sequence, gru_sequence_fallback, 1),
}


def _random(rng, *shape, dtype="float32"):
    return tf.constant(rng.normal(size=shape).astype(dtype))


def _max_abs_diff(a, b):
    return float(tf.reduce_max(tf.abs(tf.convert_to_tensor(a) - tf.convert_to_tensor(b))))


def _keras_reference(cell, inputs, initial_states, lengths, reverse, zero_output_for_mask):
    layer = keras.layers.RNN(
        cell,
        return_sequences=True,
        return_state=True,
        go_backwards=reverse,
        zero_output_for_mask=zero_output_for_mask,
    )
    return layer(inputs, initial_state=list(initial_states), mask=tf.sequence_mask(lengths, TIME))


def _check_against_references(cell, fused, fallback, states, reverse, zero_output_for_mask, lengths=LENGTHS):
    """Forward values and gradients of `fused` vs the Keras cell loop and vs `fallback`; returns
    the fused op's values and gradients."""
    rng = np.random.default_rng(7)
    inputs = _random(rng, len(lengths), TIME, FEATURES)
    weights = [cell.kernel, cell.recurrent_kernel, cell.bias]
    sources = [inputs, *states, *weights]
    results = {}
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([inputs, *states])
        results["keras"] = _keras_reference(cell, inputs, states, lengths, reverse, zero_output_for_mask)
        results["fused"] = fused(inputs, *states, *weights)
        results["fallback"] = fallback(inputs, *states, *weights)
        # A random linear functional of every output, so each gradient path is exercised.
        projections = [_random(rng, *r.shape) for r in results["keras"]]
        losses = {
            name: tf.add_n([tf.reduce_sum(r * p) for r, p in zip(result, projections)])
            for name, result in results.items()
        }
    gradients = {name: tape.gradient(loss, sources) for name, loss in losses.items()}
    for name in ("keras", "fallback"):
        for got, expected in zip(results["fused"], results[name]):
            assert _max_abs_diff(got, expected) <= 1e-5, name
        for got, expected in zip(gradients["fused"], gradients[name]):
            assert got is not None
            assert _max_abs_diff(got, expected) <= 1e-4, name
    return results["fused"], gradients["fused"]


@pytest.mark.parametrize("units", [UNITS, WIDE_UNITS])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_simple_rnn_matches_keras_and_fallback(units, reverse, zero_output_for_mask):
    rng = np.random.default_rng(8)
    cell = keras.layers.SimpleRNNCell(units, bias_initializer="random_normal")
    cell.build((BATCH, FEATURES))
    options = dict(reverse=reverse, zero_output_for_mask=zero_output_for_mask)

    def fused(x, h, w, u, b):
        return ops.simple_rnn_sequence(x, h, w, u, b, LENGTHS, **options)

    def fallback(x, h, w, u, b):
        return simple_rnn_sequence_fallback(x, h, w, u, b, LENGTHS, **options)

    (outputs, _), _ = _check_against_references(
        cell, fused, fallback, [_random(rng, BATCH, units)], **options
    )
    assert float(tf.reduce_max(tf.abs(outputs[0]))) == 0.0


@pytest.mark.parametrize("units", [UNITS, WIDE_UNITS])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_lstm_matches_keras_and_fallback(units, reverse, zero_output_for_mask):
    rng = np.random.default_rng(1)
    cell = keras.layers.LSTMCell(units, bias_initializer="random_normal")
    cell.build((BATCH, FEATURES))
    states = [_random(rng, BATCH, units), _random(rng, BATCH, units)]
    options = dict(reverse=reverse, zero_output_for_mask=zero_output_for_mask)

    def fused(x, h, c, w, u, b):
        return ops.lstm_sequence(x, h, c, w, u, b, LENGTHS, **options)

    def fallback(x, h, c, w, u, b):
        return lstm_sequence_fallback(x, h, c, w, u, b, LENGTHS, **options)

    (outputs, _, _), _ = _check_against_references(cell, fused, fallback, states, **options)
    # The example of length 0 keeps its state and its outputs stay zero.
    assert float(tf.reduce_max(tf.abs(outputs[0]))) == 0.0


@pytest.mark.parametrize("units", [UNITS, WIDE_UNITS])
@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_gru_matches_keras_and_fallback(units, reset_after, reverse, zero_output_for_mask):
    rng = np.random.default_rng(2)
    cell = keras.layers.GRUCell(units, reset_after=reset_after, bias_initializer="random_normal")
    cell.build((BATCH, FEATURES))
    states = [_random(rng, BATCH, units)]
    options = dict(reverse=reverse, zero_output_for_mask=zero_output_for_mask)

    def fused(x, h, w, u, b):
        return ops.gru_sequence(x, h, w, u, b, LENGTHS, reset_after=reset_after, **options)

    def fallback(x, h, w, u, b):
        return gru_sequence_fallback(x, h, w, u, b, LENGTHS, reset_after=reset_after, **options)

    _check_against_references(cell, fused, fallback, states, **options)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "lengths", [[TIME], [3], [0], [0, TIME, 3, 1]], ids=lambda lengths: "-".join(map(str, lengths))
)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_small_batches_split_by_units(kind, lengths, reverse, zero_output_for_mask):
    """Batches of 1 and 4 with 128 units: the forward kernels split each step's units between
    threads (rnn::UnitParts: up to 4 rows on any machine, up to 32 where a core's L2 cache cannot
    hold the weights), padded rows included."""
    rng = np.random.default_rng(4)
    cell_class, fused_op, fallback_op, state_count = KINDS[kind]
    cell = cell_class(WIDE_UNITS, bias_initializer="random_normal")
    batch = len(lengths)
    cell.build((batch, FEATURES))
    states = [_random(rng, batch, WIDE_UNITS) for _ in range(state_count)]
    options = dict(reverse=reverse, zero_output_for_mask=zero_output_for_mask)
    lengths = np.array(lengths, np.int32)

    def fused(*arguments):
        return fused_op(*arguments, lengths, **options)

    def fallback(*arguments):
        return fallback_op(*arguments, lengths, **options)

    _check_against_references(cell, fused, fallback, states, **options, lengths=lengths)


# The kinds as the tests below name them: "gru-reset-before" is the GRU with reset_after=False.
VARIANTS = ["simple_rnn", "lstm", "gru", "gru-reset-before"]


def _variant(kind, units, batch, rng):
    """A built Keras cell of a VARIANTS kind with random biases, its fused op and fallback, random
    initial states, and the GRU's reset_after option to pass to both ops."""
    gru_options = dict(reset_after=kind == "gru") if kind.startswith("gru") else {}
    cell_class, fused_op, fallback_op, state_count = KINDS[kind.replace("-reset-before", "")]
    cell = cell_class(units, bias_initializer="random_normal", **gru_options)
    cell.build((batch, FEATURES))
    states = [_random(rng, batch, units) for _ in range(state_count)]
    return cell, fused_op, fallback_op, states, gru_options


def _random_lengths_check(kind, units, batch, reverse, seed):
    """A VARIANTS kind's cell and states, with random lengths in [0, TIME] (padded rows among full
    ones): returns check(), which runs _check_against_references on them and returns the fused
    op's values and gradients."""
    rng = np.random.default_rng(seed)
    cell, fused_op, fallback_op, states, gru_options = _variant(kind, units, batch, rng)
    lengths = rng.integers(0, TIME + 1, batch).astype(np.int32)
    options = dict(reverse=reverse, zero_output_for_mask=False)

    def fused(*arguments):
        return fused_op(*arguments, lengths, **options, **gru_options)

    def fallback(*arguments):
        return fallback_op(*arguments, lengths, **options, **gru_options)

    return lambda: _check_against_references(cell, fused, fallback, states, **options, lengths=lengths)


@pytest.mark.parametrize("kind", VARIANTS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("summed_in_op", [True, False], ids=["summed-in-op", "tensorflow-product"])
def test_large_batches_in_row_chunks(kind, reverse, summed_in_op, monkeypatch):
    """100 rows of 32 units: each thread's shard of 50 rows goes through a backward step in
    chunks (rnn::StepChunkRows: 32 + 18 rows for the LSTM, 42 + 8 for the GRU), and through a
    forward step too (32 + 18 rows for the LSTM and the GRU with reset_after, 42 + 8 without),
    padded rows among them. The weight gradients are summed chunk by chunk in the gradient op
    (weights this small), or with no weights small enough, formed by TensorFlow's product over
    all steps."""
    if not summed_in_op:
        monkeypatch.setattr(ops.rnn, "_MAX_SUMMED_WEIGHT_BYTES", 0)
    _random_lengths_check(kind, units=32, batch=100, reverse=reverse, seed=9)()


@requires_library
@pytest.mark.skipif(not ops.amx_tiles_enabled(), reason="no AMX tiles here (CPU, Linux grant or ZOO_AMX=0)")
@pytest.mark.parametrize("kind", VARIANTS)
@pytest.mark.parametrize("reverse", [False, True])
def test_amx_tiles_match_keras_and_the_float32_panels(kind, reverse, monkeypatch):
    """40 rows of 192 units: each thread's shard of 20 rows (a whole tile and 4 rows of another)
    runs its products on AMX tiles (amx_products.h), forward and backward, padded rows among them.
    Values and gradients match Keras's and the fallback's as closely as the float32 panels' do
    (ZOO_AMX=0), and differ from those, so the tiles did run, by float32 rounding only (1e-5
    relative, 5e-5 absolute: the kernel gradients reach 17 here, and sums that cancel to 0.03
    differed by 1.1e-5)."""
    check = _random_lengths_check(kind, units=192, batch=40, reverse=reverse, seed=11)
    outputs, gradients = check()
    monkeypatch.setenv("ZOO_AMX", "0")
    panel_outputs, panel_gradients = check()
    for with_tiles, with_panels in [(outputs, panel_outputs), (gradients, panel_gradients)]:
        assert any(not np.array_equal(a, b) for a, b in zip(with_tiles, with_panels))
        for a, b in zip(with_tiles, with_panels):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=5e-5)


@pytest.mark.parametrize("kind", VARIANTS)
@pytest.mark.parametrize(
    "batch_and_units",
    [(BATCH, UNITS), (BATCH, WIDE_UNITS), (1, WIDE_UNITS)],
    ids=lambda shape: "x".join(map(str, shape)),
)
@pytest.mark.parametrize("reverse", [False, True])
def test_keeping_nothing_for_the_gradient(kind, batch_and_units, reverse):
    """keep_for_gradient=False (inference) keeps no activations; outputs are the same, and a
    gradient taken anyway (the forward runs again) matches Keras's and the fallback's."""
    batch, units = batch_and_units
    lengths = LENGTHS if batch == BATCH else np.array([3], np.int32)
    rng = np.random.default_rng(6)
    cell, fused_op, fallback_op, states, gru_options = _variant(kind, units, batch, rng)
    options = dict(reverse=reverse, zero_output_for_mask=False)

    def fused(*arguments):
        return fused_op(*arguments, lengths, keep_for_gradient=False, **options, **gru_options)

    def fallback(*arguments):
        return fallback_op(*arguments, lengths, **options, **gru_options)

    _check_against_references(cell, fused, fallback, states, **options, lengths=lengths)
    raw_op = getattr(_library.load(), "zoo_" + fused_op.__name__)
    raw = raw_op(
        _random(rng, batch, TIME, FEATURES),
        *states,
        cell.kernel,
        cell.recurrent_kernel,
        cell.bias,
        lengths,
        keep_for_gradient=False,
        **gru_options,
    )
    kept = raw[1 + len(states) :]
    assert all(tensor.shape[0] == 0 for tensor in kept)


@pytest.mark.parametrize("kind", VARIANTS)
@pytest.mark.parametrize(
    "batch_and_units",
    [(BATCH, UNITS), (1, WIDE_UNITS), (40, 32)],
    ids=lambda shape: "x".join(map(str, shape)),
)
@pytest.mark.parametrize("keep_for_gradient", [True, False], ids=["kept", "not_kept"])
def test_sequences_without_time_steps(kind, batch_and_units, keep_for_gradient):
    """A time dimension of 0 (the kernels' states live where each step keeps them, and the
    final states are the step after the last): empty outputs, the initial states returned as
    the final ones, and their gradients passed straight back."""
    batch, units = batch_and_units
    rng = np.random.default_rng(8)
    cell, fused_op, _, states, gru_options = _variant(kind, units, batch, rng)
    inputs = tf.zeros([batch, 0, FEATURES])
    lengths = np.zeros(batch, np.int32)
    with tf.GradientTape() as tape:
        tape.watch(states)
        outputs, *final_states = fused_op(
            inputs,
            *states,
            cell.kernel,
            cell.recurrent_kernel,
            cell.bias,
            lengths,
            keep_for_gradient=keep_for_gradient,
            **gru_options,
        )
        projections = [_random(rng, batch, units) for _ in final_states]
        loss = tf.add_n([tf.reduce_sum(s * p) for s, p in zip(final_states, projections)])
    assert outputs.shape == (batch, 0, units)
    for got, expected in zip(final_states, states):
        np.testing.assert_array_equal(got, expected)
    for got, expected in zip(tape.gradient(loss, states), projections):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("lengths", [[40], [40, 0, 17, 39]], ids=["batch1", "batch4"])
def test_split_by_units_is_deterministic(lengths):
    """The threads that share the units of small batches meet at every step: repeated runs agree
    bit for bit (a missed wait would read a half-written state)."""
    rng = np.random.default_rng(5)
    x = _random(rng, len(lengths), 40, FEATURES)
    h = _random(rng, len(lengths), WIDE_UNITS)
    lengths = tf.constant(lengths)
    lstm_weights = [
        _random(rng, FEATURES, 4 * WIDE_UNITS),
        _random(rng, WIDE_UNITS, 4 * WIDE_UNITS),
        _random(rng, 4 * WIDE_UNITS),
    ]
    gru_weights = [
        _random(rng, FEATURES, 3 * WIDE_UNITS),
        _random(rng, WIDE_UNITS, 3 * WIDE_UNITS),
        _random(rng, 2, 3 * WIDE_UNITS),
    ]
    simple_rnn_weights = [
        _random(rng, FEATURES, WIDE_UNITS),
        _random(rng, WIDE_UNITS, WIDE_UNITS),
        _random(rng, WIDE_UNITS),
    ]
    runs = {
        "simple_rnn": lambda: ops.simple_rnn_sequence(x, h, *simple_rnn_weights, lengths)[0],
        "lstm": lambda: ops.lstm_sequence(x, h, h, *lstm_weights, lengths)[0],
        "gru": lambda: ops.gru_sequence(x, h, *gru_weights, lengths)[0],
    }
    for run in runs.values():
        first = run().numpy()
        for _ in range(30):
            np.testing.assert_array_equal(run().numpy(), first)


def test_no_bias_equals_zero_bias():
    rng = np.random.default_rng(3)
    x, h, c = _random(rng, 2, 3, 2), _random(rng, 2, 3), _random(rng, 2, 3)
    lengths = tf.constant([3, 2])
    w, u = _random(rng, 2, 12), _random(rng, 3, 12)
    without = ops.lstm_sequence(x, h, c, w, u, None, lengths)
    with_zero = ops.lstm_sequence(x, h, c, w, u, tf.zeros([12]), lengths)
    for a, b in zip(without, with_zero):
        assert _max_abs_diff(a, b) == 0.0
    w, u = _random(rng, 2, 3), _random(rng, 3, 3)
    without = ops.simple_rnn_sequence(x, h, w, u, None, lengths)
    with_zero = ops.simple_rnn_sequence(x, h, w, u, tf.zeros([3]), lengths)
    for a, b in zip(without, with_zero):
        assert _max_abs_diff(a, b) == 0.0
    w, u = _random(rng, 2, 9), _random(rng, 3, 9)
    for reset_after, bias_shape in [(True, [2, 9]), (False, [9])]:
        without = ops.gru_sequence(x, h, w, u, None, lengths, reset_after=reset_after)
        with_zero = ops.gru_sequence(x, h, w, u, tf.zeros(bias_shape), lengths, reset_after=reset_after)
        for a, b in zip(without, with_zero):
            assert _max_abs_diff(a, b) == 0.0


def _numeric_gradient_error(function, arguments):
    theoretical, numerical = tf.test.compute_gradient(function, arguments, delta=1e-6)
    return max(float(np.max(np.abs(t - n))) for t, n in zip(theoretical, numerical))


@requires_library
@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_gradient_is_numerically_right(reverse):
    rng = np.random.default_rng(4)
    lengths = tf.constant([3, 1, 0])
    arguments = [
        _random(rng, 3, 3, 2, dtype="float64"),
        _random(rng, 3, 2, dtype="float64"),
        _random(rng, 3, 2, dtype="float64"),
        _random(rng, 2, 8, dtype="float64"),
        _random(rng, 2, 8, dtype="float64"),
        _random(rng, 8, dtype="float64"),
    ]

    def function(*args):
        outputs, h, c = ops.lstm_sequence(*args, lengths, reverse=reverse)
        return tf.reduce_sum(outputs * outputs) + tf.reduce_sum(h * c)

    assert _numeric_gradient_error(function, arguments) < 1e-6


@requires_library
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_simple_rnn_gradient_is_numerically_right(reverse, zero_output_for_mask):
    rng = np.random.default_rng(9)
    lengths = tf.constant([3, 2, 0])
    arguments = [
        _random(rng, 3, 3, 2, dtype="float64"),
        _random(rng, 3, 2, dtype="float64"),
        _random(rng, 2, 2, dtype="float64"),
        _random(rng, 2, 2, dtype="float64"),
        _random(rng, 2, dtype="float64"),
    ]

    def function(*args):
        outputs, h = ops.simple_rnn_sequence(
            *args, lengths, reverse=reverse, zero_output_for_mask=zero_output_for_mask
        )
        return tf.reduce_sum(outputs * outputs) + tf.reduce_sum(h)

    assert _numeric_gradient_error(function, arguments) < 1e-6


@requires_library
@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_gradient_is_numerically_right(reset_after):
    rng = np.random.default_rng(5)
    lengths = tf.constant([3, 2, 0])
    arguments = [
        _random(rng, 3, 3, 2, dtype="float64"),
        _random(rng, 3, 2, dtype="float64"),
        _random(rng, 2, 6, dtype="float64"),
        _random(rng, 2, 6, dtype="float64"),
        _random(rng, *([2, 6] if reset_after else [6]), dtype="float64"),
    ]

    def function(*args):
        outputs, h = ops.gru_sequence(*args, lengths, reset_after=reset_after, reverse=True)
        return tf.reduce_sum(outputs * outputs) + tf.reduce_sum(h)

    assert _numeric_gradient_error(function, arguments) < 1e-6


def test_graph_mode_with_unknown_time_and_batch():
    rng = np.random.default_rng(6)
    w, u, b = _random(rng, 3, 16), _random(rng, 4, 16), _random(rng, 16)
    spec = tf.TensorSpec([None, None, 3], tf.float32)

    @tf.function(input_signature=[spec, tf.TensorSpec([None], tf.int32)])
    def run(x, lengths):
        zeros = tf.zeros([tf.shape(x)[0], 4])
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs, h, _ = ops.lstm_sequence(x, zeros, zeros, w, u, b, lengths)
            loss = tf.reduce_sum(outputs) + tf.reduce_sum(h)
        return outputs, tape.gradient(loss, x)

    x = _random(rng, 2, 5, 3)
    outputs, d_x = run(x, tf.constant([5, 2]))
    expected = lstm_sequence_fallback(x, tf.zeros([2, 4]), tf.zeros([2, 4]), w, u, b, [5, 2])[0]
    assert _max_abs_diff(outputs, expected) <= 1e-5
    assert d_x.shape == (2, 5, 3)


def _valid_lstm_arguments():
    return dict(
        inputs=tf.zeros([2, 3, 4]),
        initial_h=tf.zeros([2, 5]),
        initial_c=tf.zeros([2, 5]),
        kernel=tf.zeros([4, 20]),
        recurrent_kernel=tf.zeros([5, 20]),
        bias=tf.zeros([20]),
        lengths=tf.constant([3, 1]),
    )


@pytest.mark.parametrize(
    "name, value",
    [
        ("inputs", tf.zeros([2, 3])),  # wrong rank
        ("initial_h", tf.zeros([3, 5])),  # mismatched batch
        ("initial_c", tf.zeros([2, 6])),  # mismatched units
        ("kernel", tf.zeros([5, 20])),  # mismatched input size
        ("recurrent_kernel", tf.zeros([5, 16])),  # not 4 * units wide
        ("bias", tf.zeros([2, 20])),  # wrong rank
        ("lengths", tf.constant([3, -1])),  # negative
        ("lengths", tf.constant([4, 1])),  # longer than the sequence
        ("lengths", tf.constant([3, 1, 1])),  # mismatched batch
    ],
)
def test_lstm_rejects_bad_arguments(name, value):
    arguments = _valid_lstm_arguments()
    arguments[name] = value
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=name):
        ops.lstm_sequence(**arguments)


@pytest.mark.parametrize(
    "name, value",
    [
        ("inputs", tf.zeros([2, 3, 4, 1])),
        ("initial_h", tf.zeros([2])),
        ("kernel", tf.zeros([4, 14])),
        ("recurrent_kernel", tf.zeros([4, 15])),
        ("bias", tf.zeros([15])),  # reset_after wants [2, 15]
        ("lengths", tf.constant([7, 0])),
    ],
)
def test_gru_rejects_bad_arguments(name, value):
    arguments = dict(
        inputs=tf.zeros([2, 3, 4]),
        initial_h=tf.zeros([2, 5]),
        kernel=tf.zeros([4, 15]),
        recurrent_kernel=tf.zeros([5, 15]),
        bias=tf.zeros([2, 15]),
        lengths=tf.constant([3, 0]),
    )
    arguments[name] = value
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=name):
        ops.gru_sequence(**arguments)


@pytest.mark.parametrize(
    "name, value",
    [
        ("inputs", tf.zeros([2, 3])),
        ("initial_h", tf.zeros([2, 4])),
        ("kernel", tf.zeros([4, 6])),
        ("recurrent_kernel", tf.zeros([5, 6])),
        ("bias", tf.zeros([2, 5])),
        ("lengths", tf.constant([3, 4])),
    ],
)
def test_simple_rnn_rejects_bad_arguments(name, value):
    arguments = dict(
        inputs=tf.zeros([2, 3, 4]),
        initial_h=tf.zeros([2, 5]),
        kernel=tf.zeros([4, 5]),
        recurrent_kernel=tf.zeros([5, 5]),
        bias=tf.zeros([5]),
        lengths=tf.constant([3, 0]),
    )
    arguments[name] = value
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=name):
        ops.simple_rnn_sequence(**arguments)


def test_rejects_bad_dtypes():
    arguments = _valid_lstm_arguments()
    with pytest.raises(TypeError, match="lengths must be int32"):
        ops.lstm_sequence(**{**arguments, "lengths": tf.constant([3, 1], tf.int64)})
    with pytest.raises(TypeError, match="kernel has dtype float64"):
        ops.lstm_sequence(**{**arguments, "kernel": tf.zeros([4, 20], tf.float64)})
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.lstm_sequence(**{**arguments, "inputs": tf.zeros([2, 3, 4], tf.int32)})


@requires_library
def test_gradient_ops_reject_inconsistent_saved_activations():
    library = _library.load()
    arguments = _valid_lstm_arguments()
    forward = library.zoo_lstm_sequence(**arguments)
    gates, step_inputs, c_prev = forward[3:]
    good = dict(
        inputs=arguments["inputs"],
        kernel=arguments["kernel"],
        recurrent_kernel=arguments["recurrent_kernel"],
        lengths=arguments["lengths"],
        gates=gates,
        c_prev=c_prev,
        step_inputs=step_inputs,
        d_outputs=forward[0],
        d_final_h=forward[1],
        d_final_c=forward[2],
    )
    library.zoo_lstm_sequence_grad(**good)
    for name, value in [
        ("gates", step_inputs),
        ("c_prev", gates),
        ("d_outputs", gates),
        ("step_inputs", gates),
        ("d_final_c", tf.zeros([2, 4])),
        ("lengths", tf.constant([9, 0])),
    ]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=name):
            library.zoo_lstm_sequence_grad(**{**good, name: value})

    simple = dict(
        inputs=tf.zeros([2, 3, 4]),
        initial_h=tf.zeros([2, 5]),
        kernel=tf.zeros([4, 5]),
        recurrent_kernel=tf.zeros([5, 5]),
        bias=tf.zeros([5]),
        lengths=tf.constant([3, 1]),
    )
    outputs, final_h, states, step_inputs = library.zoo_simple_rnn_sequence(**simple)
    good = dict(
        inputs=simple["inputs"],
        kernel=simple["kernel"],
        recurrent_kernel=simple["recurrent_kernel"],
        lengths=simple["lengths"],
        states=states,
        step_inputs=step_inputs,
        d_outputs=outputs,
        d_final_h=final_h,
    )
    library.zoo_simple_rnn_sequence_grad(**good)
    for name, value in [
        ("states", tf.zeros([3, 2, 4])),
        ("d_outputs", states),
        ("step_inputs", states),
        ("d_final_h", tf.zeros([1, 5])),
        ("kernel", tf.zeros([5, 5])),
    ]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=name):
            library.zoo_simple_rnn_sequence_grad(**{**good, name: value})


_CONCURRENT_OPS_SCRIPT = """
import numpy as np, tensorflow as tf
tf.config.threading.set_inter_op_parallelism_threads({inter_op})
import ops
rng = np.random.default_rng(0)
cases = []
for batch, units in [(64, 4), (4, 128), (1, 128)]:  # a batch split, and splits by units
    x = tf.constant(rng.normal(size=(batch, 7, 3)).astype("float32"))
    h = tf.zeros([batch, units])
    weights = [tf.constant(rng.normal(size=shape).astype("float32"))
               for shape in [(3, 4 * units), (units, 4 * units), (4 * units,)]]
    cases.append((x, h, weights))

@tf.function
def concurrently():
    # Independent ops: the executor may run them at once, each asking the same pool for help.
    results = []
    for x, h, weights in cases:
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = ops.lstm_sequence(x, h, h, *weights, tf.fill([tf.shape(x)[0]], 7))[0]
        results += [outputs, tape.gradient(tf.reduce_sum(outputs), x)]
    return results

for _ in range(20):
    got = concurrently()
for (x, h, weights), outputs in zip(cases, got[::2]):
    expected = ops.lstm_sequence(x, h, h, *weights, tf.fill([x.shape[0]], 7))[0]
    np.testing.assert_allclose(outputs.numpy(), expected.numpy(), atol=1e-6)
print("concurrent ops done")
"""


@requires_library
@pytest.mark.parametrize("inter_op", [1, 2])
def test_concurrent_ops_share_the_pool_without_deadlock(inter_op):
    """The kernels hand work to TensorFlow's inter-op pool, which may be busy with other fused
    ops (or have one thread): a caller never waits for work that no thread has started."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", _CONCURRENT_OPS_SCRIPT.format(inter_op=inter_op)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "concurrent ops done" in result.stdout


def _op_values_and_gradients(fused_op, arrays, lengths, dtype, projection_seed, **options):
    """The op's outputs and final states for `arrays` (inputs, states, weights) cast to `dtype`,
    and the gradients of a fixed random linear functional of them, as float64 NumPy arrays."""
    sources = [tf.constant(np.asarray(a, dtype)) for a in arrays]
    with tf.GradientTape() as tape:
        tape.watch(sources)
        results = fused_op(*sources, lengths, **options)
        rng = np.random.default_rng(projection_seed)
        loss = tf.add_n([tf.reduce_sum(r * rng.normal(size=r.shape).astype(dtype)) for r in results])
    gradients = tape.gradient(loss, sources)
    return [np.asarray(t, np.float64) for t in [*results, *gradients]]


@requires_library
@pytest.mark.skipif(not ops.amx_tiles_enabled(), reason="no AMX tiles here (CPU, Linux grant or ZOO_AMX=0)")
@pytest.mark.parametrize("kind", VARIANTS)
def test_amx_tiles_on_wide_ranges_and_non_finite_values(kind, monkeypatch):
    """The tiles' products write each row of the left factor and each column of the weights in
    24-bit integers of its largest magnitude (amx_products.h). Inputs and initial states whose
    magnitudes span six orders within each row keep their values and gradients within 10 times the
    float32 panels' (ZOO_AMX=0) distance from float64 (measured: 1.3 to 7.8 times; on values of
    one range the tiles are as close as the panels, test above). A NaN in one example's input makes
    that example's outputs NaN from its step on, as in float32, and leaves the others' as they
    were."""
    rng = np.random.default_rng(12)
    batch, units = 32, 192
    cell, fused_op, _, states, gru_options = _variant(kind, units, batch, rng)

    def wide(*shape):
        return rng.normal(size=shape) * 10.0 ** rng.uniform(-4, 2, size=shape)

    arrays = [
        wide(batch, TIME, FEATURES),
        *(wide(batch, units) for _ in states),
        *(np.asarray(w) for w in (cell.kernel, cell.recurrent_kernel, cell.bias)),
    ]
    lengths = np.full(batch, TIME, np.int32)

    def run(dtype, values=arrays):
        return _op_values_and_gradients(fused_op, values, lengths, dtype, 3, **gru_options)

    exact = run("float64")
    with_tiles = run("float32")
    monkeypatch.setenv("ZOO_AMX", "0")
    with_panels = run("float32")
    monkeypatch.delenv("ZOO_AMX")
    for tiles, panels, reference in zip(with_tiles, with_panels, exact):
        assert np.max(np.abs(tiles - reference)) <= 10 * np.max(np.abs(panels - reference))

    poisoned_row, poisoned_step = 5, 2
    inputs = arrays[0].copy()
    inputs[poisoned_row, poisoned_step, 1] = np.nan
    outputs = run("float32", [inputs, *arrays[1:]])[0]
    assert np.isnan(outputs[poisoned_row, poisoned_step:]).all()
    assert not np.isnan(outputs[poisoned_row, :poisoned_step]).any()
    others = np.arange(batch) != poisoned_row
    np.testing.assert_array_equal(outputs[others], with_tiles[0][others])
