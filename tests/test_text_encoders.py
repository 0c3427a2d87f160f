"""In-graph text pieces of zoo.text: word shapes, TokenEncoder, tagger batches, cleaning, the NMT
tokenizer, the split by source sentence and the language-model batches of known length."""

import numpy as np
import pytest
import tensorflow as tf

from zoo import text as zoo_text
from zoo.text import (
    SEQUENCE_RESERVED,
    SHAPE_TOKENS,
    TokenEncoder,
    Vocab,
    language_model_batches,
    nmt_tokens,
    overlapping_window_batches,
    preprocess_nmt,
    read_sentence_pairs,
    split_by_source,
    tagger_batches,
    word_shapes,
)


def reference_shape(token):
    """The shape `word_shapes` must give, written with Python's str methods."""
    if token.lower().startswith(("http://", "https://", "www.")):
        return "<shape:url>"
    if len(token) > 1 and token[0] in "@#":
        return "<shape:handle>"
    if sum(c.isupper() for c in token) >= 2 and all(c.isupper() or c.isdigit() for c in token):
        return "<shape:caps>"
    if token[0].isupper():
        return "<shape:capitalized>"
    if token[0].islower():
        return "<shape:lower>"
    if token[0].isdigit():
        return "<shape:number>"
    return "<shape:other>"


def test_word_shapes_match_a_python_reference():
    tokens = [
        "Hello", "HELLO", "U2", "UK2", "hello", "iPhone", "@bob", "#tag", "@", "HTTP://x.co", "www.a.b",
        "2017", "3D", ".", "'s", "McDonald", "ÉCOLE", "été", "A", "😂", "Ünï",
    ]  # fmt: skip
    shapes = [shape.decode() for shape in word_shapes(tokens).numpy()]
    assert shapes == [reference_shape(token) for token in tokens]
    assert set(shapes) <= set(SHAPE_TOKENS)


def test_word_shape_is_the_first_character_before_the_cut_characters():
    words = Vocab([["paris"]], reserved_tokens=SEQUENCE_RESERVED)
    chars = Vocab([list("Paris")], reserved_tokens=SEQUENCE_RESERVED + SHAPE_TOKENS)
    encoder = TokenEncoder(words, chars, lowercase=True, max_chars=3, word_shape=True)
    (word_ids, char_ids), mask = encoder(tf.ragged.constant([["Paris", "@x"], ["NYC"]]))
    expected = [
        [["<shape:capitalized>", "P", "a", "r"], ["<shape:handle>", "@", "x", "<pad>"]],
        [["<shape:caps>", "N", "Y", "C"], ["<pad>"] * 4],
    ]
    assert char_ids.numpy().tolist() == [[chars.to_ids(word) for word in row] for row in expected]
    assert word_ids.numpy().tolist() == [[words.id_of("paris"), words.unk_id], [words.unk_id, 0]]
    assert mask.numpy().tolist() == [[True, True], [True, False]]
    plain = TokenEncoder(words, chars, lowercase=True, max_chars=3)
    assert plain(tf.ragged.constant([["Paris"]]))[0][1].numpy().tolist() == [[chars.to_ids(list("Par"))]]
    with pytest.raises(ValueError, match="word_shape needs a character vocabulary that holds SHAPE_TOKENS"):
        TokenEncoder(words, Vocab([list("ab")], reserved_tokens=SEQUENCE_RESERVED), True, 3, word_shape=True)


def test_empty_sentence_still_has_one_step():
    words = Vocab([["a"]], reserved_tokens=SEQUENCE_RESERVED)
    chars = Vocab([["a"]], reserved_tokens=SEQUENCE_RESERVED)
    (word_ids, char_ids), mask = TokenEncoder(words, chars, True, 5)(tf.ragged.constant([[]], tf.string))
    assert word_ids.shape == (1, 1) and char_ids.shape == (1, 1, 1) and not mask.numpy().any()


def word_encoder():
    return TokenEncoder(
        Vocab([["a", "b"]], reserved_tokens=SEQUENCE_RESERVED), None, lowercase=True, max_chars=5
    )


