"""The machinery every recipe shares: command line, devices and strategies, training with
checkpoints and resume, throughput, and the files a run leaves behind.

A recipe is a config (its command line), a data section, a model and a call to `run_training`:

```python
import argparse
from recipes import common

@common.entry_point
def main(argv=None):
    parser = argparse.ArgumentParser(description="...")
    common.add_common_arguments(parser, recipe="sentiment", epochs=5, batch_size=64,
                                learning_rate=1e-3)
    args = common.parse_args(parser, argv)
    strategy = common.setup(args)          # before any other TensorFlow work
    train_ds, val_ds = ...                 # batched tf.data, global batch size args.batch_size
    model, history = common.run_training(
        lambda: build_model(args), train_ds, val_ds, args, strategy=strategy,
        loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    common.export_saved_model(module, common.output_path(args, "saved_model"), signatures)

if __name__ == "__main__":
    main()
```

A run's output folder holds `config.json` (the command line), `checkpoints/` (the last finished
epoch: weights with optimizer state, and the per-epoch history), `logs/` (TensorBoard),
`metrics.json`, `curves.png`, `model.keras` and, written by the recipe, `saved_model/`.
"""

import argparse
import copy
import datetime
import functools
import json
import math
import numbers
import os
import pathlib
import sys
import time

import keras
import tensorflow as tf

from zoo.layers import portable_graph
from zoo.models import AveragedEnsemble

STRATEGIES = ("default", "mirrored", "multi-worker")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
LR_SCHEDULES = ("constant", "cosine")
# Flags that name where a run lives rather than how it trains: a resumed run keeps its own.
_RUN_LOCATION_FLAGS = ("resume", "output_dir")


class RecipeError(Exception):
    """A problem the user can fix (bad flag, missing file, failed download): `entry_point`
    prints its message as one line, without a traceback, and exits with status 2."""


def entry_point(main):
    """Wraps a recipe's `main(argv=None)` so a `RecipeError` ends the program with one line on
    stderr (`error: <message>`) and exit status 2, the status argparse uses for bad flags."""

    @functools.wraps(main)
    def run(argv=None):
        try:
            return main(argv)
        except RecipeError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)

    return run


# --- Command line ---------------------------------------------------------------------------


def add_common_arguments(
    parser,
    *,
    recipe,
    epochs,
    batch_size,
    learning_rate,
    optimizer="adam",
    clip_norm=1.0,
    log_every=50,
    seed=0,
    lr_schedule="constant",
):
    """Adds the flags every recipe shares, with the recipe's own defaults.

    Args:
        parser: an `argparse.ArgumentParser`.
        recipe: the recipe's name; the default output folder is `runs/<recipe>-<timestamp>`.
        epochs, batch_size, learning_rate, optimizer, clip_norm, log_every, seed, lr_schedule:
            defaults of the flags of the same names. `batch_size` is the global batch size (all replicas).

    Returns:
        The parser, for chaining.
    """
    parser.set_defaults(recipe=recipe)
    group = parser.add_argument_group("training (shared by all recipes)")
    group.add_argument(
        "--data", type=pathlib.Path, default=None, help="a local data file or folder, instead of downloading"
    )
    group.add_argument("--epochs", type=positive_int, default=epochs)
    group.add_argument(
        "--batch-size", type=positive_int, default=batch_size, help="global batch size, split across replicas"
    )
    group.add_argument("--learning-rate", type=_positive_float, default=learning_rate)
    group.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default=lr_schedule,
        help="cosine: decay the learning rate per epoch towards 0 over --epochs",
    )
    group.add_argument("--optimizer", choices=OPTIMIZERS, default=optimizer)
    group.add_argument(
        "--clip-norm",
        type=float,
        default=clip_norm,
        help="clip the global norm of all gradients to this (0: no clipping)",
    )
    group.add_argument("--seed", type=int, default=seed)
    group.add_argument(
        "--output-dir",
        type=pathlib.Path,
        default=None,
        help=f"where the run's files go (default: runs/{recipe}-<timestamp>)",
    )
    group.add_argument(
        "--resume",
        type=pathlib.Path,
        default=None,
        metavar="DIR",
        help="continue the run in DIR from its last finished epoch, with its flags "
        "(flags given again here override them)",
    )
    group.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="tf.distribute strategy: mirrored uses all GPUs, or the logical CPUs "
        "of --cpu-devices; multi-worker reads TF_CONFIG",
    )
    group.add_argument(
        "--cpu-devices",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="split the CPU into N logical devices (for --strategy mirrored without GPUs)",
    )
    group.add_argument(
        "--log-every",
        type=_non_negative_int,
        default=log_every,
        metavar="STEPS",
        help="write training scalars to TensorBoard every STEPS batches (0: once per epoch)",
    )
    return parser


