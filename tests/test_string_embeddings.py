"""`ContextualStringEmbeddings` against each language model run over each sentence alone, its input
helper, `LanguageModel.hidden_states`, round trips, and rejections."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.models.string_embeddings import ContextualStringEmbeddings
from zoo.text import string_embedding_inputs

CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.!?'é"
VOCAB = zoo.text.Vocab(list(CHARS))
SENTENCES = [
    ["Paris", "is", "big", "."],
    ["é"],
    ["Don", "'", "t", "go", "!", "Now", "?"],
    ["a", "~b"],  # "~" is not in the vocabulary: <unk>
]


def language_model(cell_type, units, seed, **kwargs):
    keras.utils.set_random_seed(seed)
    model = zoo.models.LanguageModel(len(VOCAB), cell_type, units=units, embedding_dim=5, **kwargs)
    model.build((None, None))
    return model


@pytest.fixture(scope="module")
def models():
    # Two kinds of stacks: a plain 2-layer LSTM forward, a residual minGRU backward.
    return language_model("lstm", 8, seed=1, num_layers=2), language_model("mingru", 6, seed=2)


def sentence_ids(sentence):
    text = " " + " ".join(sentence) + " "
    return text, np.array([VOCAB.to_ids(list(text))], np.int32)


def reference_embeddings(forward_model, backward_model, sentence, all_layers=False):
    """Each model over this sentence's string alone; states picked by NumPy indexing."""
    text, ids = sentence_ids(sentence)
    forward = np.array(forward_model.hidden_states(ids, all_layers=all_layers))[0]
    backward = np.array(backward_model.hidden_states(ids[:, ::-1].copy(), all_layers=all_layers))[0]
    rows, start = [], 1
    for word in sentence:
        last = start + len(word) - 1
        assert text[start : last + 1] == word
        rows.append(np.concatenate([forward[last], backward[len(text) - 1 - start]]))
        start = last + 2
    return np.stack(rows)


def test_hidden_states_are_what_the_output_layer_reads(models):
    ids = np.array([VOCAB.to_ids(list(" big cat ")), VOCAB.to_ids(list(" a dog   "))], np.int32)
    for model in models:
        hidden = model.hidden_states(ids)
        assert hidden.shape == (2, ids.shape[1], model.units)
        np.testing.assert_allclose(np.array(model.head(hidden)), np.array(model(ids)), atol=1e-5)


def test_hidden_states_end_with_the_final_state():
    model = language_model("lstm", 7, seed=3)
    ids = np.array([VOCAB.to_ids(list(" it was "))], np.int32)
    _, (final_h, _) = model(ids, return_state=True)
    np.testing.assert_allclose(np.array(model.hidden_states(ids))[:, -1], np.array(final_h), atol=1e-6)
    with pytest.raises(TypeError, match="integer token ids"):
        model.hidden_states(ids.astype("float32"))


def test_all_layers_are_each_layer_lowest_first():
    two_layers = language_model("lstm", 5, seed=8, num_layers=2)
    first_layer = language_model("lstm", 5, seed=9, num_layers=1)
    first_layer.embedding.set_weights(two_layers.embedding.get_weights())
    first_layer.rnn.rnn_layers[0].set_weights(two_layers.rnn.rnn_layers[0].get_weights())
    ids = np.array([VOCAB.to_ids(list(" big cat ")), VOCAB.to_ids(list(" a dog   "))], np.int32)
    both = np.array(two_layers.hidden_states(ids, all_layers=True))
    assert both.shape == (2, ids.shape[1], 10)
    np.testing.assert_allclose(both[..., :5], np.array(first_layer.hidden_states(ids)), atol=1e-6)
    np.testing.assert_allclose(both[..., 5:], np.array(two_layers.hidden_states(ids)), atol=1e-6)
    # Residual blocks: the top block's output as the output layer reads it (after the final norm).
    residual = language_model("mingru", 6, seed=10, num_layers=2)
    stacked = np.array(residual.hidden_states(ids, all_layers=True))
    assert stacked.shape == (2, ids.shape[1], 12)
    np.testing.assert_allclose(stacked[..., 6:], np.array(residual.hidden_states(ids)), atol=1e-6)


