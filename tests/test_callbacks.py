"""zoo.callbacks: throughput, epoch hooks, the time budget, state resets, validation entity F1."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.callbacks import (
    EpochEndHook,
    ResetStateEachEpoch,
    Throughput,
    TimeBudget,
    ValidationEntityF1,
    count_units,
)
from zoo.text import Vocab


def test_count_units():
    ids = np.array([[3, 4, 0, 0], [5, 0, 0, 0], [1, 2, 3, 4], [7, 7, 7, 0], [9, 0, 0, 0]])
    labels = np.arange(5)
    dataset = tf.data.Dataset.from_tensor_slices((ids, labels)).batch(2)
    assert count_units(dataset) == 5
    assert count_units(dataset, lambda x, y: tf.math.count_nonzero(x)) == 11


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.logs = []

    def on_epoch_end(self, epoch, logs=None):
        self.logs.append(dict(logs))


def test_throughput_and_hook_run_inside_fit(capsys):
    x = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    recorder = Recorder()
    hook = EpochEndHook(lambda model, epoch, logs: f"HOOK {epoch}" if epoch > 1 else None, every=2)
    model.fit(x, x[:, :1], epochs=3, verbose=0, callbacks=[Throughput(16 * 3, "numbers"), hook, recorder])
    out = capsys.readouterr().out
    # every=2: after epoch 2 and after the last one (3); epoch 1 is skipped anyway.
    assert "HOOK 2" in out and "HOOK 3" in out and "HOOK 1" not in out
    assert out.count("numbers/s") == 3
    assert all(entry["numbers_per_sec"] > 0 for entry in recorder.logs)
    with pytest.raises(ValueError, match="units_per_epoch must be positive, got 0"):
        Throughput(0)
    with pytest.raises(ValueError, match="every must be positive, got 0"):
        EpochEndHook(print, every=0)


class FakeClock:
    """A clock for TimeBudget that only moves when the test sleeps, so the tests do not depend on
    how busy the machine is."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def started_budget(milliseconds):
    """A TimeBudget of `milliseconds` on a model whose training has just begun, and its clock."""
    model = keras.Sequential([keras.layers.Dense(1)])
    clock = FakeClock()
    budget = TimeBudget(minutes=milliseconds / 60_000, clock=clock)
    budget.set_model(model)
    model.stop_training = False
    budget.on_train_begin()
    return model, budget, clock


def test_time_budget_stops_when_another_epoch_would_overrun():
    model, budget, clock = started_budget(50)
    budget.on_epoch_begin(0)
    budget.on_epoch_end(0)
    assert not model.stop_training  # a fast epoch leaves room for another
    budget.on_epoch_begin(1)
    clock.sleep(0.03)
    budget.on_epoch_end(1)
    assert model.stop_training  # 30 ms spent, and another 30 ms epoch would pass 50 ms


def test_time_budget_does_not_count_the_first_epoch_tracing_against_later_ones():
    model, budget, clock = started_budget(200)
    budget.on_epoch_begin(0)
    clock.sleep(0.09)  # a first epoch that traces
    budget.on_epoch_end(0)
    epochs = 1
    while not model.stop_training and epochs < 100:
        budget.on_epoch_begin(epochs)
        clock.sleep(0.005)
        budget.on_epoch_end(epochs)
        epochs += 1
    # Estimated by the 90 ms first epoch it would stop after 2 epochs; by the 5 ms ones, about 21
    # more fit in the 110 ms left (the exact count is up to rounding of the sums), and none overruns.
    assert 21 <= epochs <= 23 and clock() <= 0.2 + 1e-9


class CountingResets:
    def __init__(self):
        self.resets = 0

    def reset_state(self):
        self.resets += 1


def test_reset_state_each_epoch_and_each_validation():
    model = CountingResets()
    callback = ResetStateEachEpoch()
    callback.set_model(model)
    callback.on_epoch_begin(0)
    callback.on_test_begin()
    callback.on_epoch_begin(1)
    assert model.resets == 3


class FixedTagger:
    """Stands in for a trained softmax tagger: returns the same one-hot tag probabilities for any inputs."""

    def __init__(self, tag_ids, num_tags):
        self.probabilities = tf.one_hot(tag_ids, num_tags)

    def __call__(self, inputs, training=False):
        return self.probabilities


def test_validation_entity_f1_scores_exact_spans_into_the_logs():
    tag_vocab = Vocab([["O", "B-person", "I-person", "B-location"]], reserved_tokens=(), unk_token=None)
    sentences = [["Ann", "Lee", "in", "Rome"], ["Bob", "left"]]
    gold = [["B-person", "I-person", "O", "B-location"], ["B-person", "O"]]
    # Found: "Ann Lee" (right), "Rome" as a person (wrong type), "Bob" missed, "left" spurious.
    guessed = [["B-person", "I-person", "O", "B-person"], ["O", "B-location"]]
    ids = [tag_vocab.to_ids(row + ["O"] * (4 - len(row))) for row in guessed]  # padded like a batch
    callback = ValidationEntityF1([((None,), None)], sentences, gold, tag_vocab)
    callback.set_model(FixedTagger(ids, len(tag_vocab)))
    logs = {}
    callback.on_epoch_end(0, logs)
    precision, recall = 1 / 3, 1 / 3
    assert logs["val_entity_f1"] == pytest.approx(2 * precision * recall / (precision + recall))