def cosine_learning_rate(base, epochs):
    """Per-epoch cosine decay from `base` towards 0 (a function of the epoch, so resume agrees)."""
    return lambda epoch: base * 0.5 * (1 + math.cos(math.pi * epoch / epochs))


def parse_args(parser, argv=None):
    """Parses the command line; with `--resume DIR`, the flags saved in `DIR/config.json` become
    the defaults, so the rerun trains as the first run did unless a flag is given again."""
    args = parser.parse_args(argv)
    if args.resume is None:
        return args
    config_path = args.resume / "config.json"
    if not config_path.is_file():
        raise RecipeError(f"--resume {args.resume}: no run there ({config_path} is missing)")
    saved = json.loads(config_path.read_text())
    # argparse converts string defaults with the flag's type, so saved paths become paths again.
    parser.set_defaults(
        **{key: value for key, value in saved.items() if key in vars(args) and key not in _RUN_LOCATION_FLAGS}
    )
    args = parser.parse_args(argv)
    args.output_dir = args.resume
    return args


def positive_int(text):
    """argparse type of a count that must be at least 1 (recipes use it for their own flags too)."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a count of 0 or more, got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def _to_json(args):
    def plain(value):
        if isinstance(value, pathlib.Path):
            return str(value)
        if isinstance(value, (list, tuple)):  # e.g. a flag that takes several files
            return [plain(item) for item in value]
        return value

    return {key: plain(value) for key, value in vars(args).items()}


# --- Devices, strategy, output folder -------------------------------------------------------


def split_cpu(count):
    """Splits the first physical CPU into `count` logical devices, so that `MirroredStrategy`
    can be exercised on one machine. Must run before TensorFlow initialises its devices."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError as error:
        raise RecipeError(
            f"cannot split the CPU into {count} devices: TensorFlow already initialised its "
            f"devices ({error}); call setup(args) before any other TensorFlow work"
        ) from None


def make_strategy(name):
    """The `tf.distribute` strategy named by `--strategy`.

    `mirrored` replicates over all GPUs; without GPUs, over all logical CPU devices (see
    `split_cpu`). `multi-worker` is `MultiWorkerMirroredStrategy` configured by `TF_CONFIG`;
    Keras 3.15's `fit` fails with it across more than one worker (keras-team/keras#20585,
    `_maybe_symbolic_build` reduces a `PerReplica` batch), so a cluster of several workers is
    refused with that reason rather than left to crash inside Keras.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        return tf.distribute.MirroredStrategy(
            [device.name for device in tf.config.list_logical_devices("CPU")]
        )
    if name == "multi-worker":
        cluster = tf.distribute.cluster_resolver.TFConfigClusterResolver().cluster_spec()
        workers = sum(cluster.num_tasks(job) for job in cluster.jobs if job in ("chief", "worker"))
        if workers > 1:
            raise RecipeError(
                f"--strategy multi-worker: TF_CONFIG names {workers} workers, and Keras "
                f"{keras.__version__}'s fit() fails with MultiWorkerMirroredStrategy across "
                "workers (keras-team/keras#20585); train on one machine with --strategy mirrored"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise RecipeError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")


def setup(args):
    """Prepares a run: splits the CPU (`--cpu-devices`), builds the strategy, seeds every random
    generator (`--seed`), checks `--data`, creates the output folder and saves the flags to
    `config.json`. Call it right after `parse_args`, before any other TensorFlow work.

    Sets `args.output_dir` (a `pathlib.Path`) when it was left to its default.

    Returns:
        The `tf.distribute.Strategy` to pass to `run_training`.
    """
    if args.cpu_devices:
        split_cpu(args.cpu_devices)
    strategy = make_strategy(args.strategy)
    keras.utils.set_random_seed(args.seed)
    if args.data is not None and not args.data.exists():
        raise RecipeError(f"--data {args.data}: no such file or folder")
    if args.output_dir is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        args.output_dir = pathlib.Path("runs") / f"{args.recipe}-{stamp}"
    if args.resume is None and any(
        (args.output_dir / name).exists() for name in ("checkpoints", "members", "pretraining")
    ):
        raise RecipeError(
            f"--output-dir {args.output_dir} already holds a run: pass --resume "
            f"{args.output_dir} to continue it, or choose another folder"
        )
    args.output_dir.mkdir(parents=True, exist_ok=True)
    _write_json(args.output_dir / "config.json", _to_json(args))
    return strategy


def output_path(args, name):
    """`args.output_dir / name`: where the run's file or folder `name` goes."""
    return pathlib.Path(args.output_dir) / name