def test_all_layers_embeddings_match_each_sentence_alone(models):
    layer = ContextualStringEmbeddings(*models, VOCAB.idx_to_token, layers="all")
    assert layer.output_dim == 2 * 8 + 6
    outputs = np.array(layer(string_embedding_inputs(tf.ragged.constant(SENTENCES), VOCAB)))
    for row, sentence in zip(outputs, SENTENCES):
        expected = reference_embeddings(*models, sentence, all_layers=True)
        np.testing.assert_allclose(row[: len(sentence)], expected, atol=1e-5)
    restored = ContextualStringEmbeddings.from_config(layer.get_config())
    assert restored.layers == "all" and restored.output_dim == layer.output_dim
    with pytest.raises(ValueError, match="layers must be one of"):
        ContextualStringEmbeddings(*models, VOCAB.idx_to_token, layers="middle")


def test_input_helper_spans_each_word():
    char_ids, spans = string_embedding_inputs(tf.ragged.constant([["ab", "é"], [], ["x"]]), VOCAB)
    assert char_ids.dtype == tf.int32 and spans.dtype == tf.int32
    np.testing.assert_array_equal(char_ids.numpy()[0], VOCAB.to_ids(list(" ab é ")))
    np.testing.assert_array_equal(spans.numpy()[0], [[1, 2], [4, 4]])
    np.testing.assert_array_equal(spans.numpy()[1], [[-1, -1], [-1, -1]])
    np.testing.assert_array_equal(spans.numpy()[2], [[1, 1], [-1, -1]])
    np.testing.assert_array_equal(char_ids.numpy()[2], VOCAB.to_ids(list(" x ")) + [0, 0, 0])


def test_batch_matches_each_sentence_alone(models):
    layer = ContextualStringEmbeddings(*models, VOCAB.idx_to_token)
    inputs = string_embedding_inputs(tf.ragged.constant(SENTENCES), VOCAB)
    outputs = layer(inputs)
    width = max(map(len, SENTENCES))
    assert outputs.shape == (len(SENTENCES), width, 8 + 6)
    np.testing.assert_array_equal(
        np.array(outputs._keras_mask), [[i < len(s) for i in range(width)] for s in SENTENCES]
    )
    for row, sentence in zip(np.array(outputs), SENTENCES):
        np.testing.assert_allclose(row[: len(sentence)], reference_embeddings(*models, sentence), atol=1e-5)
        np.testing.assert_array_equal(row[len(sentence) :], 0.0)


def test_extra_padding_changes_nothing(models):
    layer = ContextualStringEmbeddings(*models, VOCAB.idx_to_token)
    char_ids, spans = string_embedding_inputs(tf.ragged.constant(SENTENCES[:2]), VOCAB)
    expected = np.array(layer((char_ids, spans)))
    padded_chars = tf.pad(char_ids, [[0, 0], [0, 9]], constant_values=3)  # any id: it is never read
    padded_spans = tf.pad(spans, [[0, 0], [0, 2], [0, 0]], constant_values=-1)
    got = np.array(layer((padded_chars, padded_spans)))
    np.testing.assert_allclose(got[:, : expected.shape[1]], expected, atol=1e-6)
    np.testing.assert_array_equal(got[:, expected.shape[1] :], 0.0)


def test_frozen_by_default_and_fine_tuned_when_asked():
    forward = language_model("gru", 4, seed=4, dropout=0.5)
    backward = language_model("gru", 4, seed=5, dropout=0.5)
    frozen = ContextualStringEmbeddings(forward, backward, VOCAB.idx_to_token)
    inputs = string_embedding_inputs(tf.ragged.constant(SENTENCES), VOCAB)
    assert frozen.trainable_weights == [] and len(frozen.non_trainable_weights) == len(
        forward.weights + backward.weights
    )
    assert embedding_model(frozen).trainable_weights == []
    # A frozen model runs without its dropout, even while the tagger trains.
    np.testing.assert_array_equal(np.array(frozen(inputs, training=True)), np.array(frozen(inputs)))

    tuned = ContextualStringEmbeddings(
        language_model("gru", 4, seed=4), language_model("gru", 4, seed=5), VOCAB.idx_to_token, trainable=True
    )
    # All but the output layers, which the embeddings do not use.
    heads = forward.head.weights + backward.head.weights
    assert len(tuned.trainable_weights) == len(forward.weights + backward.weights) - len(heads)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tuned(inputs, training=True) ** 2)
    gradients = tape.gradient(loss, tuned.trainable_weights)
    assert all(g is not None for g in gradients)
    assert any(float(tf.reduce_max(tf.abs(tf.convert_to_tensor(g)))) > 0 for g in gradients)


def test_a_stateful_model_is_read_from_zero_states():
    stateful = language_model("lstm", 4, seed=6, stateful=True)
    stateless = stateful.stateless_copy()
    backward = language_model("lstm", 4, seed=7)
    inputs = string_embedding_inputs(tf.ragged.constant(SENTENCES), VOCAB)
    got = ContextualStringEmbeddings(stateful, backward, VOCAB.idx_to_token)(inputs)
    expected = ContextualStringEmbeddings(stateless, backward, VOCAB.idx_to_token)(inputs)
    np.testing.assert_array_equal(np.array(got), np.array(expected))


