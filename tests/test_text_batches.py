"""Language-model batch schemes and padded/bucketed batches, checked property by property."""

import numpy as np
import pytest
import tensorflow as tf

from zoo.text import (
    PAD,
    SEQUENCE_RESERVED,
    BPETokenizer,
    Vocab,
    WordTokenizer,
    classification_batches,
    random_sampling_batches,
    seq2seq_batches,
    sequential_partition_batches,
    split_stream,
    tagging_batches,
)

STREAM = np.arange(35)
B, T = 2, 5


def _epoch(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def _offsets_and_check_common(batches):
    for x, y in batches:
        assert x.shape == y.shape == (B, T) and x.dtype == np.int32
        np.testing.assert_array_equal(y, x + 1)  # ids are positions: Y is X one token ahead
    return {int(x.min()) % T for x, _ in batches}


def test_random_sampling_properties():
    dataset = random_sampling_batches(STREAM, B, T, seed=3)
    epochs = [_epoch(dataset) for _ in range(4)]
    for batches in epochs:
        (offset,) = _offsets_and_check_common(batches)  # one offset per epoch, in [0, T)
        starts = sorted(int(x[row, 0]) for x, _ in batches for row in range(B))
        assert all(start % T == offset for start in starts)
        assert len(set(starts)) == len(starts)  # non-overlapping windows
        num_windows = (len(STREAM) - offset - 1) // T
        assert len(batches) == num_windows // B
        for x, _ in batches:
            np.testing.assert_array_equal(x, x[:, :1] + np.arange(T))  # contiguous windows
    assert len({tuple(x[:, 0]) for batches in epochs for x, _ in batches[:1]}) > 1  # epochs differ
    rebuilt = random_sampling_batches(STREAM, B, T, seed=3)
    again = [_epoch(rebuilt) for _ in range(4)]
    for first, second in zip(epochs, again):  # the seed reproduces the epochs
        for (x1, _), (x2, _) in zip(first, second):
            np.testing.assert_array_equal(x1, x2)


def test_random_sampling_order_is_shuffled():
    dataset = random_sampling_batches(np.arange(2000), 4, 5, seed=0)
    starts = [int(x[row, 0]) for x, _ in _epoch(dataset) for row in range(4)]
    assert starts != sorted(starts)


def test_sequential_partition_rows_continue():
    dataset = sequential_partition_batches(STREAM, B, T, seed=5)
    for _ in range(3):
        batches = _epoch(dataset)
        (offset,) = {int(batches[0][0][0, 0])}
        assert 0 <= offset < T
        _offsets_and_check_common(batches)
        row_length = (len(STREAM) - offset - 1) // B
        assert len(batches) == row_length // T
        for i in range(len(batches)):
            for row in range(B):
                expected = offset + row * row_length + i * T + np.arange(T)
                np.testing.assert_array_equal(batches[i][0][row], expected)
        for (x0, _), (x1, _) in zip(batches, batches[1:]):
            np.testing.assert_array_equal(x1[:, 0], x0[:, -1] + 1)  # row j carries on


def test_lm_batches_bad_input():
    with pytest.raises(ValueError, match="too short"):
        random_sampling_batches(np.arange(12), B, T)
    with pytest.raises(ValueError, match="too short"):
        sequential_partition_batches(np.arange(12), B, T)
    with pytest.raises(ValueError, match="1-D"):
        random_sampling_batches(np.zeros((5, 7), int), B, T)
    with pytest.raises(TypeError, match="integers"):
        sequential_partition_batches(np.linspace(0, 1, 100), B, T)
    with pytest.raises(ValueError, match="batch_size"):
        random_sampling_batches(STREAM, 0, T)


def test_split_stream():
    train, validation = split_stream(np.arange(100), 0.2)
    np.testing.assert_array_equal(train, np.arange(80))
    np.testing.assert_array_equal(validation, np.arange(80, 100))
    with pytest.raises(ValueError, match="validation_fraction"):
        split_stream(np.arange(100), 1.0)


@pytest.fixture
def vocab():
    return Vocab([["a", "b", "c", "d", "a"]], reserved_tokens=SEQUENCE_RESERVED)


TEXTS = ["a b", "c a b a d", "b", "d d d", "a"]


def test_classification_batches_pad_truncate(vocab):
    batches = list(classification_batches(TEXTS, [1, 0, 1, 0, 1], 2, vocab=vocab, max_length=4))
    ids = [row for x, _ in batches for row in x.numpy().tolist()]
    expected = [vocab.to_ids(text.split()[:4]) for text in TEXTS]
    for row, want in zip(ids, expected):
        assert row[: len(want)] == want and set(row[len(want) :]) <= {0}
    assert [y for _, labels in batches for y in labels.numpy().tolist()] == [1, 0, 1, 0, 1]
    with_tokenizer = classification_batches(["A, b!"], [1], 1, vocab=vocab, tokenizer=WordTokenizer())
    assert next(iter(with_tokenizer))[0].numpy().tolist() == [vocab.to_ids(["a", "b"])]


def test_bucketed_batches_group_lengths(vocab):
    texts = ["a"] * 4 + ["a b c d e f"] * 4
    dataset = classification_batches(
        texts, [0] * 8, 4, vocab=vocab, bucket_boundaries=[3], shuffle_buffer=8, seed=1
    )
    widths = sorted(x.shape[1] for x, _ in dataset)
    assert widths == [1, 6]  # short and long texts never share a batch


def test_tagging_batches_mask(vocab):
    tags = Vocab([["N", "V"]], reserved_tokens=(PAD,), unk_token=None)
    dataset = tagging_batches([["a", "b", "zz"], ["c"]], [["N", "V", "N"], ["V"]], 2, vocab, tags)
    x, y, mask = next(iter(dataset))
    assert x.numpy().tolist() == [vocab.to_ids(["a", "b", "zz"]), [vocab.to_ids("c"), 0, 0]]
    assert y.numpy().tolist() == [[1, 2, 1], [2, 0, 0]]
    assert mask.numpy().tolist() == [[1, 1, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match="1 tokens but 2 tags"):
        tagging_batches([["a"]], [["N", "V"]], 1, vocab, tags)


def test_seq2seq_bos_eos(vocab):
    dataset = seq2seq_batches(["a b c d", "a"], ["b c", "d a b c d"], 2, vocab, vocab, max_length=4)
    (source, decoder_inputs), targets, mask = next(iter(dataset))
    bos, eos = vocab.id_of("<bos>"), vocab.id_of("<eos>")
    assert source.numpy().tolist() == [
        vocab.to_ids(["a", "b", "c"]) + [eos],
        vocab.to_ids(["a"]) + [eos, 0, 0],
    ]
    y0, y1 = vocab.to_ids(["b", "c"]), vocab.to_ids(["d", "a", "b"])
    assert decoder_inputs.numpy().tolist() == [[bos] + y0 + [0], [bos] + y1]
    assert targets.numpy().tolist() == [y0 + [eos, 0], y1 + [eos]]
    assert mask.numpy().tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    with pytest.raises(ValueError, match="<bos>"):
        seq2seq_batches(["a"], ["b"], 1, vocab, Vocab(["b"], reserved_tokens=(PAD, "<unk>")))


def test_seq2seq_with_bpe_ids():
    tokenizer = BPETokenizer.train(["the cat sat on the mat"] * 20, vocab_size=25)
    dataset = seq2seq_batches(
        ["the cat"], ["the mat"], 1, source_tokenizer=tokenizer, target_tokenizer=tokenizer
    )
    (source, decoder_inputs), targets, _ = next(iter(dataset))
    assert source.numpy().tolist() == [tokenizer.python_tokenize("the cat") + [tokenizer.id_of("<eos>")]]
    assert decoder_inputs.numpy()[0, 0] == tokenizer.id_of("<bos>")
    np.testing.assert_array_equal(decoder_inputs.numpy()[0, 1:], targets.numpy()[0, :-1])


def test_padded_batches_bad_input(vocab):
    with pytest.raises(ValueError, match="differ in length"):
        classification_batches(["a"], [1, 0], 1, vocab=vocab)
    with pytest.raises(ValueError, match="must be '<pad>'"):
        classification_batches(["a"], [1], 1, vocab=Vocab(["a"]))
    with pytest.raises(ValueError, match="bucket_boundaries"):
        classification_batches(["a"], [1], 1, vocab=vocab, bucket_boundaries=[5, 2])


def test_lm_pipeline_on_time_machine(data_file):
    from zoo.text import CharTokenizer, load_time_machine

    lines = load_time_machine(data_file("timemachine/timemachine.txt")).split("\n")
    chars = [c for line in CharTokenizer().tokenize(lines) for c in line]
    ids = Vocab(chars).to_ids(tf.constant(chars)).numpy()
    train, _ = split_stream(ids, 0.1)
    x, y = next(iter(sequential_partition_batches(train, 32, 35, seed=0)))
    assert x.shape == (32, 35)
    np.testing.assert_array_equal(x.numpy()[:, 1:], y.numpy()[:, :-1])


def test_bucketed_batches_know_their_count(vocab):
    texts = ["a"] * 5 + ["a b"] * 3 + ["a b c d e f"] * 6
    dataset = classification_batches(
        texts, [0] * 14, 4, vocab=vocab, bucket_boundaries=[2, 4], shuffle_buffer=14, seed=0
    )
    # Buckets of 5, 3 and 6 texts: 2 + 1 + 2 batches, each bucket ending with a partial one.
    assert int(dataset.cardinality()) == 5
    assert sorted(len(y) for _, y in dataset) == [1, 2, 3, 4, 4]


def test_seq2seq_buckets_by_the_longer_side(vocab):
    # Sources of one length: only the targets' lengths can keep short and long targets apart.
    sources = ["a b"] * 8
    targets = ["a"] * 4 + ["a b c d e"] * 4
    dataset = seq2seq_batches(
        sources, targets, 4, vocab, vocab, bucket_boundaries=[4], shuffle_buffer=8, seed=3
    )
    widths = sorted(decoder_inputs.shape[1] for (_, decoder_inputs), _, _ in dataset)
    assert widths == [2, 6]
    assert int(dataset.cardinality()) == 2
