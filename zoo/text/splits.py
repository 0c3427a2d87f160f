"""Held-out splits: of examples (`split_held_out`), and of sentence pairs that keep each source
sentence's translations together (`split_by_source`).

`split_held_out` draws the parts of a fixed random split one after another, each a share of what the
earlier ones left: a test set, then a validation set from the rest, and the rest to train on.

A sentence has up to a dozen translations in the course's fra-eng data: a split of pairs would train
on half of the test sentences, with another translation. `split_by_source` splits the distinct
source sentences instead, so no held-out sentence is ever trained on and each has all its
translations as references.

Example:

>>> sources, targets = zoo.text.read_sentence_pairs("fra.txt")
>>> train, validation, test = zoo.text.split_by_source(sources, 0.05, 0.05, seed=0)
>>> train, test, validation = zoo.text.split_held_out(len(texts), [0.2, 0.15], seed=0)
"""

import numpy as np


def split_by_source(sources, test_fraction, validation_fraction, seed):
    """Index arrays `(train, validation, test)` of a fixed random split of pairs by their source.

    Args:
        sources: the source sentences of the pairs.
        test_fraction: the share of the distinct source sentences held out for testing, in [0, 1)
            (0: no test set, e.g. when a file of its own is the test set).
        validation_fraction: the share held out for validation, in [0, 1).
        seed: the seed of the split.

    Returns:
        Three int NumPy arrays of pair indices, disjoint and covering every pair.

    Raises:
        ValueError: fractions out of range or that leave nothing to train on, or too few sentences.
    """
    if (
        not 0 <= test_fraction < 1
        or not 0 <= validation_fraction < 1
        or test_fraction + validation_fraction >= 1
    ):
        raise ValueError(
            f"test fraction {test_fraction} and validation fraction {validation_fraction} must be in "
            "[0, 1) and leave pairs to train on"
        )
    distinct, group = np.unique(np.asarray(sources, dtype=str), return_inverse=True)
    count = len(distinct)
    test_size = max(1, round(count * test_fraction)) if test_fraction else 0
    validation_size = round(count * validation_fraction)
    if count - test_size - validation_size < 1:
        raise ValueError(f"{count} distinct sentences are too few to split into train, validation and test")
    part_of_group = np.zeros(count, np.int8)  # 0 train, 1 validation, 2 test
    order = np.random.default_rng(seed).permutation(count)
    part_of_group[order[:test_size]] = 2
    part_of_group[order[test_size : test_size + validation_size]] = 1
    part = part_of_group[group]
    return tuple(np.flatnonzero(part == index) for index in (0, 1, 2))


def split_held_out(count, fractions, seed):
    """Index arrays of a fixed random split of `count` examples into held-out parts and the rest.

    Args:
        count: the number of examples.
        fractions: one share per held-out part, in [0, 1), each of what the parts before it left
            (0: an empty part).
        seed: the seed of the split.

    Returns:
        `(train, *held_out)`: int NumPy arrays, disjoint and covering `range(count)`: the examples left
        to train on, then one array per fraction.

    Raises:
        ValueError: a fraction out of range, a positive fraction that would hold out nothing, or
        nothing left to train on.

    Example:
    >>> train, validation = split_held_out(10, [0.2], seed=0)
    >>> len(train), len(validation)
    (8, 2)
    """
    order = np.random.default_rng(seed).permutation(count)
    parts, start = [], 0
    for fraction in fractions:
        if not 0 <= fraction < 1:
            raise ValueError(f"a held-out fraction must be in [0, 1), got {fraction}")
        size = int(round((count - start) * fraction))
        if fraction and size < 1:
            raise ValueError(f"{count} examples are too few to hold out {fraction:g} of {count - start}")
        parts.append(order[start : start + size])
        start += size
    if start >= count:
        raise ValueError(
            f"{count} examples are too few: the held-out parts take {start}, none is left to train on"
        )
    return (order[start:], *parts)
