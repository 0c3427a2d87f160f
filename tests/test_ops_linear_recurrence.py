"""The fused linear recurrence op (ops.linear_recurrence) against NumPy's recurrence with Keras's
masking and against its pure-TF fallback, its gradient against autodiff of the fallback and
`tf.test.compute_gradient`; plus input validation."""

import numpy as np
import pytest
import tensorflow as tf

import ops
from ops import _library
from ops.linear_recurrence import gated_linear_recurrence_fallback, linear_recurrence_fallback

BATCH, TIME, UNITS = 5, 7, 11
LENGTHS = np.array([0, TIME, 3, 1, 6], np.int32)  # includes 0 and T

requires_library = pytest.mark.skipif(not _library.is_available(), reason="op library not built")


def numpy_recurrence(a, b, h0, lengths, reverse, zero_output_for_mask):
    """h_t = a_t h_{t-1} + b_t with Keras's masking, one example at a time."""
    batch, time, units = a.shape
    outputs = np.zeros_like(a)
    final = h0.copy()
    for r in range(batch):
        h, output = h0[r].copy(), np.zeros(units)
        for step in range(time):
            t = time - 1 - step if reverse else step
            if t < lengths[r]:
                h = a[r, t] * h + b[r, t]
                output = h
            elif zero_output_for_mask:
                output = np.zeros(units)
            outputs[r, step] = output
        final[r] = h
    return outputs, final


def random_arguments(dtype, seed=3, batch=BATCH, time=TIME, units=UNITS):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (batch, time, units)).astype(dtype)
    b = rng.normal(size=(batch, time, units)).astype(dtype)
    h0 = rng.normal(size=(batch, units)).astype(dtype)
    return a, b, h0


def values_and_gradients(function, a, b, h0, lengths, **options):
    a, b, h0 = (tf.constant(v) for v in (a, b, h0))
    rng = np.random.default_rng(5)
    d_outputs = rng.normal(size=a.shape).astype(a.dtype.as_numpy_dtype)
    d_final = rng.normal(size=h0.shape).astype(a.dtype.as_numpy_dtype)
    with tf.GradientTape() as tape:
        tape.watch([a, b, h0])
        outputs, final = function(a, b, h0, lengths, **options)
        loss = tf.reduce_sum(outputs * d_outputs) + tf.reduce_sum(final * d_final)
    return [outputs, final, *tape.gradient(loss, [a, b, h0])]


@requires_library
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("units", [UNITS, 64])
def test_matches_numpy_and_the_fallback(reverse, zero_output_for_mask, units):
    a, b, h0 = random_arguments("float32", units=units)
    options = dict(reverse=reverse, zero_output_for_mask=zero_output_for_mask)
    expected = numpy_recurrence(*(v.astype("float64") for v in (a, b, h0)), LENGTHS, **options)
    fused = values_and_gradients(ops.linear_recurrence, a, b, h0, LENGTHS, **options)
    fallback = values_and_gradients(linear_recurrence_fallback, a, b, h0, LENGTHS, **options)
    for got, want in zip(fused[:2], expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for got, want in zip(fused, fallback):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # Padded steps get no gradient.
    padded = ~np.array(tf.sequence_mask(LENGTHS, TIME))
    assert not np.any(np.array(fused[2])[padded]) and not np.any(np.array(fused[3])[padded])


@requires_library
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
def test_gradient_is_numerically_right(reverse, zero_output_for_mask):
    a, b, h0 = random_arguments("float64", batch=3, time=5, units=4)
    lengths = tf.constant([5, 2, 0], tf.int32)
    weights = np.random.default_rng(1).normal(size=(3, 5, 4))

    def loss(a, b, h0):
        outputs, final = ops.linear_recurrence(
            a, b, h0, lengths, reverse=reverse, zero_output_for_mask=zero_output_for_mask
        )
        return tf.reduce_sum(outputs * weights) + tf.reduce_sum(tf.sin(final))

    theoretical, numerical = tf.test.compute_gradient(loss, [a, b, h0], delta=1e-6)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-7, atol=1e-8)