def make_optimizer(name, learning_rate, clip_norm):
    """The Keras optimizer `name` with `global_clipnorm=clip_norm` (None or 0: no clipping),
    which rescales all gradients together by min(1, clip_norm / global norm)."""
    config = {"learning_rate": learning_rate}
    if clip_norm:
        config["global_clipnorm"] = clip_norm
    return keras.optimizers.deserialize({"class_name": name, "config": config})


# --- Callbacks ------------------------------------------------------------------------------


class Throughput(keras.callbacks.Callback):
    """Measures training throughput each epoch: `units_per_epoch` divided by the time from the
    start of the epoch to the start of its validation (or its end, without validation).

    The figure goes into the epoch's logs as `<unit>_per_sec` (so the progress bar, TensorBoard,
    `metrics.json` and `curves.png` get it) and is printed on its own line.

    Args:
        units_per_epoch: how many units (tokens, examples) one epoch trains on; see
            `count_units`.
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


def accuracy_early_stopping(patience, monitor="val_accuracy"):
    """`[EarlyStopping]` on validation accuracy (logged as `monitor`) restoring the best epoch, or `[]`
    when `patience` is 0."""
    if not patience:
        return []
    return [
        keras.callbacks.EarlyStopping(
            monitor=monitor, mode="max", patience=patience, restore_best_weights=True
        )
    ]


def count_units(dataset, units_fn=None):
    """Counts the units one pass over `dataset` holds: the sum of `units_fn(*element)` over its
    elements, or the number of examples (the leading size of the first input) without one.

    Example: non-padding tokens of `(ids, labels)` batches:
    `count_units(ds, lambda x, y: tf.math.count_nonzero(x))`.
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


class EpochCheckpoint(keras.callbacks.Callback):
    """Checkpoints the training state after every epoch, so a killed run can resume.

    Each epoch writes `epoch-<N>.weights.h5` (model and optimizer variables, including the
    optimizer's step count), then commits it by atomically replacing `state.json`, which names
    that file and holds the per-epoch history. A run killed at any moment therefore finds a
    consistent state: the last committed epoch and exactly the history up to it.

    Args:
        directory: the checkpoint folder.
        history: the per-epoch entries (dicts with `epoch`, counted from 1, and the epoch's
            logs) committed before this fit started; new epochs are appended.
    """

    STATE = "state.json"

    def __init__(self, directory, history=()):
        super().__init__()
        self.directory = pathlib.Path(directory)
        self.history = list(history)

    def on_epoch_end(self, epoch, logs=None):
        self.directory.mkdir(parents=True, exist_ok=True)
        weights = f"epoch-{epoch + 1:04d}.weights.h5"
        self.model.save_weights(self.directory / weights)
        self.history.append({"epoch": epoch + 1, **_numbers(logs or {})})
        _write_json(
            self.directory / self.STATE, {"epoch": epoch + 1, "weights": weights, "history": self.history}
        )
        for stale in self.directory.glob("epoch-*.weights.h5"):
            if stale.name != weights:
                stale.unlink()

    @classmethod
    def load_state(cls, directory):
        """The committed state (`{"epoch", "weights", "history"}`) in `directory`, or None."""
        path = pathlib.Path(directory) / cls.STATE
        if not path.is_file():
            return None
        return json.loads(path.read_text())


