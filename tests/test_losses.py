"""Tests of zoo.losses: the label-smoothed sparse cross-entropy against Keras's one-hot version."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.losses import SparseCategoricalCrossentropy

CLASSES = 7


def random_batch(seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, size=(4, 5))
    logits = rng.normal(size=(4, 5, CLASSES)).astype(np.float32) * 3
    weights = (rng.random((4, 5)) < 0.7).astype(np.float32)
    return labels, logits, weights


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("from_logits", [True, False])
def test_matches_keras_categorical_crossentropy_on_one_hot_labels(label_smoothing, from_logits):
    labels, logits, weights = random_batch()
    predictions = logits if from_logits else keras.ops.softmax(logits).numpy()
    ours = SparseCategoricalCrossentropy(
        label_smoothing, from_logits=from_logits, reduction="mean_with_sample_weight"
    )
    reference = keras.losses.CategoricalCrossentropy(
        from_logits=from_logits, label_smoothing=label_smoothing, reduction="mean_with_sample_weight"
    )
    one_hot = np.eye(CLASSES, dtype=np.float32)[labels]
    expected = float(reference(one_hot, predictions, sample_weight=weights))
    assert float(ours(labels, predictions, sample_weight=weights)) == pytest.approx(expected, rel=1e-5)


def test_gradient_matches_keras_categorical_crossentropy():
    labels, logits, weights = random_batch(2)
    one_hot = np.eye(CLASSES, dtype=np.float32)[labels]
    ours = SparseCategoricalCrossentropy(0.1, reduction="mean_with_sample_weight")
    reference = keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=0.1, reduction="mean_with_sample_weight"
    )
    logits = tf.Variable(logits)
    gradients = []
    for loss in (
        lambda: ours(labels, logits, sample_weight=weights),
        lambda: reference(one_hot, logits, sample_weight=weights),
    ):
        with tf.GradientTape() as tape:
            value = loss()
        gradients.append(tape.gradient(value, logits).numpy())
    np.testing.assert_allclose(gradients[0], gradients[1], atol=1e-6)


def test_label_out_of_range_is_an_error():
    labels, logits, _ = random_batch(3)
    labels[0, 0] = CLASSES
    with pytest.raises(tf.errors.InvalidArgumentError, match="label"):
        SparseCategoricalCrossentropy(0.1)(labels, logits)


def test_without_smoothing_it_is_keras_sparse_crossentropy():
    labels, logits, _ = random_batch(1)
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(SparseCategoricalCrossentropy()(labels, logits)) == pytest.approx(float(expected), rel=1e-5)


def test_config_round_trip_and_bad_smoothing():
    loss = SparseCategoricalCrossentropy(0.2, reduction="mean_with_sample_weight", name="smoothed")
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, SparseCategoricalCrossentropy)
    assert (restored.label_smoothing, restored.from_logits, restored.reduction, restored.name) == (
        0.2,
        True,
        "mean_with_sample_weight",
        "smoothed",
    )
    with pytest.raises(ValueError, match="label_smoothing"):
        SparseCategoricalCrossentropy(1.5)
