"""Training a recipe's model: devices and the `tf.distribute` strategy, the optimizer, and the fit
loop with its callbacks, checkpoints and resume.

- `setup(args)`: before any other TensorFlow work; splits the CPU, makes the strategy (the one
  place a strategy is made: `make_strategy`), seeds, and creates the output folder (on a worker
  of a cluster other than the chief, a private temporary one: `zoo.distribute.worker_dir`).
- `run_training(model_fn, train_ds, val_ds, args, ...)`: the one place `fit` runs: splits each
  global batch over the replicas, checkpoints every epoch, resumes with `--resume`, and writes
  `model.keras`, `metrics.json` and `curves.png`.
- `run_ensemble_training(...)`: several models by `run_training`, one after another, averaged.

Example (a recipe's train section):

>>> strategy = training.setup(args)
>>> model, history = training.run_training(build_model, train_ds, val_ds, args, strategy=strategy,
...                                        loss="sparse_categorical_crossentropy", metrics=["accuracy"])
"""

import copy
import datetime
import json
import math
import pathlib
import time

import keras
import tensorflow as tf

import zoo.distribute
from recipes.flags import STRATEGIES
from recipes.recipe import RecipeError
from recipes.run_files import (
    by_name,
    last_epoch_figures,
    output_path,
    plot_curves,
    write_config,
    write_metrics,
)
from zoo.callbacks import Throughput, count_units
from zoo.models import AveragedEnsemble

# Folders that only a run holds: an output folder with one of them is taken.
_RUN_FOLDERS = ("checkpoints", "members", "pretraining")


# --- Devices, strategy, output folder -------------------------------------------------------


def split_cpu(count):
    """Splits the first physical CPU into `count` logical devices, so that `MirroredStrategy`
    can be exercised on one machine. Must run before TensorFlow initialises its devices."""
    try:
        zoo.distribute.split_cpu(count)
    except RuntimeError as error:
        raise RecipeError(f"{error} (call setup(args) first)") from None


def make_strategy(name):
    """The `tf.distribute` strategy named by `--strategy`.

    `mirrored` replicates over all GPUs; without GPUs, over all logical CPU devices (see
    `split_cpu`). `multi-worker` is `MultiWorkerMirroredStrategy` over the workers `TF_CONFIG`
    names (`zoo.distribute.strategy_from_env`; one process when it is unset). With the zoo's
    fixes to Keras (`zoo.compat`) either trains the model one device trains on the same global
    batches.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return zoo.distribute.mirrored_strategy()
    if name == "multi-worker":
        try:
            return zoo.distribute.strategy_from_env()
        except zoo.distribute.ClusterConfigError as error:
            raise RecipeError(f"--strategy multi-worker: {error}") from None
    raise RecipeError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")


def setup(args):
    """Prepares a run: splits the CPU (`--cpu-devices`), builds the strategy, seeds every random
    generator (`--seed`), checks `--data`, creates the output folder and saves the flags to
    `config.json`. Call it right after `parse_args`, before any other TensorFlow work.

    Sets `args.output_dir` (a `pathlib.Path`) when it was left to its default. On a worker of a
    cluster other than the chief, `args.output_dir` becomes a private temporary folder
    (`zoo.distribute.worker_dir`): every worker runs the whole recipe, saving included, and only
    the chief's files land in the output folder.

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
    if args.resume is None and any((args.output_dir / name).exists() for name in _RUN_FOLDERS):
        raise RecipeError(
            f"--output-dir {args.output_dir} already holds a run: pass --resume "
            f"{args.output_dir} to continue it, or choose another folder"
        )
    args.output_dir = zoo.distribute.worker_dir(args.output_dir, strategy)
    write_config(args)
    return strategy


def make_optimizer(name, learning_rate, clip_norm):
    """The Keras optimizer `name` with `global_clipnorm=clip_norm` (None or 0: no clipping),
    which rescales all gradients together by min(1, clip_norm / global norm)."""
    config = {"learning_rate": learning_rate}
    if clip_norm:
        config["global_clipnorm"] = clip_norm
    return keras.optimizers.deserialize({"class_name": name, "config": config})


def cosine_learning_rate(base, epochs):
    """Per-epoch cosine decay from `base` towards 0 (a function of the epoch, so resume agrees)."""
    return lambda epoch: base * 0.5 * (1 + math.cos(math.pi * epoch / epochs))


# --- Checkpoints ----------------------------------------------------------------------------