def embedding_model(layer):
    char_ids = keras.Input((None,), dtype="int32", name="char_ids")
    spans = keras.Input((None, 2), dtype="int32", name="word_spans")
    return keras.Model([char_ids, spans], layer([char_ids, spans]))


def test_keras_file_round_trip_is_exact(models, tmp_path):
    model = embedding_model(ContextualStringEmbeddings(*models, VOCAB.idx_to_token, name="flair"))
    inputs = [np.array(x) for x in string_embedding_inputs(tf.ragged.constant(SENTENCES), VOCAB)]
    expected = np.array(model(inputs))
    model.save(tmp_path / "embeddings.keras")
    loaded = keras.saving.load_model(tmp_path / "embeddings.keras")
    np.testing.assert_array_equal(np.array(loaded(inputs)), expected)
    layer = loaded.get_layer("flair")
    assert isinstance(layer, ContextualStringEmbeddings) and not layer.trainable
    assert layer.forward_model.cell_type == "lstm" and layer.backward_model.cell_type == "mingru"
    assert json.loads(json.dumps(layer.get_config())) == json.loads(
        json.dumps(model.get_layer("flair").get_config())
    )


class StringEmbedder(tf.Module):
    def __init__(self, layer, vocab):
        super().__init__()
        self.layer = layer
        self.vocab = vocab

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def embed(self, sentences):
        return {"embeddings": self.layer(string_embedding_inputs(tf.strings.split(sentences), self.vocab))}


