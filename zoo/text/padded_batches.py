"""Padded, length-bucketed batches for classification, tagging and sequence-to-sequence tasks.

Padding id is 0 everywhere (`Vocab` with `SEQUENCE_RESERVED` puts `<pad>` there), so a Keras
`Embedding(mask_zero=True)` recovers the input mask. Target masks are returned as Keras sample weights
(the third element of each batch), so `model.fit` leaves padded positions out of the loss.

Pipeline order: tokenize and look up in parallel maps → `cache()` → shuffle → bucket and pad →
`prefetch(AUTOTUNE)`. Tokenizing happens once; shuffling happens every epoch.
"""

import numpy as np
import tensorflow as tf

from zoo.text.vocab import BOS, EOS, PAD


class _Encoder:
    """Text (scalar tf.string) → 1-D int32 ids, through a tokenizer and/or a vocabulary."""

    def __init__(self, tokenizer, vocab, role):
        if vocab is None and tokenizer is None:
            raise ValueError(f"the {role} needs a vocab (or a tokenizer that yields ids, like BPETokenizer)")
        self.tokenizer, self.vocab, self.role = tokenizer, vocab, role
        self.id_source = vocab if vocab is not None else tokenizer
        if self.pad_id_name() != PAD:
            raise ValueError(f"the {role}'s id 0 must be {PAD!r} (padding), got {self.pad_id_name()!r}")

    def pad_id_name(self):
        if self.vocab is not None:
            return self.vocab.idx_to_token[0]
        return PAD if self.tokenizer.id_of(PAD) == 0 else None

    def id_of(self, name):
        try:
            return self.id_source.id_of(name)
        except KeyError as error:
            raise ValueError(
                f"the {self.role}'s vocabulary has no {name!r}; build it with "
                "reserved_tokens=SEQUENCE_RESERVED"
            ) from error

    def __call__(self, text):
        tokens = tf.strings.split(text) if self.tokenizer is None else self.tokenizer.tokenize(text)
        if self.vocab is not None:
            tokens = self.vocab.to_ids(tokens)
        return tf.cast(tokens, tf.int32)


def _check_batching(batch_size, max_length, bucket_boundaries):
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if max_length is not None and (not isinstance(max_length, int) or max_length < 2):
        raise ValueError(f"max_length must be an int >= 2 or None, got {max_length!r}")
    if bucket_boundaries is not None:
        bounds = list(bucket_boundaries)
        if not bounds or bounds != sorted(set(bounds)) or bounds[0] < 1:
            raise ValueError(f"bucket_boundaries must be increasing positive ints, got {bucket_boundaries!r}")


def _truncate(ids, max_length):
    return ids if max_length is None else ids[:max_length]