@requires_library
def test_large_batch_split_between_threads_matches_the_fallback():
    a, b, h0 = random_arguments("float32", seed=9, batch=64, time=50, units=96)
    lengths = np.random.default_rng(2).integers(0, 51, 64).astype(np.int32)
    fused = values_and_gradients(ops.linear_recurrence, a, b, h0, lengths, reverse=True)
    fallback = values_and_gradients(linear_recurrence_fallback, a, b, h0, lengths, reverse=True)
    for got, want in zip(fused, fallback):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@requires_library
def test_graph_mode_with_unknown_sizes_and_zero_steps():
    spec = tf.TensorSpec([None, None, None], tf.float32)

    @tf.function(input_signature=[spec, spec, tf.TensorSpec([None, None]), tf.TensorSpec([None], tf.int32)])
    def run(a, b, h0, lengths):
        outputs, final = ops.linear_recurrence(a, b, h0, lengths)
        return outputs, final

    outputs, final = run(tf.zeros([2, 0, 3]), tf.zeros([2, 0, 3]), tf.ones([2, 3]), tf.zeros([2], tf.int32))
    assert outputs.shape == (2, 0, 3)
    np.testing.assert_array_equal(final, np.ones((2, 3)))


GOOD = dict(
    a=np.zeros((BATCH, TIME, UNITS), np.float32),
    b=np.zeros((BATCH, TIME, UNITS), np.float32),
    initial_h=np.zeros((BATCH, UNITS), np.float32),
    lengths=LENGTHS,
)


@requires_library
@pytest.mark.parametrize(
    "name, value, message",
    [
        ("a", np.zeros((BATCH, TIME), np.float32), r"a must have rank 3, got shape \[5,7\]"),
        (
            "b",
            np.zeros((BATCH, TIME, UNITS + 1), np.float32),
            r"b must have shape \[5,7,11\], got \[5,7,12\]",
        ),
        (
            "initial_h",
            np.zeros((BATCH + 2, UNITS), np.float32),
            r"initial_h must have shape \[5,11\], got \[7,11\]",
        ),
        ("lengths", np.array([0, 1, 2, 8, 1], np.int32), r"lengths\[3\] = 8 is outside \[0, 7\]"),
        (
            "lengths",
            np.array([0, 1, -(2**31), 1, 1], np.int32),
            r"lengths\[2\] = -2147483648 is outside \[0, 7\]",
        ),
        ("lengths", np.zeros(BATCH + 1, np.int32), r"lengths must have shape \[5\], got \[6\]"),
    ],
)
def test_rejects_bad_arguments(name, value, message):
    arguments = dict(GOOD, **{name: value})
    # Through the op directly: the kernel's own validation, not a Python check.
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _library.load().zoo_linear_recurrence(**arguments)


@requires_library
@pytest.mark.parametrize(
    "name, value, message",
    [
        ("outputs", np.zeros((BATCH, TIME - 1, UNITS), np.float32), r"outputs must have shape \[5,7,11\]"),
        ("d_outputs", np.zeros((BATCH, TIME, UNITS, 1), np.float32), r"d_outputs must have shape \[5,7,11\]"),
        ("d_final_h", np.zeros((UNITS,), np.float32), r"d_final_h must have shape \[5,11\], got \[11\]"),
        ("lengths", np.full(BATCH, TIME + 1, np.int32), r"lengths\[0\] = 8 is outside \[0, 7\]"),
    ],
)
def test_gradient_op_rejects_bad_arguments(name, value, message):
    arguments = dict(
        a=GOOD["a"],
        initial_h=GOOD["initial_h"],
        lengths=LENGTHS,
        outputs=GOOD["a"],
        d_outputs=GOOD["a"],
        d_final_h=GOOD["initial_h"],
    )
    arguments[name] = value
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _library.load().zoo_linear_recurrence_grad(**arguments)


def test_rejects_bad_dtypes():
    with pytest.raises(TypeError, match="linear_recurrence expects float32 or float64 a, got int32"):
        ops.linear_recurrence(np.zeros((1, 2, 3), np.int32), GOOD["b"], GOOD["initial_h"], [2])
    with pytest.raises(TypeError, match="b has dtype float64, expected float32 like a"):
        ops.linear_recurrence(GOOD["a"], GOOD["b"].astype("float64"), GOOD["initial_h"], LENGTHS)
    with pytest.raises(TypeError, match="lengths must be int32, got int64"):
        ops.linear_recurrence(GOOD["a"], GOOD["b"], GOOD["initial_h"], LENGTHS.astype("int64"))


