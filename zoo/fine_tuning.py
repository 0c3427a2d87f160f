"""ULMFiT's fine-tuning tools (Howard & Ruder, "Universal Language Model Fine-tuning for Text
Classification", 2018, section 3.2 and 3.3): a model's layer groups, discriminative learning rates
(each group below the top learns `decay` times slower than the one above it), slanted triangular
learning rates (a short linear warm-up, then a long linear decay) and gradual unfreezing (one more
group, from the top, every epoch).

Example: fine-tune a classifier that starts from a trained language model.

>>> classifier = zoo.models.SequenceClassifier.from_language_model(lm, num_classes=2, dropout=0.3)
>>> groups = zoo.fine_tuning.layer_groups(classifier)
>>> optimizer = zoo.fine_tuning.DiscriminativeAdam(
...     zoo.fine_tuning.SlantedTriangular(0.01, total_steps=epochs * len(batches)),
...     learning_rate_factors=zoo.fine_tuning.discriminative_factors(groups), beta_1=0.7, beta_2=0.99)
>>> classifier.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
>>> classifier.fit(batches, epochs=epochs, callbacks=[zoo.fine_tuning.GradualUnfreezing(groups)])
"""

import math

import keras
from keras import ops

from zoo import compat
from zoo.models.classifier import SequenceClassifier

ULMFIT_DECAY = 2.6  # the paper's factor between the learning rates of neighbouring layers


def layer_groups(model):
    """The layers of `model` in the groups ULMFiT fine-tunes, top (output) first.

    Args:
        model: a `zoo.models.SequenceClassifier`.

    Returns:
        A list of lists of layers: the head (the output layer and the encoding's normalization, if
        any), each recurrent layer from the top down, the embedding.
    """
    if not isinstance(model, SequenceClassifier):
        raise TypeError(f"layer_groups takes a zoo.models.SequenceClassifier, got {type(model).__name__}")
    head = [model.classes] + ([model.encoding_norm] if model.encoding_norm is not None else [])
    return [head, *([layer] for layer in reversed(model.encoder.rnn_layers)), [model.embedding]]


def discriminative_factors(groups, decay=ULMFIT_DECAY):
    """Learning-rate factors by variable path: 1 for the first group's variables, `1 / decay` for the
    second's, `1 / decay**2` for the third's, ... (the paper's eq. 2 with its `decay` = 2.6).

    Args:
        groups: lists of layers, top first (see `layer_groups`).
        decay: how many times slower each group learns than the one before it (>= 1).

    Returns:
        A dict `{variable.path: factor}` for `DiscriminativeAdam`.
    """
    if not decay >= 1.0:
        raise ValueError(f"decay must be >= 1, got {decay!r}")
    factors = {}
    for depth, group in enumerate(groups):
        for layer in group:
            if not layer.built:
                raise ValueError(f"layer '{layer.name}' is not built: build the model first")
            for variable in layer.weights:
                if variable.path in factors:
                    raise ValueError(f"variable {variable.path} is in two groups (or two have its path)")
                factors[variable.path] = decay**-depth
    return factors


@keras.saving.register_keras_serializable(package="zoo")
class SlantedTriangular(keras.optimizers.schedules.LearningRateSchedule):
    """The slanted triangular learning rate (ULMFiT, section 3.2, eq. 3).

    It rises linearly from `max_learning_rate / ratio` to `max_learning_rate` over the first
    `cut = floor(total_steps * cut_fraction)` steps, then falls linearly back to
    `max_learning_rate / ratio` at `total_steps` (and stays there).

    Args:
        max_learning_rate: the peak learning rate.
        total_steps: the number of training steps (epochs times batches per epoch).
        cut_fraction: the share of the steps spent rising.
        ratio: how many times smaller the lowest learning rate is than the peak.

    Call arguments:
        step: the optimizer's step count (0 at the first step).

    Example:
    >>> schedule = SlantedTriangular(0.01, total_steps=1000)
    >>> float(schedule(100))  # the peak, at step floor(1000 * 0.1)
    0.01
    """

    def __init__(self, max_learning_rate, total_steps, cut_fraction=0.1, ratio=32.0):
        if not max_learning_rate > 0:
            raise ValueError(f"max_learning_rate must be > 0, got {max_learning_rate!r}")
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 2:
            raise ValueError(f"total_steps must be an int >= 2, got {total_steps!r}")
        if not 0 < cut_fraction < 1:
            raise ValueError(f"cut_fraction must be in (0, 1), got {cut_fraction!r}")
        if not ratio >= 1:
            raise ValueError(f"ratio must be >= 1, got {ratio!r}")
        self.max_learning_rate = float(max_learning_rate)
        self.total_steps = total_steps
        self.cut_fraction = float(cut_fraction)
        self.ratio = float(ratio)
        self.cut = min(max(math.floor(total_steps * cut_fraction), 1), total_steps - 1)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rising = step / self.cut
        falling = 1.0 - (step - self.cut) / (self.total_steps - self.cut)
        progress = ops.clip(ops.where(step < self.cut, rising, falling), 0.0, 1.0)
        return self.max_learning_rate * (1.0 + progress * (self.ratio - 1.0)) / self.ratio

    def get_config(self):
        return {
            "max_learning_rate": self.max_learning_rate,
            "total_steps": self.total_steps,
            "cut_fraction": self.cut_fraction,
            "ratio": self.ratio,
        }


