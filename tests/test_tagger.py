"""SequenceTagger: padding invariance (words and characters), CRF training, .keras round trips."""

import keras
import numpy as np
import pytest

from zoo.crf import CRFTagger
from zoo.models.tagger import SequenceTagger, build_tagger


def small_tagger(output="softmax", **kwargs):
    config = dict(
        vocab_size=20,
        num_tags=4,
        embedding_dim=6,
        units=5,
        char_vocab_size=12,
        char_embedding_dim=4,
        char_filters=3,
        dropout=0.2,
    )
    config.update(kwargs)
    return build_tagger(output, **config)


def test_padding_in_words_and_characters_does_not_change_scores():
    model = small_tagger(output="softmax")
    words = np.array([[3, 7, 5]])
    chars = np.array([[[1, 2, 0], [4, 0, 0], [5, 6, 7]]])
    padded_words = np.array([[3, 7, 5, 0], [9, 9, 9, 9]])
    padded_chars = np.zeros((2, 4, 6), "int64")
    padded_chars[0, :3, :3] = chars[0]
    padded_chars[1] = 2
    short = model((words, chars)).numpy()[0]
    long = model((padded_words, padded_chars)).numpy()[0, :3]
    np.testing.assert_allclose(short, long, rtol=1e-5, atol=1e-6)


def test_output_mask_marks_padding():
    model = small_tagger(output="softmax", char_vocab_size=None)
    outputs = model(np.array([[3, 7, 0]]))
    np.testing.assert_array_equal(np.asarray(outputs._keras_mask), [[True, True, False]])


def test_crf_tagger_learns_a_tiny_pattern():
    # Tag of a word = its id modulo 4, except that a word after id 1 always gets tag 3: the CRF and the
    # BiLSTM must use context.
    rng = np.random.default_rng(0)
    words = rng.integers(1, 12, size=(64, 6))
    words[:, 4:] *= rng.integers(0, 2, size=(64, 1))  # some sentences are padded
    tags = words % 4
    tags[:, 1:][words[:, :-1] == 1] = 3
    tags[words == 0] = 0
    model = build_tagger("crf", vocab_size=12, num_tags=4, embedding_dim=8, units=12)
    assert isinstance(model, CRFTagger)
    model.compile(keras.optimizers.Adam(0.05), metrics=["accuracy"])
    history = model.fit(words, tags, batch_size=16, epochs=12, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 4
    predicted = model.predict(words, verbose=0)
    real = words != 0
    assert (predicted[real] == tags[real]).mean() > 0.95


@pytest.mark.parametrize("output", ["softmax", "crf"])
def test_keras_round_trip_is_exact(output, tmp_path):
    model = small_tagger(output)
    words = np.array([[3, 7, 5, 0], [2, 2, 4, 1]])
    chars = np.random.default_rng(1).integers(1, 12, size=(2, 4, 3))
    chars[words == 0] = 0
    tags = np.array([[1, 2, 3, 0], [0, 1, 2, 3]])
    if output == "softmax":
        model.compile("adam", "sparse_categorical_crossentropy")
    else:
        model.compile("adam")
    model.fit((words, chars), tags, epochs=1, verbose=0)
    model.save(tmp_path / "tagger.keras")
    restored = keras.models.load_model(tmp_path / "tagger.keras")
    assert type(restored) is type(model)
    inner = restored.emission_model if output == "crf" else restored
    assert isinstance(inner, SequenceTagger)
    np.testing.assert_array_equal(np.asarray(restored((words, chars))), np.asarray(model((words, chars))))
    if output == "crf":
        for name in ("transitions", "start_transitions", "end_transitions"):
            np.testing.assert_array_equal(
                getattr(restored.crf, name).numpy(), getattr(model.crf, name).numpy()
            )


def test_bad_arguments_and_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="output must be"):
        build_tagger("hmm", vocab_size=5, num_tags=2)
    with pytest.raises(ValueError, match="output must be"):
        SequenceTagger(vocab_size=5, num_tags=2, output="crf")
    with_chars = small_tagger()
    with pytest.raises(ValueError, match=r"\(word_ids, char_ids\)"):
        with_chars(np.array([[1, 2]]))
    without_chars = small_tagger(char_vocab_size=None)
    with pytest.raises(ValueError, match="no character features"):
        without_chars((np.array([[1, 2]]), np.array([[[1], [2]]])))
