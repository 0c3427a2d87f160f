"""ULMFiT's fine-tuning tools: the slanted triangular schedule against the paper's formula,
discriminative Adam against Keras's Adam at the scaled rate, gradual unfreezing epoch by epoch."""

import math

import keras
import numpy as np
import pytest

import zoo
from zoo.fine_tuning import (
    DiscriminativeAdam,
    GradualUnfreezing,
    SlantedTriangular,
    discriminative_factors,
    layer_groups,
)


def paper_slanted_triangular(step, total, cut_fraction=0.1, ratio=32, peak=0.01):
    """ULMFiT's eq. 3, with the falling part ending at step `total`."""
    cut = math.floor(total * cut_fraction)
    p = step / cut if step < cut else 1 - (step - cut) / (cut * (1 / cut_fraction - 1))
    return peak * (1 + max(p, 0.0) * (ratio - 1)) / ratio


@pytest.mark.parametrize("step", [0, 1, 50, 99, 100, 101, 500, 999, 1000, 1500])
def test_slanted_triangular_follows_the_papers_formula(step):
    schedule = SlantedTriangular(0.01, total_steps=1000)
    expected = paper_slanted_triangular(min(step, 1000), 1000)
    np.testing.assert_allclose(float(schedule(step)), expected, rtol=1e-5)


def test_slanted_triangular_round_trips_and_rejects_bad_arguments():
    schedule = SlantedTriangular(0.02, total_steps=10, cut_fraction=0.2, ratio=8)
    restored = SlantedTriangular.from_config(schedule.get_config())
    assert [float(restored(s)) for s in range(12)] == [float(schedule(s)) for s in range(12)]
    for kwargs, message in [
        ({"max_learning_rate": 0.0}, "max_learning_rate"),
        ({"total_steps": 1}, "total_steps"),
        ({"total_steps": 2.5}, "total_steps"),
        ({"cut_fraction": 1.0}, "cut_fraction"),
        ({"ratio": 0.5}, "ratio"),
    ]:
        with pytest.raises(ValueError, match=message):
            SlantedTriangular(**{"max_learning_rate": 0.01, "total_steps": 100, **kwargs})


def small_classifier():
    model = zoo.models.SequenceClassifier(
        vocab_size=20, num_classes=2, embedding_dim=4, units=3, num_layers=2, bidirectional=False
    )
    model.build((None, None))
    return model


def test_layer_groups_and_factors_run_from_the_output_down_to_the_embedding():
    model = small_classifier()
    groups = layer_groups(model)
    assert [group[0].name for group in groups] == ["classes", "lstm_1", "lstm_0", "embedding"]
    factors = discriminative_factors(groups, decay=2.0)
    assert factors[model.classes.kernel.path] == 1.0
    assert factors[model.embedding.embeddings.path] == 2.0**-3
    assert set(factors) == {variable.path for variable in model.weights}
    normalized = zoo.models.SequenceClassifier(
        vocab_size=20, num_classes=2, embedding_dim=4, units=3, num_layers=1, normalize_encoding=True
    )
    normalized.build((None, None))
    assert [[layer.name for layer in group] for group in layer_groups(normalized)] == [
        ["classes", "encoding_norm"],
        ["bidirectional_0"],
        ["embedding"],
    ]
    with pytest.raises(TypeError, match="SequenceClassifier"):
        layer_groups(keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(ValueError, match="decay"):
        discriminative_factors(groups, decay=0.5)


def test_discriminative_adam_steps_each_variable_as_adam_at_its_scaled_rate():
    rng = np.random.default_rng(0)
    initial = [rng.normal(size=(3, 2)).astype("float32"), rng.normal(size=(2,)).astype("float32")]
    gradients = [[rng.normal(size=v.shape).astype("float32") for v in initial] for _ in range(3)]
    fast, slow = keras.Variable(initial[0], name="fast"), keras.Variable(initial[1], name="slow")
    optimizer = DiscriminativeAdam(0.1, learning_rate_factors={slow.path: 0.25}, beta_1=0.7, beta_2=0.99)
    reference = [keras.Variable(value) for value in initial]
    references = [keras.optimizers.Adam(rate, beta_1=0.7, beta_2=0.99) for rate in (0.1, 0.025)]
    for step_gradients in gradients:
        optimizer.apply(step_gradients, [fast, slow])
        for reference_optimizer, variable, gradient in zip(references, reference, step_gradients):
            reference_optimizer.apply([gradient], [variable])
    np.testing.assert_allclose(fast.numpy(), reference[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(slow.numpy(), reference[1].numpy(), rtol=1e-6)
    restored = DiscriminativeAdam.from_config(optimizer.get_config())
    assert restored.learning_rate_factors == {slow.path: 0.25}
    with pytest.raises(ValueError, match="must be >= 0"):
        DiscriminativeAdam(learning_rate_factors={"x": -1.0})


class WeightSnapshots(keras.callbacks.Callback):
    """Which groups' weights each epoch changed."""

    def __init__(self, groups):
        super().__init__()
        self.groups, self.changed = groups, []

    def snapshot(self):
        return [[w.numpy().copy() for layer in group for w in layer.weights] for group in self.groups]

    def on_epoch_begin(self, epoch, logs=None):
        self.before = self.snapshot()

    def on_epoch_end(self, epoch, logs=None):
        after = self.snapshot()
        self.changed.append(
            [any(not np.array_equal(a, b) for a, b in zip(old, new)) for old, new in zip(self.before, after)]
        )


def test_gradual_unfreezing_trains_one_more_group_each_epoch_and_ends_unfrozen():
    model = small_classifier()
    groups = layer_groups(model)
    model.compile(
        DiscriminativeAdam(0.01, learning_rate_factors=discriminative_factors(groups)),
        "sparse_categorical_crossentropy",
    )
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 20, size=(16, 5))
    labels = rng.integers(0, 2, size=16)
    snapshots = WeightSnapshots(groups)
    model.fit(ids, labels, batch_size=8, epochs=5, verbose=0, callbacks=[GradualUnfreezing(), snapshots])
    assert snapshots.changed == [
        [True, False, False, False],
        [True, True, False, False],
        [True, True, True, False],
        [True, True, True, True],
        [True, True, True, True],
    ]
    assert all(layer.trainable for group in groups for layer in group)


def test_gradual_unfreezing_refuses_groups_the_optimizer_cannot_train():
    model = small_classifier()
    groups = layer_groups(model)
    model.embedding.trainable = False
    model.compile("adam", "sparse_categorical_crossentropy")
    ids, labels = np.ones((2, 3)), np.zeros(2)
    with pytest.raises(ValueError, match="frozen at the start of fit"):
        model.fit(ids, labels, epochs=1, verbose=0, callbacks=[GradualUnfreezing(groups)])
    model.fit(ids, labels, epochs=1, verbose=0)  # builds the optimizer without the embedding
    model.embedding.trainable = True
    with pytest.raises(ValueError, match="built without .*embedding"):
        model.fit(ids, labels, epochs=1, verbose=0, callbacks=[GradualUnfreezing(groups)])
    with pytest.raises(ValueError, match="epochs_per_group"):
        GradualUnfreezing(groups, epochs_per_group=0)