LOAD_WITHOUT_ZOO = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    served = tf.saved_model.load(sys.argv[1])
    got = served.signatures["embed"](sentences=tf.constant(sys.argv[3:]))["embeddings"].numpy()
    np.testing.assert_allclose(got, np.load(sys.argv[2]), atol=1e-5)
    assert not [m for m in sys.modules if m.split(".")[0] in ("zoo", "ops")], "zoo was imported"
    print("LOADED_OK")
    """
)


def test_saved_model_takes_raw_strings_and_runs_without_zoo(models, tmp_path):
    embedder = StringEmbedder(ContextualStringEmbeddings(*models, VOCAB.idx_to_token), VOCAB)
    sentences = [" ".join(sentence) for sentence in SENTENCES]
    expected = embedder.embed(tf.constant(sentences))["embeddings"].numpy()
    np.save(tmp_path / "expected.npy", expected)
    zoo.export.saved_model(embedder, tmp_path / "saved_model", {"embed": embedder.embed})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_WITHOUT_ZOO,
            str(tmp_path / "saved_model"),
            str(tmp_path / "expected.npy"),
        ]
        + sentences,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "LOADED_OK" in result.stdout, result.stderr[-3000:]


def test_rejections(models):
    forward, backward = models
    with pytest.raises(ValueError, match="same character vocabulary"):
        ContextualStringEmbeddings(forward, language_model("gru", 4, seed=8), VOCAB.idx_to_token[:-1])
    smaller = zoo.models.LanguageModel(len(VOCAB) - 1, "gru", units=4)
    with pytest.raises(ValueError, match="backward_model has .* the same character vocabulary"):
        ContextualStringEmbeddings(forward, smaller, VOCAB.idx_to_token)
    word_level = VOCAB.idx_to_token[:-2] + ["the", "cat"]
    with pytest.raises(ValueError, match="need character language models.*'the', 'cat'"):
        ContextualStringEmbeddings(forward, backward, word_level)
    no_space = [token if token != " " else "_" for token in VOCAB.idx_to_token]
    with pytest.raises(ValueError, match="no ' '"):
        ContextualStringEmbeddings(forward, backward, no_space)
    bidirectional = zoo.models.LanguageModel(len(VOCAB), "gru", units=4, bidirectional=True)
    with pytest.raises(ValueError, match="backward_model is bidirectional"):
        ContextualStringEmbeddings(forward, bidirectional, VOCAB.idx_to_token)
    with pytest.raises(TypeError, match="forward_model must be a zoo.models.LanguageModel"):
        ContextualStringEmbeddings(keras.layers.Dense(3), backward, VOCAB.idx_to_token)
    unbuilt = zoo.models.LanguageModel(len(VOCAB), "gru", units=4, stateful=True)
    with pytest.raises(ValueError, match="stateful and not built"):
        ContextualStringEmbeddings(unbuilt, backward, VOCAB.idx_to_token)

    layer = ContextualStringEmbeddings(forward, backward, VOCAB.idx_to_token)
    char_ids, spans = string_embedding_inputs(tf.ragged.constant(SENTENCES), VOCAB)
    with pytest.raises(TypeError, match="char_ids must be integers"):
        layer((tf.cast(char_ids, tf.float32), spans))
    with pytest.raises(TypeError, match="word_spans must be integers"):
        layer((char_ids, spans[:, :, 0]))
    with pytest.raises(ValueError, match=r"takes \(char_ids, word_spans\)"):
        layer(char_ids)
    with pytest.raises(tf.errors.InvalidArgumentError, match="a word is empty"):
        string_embedding_inputs(tf.ragged.constant([["a", ""]]), VOCAB)
    with pytest.raises(TypeError, match="ragged tf.string"):
        string_embedding_inputs(tf.constant([["a", "b"]]), VOCAB)


def tagger_setup(models):
    sentences = [["Paris", "is", "big"], ["Don", "'", "t", "go"], ["é"]]
    tags = [["B", "O", "O"], ["O", "O", "O", "O"], ["B"]]
    word_vocab = zoo.text.Vocab(sentences, reserved_tokens=zoo.text.SEQUENCE_RESERVED)
    char_vocab = zoo.text.Vocab(
        [list(word) for sentence in sentences for word in sentence],
        reserved_tokens=zoo.text.SEQUENCE_RESERVED,
    )
    encoder = zoo.text.TokenEncoder(word_vocab, char_vocab, False, 10, string_embedding_vocab=VOCAB)
    tag_vocab = zoo.text.Vocab(tags, reserved_tokens=(), unk_token=None)
    tagger = zoo.models.SequenceTagger(
        len(word_vocab),
        len(tag_vocab),
        embedding_dim=4,
        units=4,
        char_vocab_size=len(char_vocab),
        char_embedding_dim=3,
        char_filters=3,
        string_embeddings=ContextualStringEmbeddings(*models, VOCAB.idx_to_token),
    )
    return sentences, tags, encoder, tag_vocab, tagger


def test_token_encoder_adds_the_string_embedding_inputs(models):
    _, _, encoder, _, _ = tagger_setup(models)
    tokens = tf.ragged.constant([["Paris", "is"], ["x"]])
    (word_ids, char_ids, lm_char_ids, word_spans), mask = encoder(tokens)
    expected_chars, expected_spans = string_embedding_inputs(tokens, VOCAB)
    np.testing.assert_array_equal(lm_char_ids, expected_chars)
    np.testing.assert_array_equal(word_spans, expected_spans)
    # An empty batch still has one step, with no word in it.
    (word_ids, _, _, word_spans), mask = encoder(tf.ragged.constant([[]], dtype=tf.string))
    assert word_ids.shape == (1, 1) and word_spans.numpy().tolist() == [[[-1, -1]]]


def test_tagger_with_string_embeddings_trains_round_trips_and_serves_raw_strings(models, tmp_path):
    sentences, tags, encoder, tag_vocab, tagger = tagger_setup(models)
    language_model_weights = [np.array(w) for w in tagger.string_embeddings.weights]
    batches = zoo.text.tagger_batches(
        sentences, tags, encoder, tag_vocab, 2, shuffle=True, seed=0, mask_weights=True, word_dropout=0.3
    )
    tagger.compile("adam", "sparse_categorical_crossentropy")
    tagger.fit(batches, epochs=2, verbose=0)
    # Frozen: training the tagger leaves the language models as they were.
    for before, after in zip(language_model_weights, tagger.string_embeddings.weights):
        np.testing.assert_array_equal(before, np.array(after))
    inputs, _ = encoder(tf.ragged.constant(sentences))
    expected = np.array(tagger(inputs))
    tagger.save(tmp_path / "tagger.keras")
    loaded = keras.saving.load_model(tmp_path / "tagger.keras")
    np.testing.assert_array_equal(np.array(loaded(inputs)), expected)
    assert isinstance(loaded.string_embeddings, ContextualStringEmbeddings)
    assert len(loaded.trainable_weights) == len(tagger.trainable_weights)  # still frozen

    served = zoo.models.TextTagger(tagger, encoder, tag_vocab, max_tokens=10)
    texts = [" ".join(sentence) for sentence in sentences] + [""]
    tags_now = served.tag(tf.constant(texts))["tags"].numpy()
    np.save(tmp_path / "tags.npy", tags_now)
    zoo.export.saved_model(served, tmp_path / "saved_model", {"tag": served.tag})
    check = textwrap.dedent(
        """
        import sys
        import numpy as np
        import tensorflow as tf
        served = tf.saved_model.load(sys.argv[1])
        got = served.signatures["tag"](sentences=tf.constant(sys.argv[3:]))["tags"].numpy()
        np.testing.assert_array_equal(got, np.load(sys.argv[2], allow_pickle=True))
        assert not [m for m in sys.modules if m.split(".")[0] in ("zoo", "ops")], "zoo was imported"
        print("LOADED_OK")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", check, str(tmp_path / "saved_model"), str(tmp_path / "tags.npy"), *texts],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "LOADED_OK" in result.stdout, result.stderr[-3000:]
    assert tags_now[-1].tolist() == [b""] * tags_now.shape[1]  # an empty sentence has no tags
    with pytest.raises(ValueError, match=r"called on \(word_ids, char_ids, lm_char_ids, word_spans\)"):
        tagger(inputs[:2])
    with pytest.raises(
        ValueError, match="LiteRT export does not take a SequenceTagger with string embeddings"
    ):
        zoo.export.tflite(tagger, tmp_path / "model.tflite")
    with pytest.raises(ValueError, match="cannot export SequenceTagger .* to ONNX"):
        zoo.export.onnx(tagger, tmp_path / "model.onnx")


