"""The course's byte-pair-encoding merge learning, written to be read.

This is the algorithm as the course teaches it (merges learned from word frequencies), kept as a test of
understanding. Production tokenization uses `zoo.text.BPETokenizer` (sentencepiece).
"""

import collections


def _pairs(symbols):
    return list(zip(symbols, symbols[1:]))


def _merge_pair(symbols, pair):
    """Replaces each non-overlapping occurrence of `pair`, left to right, by its concatenation."""
    merged = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            merged.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return merged


def learn_bpe_merges(word_freqs, num_merges):
    """Learns up to `num_merges` BPE merges from word frequencies.

    Words are sequences of characters; mark the end of a word with a symbol of its own (the course uses
    `_`, as in `"fast_"`). Merges work on symbol lists, never on joined strings, so a merge never crosses
    a symbol boundary. Pair counts are updated incrementally: after a merge only the words that held the
    merged pair are recounted.

    Ties between equally frequent pairs go to the pair that occurs first when the words are read in the
    order given and each word left to right (the course's behaviour with an insertion-ordered dict).

    Args:
        word_freqs: mapping from word (str) to its count (positive int).
        num_merges: the number of merges wanted (non-negative int). Fewer are returned when every word
            has become a single symbol.

    Returns:
        A list of merges, each a pair of symbols `(left, right)`, in the order learned.

    Example:
    >>> learn_bpe_merges({"fast_": 4, "faster_": 3, "tall_": 5, "taller_": 4}, 3)
    [('t', 'a'), ('ta', 'l'), ('tal', 'l')]
    """
    if not isinstance(num_merges, int) or num_merges < 0:
        raise ValueError(f"num_merges must be a non-negative int, got {num_merges!r}")
    if not word_freqs:
        raise ValueError("word_freqs is empty: nothing to learn merges from")
    for word, freq in word_freqs.items():
        if not isinstance(word, str) or not word:
            raise ValueError(f"words must be non-empty strings, got {word!r}")
        if not isinstance(freq, int) or freq <= 0:
            raise ValueError(f"the count of {word!r} must be a positive int, got {freq!r}")

    words = [list(word) for word in word_freqs]
    freqs = list(word_freqs.values())
    pair_counts = collections.Counter()
    words_with_pair = collections.defaultdict(set)
    for index, symbols in enumerate(words):
        for pair in _pairs(symbols):
            pair_counts[pair] += freqs[index]
            words_with_pair[pair].add(index)

    def first_occurrence(pair):
        index = min(words_with_pair[pair])
        return index, _pairs(words[index]).index(pair)

    merges = []
    while len(merges) < num_merges and pair_counts:
        top = max(pair_counts.values())
        best = min((pair for pair, count in pair_counts.items() if count == top), key=first_occurrence)
        merges.append(best)
        for index in words_with_pair.pop(best):
            old_pairs = _pairs(words[index])
            words[index] = _merge_pair(words[index], best)
            new_pairs = _pairs(words[index])
            for pair in old_pairs:
                pair_counts[pair] -= freqs[index]
                if pair_counts[pair] == 0:
                    del pair_counts[pair]
            for pair in new_pairs:
                pair_counts[pair] += freqs[index]
            for pair in set(old_pairs) - set(new_pairs) - {best}:
                words_with_pair[pair].discard(index)
            for pair in new_pairs:
                words_with_pair[pair].add(index)
    return merges


def apply_bpe_merges(word, merges):
    """Splits `word` into symbols by applying `merges` in the order they were learned.

    Args:
        word: a non-empty string (with its end-of-word symbol, if the merges were learned with one).
        merges: a list of `(left, right)` pairs from `learn_bpe_merges`.

    Returns:
        The list of symbols.
    """
    if not isinstance(word, str) or not word:
        raise ValueError(f"word must be a non-empty string, got {word!r}")
    symbols = list(word)
    for pair in merges:
        symbols = _merge_pair(symbols, tuple(pair))
    return symbols
