"""Keras callbacks for training recurrent models.

- `Throughput`: units (tokens, examples) trained per second, in each epoch's logs.
- `EpochEndHook`: a function of the model after every few epochs, its text printed (e.g. a sample).
- `TimeBudget`: stops training before an epoch would overrun a time budget.
- `ResetStateEachEpoch`: a fresh state for a stateful model at each epoch and each validation.
- `ValidationEntityF1`: a tagger's validation entity F1 in each epoch's logs, for early stopping.

`count_units` counts the units of one pass over a dataset, for `Throughput`.

Example:

>>> tokens = zoo.callbacks.count_units(train, lambda x, y: tf.size(x))
>>> model.fit(train, epochs=10, callbacks=[zoo.callbacks.Throughput(tokens, "tokens"),
...                                        zoo.callbacks.ResetStateEachEpoch()])
"""

import time

import keras
import tensorflow as tf

from zoo.metrics import entity_f1
from zoo.models.text_tagger import predict_tags


class Throughput(keras.callbacks.Callback):
    """Measures training throughput each epoch: `units_per_epoch` divided by the time from the
    start of the epoch to the start of its validation (or its end, without validation).

    The figure goes into the epoch's logs as `<unit>_per_sec` (so the progress bar, TensorBoard and
    the history get it) and is printed on its own line.

    Args:
        units_per_epoch: how many units (tokens, examples) one epoch trains on; see `count_units`.
        unit: their name, e.g. `"tokens"` or `"examples"`.
    """

    def __init__(self, units_per_epoch, unit="tokens"):
        super().__init__()
        if units_per_epoch <= 0:
            raise ValueError(f"units_per_epoch must be positive, got {units_per_epoch}")
        self.units_per_epoch = units_per_epoch
        self.unit = unit
        self._started = None
        self._trained = None

    @property
    def key(self):
        """The name of the figure in the logs: `<unit>_per_sec`."""
        return f"{self.unit}_per_sec"

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()
        self._trained = None

    def on_test_begin(self, logs=None):
        # Validation inside fit() starts when the epoch's training is over.
        if self._started is not None and self._trained is None:
            self._trained = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = (self._trained or time.perf_counter()) - self._started
        rate = self.units_per_epoch / seconds
        if logs is not None:
            logs[self.key] = rate
        print(f"epoch {epoch + 1}: {rate:,.0f} {self.unit}/s ({seconds:.1f} s)", flush=True)


def count_units(dataset, units_fn=None):
    """Counts the units one pass over `dataset` holds.

    Args:
        dataset: a `tf.data.Dataset` of tuples (or of single elements).
        units_fn: `(*element) -> count`, in the graph; None: the number of examples (the leading
            size of the first input).

    Returns:
        The sum of `units_fn(*element)` over the elements, a Python int.

    Example: non-padding tokens of `(ids, labels)` batches:
    >>> count_units(dataset, lambda x, y: tf.math.count_nonzero(x))
    """
    if units_fn is None:

        def units_fn(inputs, *_):
            return tf.shape(tf.nest.flatten(inputs)[0], out_type=tf.int64)[0]

    def add(total, element):
        element = element if isinstance(element, tuple) else (element,)
        return total + tf.cast(units_fn(*element), tf.int64)

    return int(dataset.reduce(tf.constant(0, tf.int64), add))


class EpochEndHook(keras.callbacks.Callback):
    """Calls `fn(model, epoch, logs)` after every `every`-th epoch (epochs count from 1) and
    prints what it returns, unless None: e.g. a language model's sample continuation.

    Args:
        fn: `fn(model, epoch, logs) -> str | None`.
        every: run after epochs every, 2*every, ... and always after the last one.
    """

    def __init__(self, fn, every=1):
        super().__init__()
        if every <= 0:
            raise ValueError(f"every must be positive, got {every}")
        self.fn = fn
        self.every = every

    def on_epoch_end(self, epoch, logs=None):
        number = epoch + 1
        if number % self.every and number != self.params.get("epochs"):
            return
        text = self.fn(self.model, number, logs)
        if text is not None:
            print(text, flush=True)


class TimeBudget(keras.callbacks.Callback):
    """Stops training after the epoch at which another epoch as long as the slowest so far would
    overrun `minutes` since training started. The first epoch also traces the model's functions,
    so once a later epoch is timed, the slowest of the later ones is the estimate.

    Args:
        minutes: the budget; 0 means no limit.
        clock: a function that returns seconds (`time.perf_counter`; tests pass a fake one).
    """

    def __init__(self, minutes, clock=time.perf_counter):
        super().__init__()
        self.seconds = minutes * 60
        self.clock = clock
        self.started = self.epoch_started = None
        self.durations = []

    def on_train_begin(self, logs=None):
        self.started = self.clock()
        self.durations = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        self.durations.append(now - self.epoch_started)
        next_epoch = max(self.durations[1:] or self.durations)
        if self.seconds and now - self.started + next_epoch > self.seconds:
            print(f"stopping after epoch {epoch + 1}: another would overrun the time budget", flush=True)
            self.model.stop_training = True


class ResetStateEachEpoch(keras.callbacks.Callback):
    """A fresh recurrent state at the start of every epoch and of every validation, for a stateful
    model trained on batches whose rows continue each other (`zoo.text.sequential_partition_batches`)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.reset_state()

    def on_test_begin(self, logs=None):
        self.model.reset_state()


class ValidationEntityF1(keras.callbacks.Callback):
    """Adds the validation split's entity F1 (exact spans, as conlleval) to each epoch's logs as
    `val_entity_f1`, for early stopping and the history.

    Token accuracy is a poor guide for named entities: most tokens are `O`, so a tagger that finds
    fewer entities can score a better accuracy. Place it before the callbacks that read the value.

    Args:
        dataset: the validation batches, in the order of `sentences`, unshuffled.
        sentences, tags: the validation sentences (lists of tokens) and their BIO tags.
        tag_vocab: tag → id.

    Example:
    >>> callbacks = [ValidationEntityF1(val_batches, val_sentences, val_tags, tag_vocab),
    ...              keras.callbacks.EarlyStopping("val_entity_f1", mode="max", patience=5)]
    """

    def __init__(self, dataset, sentences, tags, tag_vocab):
        super().__init__()
        self.dataset = dataset
        self.sentences = sentences
        self.tags = tags
        self.tag_vocab = tag_vocab

    def on_epoch_end(self, epoch, logs=None):
        predicted = predict_tags(self.model, self.dataset, self.sentences, self.tag_vocab)
        f1 = entity_f1(self.tags, predicted)["f1"]
        if logs is not None:
            logs["val_entity_f1"] = f1
        print(f"epoch {epoch + 1}: validation entity F1 {f1:.4f}", flush=True)