# --- Training -------------------------------------------------------------------------------


def run_training(
    model_fn,
    train_ds,
    val_ds,
    args,
    *,
    strategy,
    loss,
    metrics=(),
    callbacks=(),
    units_per_epoch=None,
    unit="tokens",
    compile_kwargs=None,
):
    """Builds, compiles and trains a model, checkpointing every epoch, and writes the run's files.

    Inside `strategy.scope()`: `model_fn()` builds the model (it is called on one batch of
    `train_ds` if it is not built yet), compiled with `args.optimizer` at `args.learning_rate`,
    `global_clipnorm=args.clip_norm`, and `loss` / `metrics`; `--lr-schedule cosine` decays the
    learning rate with `cosine_learning_rate`. With `--resume`, the weights,
    optimizer state and history of the last finished epoch are restored and training goes on to
    `args.epochs` epochs in all. Then `model.keras`, `metrics.json` and `curves.png` are written.

    Args:
        model_fn: `() -> keras.Model`, not compiled.
        train_ds, val_ds: batched `tf.data.Dataset`s of `(inputs, targets)` (or with sample
            weights), one epoch each; `val_ds` may be None.
        args: the namespace from `parse_args`, after `setup`.
        strategy: the strategy `setup` returned.
        loss, metrics: as for `keras.Model.compile`.
        callbacks: extra Keras callbacks (e.g. `EpochEndHook`); they run before the checkpoint,
            so values they add to the epoch's logs are kept in the history.
        units_per_epoch: units (e.g. tokens) in one pass over `train_ds`, for throughput;
            None counts examples with `count_units(train_ds)` and sets `unit="examples"`.
        unit: the name of those units.
        compile_kwargs: more keyword arguments for `compile` (e.g. `jit_compile`).

    Returns:
        `(model, history)`: the trained model, and a dict from each logged name (`loss`,
        `val_loss`, `<unit>_per_sec`, ...) to its values for every epoch of the run, resumed
        epochs included.
    """
    checkpoints = output_path(args, "checkpoints")
    state = EpochCheckpoint.load_state(checkpoints) if args.resume is not None else None
    if units_per_epoch is None:
        units_per_epoch, unit = count_units(train_ds), "examples"

    with strategy.scope():
        model = model_fn()
        if not model.built:
            model(next(iter(train_ds))[0])
        model.compile(
            optimizer=make_optimizer(args.optimizer, args.learning_rate, args.clip_norm),
            loss=loss,
            metrics=list(metrics),
            **(compile_kwargs or {}),
        )
        if state is not None:
            model.optimizer.build(model.trainable_variables)
            model.load_weights(checkpoints / state["weights"])

    history = state["history"] if state is not None else []
    initial_epoch = state["epoch"] if state is not None else 0
    if initial_epoch:
        print(f"resuming {args.resume} after epoch {initial_epoch} of {args.epochs}", flush=True)
    checkpoint = EpochCheckpoint(checkpoints, history)
    if args.lr_schedule == "cosine":
        callbacks = [
            keras.callbacks.LearningRateScheduler(cosine_learning_rate(args.learning_rate, args.epochs)),
            *callbacks,
        ]
    tensorboard = keras.callbacks.TensorBoard(
        log_dir=str(output_path(args, "logs")), update_freq=args.log_every or "epoch", write_graph=False
    )
    model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=args.epochs,
        initial_epoch=initial_epoch,
        shuffle=False,  # datasets shuffle themselves; Keras only warns otherwise
        callbacks=[Throughput(units_per_epoch, unit), *callbacks, tensorboard, checkpoint],
        verbose=1,
    )

    model.save(output_path(args, "model.keras"))
    write_metrics(output_path(args, "metrics.json"), _to_json(args), checkpoint.history)
    plot_curves(output_path(args, "curves.png"), checkpoint.history)
    return model, _by_name(checkpoint.history)


def finished_training(run_dir, epochs):
    """Whether the run in `run_dir` ended (it saved `model.keras`) after training for `epochs` or more
    (an early stop under the same `--epochs` counts as finished)."""
    if not (run_dir / "model.keras").is_file():
        return False
    return json.loads((run_dir / "metrics.json").read_text())["config"]["epochs"] >= epochs