def test_word_dropout_replaces_only_real_words_by_unk():
    encoder = word_encoder()
    vocab = encoder.word_vocab
    tags = Vocab([["X"]], reserved_tokens=(), unk_token=None)
    sentences, labels = [["a", "b", "a"], ["b"]], [["X"] * 3, ["X"]]

    def first_inputs(word_dropout):
        dataset = tagger_batches(
            sentences, labels, encoder, tags, 2, shuffle=False, mask_weights=False, word_dropout=word_dropout
        )
        return next(iter(dataset))[0].numpy().tolist()

    assert first_inputs(0.0) == [
        [vocab.id_of("a"), vocab.id_of("b"), vocab.id_of("a")],
        [vocab.id_of("b"), 0, 0],
    ]
    assert first_inputs(1.0) == [[vocab.unk_id] * 3, [vocab.unk_id, 0, 0]]


@pytest.mark.parametrize(
    "sentences, labels, message",
    [
        ([], [], "no sentences"),
        ([["a"], []], [["X"], []], "sentence 1 is empty"),
        ([["a", "b"]], [["X"]], "sentence 0 has 2 tokens but 1 tags"),
        ([["a"], ["b"]], [["X"]], "2 sentences but 1 tag sequences"),
    ],
)
def test_tagger_batches_name_bad_sentences(sentences, labels, message):
    tags = Vocab([["X"]], reserved_tokens=(), unk_token=None)
    with pytest.raises(ValueError, match=message):
        tagger_batches(sentences, labels, word_encoder(), tags, 2, shuffle=False, mask_weights=False)


def test_seeded_word_dropout_repeats_from_run_to_run_and_changes_from_epoch_to_epoch():
    sentences = [[f"w{(7 * i + j) % 40}" for j in range(3 + i % 8)] for i in range(300)]
    labels = [["X"] * len(sentence) for sentence in sentences]
    encoder = TokenEncoder(Vocab(sentences, reserved_tokens=SEQUENCE_RESERVED), None, False, 5)
    tags = Vocab([["X"]], reserved_tokens=(), unk_token=None)

    def two_epochs():
        dataset = tagger_batches(
            sentences, labels, encoder, tags, 8, shuffle=False, seed=3, mask_weights=True, word_dropout=0.2
        )
        return [[inputs.numpy() for inputs, *_ in dataset] for _ in range(2)]

    first, second = two_epochs(), two_epochs()
    # Many batches encoded by a parallel map: each batch's dropout must not depend on thread order.
    for epoch in range(2):
        for a, b in zip(first[epoch], second[epoch], strict=True):
            np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(*first))
    real = np.concatenate([ids[ids > 0] for ids in first[0]])
    assert 0.1 < np.mean(real == encoder.word_vocab.unk_id) < 0.3


def test_entity_weight_weighs_entity_tokens_or_sentences():
    encoder = word_encoder()
    tags = Vocab([["O", "B-person"]], reserved_tokens=(), unk_token=None)
    sentences, labels = [["a", "Ann", "a"], ["a"]], [["O", "B-person", "O"], ["O"]]

    def first_batch(mask_weights, entity_weight):
        dataset = tagger_batches(
            sentences,
            labels,
            encoder,
            tags,
            2,
            shuffle=False,
            mask_weights=mask_weights,
            entity_weight=entity_weight,
        )
        return next(iter(dataset))

    assert first_batch(True, 4.0)[2].numpy().tolist() == [[1.0, 4.0, 1.0], [1.0, 0.0, 0.0]]  # per token
    assert first_batch(False, 4.0)[2].numpy().tolist() == [4.0, 1.0]  # per sentence, for a CRF
    assert len(first_batch(False, 1.0)) == 2  # a CRF without weights
    assert first_batch(True, 1.0)[1].numpy().tolist() == [
        tags.to_ids(["O", "B-person", "O"]),
        [tags.id_of("O"), 0, 0],
    ]


