"""Language-model batches from one long token-id stream: the course's schemes as tf.data pipelines.

All yield `(X, Y)` int32 batches of shape `[batch_size, num_steps]` with `Y` = `X` shifted one token
ahead. The course's two schemes (`random_sampling_batches`, `sequential_partition_batches`) draw a new
random offset in `[0, num_steps)` at each pass over the dataset (each epoch); D2L 1.0's
`overlapping_window_batches` starts a window at every token. `seed` makes the sequence of epochs
reproducible. `language_model_batches` names the scheme and gives the dataset the length that every
epoch has, which Keras needs to average an epoch's figures.

Example:

>>> train_ids, validation_ids = split_stream(ids, 0.1)
>>> train = language_model_batches(train_ids, 32, 64, "sequential", seed=0)
>>> model.fit(train, epochs=10, callbacks=[zoo.callbacks.ResetStateEachEpoch()])
"""

import numpy as np
import tensorflow as tf


def _id_stream(ids):
    array = ids.numpy() if isinstance(ids, tf.Tensor) else np.asarray(ids)
    if array.ndim != 1:
        raise ValueError(f"the token ids must be one 1-D stream, got shape {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"the token ids must be integers, got dtype {array.dtype}")
    if array.size and array.min() < 0:
        raise ValueError("the token ids must be non-negative")
    return array.astype(np.int32)


def _check_sizes(batch_size, num_steps):
    for name, value in (("batch_size", batch_size), ("num_steps", num_steps)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _epochs(seed):
    """One random int64 per pass over the dataset, new on each pass, reproducible from `seed`."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)


def random_sampling_batches(ids, batch_size, num_steps, seed=None):
    """The course's random sampling: independent windows, in random order.

    Each epoch drops a random number of leading tokens (offset in `[0, num_steps)`), cuts the rest into
    non-overlapping windows of `num_steps` (with one token to spare for `Y`), shuffles them and groups
    `batch_size` windows per batch (the leftover windows are dropped). Windows in consecutive batches are
    not adjacent, so reset the recurrent state for each batch.

    Args:
        ids: the token-id stream (1-D ints: list, NumPy array or tensor).
        batch_size: windows per batch.
        num_steps: tokens per window.
        seed: an int for reproducible epochs, or `None`.

    Returns:
        A `tf.data.Dataset` of `(X, Y)`, each int32 `[batch_size, num_steps]`.

    Example:
    >>> for X, Y in random_sampling_batches(range(35), batch_size=2, num_steps=5, seed=0): ...
    """
    _check_sizes(batch_size, num_steps)
    stream = _id_stream(ids)
    if (len(stream) - num_steps) // num_steps < batch_size:
        raise ValueError(
            f"a stream of {len(stream)} tokens is too short for one batch of {batch_size}x{num_steps} "
            "windows at every offset"
        )
    tokens = tf.constant(stream)
    length = len(stream)

    def windows_of_epoch(random_value):
        offset = tf.math.floormod(random_value, num_steps)
        num_windows = (length - offset - 1) // num_steps
        starts = offset + tf.range(num_windows, dtype=tf.int64) * num_steps
        shuffle_seed = tf.stack([random_value, tf.math.floordiv(random_value, num_steps)])
        starts = tf.random.experimental.stateless_shuffle(starts, seed=shuffle_seed)
        num_batches = num_windows // batch_size
        return tf.data.Dataset.from_tensor_slices(
            tf.reshape(starts[: num_batches * batch_size], [num_batches, batch_size])
        )

    def windows(starts):
        positions = starts[:, None] + tf.range(num_steps, dtype=tf.int64)[None, :]
        return tf.gather(tokens, positions), tf.gather(tokens, positions + 1)

    return (
        _epochs(seed)
        .flat_map(windows_of_epoch)
        .map(windows, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def sequential_partition_batches(ids, batch_size, num_steps, seed=None):
    """The course's sequential partitioning: batch rows continue each other, so state can be carried.

    Each epoch drops a random number of leading tokens (offset in `[0, num_steps)`), splits the rest into
    `batch_size` contiguous rows of equal length and walks along them `num_steps` at a time: row j of batch
    i+1 starts where row j of batch i ended (a stateful model keeps its state between batches).

    Args:
        ids: the token-id stream (1-D ints: list, NumPy array or tensor).
        batch_size: rows per batch.
        num_steps: tokens per row of a batch.
        seed: an int for reproducible epochs, or `None`.

    Returns:
        A `tf.data.Dataset` of `(X, Y)`, each int32 `[batch_size, num_steps]`.
    """
    _check_sizes(batch_size, num_steps)
    stream = _id_stream(ids)
    if (len(stream) - num_steps) // batch_size < num_steps:
        raise ValueError(
            f"a stream of {len(stream)} tokens is too short for one batch of {batch_size} rows of "
            f"{num_steps} steps at every offset"
        )
    tokens = tf.constant(stream)
    length = len(stream)

    def batches_of_epoch(random_value):
        offset = tf.math.floormod(random_value, num_steps)
        row_length = (length - offset - 1) // batch_size
        num_batches = row_length // num_steps

        def rows(start):
            flat = tokens[start : start + row_length * batch_size]
            used = tf.reshape(flat, [batch_size, row_length])[:, : num_batches * num_steps]
            return tf.transpose(tf.reshape(used, [batch_size, num_batches, num_steps]), [1, 0, 2])

        return tf.data.Dataset.from_tensor_slices((rows(offset), rows(offset + 1)))

    return _epochs(seed).flat_map(batches_of_epoch).prefetch(tf.data.AUTOTUNE)


def split_stream(ids, validation_fraction=0.1):
    """Splits a token stream into a training head and a validation tail (the last fraction).

    Args:
        ids: the token-id stream (1-D ints).
        validation_fraction: the share of tokens, in (0, 1), that goes to validation.

    Returns:
        `(train_ids, validation_ids)`: int32 NumPy arrays.
    """
    stream = _id_stream(ids)
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}")
    num_validation = int(round(len(stream) * validation_fraction))
    if num_validation == 0 or num_validation == len(stream):
        raise ValueError(
            f"a stream of {len(stream)} tokens cannot be split with validation_fraction={validation_fraction}"
        )
    return stream[:-num_validation], stream[-num_validation:]


def overlapping_window_batches(ids, batch_size, num_steps, seed=None):
    """D2L 1.0's windows: one starting at every token, reshuffled each epoch, `batch_size` a batch.

    Args:
        ids, batch_size, num_steps, seed: as for `random_sampling_batches`.

    Returns:
        A `tf.data.Dataset` of `(X, Y)`, each int32 `[batch_size, num_steps]`; the leftover windows of
        an epoch are dropped.
    """
    _check_sizes(batch_size, num_steps)
    stream = _id_stream(ids)
    tokens = tf.constant(stream)
    num_windows = len(stream) - num_steps
    if num_windows < batch_size:
        raise ValueError(
            f"a stream of {len(stream)} tokens is too short for one batch of "
            f"{batch_size} overlapping windows of {num_steps}"
        )

    def windows(starts):
        positions = starts[:, None] + tf.range(num_steps, dtype=tf.int64)[None, :]
        return tf.gather(tokens, positions), tf.gather(tokens, positions + 1)

    return (
        tf.data.Dataset.range(num_windows)
        .shuffle(num_windows, seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size, drop_remainder=True)
        .map(windows, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


BATCHING_SCHEMES = {
    "random": random_sampling_batches,
    "sequential": sequential_partition_batches,
    "overlapping": overlapping_window_batches,
}


def language_model_batches(ids, batch_size, num_steps, scheme="random", seed=None):
    """One epoch of `scheme`'s batches: those that every epoch has, with that length known.

    The random offset of the course's schemes makes some epochs one batch longer than others; this
    keeps the batches of the largest offset, so that every epoch has the same number. Keras 3.15
    mis-averages the loss and metrics of a dataset of unknown length (the step that meets the end of
    the data counts as a batch).

    Args:
        ids: the token-id stream (1-D ints).
        batch_size, num_steps, seed: as for the scheme's function.
        scheme: one of `BATCHING_SCHEMES`: `"random"` (`random_sampling_batches`), `"sequential"`
            (`sequential_partition_batches`) or `"overlapping"` (`overlapping_window_batches`).

    Returns:
        A `tf.data.Dataset` of `(X, Y)` whose `cardinality()` is its number of batches.

    Raises:
        ValueError: an unknown scheme, or a stream too short for one batch.
    """
    if scheme not in BATCHING_SCHEMES:
        raise ValueError(f"unknown batching scheme {scheme!r}; expected one of {', '.join(BATCHING_SCHEMES)}")
    dataset = BATCHING_SCHEMES[scheme](ids, batch_size, num_steps, seed=seed)
    length = len(_id_stream(ids))
    if scheme == "overlapping":
        count = (length - num_steps) // batch_size
        return dataset.apply(tf.data.experimental.assert_cardinality(count))
    usable = length - (num_steps - 1) - 1
    if scheme == "random":
        count = (usable // num_steps) // batch_size
    else:
        count = (usable // batch_size) // num_steps
    return dataset.take(count).apply(tf.data.experimental.assert_cardinality(count))
