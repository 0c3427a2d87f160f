"""SequenceClassifier and masked pooling: NumPy references, padding invariance, .keras round trip."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.models import LanguageModel
from zoo.models.classifier import POOLING_MODES, SequenceClassifier, masked_pooling


def numpy_pooling(sequences, lengths, mode):
    rows = []
    for row, length in zip(sequences, lengths):
        real = row[:length]
        if length == 0:
            width = row.shape[-1] * {"first_last": 2, "mean_max": 2, "last_max_mean": 3}.get(mode, 1)
            rows.append(np.zeros(width, row.dtype))
        elif mode == "first_last":
            rows.append(np.concatenate([real[0], real[-1]]))
        elif mode == "last_max_mean":
            rows.append(np.concatenate([real[-1], real.max(axis=0), real.mean(axis=0)]))
        elif mode == "mean":
            rows.append(real.mean(axis=0))
        elif mode == "max":
            rows.append(real.max(axis=0))
        else:
            rows.append(np.concatenate([real.mean(axis=0), real.max(axis=0)]))
    return np.stack(rows)


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_masked_pooling_matches_numpy(mode):
    rng = np.random.default_rng(0)
    sequences = rng.normal(size=(4, 6, 3)).astype("float32") - 2.0  # negatives: max must ignore padding
    lengths = np.array([6, 3, 1, 0])
    mask = np.arange(6)[None] < lengths[:, None]
    got = masked_pooling(tf.constant(sequences), tf.constant(mask), mode).numpy()
    np.testing.assert_allclose(got, numpy_pooling(sequences, lengths, mode), rtol=1e-6, atol=1e-6)


def test_masked_pooling_rejects_unknown_mode_and_rank():
    with pytest.raises(ValueError, match="pooling must be one of"):
        masked_pooling(tf.zeros((1, 2, 3)), None, "median")
    with pytest.raises(ValueError, match=r"\[batch, time, features\]"):
        masked_pooling(tf.zeros((2, 3)), None, "mean")


def small_classifier(**kwargs):
    config = dict(vocab_size=30, num_classes=3, embedding_dim=6, units=5, num_layers=2, dropout=0.3)
    config.update(kwargs)
    return SequenceClassifier(**config)


@pytest.mark.parametrize("pooling,cell_type", [("first_last", "lstm"), ("mean_max", "gru")])
def test_padding_does_not_change_predictions(pooling, cell_type):
    model = small_classifier(pooling=pooling, cell_type=cell_type, pool_embeddings=True)
    short = np.array([[4, 9, 2]])
    padded = np.array([[4, 9, 2, 0, 0, 0], [5, 6, 7, 8, 9, 10]])
    np.testing.assert_allclose(model(short).numpy()[0], model(padded).numpy()[0], rtol=1e-5, atol=1e-6)


def test_first_last_pooling_reads_the_last_real_step():
    model = small_classifier(pooling="first_last", num_layers=1)
    ids = np.array([[4, 9, 2, 0, 0]])
    mask = ids != 0
    embedded = model.embedding(ids)
    outputs = model.encoder(embedded, mask=tf.constant(mask)).numpy()
    expected = np.concatenate([outputs[0, 0], outputs[0, 2]])
    np.testing.assert_allclose(model.encode(ids).numpy()[0], expected, rtol=1e-6)


def test_normalized_encoding_is_the_pooled_vector_batch_normalized():
    model = small_classifier(pooling="mean_max", pool_embeddings=True, normalize_encoding=True, dropout=0.0)
    model.build((None, None))
    ids = np.array([[3, 4, 5, 0], [6, 7, 8, 9], [2, 2, 0, 0]])
    mask = tf.constant(ids != 0)
    embedded = model.embedding(ids)
    outputs = model.encoder(embedded, mask=mask)
    pooled = tf.concat(
        [masked_pooling(outputs, mask, "mean_max"), masked_pooling(embedded, mask, "mean")], axis=-1
    ).numpy()
    norm = model.encoding_norm
    gamma, beta = np.linspace(0.5, 1.5, pooled.shape[1]), np.linspace(-1.0, 1.0, pooled.shape[1])
    norm.gamma.assign(gamma.astype("float32"))
    norm.beta.assign(beta.astype("float32"))
    # Training: the batch's own mean and (biased) variance.
    batch = (pooled - pooled.mean(0)) / np.sqrt(pooled.var(0) + norm.epsilon) * gamma + beta
    np.testing.assert_allclose(model.encode(ids, training=True).numpy(), batch, rtol=1e-4, atol=1e-4)
    # Inference: the moving averages, which that training step moved by 1 - momentum = 0.1.
    mean, variance = 0.1 * pooled.mean(0), 0.9 + 0.1 * pooled.var(0)
    np.testing.assert_allclose(norm.moving_mean.numpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(norm.moving_variance.numpy(), variance, rtol=1e-5, atol=1e-6)
    expected = (pooled - mean) / np.sqrt(variance + norm.epsilon) * gamma + beta
    np.testing.assert_allclose(model.encode(ids).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_keras_round_trip_is_exact(tmp_path):
    model = small_classifier(pooling="mean", pool_embeddings=True, word_dropout=0.25, normalize_encoding=True)
    ids = np.array([[3, 4, 5, 0], [6, 7, 8, 9]])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(ids, np.array([0, 2]), epochs=1, verbose=0)
    model.save(tmp_path / "classifier.keras")
    restored = keras.models.load_model(tmp_path / "classifier.keras")
    assert isinstance(restored, SequenceClassifier)
    assert restored.get_config() == model.get_config()
    np.testing.assert_array_equal(restored(ids).numpy(), model(ids).numpy())


def test_bad_arguments_and_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="num_classes"):
        SequenceClassifier(vocab_size=10, num_classes=1)
    with pytest.raises(ValueError, match="pooling"):
        SequenceClassifier(vocab_size=10, num_classes=2, pooling="median")
    with pytest.raises(ValueError, match="word_dropout"):
        SequenceClassifier(vocab_size=10, num_classes=2, word_dropout=1.0)
    model = small_classifier()
    with pytest.raises(ValueError, match=r"\[batch, time\]"):
        model(np.array([1, 2, 3]))


def test_word_dropout_zeroes_whole_tokens_in_training_only():
    model = small_classifier(word_dropout=0.5)
    ids = np.arange(200).reshape(2, 100) % 29 + 1
    embedded = model.embedding(ids)
    dropped = model.word_dropout_layer(embedded, training=True).numpy()
    zeroed = (dropped == 0).all(axis=-1)
    kept = ~zeroed
    # Every token is either gone entirely or kept entirely, scaled by 1 / (1 - rate).
    np.testing.assert_allclose(dropped[kept], embedded.numpy()[kept] * 2.0, rtol=1e-6)
    assert 0.3 < zeroed.mean() < 0.7
    np.testing.assert_array_equal(
        model.word_dropout_layer(embedded, training=False).numpy(), embedded.numpy()
    )
    np.testing.assert_array_equal(model(ids).numpy(), model(ids).numpy())


def trained_language_model(**kwargs):
    config = dict(vocab_size=30, embedding_dim=6, units=5, num_layers=2, cell_type="lstm")
    config.update(kwargs)
    model = LanguageModel(**config)
    model.build((None, None))
    # Weights unlike any fresh initialisation, so a copy that did not happen shows.
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") for w in model.get_weights()])
    return model


@pytest.mark.parametrize("cell_type", ["lstm", "gru"])
def test_classifier_from_a_language_model_encodes_as_the_language_model_runs(cell_type):
    lm = trained_language_model(cell_type=cell_type)
    classifier = SequenceClassifier.from_language_model(lm, num_classes=3, dropout=0.2)
    assert classifier.pooling == "last_max_mean" and classifier.cell_type == cell_type
    assert classifier.normalize_encoding  # ULMFiT's head
    restored = SequenceClassifier.from_config(classifier.get_config())
    assert restored.get_config() == classifier.get_config()
    classifier = SequenceClassifier.from_language_model(lm, 3, normalize_encoding=False)
    ids = np.array([[4, 9, 2, 7], [5, 6, 0, 0]])
    lm_outputs = lm.rnn(lm.embedding(ids))[0].numpy()
    encoded = classifier.encode(ids).numpy()
    # The pooled vector starts with the output at each text's last real token.
    np.testing.assert_allclose(encoded[0, :5], lm_outputs[0, 3], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(encoded[1, :5], lm_outputs[1, 1], rtol=1e-5, atol=1e-6)
    assert classifier.predict(ids, verbose=0).shape == (2, 3)


def test_classifier_from_a_stateful_language_model_copies_only_the_trained_weights():
    lm = trained_language_model(stateful=True)
    classifier = SequenceClassifier.from_language_model(lm, num_classes=2)
    for weight, copy in zip(lm.rnn.trainable_weights, classifier.encoder.trainable_weights, strict=True):
        np.testing.assert_array_equal(weight.numpy(), copy.numpy())


def test_classifier_from_a_language_model_refuses_what_it_cannot_start_from():
    with pytest.raises(TypeError, match="plain recurrent stack"):
        SequenceClassifier.from_language_model(small_classifier(), num_classes=2)
    with pytest.raises(ValueError, match="not built"):
        SequenceClassifier.from_language_model(LanguageModel(vocab_size=30, embedding_dim=4), 2)
    with pytest.raises(ValueError, match="one-hot"):
        SequenceClassifier.from_language_model(trained_language_model(embedding_dim=None), 2)
    with pytest.raises(ValueError, match=r"\['units'\] come from the language model"):
        SequenceClassifier.from_language_model(trained_language_model(), 2, units=8)
    gru = trained_language_model(cell_type="gru", recurrent_layer_kwargs={"reset_after": False})
    with pytest.raises(ValueError, match="default recurrent layer arguments"):
        SequenceClassifier.from_language_model(gru, 2)