def _batch(dataset, batch_size, bucket_boundaries, length_of, shuffle_buffer, seed):
    dataset = dataset.cache()
    if bucket_boundaries is None:
        if shuffle_buffer:
            dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        return dataset.padded_batch(batch_size)
    boundaries = list(bucket_boundaries)
    # Grouping by length leaves the number of batches unknown to tf.data, and Keras mis-averages an
    # epoch of unknown length; every bucket ends with one partial batch, so the count is exact.
    lengths = np.fromiter(dataset.map(length_of).as_numpy_iterator(), np.int64)
    bucket_sizes = np.bincount(
        np.searchsorted(boundaries, lengths, side="right"), minlength=len(boundaries) + 1
    )
    batches = int(np.sum(-(-bucket_sizes // batch_size)))
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.bucket_by_sequence_length(length_of, boundaries, [batch_size] * (len(boundaries) + 1))
    return dataset.apply(tf.data.experimental.assert_cardinality(batches))


def _check_aligned(name_a, a, name_b, b):
    if len(a) != len(b):
        raise ValueError(f"{name_a} and {name_b} differ in length: {len(a)} vs {len(b)}")
    if not len(a):
        raise ValueError(f"{name_a} is empty")


def _mask(ids):
    return tf.cast(tf.not_equal(ids, 0), tf.float32)


def classification_batches(
    texts,
    labels,
    batch_size,
    vocab=None,
    tokenizer=None,
    max_length=None,
    bucket_boundaries=None,
    shuffle_buffer=None,
    seed=None,
):
    """Batches `(token_ids, label)` for sequence classification.

    Args:
        texts: a list of str.
        labels: a list of int labels, aligned with `texts`.
        batch_size: examples per batch.
        vocab: maps tokens to ids (`<pad>` must be id 0); `None` if `tokenizer` yields ids (BPE).
        tokenizer: an object with an in-graph `tokenize` (e.g. `WordTokenizer`); `None`: split on spaces.
        max_length: truncate longer token sequences (keeping the start).
        bucket_boundaries: length boundaries for `bucket_by_sequence_length`; `None`: plain padding.
        shuffle_buffer: shuffle this many examples each epoch; `None`: keep the order.
        seed: the shuffle seed.

    Returns:
        A `tf.data.Dataset` of `(token_ids [B, L] int32 padded with 0, labels [B] int32)`.
    """
    _check_aligned("texts", texts, "labels", labels)
    _check_batching(batch_size, max_length, bucket_boundaries)
    encode = _Encoder(tokenizer, vocab, "text")
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant(texts, tf.string), tf.constant(labels, tf.int32))
    )
    dataset = dataset.map(
        lambda text, label: (_truncate(encode(text), max_length), label), num_parallel_calls=tf.data.AUTOTUNE
    )
    dataset = _batch(
        dataset, batch_size, bucket_boundaries, lambda ids, label: tf.shape(ids)[0], shuffle_buffer, seed
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def tagging_batches(
    sentences,
    tags,
    batch_size,
    token_vocab,
    tag_vocab,
    max_length=None,
    bucket_boundaries=None,
    shuffle_buffer=None,
    seed=None,
):
    """Batches `(token_ids, tag_ids, mask)` for sequence tagging (one tag per token).

    Args:
        sentences: a list of token lists (e.g. from `read_conllu`).
        tags: a list of tag lists, aligned token by token.
        batch_size: sentences per batch.
        token_vocab: token → id (`<pad>` must be id 0).
        tag_vocab: tag → id (e.g. `Vocab(tags, reserved_tokens=(PAD,), unk_token=None)`).
        max_length, bucket_boundaries, shuffle_buffer, seed: as in `classification_batches`.

    Returns:
        A `tf.data.Dataset` of `(token_ids [B, L], tag_ids [B, L], mask [B, L] float32)`; the mask is 1
        on real tokens and serves as Keras sample weights.
    """
    _check_aligned("sentences", sentences, "tags", tags)
    for index, (words, word_tags) in enumerate(zip(sentences, tags)):
        if len(words) != len(word_tags):
            raise ValueError(f"sentence {index} has {len(words)} tokens but {len(word_tags)} tags")
    _check_batching(batch_size, max_length, bucket_boundaries)
    encode_tokens = _Encoder(None, token_vocab, "token vocabulary")

    def encode(words, word_tags):
        token_ids = _truncate(encode_tokens.vocab.to_ids(words), max_length)
        tag_ids = _truncate(tag_vocab.to_ids(word_tags), max_length)
        return token_ids, tag_ids

    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.ragged.constant(sentences, dtype=tf.string), tf.ragged.constant(tags, dtype=tf.string))
    ).map(encode, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = _batch(
        dataset, batch_size, bucket_boundaries, lambda ids, _: tf.shape(ids)[0], shuffle_buffer, seed
    )
    return dataset.map(lambda ids, tag_ids: (ids, tag_ids, _mask(ids))).prefetch(tf.data.AUTOTUNE)


def seq2seq_batches(
    sources,
    targets,
    batch_size,
    source_vocab=None,
    target_vocab=None,
    source_tokenizer=None,
    target_tokenizer=None,
    max_length=None,
    bucket_boundaries=None,
    shuffle_buffer=None,
    seed=None,
):
    """Batches `((source_ids, decoder_inputs), decoder_targets, target_mask)` for encoder-decoder models.

    The source ends with `<eos>`; for a target y the decoder input is `<bos>` + y and the decoder target
    is y + `<eos>` (teacher forcing). With `max_length`, the tokens are cut so that the `<eos>` (and
    `<bos>`) always stay and no sequence is longer than `max_length`.

    Args:
        sources, targets: lists of str, aligned (e.g. from `read_sentence_pairs`).
        batch_size: pairs per batch.
        source_vocab, target_vocab: token → id maps with `<pad>`=0, `<bos>`, `<eos>` (use
            `SEQUENCE_RESERVED`); `None` with a tokenizer that yields ids (BPE).
        source_tokenizer, target_tokenizer: in-graph tokenizers; `None`: split on spaces (the course's
            fra-eng tokens).
        max_length, bucket_boundaries, shuffle_buffer, seed: as in `classification_batches`; buckets go
            by the longer of the source and the decoder sequence, so that both sides of a batch are
            padded little.

    Returns:
        A `tf.data.Dataset` of `((source_ids [B, S], decoder_inputs [B, T]), decoder_targets [B, T],
        target_mask [B, T] float32)`.
    """
    _check_aligned("sources", sources, "targets", targets)
    _check_batching(batch_size, max_length, bucket_boundaries)
    encode_source = _Encoder(source_tokenizer, source_vocab, "source")
    encode_target = _Encoder(target_tokenizer, target_vocab, "target")
    source_eos = encode_source.id_of(EOS)
    target_bos, target_eos = encode_target.id_of(BOS), encode_target.id_of(EOS)
    keep = None if max_length is None else max_length - 1

    def encode(source, target):
        source_ids = tf.concat([_truncate(encode_source(source), keep), [source_eos]], axis=0)
        target_ids = _truncate(encode_target(target), keep)
        decoder_inputs = tf.concat([[target_bos], target_ids], axis=0)
        decoder_targets = tf.concat([target_ids, [target_eos]], axis=0)
        return (source_ids, decoder_inputs), decoder_targets

    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.constant(sources, tf.string), tf.constant(targets, tf.string))
    ).map(encode, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = _batch(
        dataset,
        batch_size,
        bucket_boundaries,
        lambda inputs, _: tf.maximum(tf.shape(inputs[0])[0], tf.shape(inputs[1])[0]),
        shuffle_buffer,
        seed,
    )
    return dataset.map(
        lambda inputs, decoder_targets: (inputs, decoder_targets, _mask(decoder_targets))
    ).prefetch(tf.data.AUTOTUNE)
