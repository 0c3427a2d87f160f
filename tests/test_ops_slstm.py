"""The fused sLSTM op (ops.slstm_sequence) against its pure-TF fallback (values and autodiff
gradients, the recurrent kernel's included) and `tf.test.compute_gradient`; plus input
validation. The layer's own tests (test_modern_layers.py) compare it with the cell's loop and the
paper's equations."""

import numpy as np
import pytest
import tensorflow as tf

import ops
from ops import _library
from ops.slstm import slstm_sequence_fallback

BATCH, TIME, HEADS, SIZE = 5, 6, 2, 3
UNITS = HEADS * SIZE
LENGTHS = np.array([0, TIME, 3, 1, 5], np.int32)  # includes 0 and T

requires_library = pytest.mark.skipif(not _library.is_available(), reason="op library not built")


def random_arguments(dtype, batch=BATCH, heads=HEADS, size=SIZE, seed=4):
    rng = np.random.default_rng(seed)
    units = heads * size
    projected = rng.normal(size=(batch, TIME, 4 * units)).astype(dtype)
    recurrent_kernel = rng.normal(scale=0.5, size=(heads, size, 4 * size)).astype(dtype)
    h, c, m = (rng.normal(scale=0.5, size=(batch, units)).astype(dtype) for _ in range(3))
    n = (np.abs(rng.normal(size=(batch, units))) + 0.5).astype(dtype)
    return projected, recurrent_kernel, [h, c, n, m]


def fused(projected, recurrent_kernel, states, lengths, **options):
    return ops.slstm_sequence(projected, recurrent_kernel, *states, lengths, **options)


def fallback(projected, recurrent_kernel, states, lengths, **options):
    return slstm_sequence_fallback(projected, recurrent_kernel, states, lengths, **options)


def values_and_gradients(function, projected, recurrent_kernel, states, lengths, **options):
    sources = [tf.constant(v) for v in (projected, recurrent_kernel, *states)]
    rng = np.random.default_rng(6)
    with tf.GradientTape() as tape:
        tape.watch(sources)
        results = function(sources[0], sources[1], sources[2:], lengths, **options)
        loss = sum(tf.reduce_sum(r * rng.normal(size=r.shape)) for r in results)
    return [*results, *tape.gradient(loss, sources)]


@requires_library
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("zero_output_for_mask", [False, True])
@pytest.mark.parametrize("heads, size", [(HEADS, SIZE), (1, 8), (4, 16)])
def test_matches_the_fallback(reverse, zero_output_for_mask, heads, size):
    arguments = random_arguments("float32", heads=heads, size=size)
    options = dict(reverse=reverse, zero_output_for_mask=zero_output_for_mask)
    got = values_and_gradients(fused, *arguments, LENGTHS, **options)
    expected = values_and_gradients(fallback, *arguments, LENGTHS, **options)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


@requires_library
@pytest.mark.parametrize("reverse", [False, True])
def test_gradient_is_numerically_right(reverse):
    projected, recurrent_kernel, states = random_arguments("float64", batch=3)
    lengths = tf.constant([TIME, 2, 0], tf.int32)
    weights = np.random.default_rng(1).normal(size=(3, TIME, UNITS))

    def loss(projected, recurrent_kernel, *states):
        outputs, *final = ops.slstm_sequence(projected, recurrent_kernel, *states, lengths, reverse=reverse)
        return tf.reduce_sum(outputs * weights) + sum(tf.reduce_sum(tf.sin(s)) for s in final)

    theoretical, numerical = tf.test.compute_gradient(
        loss, [projected, recurrent_kernel, *states], delta=1e-6
    )
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-6, atol=1e-7)


@requires_library
def test_large_batch_split_between_threads_matches_the_fallback():
    arguments = random_arguments("float32", batch=48, heads=4, size=16, seed=8)
    lengths = np.random.default_rng(3).integers(0, TIME + 1, 48).astype(np.int32)
    got = values_and_gradients(fused, *arguments, lengths)
    expected = values_and_gradients(fallback, *arguments, lengths)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


def good_arguments():
    projected, recurrent_kernel, (h, c, n, m) = random_arguments("float32")
    return dict(
        projected=projected,
        recurrent_kernel=recurrent_kernel,
        initial_h=h,
        initial_c=c,
        initial_n=n,
        initial_m=m,
        lengths=LENGTHS,
    )


@requires_library
@pytest.mark.parametrize(
    "name, value, message",
    [
        ("projected", np.zeros((BATCH, TIME), np.float32), r"projected must have rank 3, got shape \[5,6\]"),
        (
            "projected",
            np.zeros((BATCH, TIME, 4 * UNITS + 1), np.float32),
            r"projected must have shape \[5,6,24\]",
        ),
        (
            "recurrent_kernel",
            np.zeros((HEADS, SIZE, 4 * SIZE + 2), np.float32),
            r"recurrent_kernel must have shape",
        ),
        (
            "recurrent_kernel",
            np.zeros((HEADS * SIZE, 4 * SIZE), np.float32),
            r"recurrent_kernel must have rank 3",
        ),
        (
            "initial_n",
            np.zeros((BATCH, UNITS + 1), np.float32),
            r"initial_n must have shape \[5,6\], got \[5,7\]",
        ),
        ("lengths", np.array([0, 1, 2, 7, 1], np.int32), r"lengths\[3\] = 7 is outside \[0, 6\]"),
        ("lengths", np.array([-1, 1, 2, 3, 1], np.int32), r"lengths\[0\] = -1 is outside \[0, 6\]"),
    ],
)
def test_rejects_bad_arguments(name, value, message):
    arguments = dict(good_arguments(), **{name: value})
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _library.load().zoo_slstm_sequence(**arguments)


@requires_library
@pytest.mark.parametrize(
    "name, value, message",
    [
        (
            "previous",
            np.zeros((BATCH, TIME, 4 * UNITS - 1), np.float32),
            r"previous must have shape \[5,6,24\]",
        ),
        ("d_outputs", np.zeros((BATCH, TIME + 1, UNITS), np.float32), r"d_outputs must have shape \[5,6,6\]"),
        ("d_final_m", np.zeros((BATCH,), np.float32), r"d_final_m must have shape \[5,6\], got \[5\]"),
        ("lengths", np.full(BATCH, TIME + 1, np.int32), r"lengths\[0\] = 7 is outside \[0, 6\]"),
    ],
)
def test_gradient_op_rejects_bad_arguments(name, value, message):
    zeros = np.zeros((BATCH, TIME, 4 * UNITS), np.float32)
    arguments = dict(
        pre=zeros,
        recurrent_kernel=np.zeros((HEADS, SIZE, 4 * SIZE), np.float32),
        lengths=LENGTHS,
        previous=zeros,
        d_outputs=np.zeros((BATCH, TIME, UNITS), np.float32),
        **{f"d_final_{state}": np.zeros((BATCH, UNITS), np.float32) for state in "hcnm"},
    )
    arguments[name] = value
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _library.load().zoo_slstm_sequence_grad(**arguments)


def test_rejects_bad_dtypes():
    arguments = good_arguments()
    arguments["initial_m"] = arguments["initial_m"].astype("float64")
    with pytest.raises(TypeError, match="initial_m has dtype float64, expected float32 like projected"):
        ops.slstm_sequence(**arguments)