def run_ensemble_training(
    model_fn,
    train_ds,
    val_ds,
    args,
    *,
    members,
    strategy,
    loss,
    metrics=(),
    compile_kwargs=None,
    inference_model=None,
    **training,
):
    """`run_training` for `members` models, one after another, averaged into one
    `zoo.models.AveragedEnsemble` (the models must output probabilities). With `members=1` it is
    `run_training`.

    Member i is a run of its own in `<output-dir>/members/<i>` (checkpoints, history,
    `model.keras`, `curves.png`) with the seed `--seed + i`: the members start from different
    weights and draw different dropout masks. With `--resume`, the members that finished their
    `--epochs` are loaded as they are; the interrupted one, and with a larger `--epochs` the finished
    ones too, continue from their last finished epoch. The run's
    own `model.keras` is the ensemble (saved uncompiled; the one returned is compiled with `loss`
    and `metrics`, for `evaluate`, unless `inference_model` is given); its
    `metrics.json` holds every member's epochs (each entry names its `member`) and `curves.png`
    draws them all.

    Args:
        model_fn, train_ds, val_ds, args, strategy, loss, metrics, compile_kwargs: as for
            `run_training`.
        members: the number of models.
        inference_model: `trained model -> the model to average and return`, e.g. the main tagger of
            a `MultiTaskTagger`; None: the trained models themselves. Each member's own
            `model.keras` (and the run's, with one member) holds the trained model.
        **training: the other keyword arguments of `run_training` (callbacks are reused by each
            member's training, as Keras callbacks reset at its start).

    Returns:
        `(model, histories)`: the ensemble (or the one model), and each member's history as
        `run_training` returns it.
    """
    shared = dict(strategy=strategy, loss=loss, metrics=metrics, compile_kwargs=compile_kwargs, **training)
    finish = inference_model or (lambda model: model)
    if members == 1:
        model, history = run_training(model_fn, train_ds, val_ds, args, **shared)
        return finish(model), [history]
    models, entries = [], []
    for index in range(members):
        member_args = copy.copy(args)
        member_args.output_dir = output_path(args, f"members/{index}")
        member_args.seed = args.seed + index
        member_args.output_dir.mkdir(parents=True, exist_ok=True)
        if finished_training(member_args.output_dir, args.epochs):
            print(f"member {index + 1} of {members}: finished before, loading it", flush=True)
            with strategy.scope():
                models.append(finish(keras.models.load_model(member_args.output_dir / "model.keras")))
        else:
            has_state = EpochCheckpoint.load_state(member_args.output_dir / "checkpoints") is not None
            member_args.resume = member_args.output_dir if has_state else None
            print(f"member {index + 1} of {members} (seed {member_args.seed})", flush=True)
            keras.utils.set_random_seed(member_args.seed)
            models.append(finish(run_training(model_fn, train_ds, val_ds, member_args, **shared)[0]))
        member_epochs = json.loads((member_args.output_dir / "metrics.json").read_text())["epochs"]
        entries.extend({"member": index, **entry} for entry in member_epochs)

    ensemble = AveragedEnsemble(models, name="averaged_ensemble")
    ensemble(next(iter(train_ds))[0])  # builds it, so that model.keras records its input shapes
    # Saved uncompiled: it has no optimizer of its own to save.
    ensemble.save(output_path(args, "model.keras"))
    if inference_model is None:  # the training loss and metrics fit the trained models only
        ensemble.compile(loss=loss, metrics=list(metrics), **(compile_kwargs or {}))
    member_entries = [[entry for entry in entries if entry["member"] == index] for index in range(members)]
    _write_json(
        output_path(args, "metrics.json"),
        {
            "config": _to_json(args),
            "epochs": entries,
            "final": {"members": members, "epochs": [len(part) for part in member_entries]},
        },
    )
    plot_curves(output_path(args, "curves.png"), entries)
    return ensemble, [_by_name(part) for part in member_entries]


# --- Outputs --------------------------------------------------------------------------------