def finished_training(run_dir, epochs, strategy=None):
    """Whether the run in `run_dir` ended (it saved `model.keras`) after training for `epochs` or more
    (an early stop under the same `--epochs` counts as finished). In a cluster, the chief's answer
    (from its folder) on every worker."""
    finished = (run_dir / "model.keras").is_file() and (
        json.loads((run_dir / "metrics.json").read_text())["config"]["epochs"] >= epochs
    )
    return finished if strategy is None else zoo.distribute.broadcast_json(strategy, finished)


def load_trained(run_dir, model_fn, inputs, strategy):
    """The model a finished run saved in `run_dir/model.keras`, in `strategy.scope()`: `model_fn()`
    called on `inputs`, with the saved weights (the chief's, in a cluster, on every worker)."""
    with strategy.scope():
        model = model_fn()
        model(inputs)
    if zoo.distribute.is_chief(strategy):
        model.load_weights(run_dir / "model.keras")
    zoo.distribute.broadcast_variables(strategy, model.weights)
    return model


def run_epochs(run_dir, strategy):
    """The per-epoch entries of the run in `run_dir` (`metrics.json`; the chief's, in a cluster)."""
    epochs = (
        json.loads((run_dir / "metrics.json").read_text())["epochs"]
        if zoo.distribute.is_chief(strategy)
        else None
    )
    return zoo.distribute.broadcast_json(strategy, epochs)


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
    optimizer_fn=None,
):
    """Builds, compiles and trains a model, checkpointing every epoch, and writes the run's files.

    Inside `strategy.scope()`: `model_fn()` builds the model (it is called on one batch of
    `train_ds` if it is not built yet), compiled with `args.optimizer` at `args.learning_rate`,
    `global_clipnorm=args.clip_norm`, and `loss` / `metrics`; `--lr-schedule cosine` decays the
    learning rate with `cosine_learning_rate`. Each replica trains on its rows of every global
    batch (`zoo.distribute.distribute_batches`). When the output folder holds a checkpoint (with
    `--resume`), the weights, optimizer state and history of the last finished epoch are restored
    (`zoo.distribute.EpochCheckpoint`, the chief's on every worker of a cluster) and training goes
    on to `args.epochs` epochs in all. Then `model.keras`, `metrics.json` (with `train_seconds`,
    the time `fit` took) and `curves.png` are written.

    Args:
        model_fn: `() -> keras.Model`, not compiled.
        train_ds, val_ds: batched `tf.data.Dataset`s of `(inputs, targets)` (or with sample
            weights), one epoch each; `val_ds` may be None.
        args: the namespace from `flags.parse_args`, after `setup`.
        strategy: the strategy `setup` returned.
        loss, metrics: as for `keras.Model.compile`.
        callbacks: extra Keras callbacks (e.g. `zoo.callbacks.EpochEndHook`); they run before the
            checkpoint, so values they add to the epoch's logs are kept in the history.
        units_per_epoch: units (e.g. tokens) in one pass over `train_ds`, for throughput;
            None counts examples with `zoo.callbacks.count_units(train_ds)` and sets `unit="examples"`.
        unit: the name of those units.
        compile_kwargs: more keyword arguments for `compile` (e.g. `weighted_metrics`).
        optimizer_fn: `model -> optimizer`, called in the strategy's scope, instead of
            `args.optimizer` (e.g. fine-tuning's per-layer learning rates).

    Returns:
        `(model, history)`: the trained model, and a dict from each logged name (`loss`,
        `val_loss`, `<unit>_per_sec`, ...) to its values for every epoch of the run, resumed
        epochs included.
    """
    if units_per_epoch is None:
        units_per_epoch, unit = count_units(train_ds), "examples"

    with strategy.scope():
        model = model_fn()
        if not model.built:
            model(next(iter(train_ds))[0])
        model.compile(
            optimizer=optimizer_fn(model)
            if optimizer_fn
            else make_optimizer(args.optimizer, args.learning_rate, args.clip_norm),
            loss=loss,
            metrics=list(metrics),
            **(compile_kwargs or {}),
        )

    checkpoint = zoo.distribute.EpochCheckpoint(output_path(args, "checkpoints"), strategy)
    initial_epoch = checkpoint.restore(model)
    if initial_epoch:
        print(f"resuming {args.output_dir} after epoch {initial_epoch} of {args.epochs}", flush=True)
    if args.lr_schedule == "cosine":
        callbacks = [
            keras.callbacks.LearningRateScheduler(cosine_learning_rate(args.learning_rate, args.epochs)),
            *callbacks,
        ]
    tensorboard = keras.callbacks.TensorBoard(
        log_dir=str(output_path(args, "logs")), update_freq=args.log_every or "epoch", write_graph=False
    )
    started = time.perf_counter()
    model.fit(
        zoo.distribute.distribute_batches(strategy, lambda: train_ds),
        validation_data=None
        if val_ds is None
        else zoo.distribute.distribute_batches(strategy, lambda: val_ds),
        epochs=args.epochs,
        initial_epoch=initial_epoch,
        shuffle=False,  # datasets shuffle themselves; Keras only warns otherwise
        callbacks=[Throughput(units_per_epoch, unit), *callbacks, tensorboard, checkpoint],
        verbose=1,
    )

    train_seconds = time.perf_counter() - started
    model.save(output_path(args, "model.keras"))
    write_metrics(
        args, checkpoint.history, {**last_epoch_figures(checkpoint.history), "train_seconds": train_seconds}
    )
    plot_curves(output_path(args, "curves.png"), checkpoint.history)
    return model, by_name(checkpoint.history)


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
    input_shapes=None,
    **training,
):
    """`run_training` for `members` models, one after another, averaged into one
    `zoo.models.AveragedEnsemble` (the models must output probabilities). With `members=1` it is
    `run_training`.

    Member i is a run of its own in `<output-dir>/members/<i>` (checkpoints, history,
    `model.keras`, `curves.png`) with the seed `--seed + i`: the members start from different
    weights and draw different dropout masks. With `--resume`, the members that finished their
    `--epochs` are loaded as they are; the interrupted one, and with a larger `--epochs` the finished
    ones too, continue from their last finished epoch. The run's own `model.keras` is the ensemble
    (saved uncompiled; the one returned is compiled with `loss` and `metrics`, for `evaluate`, unless
    `inference_model` is given); its `metrics.json` holds every member's epochs (each entry names its
    `member`) and `curves.png` draws them all.

    Args:
        model_fn, train_ds, val_ds, args, strategy, loss, metrics, compile_kwargs: as for
            `run_training`.
        members: the number of models.
        inference_model: `trained model -> the model to average and return`, e.g. the main tagger of
            a `MultiTaskTagger`; None: the trained models themselves. Each member's own
            `model.keras` (and the run's, with one member) holds the trained model.
        input_shapes: what the ensemble is built on; None: the first training batch's shapes.
            Keras traces a model's default SavedModel signature on its first build, so batches
            that differ from what the model takes when serving (cached embeddings) need it.
        **training: the other keyword arguments of `run_training` (callbacks are reused by each
            member's training, as Keras callbacks reset at its start).

    Returns:
        `(model, histories)`: the ensemble (or the one model), and each member's history as
        `run_training` returns it.
    """
    shared = dict(strategy=strategy, loss=loss, metrics=metrics, compile_kwargs=compile_kwargs, **training)
    finish = inference_model or (lambda model: model)
    started = time.perf_counter()
    if members == 1:
        model, history = run_training(model_fn, train_ds, val_ds, args, **shared)
        return finish(model), [history]
    models, entries = [], []
    for index in range(members):
        member_args = copy.copy(args)
        member_args.output_dir = output_path(args, f"members/{index}")
        member_args.seed = args.seed + index
        member_args.output_dir.mkdir(parents=True, exist_ok=True)
        if finished_training(member_args.output_dir, args.epochs, strategy):
            print(f"member {index + 1} of {members}: finished before, loading it", flush=True)
            sample = next(iter(train_ds))[0]
            models.append(finish(load_trained(member_args.output_dir, model_fn, sample, strategy)))
        else:
            print(f"member {index + 1} of {members} (seed {member_args.seed})", flush=True)
            keras.utils.set_random_seed(member_args.seed)
            models.append(finish(run_training(model_fn, train_ds, val_ds, member_args, **shared)[0]))
        member_epochs = run_epochs(member_args.output_dir, strategy)
        entries.extend({"member": index, **entry} for entry in member_epochs)

    ensemble = AveragedEnsemble(models, name="averaged_ensemble")
    # Built, so that model.keras records its input shapes.
    if input_shapes is None:
        ensemble(next(iter(train_ds))[0])
    else:
        ensemble.build(input_shapes)
    # Saved uncompiled: it has no optimizer of its own to save.
    ensemble.save(output_path(args, "model.keras"))
    if inference_model is None:  # the training loss and metrics fit the trained models only
        ensemble.compile(loss=loss, metrics=list(metrics), **(compile_kwargs or {}))
    member_entries = [[entry for entry in entries if entry["member"] == index] for index in range(members)]
    write_metrics(
        args,
        entries,
        final={
            "members": members,
            "epochs": [len(part) for part in member_entries],
            "train_seconds": time.perf_counter() - started,
        },
    )
    plot_curves(output_path(args, "curves.png"), entries)
    return ensemble, [by_name(part) for part in member_entries]