def test_cached_batches_give_the_taggers_outputs_and_gradients(models):
    sentences, tags, encoder, tag_vocab, tagger = tagger_setup(models)
    arguments = dict(shuffle=False, mask_weights=True)
    computed = zoo.text.tagger_batches(sentences, tags, encoder, tag_vocab, 3, **arguments)
    cached = zoo.text.tagger_batches(
        sentences, tags, encoder, tag_vocab, 3, string_embeddings=tagger.string_embeddings, **arguments
    )
    for (inputs, tag_ids, weights), (cached_inputs, cached_tags, cached_weights) in zip(computed, cached):
        assert cached_inputs[2].dtype == tf.float32
        np.testing.assert_array_equal(cached_tags, tag_ids)
        np.testing.assert_array_equal(cached_weights, weights)
        results = []
        for batch in (inputs, cached_inputs):
            with tf.GradientTape() as tape:
                outputs = tagger(batch)  # no dropout: the two runs must be alike
                loss = keras.losses.sparse_categorical_crossentropy(tag_ids, outputs)
            gradients = tape.gradient(loss, tagger.trainable_weights)
            results.append([outputs, *map(tf.convert_to_tensor, gradients)])
        for expected, got in zip(*results):
            np.testing.assert_allclose(np.array(got), np.array(expected), atol=1e-6)


def cached_batches(sentences, tags, encoder, tag_vocab, batch_size, string_embeddings):
    return zoo.text.tagger_batches(
        sentences,
        tags,
        encoder,
        tag_vocab,
        batch_size,
        shuffle=False,
        mask_weights=True,
        string_embeddings=string_embeddings,
    )


def test_an_ensemble_of_taggers_takes_cached_batches(models):
    sentences, tags, encoder, tag_vocab, tagger = tagger_setup(models)
    ensemble = zoo.models.AveragedEnsemble([tagger, tagger])
    inputs = next(iter(cached_batches(sentences, tags, encoder, tag_vocab, 3, tagger.string_embeddings)))[0]
    np.testing.assert_allclose(np.array(ensemble(inputs)), np.array(tagger(inputs)), atol=1e-6)


def test_cached_embeddings_are_refused_where_they_cannot_stand(models):
    sentences, tags, encoder, tag_vocab, tagger = tagger_setup(models)
    layer = tagger.string_embeddings
    inputs, _ = encoder(tf.ragged.constant(sentences))
    cache = layer(inputs[-2:])
    with pytest.raises(TypeError, match=r"cached embeddings must be floats \[batch, words, 14\]"):
        layer((cache[:, :, :5], inputs[-1]))
    layer.trainable = True
    try:
        with pytest.raises(ValueError, match="cannot fine-tune the language models"):
            layer((cache, inputs[-1]), training=True)
        with pytest.raises(ValueError, match="computed once only when frozen"):
            cached_batches(sentences, tags, encoder, tag_vocab, 2, layer)
    finally:
        layer.trainable = False
    plain = zoo.text.TokenEncoder(encoder.word_vocab, encoder.char_vocab, lowercase=True, max_chars=10)
    with pytest.raises(ValueError, match="needs an encoder with a string_embedding_vocab"):
        zoo.text.tagger_batches(
            sentences, tags, plain, tag_vocab, 2, shuffle=False, mask_weights=True, string_embeddings=layer
        )