@keras.saving.register_keras_serializable(package="zoo")
class DiscriminativeAdam(keras.optimizers.Adam):
    """Adam with a learning-rate factor per variable (ULMFiT's discriminative fine-tuning).

    Each variable's step is Adam's with the learning rate times its factor (1 for a variable
    `learning_rate_factors` does not name). Weight decay, if any, is Keras's, at the base rate.

    Args:
        learning_rate: the base learning rate (a float or a schedule such as `SlantedTriangular`).
        learning_rate_factors: `{variable.path: factor}` (see `discriminative_factors`).
        **kwargs: the other arguments of `keras.optimizers.Adam` (ULMFiT: `beta_1=0.7,
            beta_2=0.99`).

    Example:
    >>> optimizer = DiscriminativeAdam(1e-3, learning_rate_factors={"model/embedding/embeddings": 0.1})
    """

    def __init__(self, learning_rate=0.001, learning_rate_factors=None, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.learning_rate_factors = {
            str(path): float(factor) for path, factor in (learning_rate_factors or {}).items()
        }
        for path, factor in self.learning_rate_factors.items():
            if not factor >= 0:
                raise ValueError(f"the learning-rate factor of {path} must be >= 0, got {factor!r}")
        self._factors = []

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._factors = [self.learning_rate_factors.get(variable.path, 1.0) for variable in variables]

    def update_step(self, gradient, variable, learning_rate):
        factor = self._factors[compat.optimizer_variable_index(self, variable)]
        super().update_step(gradient, variable, ops.multiply(learning_rate, factor))

    def get_config(self):
        return {**super().get_config(), "learning_rate_factors": dict(self.learning_rate_factors)}


class GradualUnfreezing(keras.callbacks.Callback):
    """Trains the top group alone for the first epochs, then one more group from the top every
    `epochs_per_group` epochs (ULMFiT, section 3.3), and leaves every group trainable at the end.

    Compile and start `fit` with every group trainable: the optimizer must know all their variables.
    The training function is rebuilt when the trainable set changes. A run resumed at a later
    `initial_epoch` freezes what that epoch would have.

    Args:
        groups: lists of layers, top first; None: `layer_groups` of the model being trained (so one
            callback serves several models trained one after another).
        epochs_per_group: epochs between two unfreezings.
    """

    def __init__(self, groups=None, epochs_per_group=1):
        super().__init__()
        if groups is not None and not groups:
            raise ValueError("GradualUnfreezing needs at least one group of layers")
        if (
            isinstance(epochs_per_group, bool)
            or not isinstance(epochs_per_group, int)
            or epochs_per_group < 1
        ):
            raise ValueError(f"epochs_per_group must be a positive int, got {epochs_per_group!r}")
        self.given_groups = None if groups is None else [list(group) for group in groups]
        self.groups = self.given_groups
        self.epochs_per_group = epochs_per_group
        self.unfrozen = None

    def on_train_begin(self, logs=None):
        self.groups = self.given_groups or layer_groups(self.model)
        layers = [layer for group in self.groups for layer in group]
        for layer in layers:
            if not layer.trainable:
                raise ValueError(
                    f"layer '{layer.name}' is frozen at the start of fit: GradualUnfreezing freezes "
                    "and unfreezes the groups itself, and the optimizer must know all their variables"
                )
        optimizer = self.model.optimizer
        if not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        for layer in layers:
            for variable in layer.trainable_weights:
                try:
                    compat.optimizer_variable_index(optimizer, variable)
                except KeyError:
                    raise ValueError(
                        f"the optimizer was built without {variable.path}: start fit with every group "
                        "trainable"
                    ) from None
        self.unfrozen = None

    def on_epoch_begin(self, epoch, logs=None):
        unfrozen = min(len(self.groups), epoch // self.epochs_per_group + 1)
        if unfrozen == self.unfrozen:
            return
        self._set_trainable(unfrozen)
        self.model.make_train_function(force=True)

    def on_train_end(self, logs=None):
        self._set_trainable(len(self.groups))
        self.model.make_train_function(force=True)

    def _set_trainable(self, unfrozen):
        for index, group in enumerate(self.groups):
            for layer in group:
                layer.trainable = index < unfrozen
        self.unfrozen = unfrozen
