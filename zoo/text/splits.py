"""Held-out splits of sentence pairs that keep each source sentence's translations together.

A sentence has up to a dozen translations in the course's fra-eng data: a split of pairs would train
on half of the test sentences, with another translation. `split_by_source` splits the distinct
source sentences instead, so no held-out sentence is ever trained on and each has all its
translations as references.

Example:

>>> sources, targets = zoo.text.read_sentence_pairs("fra.txt")
>>> train, validation, test = zoo.text.split_by_source(sources, 0.05, 0.05, seed=0)
"""

import numpy as np


def split_by_source(sources, test_fraction, validation_fraction, seed):
    """Index arrays `(train, validation, test)` of a fixed random split of pairs by their source.

    Args:
        sources: the source sentences of the pairs.
        test_fraction: the share of the distinct source sentences held out for testing, in (0, 1).
        validation_fraction: the share held out for validation, in [0, 1).
        seed: the seed of the split.

    Returns:
        Three int NumPy arrays of pair indices, disjoint and covering every pair.

    Raises:
        ValueError: fractions out of range or that leave nothing to train on, or too few sentences.
    """
    if (
        not 0 < test_fraction < 1
        or not 0 <= validation_fraction < 1
        or test_fraction + validation_fraction >= 1
    ):
        raise ValueError(
            f"test fraction {test_fraction} and validation fraction {validation_fraction} must be in "
            "(0, 1) and [0, 1) and leave pairs to train on"
        )
    distinct, group = np.unique(np.asarray(sources, dtype=str), return_inverse=True)
    count = len(distinct)
    test_size = max(1, round(count * test_fraction))
    validation_size = round(count * validation_fraction)
    if count - test_size - validation_size < 1:
        raise ValueError(f"{count} distinct sentences are too few to split into train, validation and test")
    part_of_group = np.zeros(count, np.int8)  # 0 train, 1 validation, 2 test
    order = np.random.default_rng(seed).permutation(count)
    part_of_group[order[:test_size]] = 2
    part_of_group[order[test_size : test_size + validation_size]] = 1
    part = part_of_group[group]
    return tuple(np.flatnonzero(part == index) for index in (0, 1, 2))