CELLS = {"min_gru": 2, "min_lstm": 3, "rg_lru": 3}


def gated_arguments(cell, dtype, batch=BATCH, time=TIME, units=UNITS, seed=11):
    rng = np.random.default_rng(seed)
    projected = rng.normal(scale=1.5, size=(batch, time, CELLS[cell] * units)).astype(dtype)
    log_base = -rng.uniform(0.01, 0.3, units).astype(dtype) if cell == "rg_lru" else np.zeros(0, dtype)
    h0 = rng.normal(size=(batch, units)).astype(dtype)
    return projected, log_base, h0


def gated_values_and_gradients(function, projected, log_base, h0, lengths, **options):
    sources = [tf.constant(v) for v in (projected, log_base, h0)]
    rng = np.random.default_rng(12)
    with tf.GradientTape() as tape:
        tape.watch(sources)
        outputs, final = function(*sources, lengths, **options)
        loss = tf.reduce_sum(outputs * rng.normal(size=outputs.shape)) + tf.reduce_sum(final * final)
    return [outputs, final, *tape.gradient(loss, sources)]


@requires_library
@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("reverse, zero_output_for_mask", [(False, False), (True, False), (False, True)])
def test_gated_matches_the_fallback(cell, reverse, zero_output_for_mask):
    arguments = gated_arguments(cell, "float32")
    options = dict(cell=cell, reverse=reverse, zero_output_for_mask=zero_output_for_mask)
    got = gated_values_and_gradients(ops.gated_linear_recurrence, *arguments, LENGTHS, **options)
    expected = gated_values_and_gradients(gated_linear_recurrence_fallback, *arguments, LENGTHS, **options)
    # Autodiff of the fallback gives None for the other cells' log_base, which has no entries.
    expected = [np.zeros(0) if e is None else e for e in expected]
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=2e-5)


@requires_library
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_gated_gradient_is_numerically_right(cell):
    projected, log_base, h0 = gated_arguments(cell, "float64", batch=3, time=5, units=4)
    lengths = tf.constant([5, 2, 0], tf.int32)
    weights = np.random.default_rng(1).normal(size=(3, 5, 4))

    def loss(projected, log_base, h0):
        outputs, final = ops.gated_linear_recurrence(
            projected, log_base, h0, lengths, cell=cell, reverse=True
        )
        return tf.reduce_sum(outputs * weights) + tf.reduce_sum(tf.sin(final))

    sources = [tf.constant(projected), tf.constant(log_base), tf.constant(h0)]
    theoretical, numerical = tf.test.compute_gradient(loss, sources, delta=1e-6)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-6, atol=1e-7)


@requires_library
@pytest.mark.parametrize(
    "cell, name, value, message",
    [
        (
            "min_gru",
            "projected",
            np.zeros((BATCH, TIME, 3 * UNITS), np.float32),
            r"projected must have shape \[5,7,22\]",
        ),
        ("min_lstm", "projected", np.zeros((BATCH, TIME), np.float32), r"projected must have rank 3"),
        (
            "rg_lru",
            "log_base",
            np.zeros(UNITS - 1, np.float32),
            r"log_base must have shape \[11\], got \[10\]",
        ),
        ("min_gru", "log_base", np.zeros(UNITS, np.float32), r"log_base must have shape \[0\], got \[11\]"),
        (
            "rg_lru",
            "initial_h",
            np.zeros((BATCH + 1, UNITS), np.float32),
            r"initial_h must have shape \[5,11\], got \[6,11\]",
        ),
        ("min_lstm", "lengths", np.array([0, 1, 2, 3, 9], np.int32), r"lengths\[4\] = 9 is outside \[0, 7\]"),
    ],
)
def test_gated_rejects_bad_arguments(cell, name, value, message):
    projected, log_base, h0 = gated_arguments(cell, "float32")
    arguments = dict(projected=projected, log_base=log_base, initial_h=h0, lengths=LENGTHS)
    arguments[name] = value
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _library.load().zoo_gated_linear_recurrence(**arguments, cell=cell)
    with pytest.raises(ValueError, match="cell must be one of"):
        ops.gated_linear_recurrence(projected, log_base, h0, LENGTHS, cell="gru")