def write_metrics(path, config, epochs):
    """Writes `{"config", "epochs", "final"}` to `path`: the flags, one entry per epoch, and the
    final figures (the number of epochs and the last epoch's figures)."""
    last = {key: value for key, value in epochs[-1].items() if key != "epoch"} if epochs else {}
    _write_json(path, {"config": config, "epochs": epochs, "final": {"epochs": len(epochs), **last}})


def record_final(args, **figures):
    """Adds what a recipe measures after training to the `final` section of the run's
    `metrics.json`: numbers (test accuracy, BLEU; NumPy and TensorFlow scalars too) and JSON
    values (sample translations: strings, lists, dicts)."""
    path = output_path(args, "metrics.json")
    metrics = json.loads(path.read_text())
    metrics["final"].update({key: _json_value(value) for key, value in figures.items()})
    _write_json(path, metrics)


def plot_curves(path, epochs):
    """Saves a PNG with one panel per metric, its training and validation values by epoch."""
    # The object API with the Agg canvas: no pyplot, no global backend state, no display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    by_name = _by_name(epochs)
    names = [name for name in by_name if not name.startswith("val_") and name != "member"]
    names += [name[4:] for name in by_name if name.startswith("val_") and name[4:] not in by_name]
    # An ensemble's entries name their member: one pair of lines per member.
    runs = {}
    for entry in epochs:
        runs.setdefault(entry.get("member"), []).append(entry)
    figure = Figure(figsize=(4.5 * max(len(names), 1), 3.5), layout="constrained")
    FigureCanvasAgg(figure)
    for index, name in enumerate(names):
        axes = figure.add_subplot(1, len(names), index + 1)
        for member, entries in runs.items():
            epoch_numbers = [entry["epoch"] for entry in entries]
            values = _by_name(entries)
            for key, label in ((name, "train"), (f"val_{name}", "validation")):
                if key in values:
                    suffix = "" if member is None else f" (member {member})"
                    axes.plot(epoch_numbers, values[key], marker="o", label=label + suffix)
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend()
    figure.savefig(path)


def export_saved_model(module, path, signatures):
    """Saves `module` as a SavedModel at `path` with the given serving signatures.

    Args:
        module: a `tf.Module` (a Keras model, or a `tf.Module` holding one as an attribute) that
            tracks every variable the signatures use.
        path: the SavedModel folder (usually `output_path(args, "saved_model")`).
        signatures: `{name: tf.function}`, each function with an `input_signature` of string
            tensors, e.g. `{"classify": module.classify}`.

    Returns:
        `path`.
    """
    if not signatures:
        raise ValueError("a SavedModel needs at least one signature")
    concrete = {}
    for name, function in signatures.items():
        spec = getattr(function, "input_signature", None)
        if spec is None:
            raise ValueError(f"signature {name!r} needs a tf.function with an input_signature")
        wrong = [s for s in tf.nest.flatten(spec) if s.dtype != tf.string]
        if wrong:
            raise ValueError(f"signature {name!r} must take raw strings, got {wrong}")
        # A fresh trace in portable mode: an earlier trace of `function` may hold the fused CPU
        # kernels, which a process without zoo's op library cannot load.
        with portable_graph():
            concrete[name] = tf.function(
                function.python_function, input_signature=spec
            ).get_concrete_function()
    tf.saved_model.save(module, str(path), signatures=concrete)
    return path


def _by_name(epochs):
    """`{name: [value per epoch]}`, None where an epoch lacks the name."""
    names = dict.fromkeys(key for entry in epochs for key in entry if key != "epoch")
    return {name: [entry.get(name) for entry in epochs] for name in names}


def _number(value):
    """A plain float for JSON, which has no NaN or infinity: they become None."""
    value = float(value)
    return value if math.isfinite(value) else None


def _json_value(value):
    """Strings, lists, dicts, booleans and None as they are; integers (NumPy's too) as ints; other
    numbers (TensorFlow scalars too) as `_number` floats."""
    if isinstance(value, (str, list, dict, bool, type(None))):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    return _number(value)


def _numbers(logs):
    return {key: _number(value) for key, value in logs.items()}


def _write_json(path, value):
    """Writes JSON atomically: a reader, or a run killed mid-write, sees the old file or the new."""
    path = pathlib.Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(temporary, path)
