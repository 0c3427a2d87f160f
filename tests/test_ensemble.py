"""AveragedEnsemble: the mean of its members, training passed through, .keras and SavedModel round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.models import AveragedEnsemble, SequenceClassifier, build_tagger

VOCAB = 30


def classifiers(count):
    members = []
    for seed in range(count):
        keras.utils.set_random_seed(seed)
        members.append(SequenceClassifier(VOCAB, 3, embedding_dim=8, units=4, dropout=0.5))
    return members


def token_ids():
    ids = np.random.default_rng(0).integers(1, VOCAB, size=(4, 7)).astype(np.int32)
    ids[1, 4:] = 0
    return ids


def test_output_is_the_mean_of_the_members():
    members = classifiers(3)
    ensemble = AveragedEnsemble(members)
    ids = token_ids()
    expected = np.mean([member(ids).numpy() for member in members], axis=0)
    got = ensemble(ids).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0, rtol=1e-5)
    assert not any(np.allclose(member(ids).numpy(), got) for member in members)  # the members differ


def test_training_flag_reaches_the_members():
    ensemble = AveragedEnsemble(classifiers(2))
    ids = token_ids()
    np.testing.assert_array_equal(
        ensemble(ids, training=False).numpy(), ensemble(ids, training=False).numpy()
    )
    assert not np.allclose(
        ensemble(ids, training=True).numpy(), ensemble(ids, training=False).numpy()
    )  # dropout


def test_tagger_members_with_character_inputs():
    members = []
    for seed in range(2):
        keras.utils.set_random_seed(seed)
        members.append(
            build_tagger(
                "softmax",
                vocab_size=VOCAB,
                num_tags=5,
                embedding_dim=6,
                units=4,
                char_vocab_size=12,
                char_embedding_dim=3,
                char_filters=4,
            )
        )
    words = token_ids()
    chars = np.random.default_rng(1).integers(0, 12, size=(4, 7, 5)).astype(np.int32)
    expected = np.mean([member((words, chars)).numpy() for member in members], axis=0)
    np.testing.assert_allclose(
        AveragedEnsemble(members)((words, chars)).numpy(), expected, rtol=1e-6, atol=1e-7
    )


def test_keras_file_and_saved_model_round_trips(tmp_path):
    ensemble = AveragedEnsemble(classifiers(2), name="averaged")
    ids = token_ids()
    expected = ensemble(ids).numpy()
    ensemble.save(tmp_path / "ensemble.keras")
    loaded = keras.models.load_model(tmp_path / "ensemble.keras")
    assert isinstance(loaded, AveragedEnsemble) and len(loaded.members) == 2
    np.testing.assert_allclose(loaded(ids).numpy(), expected, rtol=1e-6, atol=1e-7)
    ensemble.export(tmp_path / "saved_model", input_signature=[tf.TensorSpec([None, None], tf.int32)])
    reloaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    np.testing.assert_allclose(reloaded.serve(tf.constant(ids)).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_rejects_no_members_and_non_models():
    with pytest.raises(ValueError, match="non-empty list of Keras models"):
        AveragedEnsemble([])
    with pytest.raises(ValueError, match="non-empty list of Keras models"):
        AveragedEnsemble([keras.layers.Dense(2)])
