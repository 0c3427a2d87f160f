"""`mask_to_lengths`: per-example lengths of a [batch, time] mask, and whether it is right-padded."""

import tensorflow as tf

from ops import _library


def mask_to_lengths_fallback(mask):
    """Pure-TensorFlow version of `mask_to_lengths`, with the same outputs."""
    mask = tf.convert_to_tensor(mask)
    if mask.dtype != tf.bool:
        raise TypeError(f"mask_to_lengths expects a bool mask, got dtype {mask.dtype.name}")
    if mask.shape.rank is not None and mask.shape.rank != 2:
        raise ValueError(f"mask_to_lengths expects a [batch, time] mask, got shape {mask.shape}")
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    right_padded = tf.reduce_all(tf.equal(mask, tf.sequence_mask(lengths, tf.shape(mask)[1])))
    return lengths, right_padded


def mask_to_lengths(mask):
    """Lengths of the valid prefix of each row of `mask`, and whether every row is right-padded.

    Args:
        mask: bool tensor of shape `[batch, time]`, True at valid steps.

    Returns:
        `(lengths, is_right_padded)`: int32 `[batch]` counts of True per row, and a bool scalar
        that is True when each row is a run of True followed only by False (the layout the fused
        and cuDNN kernels accept).

    Raises:
        TypeError: the mask is not bool.
        ValueError / tf.errors.InvalidArgumentError: the mask is not rank 2.
    """
    library = _library.load()
    if library is None:
        return mask_to_lengths_fallback(mask)
    mask = tf.convert_to_tensor(mask)
    if mask.dtype != tf.bool:
        raise TypeError(f"mask_to_lengths expects a bool mask, got dtype {mask.dtype.name}")
    return library.zoo_mask_to_lengths(mask)


tf.no_gradient("ZooMaskToLengths")