def test_clean_markup_and_cleaning_tokenizer():
    cleaned = zoo_text.clean_markup(tf.constant([b"fine<br />film<br>ok \xff"])).numpy()[0].decode()
    assert cleaned == "fine film ok \ufffd"
    tokenizer = zoo_text.CleaningTokenizer(zoo_text.WordTokenizer("course"))
    assert tokenizer.tokenize(tf.constant(["A film.<br />Loved"])).to_list() == [[b"a", b"film", b"loved"]]


def test_nmt_tokens_match_preprocess_nmt(data_file):
    sources, targets = read_sentence_pairs(data_file("fra-eng/fra.txt"), max_pairs=500, preprocess=False)
    crafted = ["Hé\u202f! Ça va\u00a0?", "Wait...", "a ,b.c!d?", "  spaced   out  ", "", "ÉCOLE, École."]
    texts = sources + targets + crafted
    tokens = nmt_tokens(tf.constant(texts)).to_list()
    assert [[token.decode("utf-8") for token in row] for row in tokens] == [
        preprocess_nmt(t).split() for t in texts
    ]


def test_nmt_tokens_replace_undecodable_bytes():
    assert nmt_tokens(tf.constant([b"caf\xc3 \xff!"])).to_list() == [
        ["caf\ufffd".encode(), "\ufffd".encode(), b"!"]
    ]


def test_split_by_source_is_fixed_disjoint_complete_and_keeps_a_sentences_translations_together():
    sources = [f"sentence {index % 400}" for index in range(1000)]  # 400 sentences, 2-3 pairs each
    train, val, test = split_by_source(sources, 0.05, 0.05, seed=0)
    again = split_by_source(sources, 0.05, 0.05, seed=0)
    assert [list(part) for part in again] == [list(train), list(val), list(test)]
    assert sorted([*train, *val, *test]) == list(range(1000))
    sentences = [{sources[i] for i in part} for part in (train, val, test)]
    assert (len(sentences[1]), len(sentences[2])) == (20, 20)  # 5% of the distinct sentences each
    assert not (sentences[0] & sentences[1] or sentences[0] & sentences[2] or sentences[1] & sentences[2])
    with pytest.raises(ValueError, match="2 distinct sentences are too few"):
        split_by_source(["a", "a", "b"], 0.4, 0.4, seed=0)
    with pytest.raises(ValueError, match="leave pairs to train on"):
        split_by_source(sources, 0.5, 0.5, seed=0)


def test_overlapping_windows_start_at_every_token_once_per_epoch():
    ids = np.arange(100, 123, dtype=np.int32)
    dataset = overlapping_window_batches(ids, batch_size=4, num_steps=5, seed=0)
    epochs = [[(x.numpy(), y.numpy()) for x, y in dataset] for _ in range(2)]
    assert dataset.cardinality() == (len(ids) - 5) // 4 == len(epochs[0])
    for epoch in epochs:
        x = np.concatenate([x for x, _ in epoch])
        y = np.concatenate([y for _, y in epoch])
        starts = x[:, 0] - 100
        np.testing.assert_array_equal(x, ids[starts[:, None] + np.arange(5)])
        np.testing.assert_array_equal(y, x + 1)
        assert len(set(starts)) == len(starts) == 16 and set(starts) <= set(range(18))
    assert not np.array_equal(epochs[0][0][0], epochs[1][0][0])  # reshuffled each epoch
    with pytest.raises(ValueError, match="too short for one batch of 4 overlapping windows of 5"):
        overlapping_window_batches(np.arange(8), 4, 5)


@pytest.mark.parametrize("scheme", ["random", "sequential", "overlapping"])
def test_language_model_batches_have_the_length_every_epoch_has(scheme):
    ids = np.arange(203)
    dataset = language_model_batches(ids, 3, 7, scheme, seed=1)
    count = int(dataset.cardinality())
    assert count > 0
    for _ in range(4):  # epochs of different random offsets
        batches = list(dataset)
        assert len(batches) == count
        for x, y in batches:
            assert x.shape == (3, 7)
            np.testing.assert_array_equal(y.numpy(), x.numpy() + 1)
    with pytest.raises(ValueError, match="unknown batching scheme 'shuffled'"):
        language_model_batches(ids, 3, 7, "shuffled")
