"""The mask_to_lengths op: C++ kernel against its pure-TensorFlow fallback, and input validation."""

import numpy as np
import pytest
import tensorflow as tf

import ops
from ops.sequence_lengths import mask_to_lengths_fallback


def test_compiled_library_is_loaded():
    assert ops.is_available(), ops.load_error()


@pytest.mark.parametrize("seed", range(5))
def test_matches_fallback_on_random_masks(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 9, size=6)
    mask = np.arange(8)[None, :] < lengths[:, None]
    if seed % 2:
        mask[rng.integers(0, 6), rng.integers(0, 8)] ^= True
    got = ops.mask_to_lengths(tf.constant(mask))
    want = mask_to_lengths_fallback(tf.constant(mask))
    np.testing.assert_array_equal(got[0], want[0])
    assert bool(got[1]) == bool(want[1])
    np.testing.assert_array_equal(got[0], mask.sum(1))


def test_detects_left_padding_and_holes():
    lengths, right_padded = ops.mask_to_lengths(tf.constant([[True, True, False], [False, False, False]]))
    np.testing.assert_array_equal(lengths, [2, 0])
    assert bool(right_padded)
    assert not bool(ops.mask_to_lengths(tf.constant([[False, True, True]]))[1])
    assert not bool(ops.mask_to_lengths(tf.constant([[True, False, True]]))[1])


def test_empty_batch_and_empty_time():
    lengths, right_padded = ops.mask_to_lengths(tf.zeros((0, 4), tf.bool))
    assert lengths.shape == (0,) and bool(right_padded)
    lengths, _ = ops.mask_to_lengths(tf.zeros((3, 0), tf.bool))
    np.testing.assert_array_equal(lengths, [0, 0, 0])


def test_rejects_wrong_rank_and_dtype():
    with pytest.raises(tf.errors.InvalidArgumentError, match="matrix"):
        ops.mask_to_lengths(tf.constant([True, False]))
    with pytest.raises(TypeError, match="bool"):
        ops.mask_to_lengths(tf.constant([[1, 0]]))


def test_shape_function_in_graph():
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.bool)])
    def lengths_of(mask):
        lengths, right_padded = ops.mask_to_lengths(mask)
        assert lengths.shape.rank == 1 and right_padded.shape.rank == 0
        return lengths

    np.testing.assert_array_equal(lengths_of(tf.constant([[True, False]])), [1])
