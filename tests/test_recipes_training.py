"""Tests of what the recipes share (`recipes.flags`, `recipes.training`, `recipes.run_files`): the
run's files, resume after SIGKILL, mirrored strategy on logical CPUs, clipping, the rules between
flags, and the one-line error path."""

import argparse
import importlib.util
import json
import math
import os
import pathlib
import re
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from recipes import flags, training
from recipes.recipe import RecipeError

REPO = pathlib.Path(__file__).resolve().parents[1]

# A complete recipe on the shared modules: linear regression written as text, so that the same
# program runs in this process and in subprocesses (killed, resumed, on two logical CPUs).
# `--stall-at-epoch E` signals through `--signal FILE` in the middle of epoch E (from 1) and
# then hangs, so the test can kill it mid-epoch.
TINY_RECIPE = """
import argparse, pathlib, time
import keras, numpy as np, tensorflow as tf
import zoo
from recipes import flags, run_files, training
from recipes.recipe import entry_point

WEIGHTS = np.array([[1.0], [2.0], [-1.0], [0.5]], dtype="float32")


class Stall(keras.callbacks.Callback):
    def __init__(self, epoch, signal):
        super().__init__()
        self.stall_epoch, self.signal, self.epoch = epoch, signal, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == self.stall_epoch and batch == 2:
            self.signal.write_text("mid-epoch")
            time.sleep(600)


class Regressor(tf.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def predict(self, lines):
        numbers = tf.strings.to_number(tf.strings.split(lines).to_tensor("0"))
        return {"value": self.model(numbers)[:, 0]}


@entry_point
def main(argv=None):
    parser = argparse.ArgumentParser()
    flags.add_shared_flags(parser, recipe="tiny", epochs=5, batch_size=8, learning_rate=0.05)
    parser.add_argument("--stall-at-epoch", type=int, default=0)
    parser.add_argument("--signal", type=pathlib.Path, default=None)
    args = flags.parse_args(parser, argv)
    strategy = training.setup(args)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    train = tf.data.Dataset.from_tensor_slices((x, x @ WEIGHTS)).batch(args.batch_size)
    callbacks = [zoo.callbacks.EpochEndHook(lambda model, epoch, logs: f"HOOK epoch {epoch}")]
    if args.stall_at_epoch:
        callbacks.append(Stall(args.stall_at_epoch, args.signal))
    model, history = training.run_training(
        lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]),
        train, train.take(2), args, strategy=strategy, loss="mse",
        metrics=["mae"], callbacks=callbacks, units_per_epoch=64 * 4)
    regressor = Regressor(model)
    zoo.export.saved_model(regressor, run_files.output_path(args, "saved_model"),
                           {"predict": regressor.predict})
    print("ITERATIONS", int(model.optimizer.iterations.numpy()))
    print("REPLICAS", strategy.num_replicas_in_sync)
    return run_files.finish_run(args, model, answer=np.int64(42), sample="4 2")


if __name__ == "__main__":
    main()
"""


@pytest.fixture
def tiny_recipe(tmp_path):
    path = tmp_path / "tiny_recipe.py"
    path.write_text(TINY_RECIPE)
    return path


def _run_in_process(script, *flags):
    spec = importlib.util.spec_from_file_location("tiny_recipe", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main([str(flag) for flag in flags])


def _start(script, *flags):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen(
        [sys.executable, str(script), *map(str, flags)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(process, timeout=600):
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def _load_dense_weights(run):
    return [np.asarray(w) for w in keras.saving.load_model(run / "model.keras").get_weights()]


def test_cosine_schedule_decays_the_learning_rate_per_epoch(tiny_recipe, tmp_path):
    run = tmp_path / "run"
    _run_in_process(
        tiny_recipe, "--output-dir", run, "--epochs", 4, "--learning-rate", 0.2, "--lr-schedule", "cosine"
    )
    rates = [entry["learning_rate"] for entry in json.loads((run / "metrics.json").read_text())["epochs"]]
    expected = [0.2 * 0.5 * (1 + math.cos(math.pi * epoch / 4)) for epoch in range(4)]
    np.testing.assert_allclose(rates, expected, rtol=1e-6)


def test_outputs_of_a_run(tiny_recipe, tmp_path, capsys):
    run = tmp_path / "run"
    result = _run_in_process(tiny_recipe, "--output-dir", run, "--epochs", 2)
    out = capsys.readouterr().out
    assert "HOOK epoch 1" in out and "HOOK epoch 2" in out
    assert "tokens/s" in out

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["config"]["epochs"] == 2
    assert [entry["epoch"] for entry in metrics["epochs"]] == [1, 2]
    for entry in metrics["epochs"]:
        assert {"loss", "mae", "val_loss", "val_mae"} <= entry.keys()
        assert entry["tokens_per_sec"] > 0
    assert metrics["final"]["epochs"] == 2
    assert metrics["final"]["val_loss"] == metrics["epochs"][-1]["val_loss"]
    assert metrics["final"]["sample"] == "4 2"
    assert metrics["final"]["answer"] == 42 and isinstance(
        metrics["final"]["answer"], int
    )  # an int stays an int
    assert metrics["final"]["train_seconds"] > 0
    assert result.output_dir == run and result.final == metrics["final"]
    assert result.history["loss"] == [entry["loss"] for entry in metrics["epochs"]]
    # Linear regression with Adam: the loss goes down.
    assert result.history["loss"][1] < result.history["loss"][0]

    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((run / "config.json").read_text())["output_dir"] == str(run)
    assert list((run / "logs").rglob("events.out.tfevents.*"))
    assert [p.name for p in (run / "checkpoints").glob("*.weights.h5")] == ["epoch-0002.weights.h5"]

    model = keras.saving.load_model(run / "model.keras")
    served = tf.saved_model.load(str(run / "saved_model")).signatures["predict"]
    got = served(tf.constant(["1 2 3 4", "0.5 -1 0 2"]))["value"].numpy()
    want = model.predict(np.array([[1, 2, 3, 4], [0.5, -1, 0, 2]], "float32"), verbose=0)[:, 0]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_existing_run_is_not_overwritten_without_resume(tiny_recipe, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_info:
        _run_in_process(tiny_recipe, "--output-dir", run)
    assert exit_info.value.code == 2
    assert f"pass --resume {run}" in capsys.readouterr().err


def test_recipe_error_is_one_line_and_exit_code_2(tiny_recipe, tmp_path, capsys):
    missing = tmp_path / "missing.txt"
    with pytest.raises(SystemExit) as exit_info:
        _run_in_process(tiny_recipe, "--data", missing, "--output-dir", tmp_path / "run")
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: --data {missing}: no such file or folder\n"


@pytest.mark.slow
def test_resume_after_sigkill_mid_epoch(tiny_recipe, tmp_path):
    run, signal = tmp_path / "run", tmp_path / "mid-epoch-2"
    # The uninterrupted reference runs beside the run that will be killed.
    reference = _start(
        tiny_recipe, "--output-dir", tmp_path / "reference", "--epochs", 3, "--optimizer", "adam"
    )
    killed = _start(
        tiny_recipe,
        "--output-dir",
        run,
        "--epochs",
        3,
        "--optimizer",
        "adam",
        "--stall-at-epoch",
        2,
        "--signal",
        signal,
    )
    deadline = time.monotonic() + 600
    while not signal.exists():
        if killed.poll() is not None or time.monotonic() > deadline:
            killed.kill()
            pytest.fail("the run ended before the middle of epoch 2:\n" + killed.communicate()[0])
        time.sleep(0.05)
    killed.kill()  # SIGKILL: no handler, no cleanup
    killed.communicate()
    assert killed.returncode == -9
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 1 and [e["epoch"] for e in state["history"]] == [1]

    # No --epochs: the resumed run takes the first run's flags; a flag given again overrides.
    output = _finish(_start(tiny_recipe, "--resume", run, "--stall-at-epoch", 0))
    assert f"resuming {run} after epoch 1 of 3" in output
    assert "Epoch 2/3" in output and "Epoch 1/3" not in output
    # 64 examples in batches of 8, 3 epochs: the optimizer's step count was restored and the
    # killed partial epoch is not counted.
    assert "ITERATIONS 24" in output

    metrics = json.loads((run / "metrics.json").read_text())
    assert [entry["epoch"] for entry in metrics["epochs"]] == [1, 2, 3]
    assert metrics["final"]["epochs"] == 3

    # Same data order, restored weights and Adam moments: the same model as never stopping.
    _finish(reference)
    for got, want in zip(_load_dense_weights(run), _load_dense_weights(tmp_path / "reference")):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(
    "strategy, cpu_devices, replicas",
    [
        ("mirrored", 2, 2),
        ("multi-worker", 0, 1),  # without TF_CONFIG: one worker
    ],
)
def test_strategies_train(tiny_recipe, tmp_path, strategy, cpu_devices, replicas):
    run = tmp_path / "run"
    output = _finish(
        _start(
            tiny_recipe,
            "--output-dir",
            run,
            "--epochs",
            1,
            "--strategy",
            strategy,
            "--cpu-devices",
            cpu_devices,
        )
    )
    assert f"REPLICAS {replicas}" in output
    # 64 examples in global batches of 8, whatever the replicas: 8 steps.
    assert "ITERATIONS 8" in output
    loss = json.loads((run / "metrics.json").read_text())["epochs"][0]["loss"]
    assert np.isfinite(loss)


def test_malformed_tf_config_is_a_recipe_error(monkeypatch):
    cluster = {"worker": ["localhost:23456", "localhost:23457"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 2}}))
    with pytest.raises(RecipeError, match="--strategy multi-worker: TF_CONFIG: task index 2 is out of range"):
        training.make_strategy("multi-worker")


def test_resume_takes_the_saved_flags_unless_given_again(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    data = tmp_path / "corpus.txt"
    (run / "config.json").write_text(
        json.dumps({"data": str(data), "epochs": 7, "learning_rate": 0.5, "output_dir": "elsewhere"})
    )

    def parse(*argv):
        parser = argparse.ArgumentParser()
        flags.add_shared_flags(parser, recipe="test", epochs=2, batch_size=4, learning_rate=1.0)
        return flags.parse_args(parser, [str(arg) for arg in argv])

    args = parse("--resume", run)
    assert (args.data, args.epochs, args.learning_rate) == (data, 7, 0.5)
    assert args.output_dir == run and args.batch_size == 4
    assert parse("--resume", run, "--epochs", 9).epochs == 9
    with pytest.raises(RecipeError, match="no run there"):
        parse("--resume", tmp_path / "nothing")


def test_resume_gives_the_items_of_a_saved_list_their_flags_type(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(
        json.dumps({"char_lm": ["runs/forward", "runs/backward"], "sizes": [3, 4]})
    )
    parser = argparse.ArgumentParser()
    flags.add_shared_flags(parser, recipe="test", epochs=2, batch_size=4, learning_rate=1.0)
    parser.add_argument("--char-lm", nargs=2, type=pathlib.Path, default=None)
    parser.add_argument("--sizes", nargs="+", type=int, default=[1])
    args = flags.parse_args(parser, ["--resume", str(run)])
    assert args.char_lm == [pathlib.Path("runs/forward"), pathlib.Path("runs/backward")]
    assert args.sizes == [3, 4]


def test_resume_on_a_worker_that_cannot_see_the_chiefs_folder_keeps_its_flags(tmp_path, monkeypatch):
    parser = flags.add_shared_flags(
        argparse.ArgumentParser(), recipe="test", epochs=2, batch_size=4, learning_rate=1.0
    )
    run = tmp_path / "run"
    argv = ["--resume", str(run), "--strategy", "multi-worker", "--epochs", "3"]
    cluster = {"worker": ["localhost:23456", "localhost:23457"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    args = flags.parse_args(parser, argv)
    assert (args.output_dir, args.epochs, args.batch_size) == (run, 3, 4)
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    with pytest.raises(RecipeError, match="no run there"):
        flags.parse_args(parser, argv)


def test_split_cpu_after_initialisation_is_a_recipe_error():
    tf.constant(0)  # initialises the devices of this process
    with pytest.raises(RecipeError, match="before any other TensorFlow work"):
        training.split_cpu(2)


def test_global_clip_norm_rescales_all_gradients_together():
    optimizer = training.make_optimizer("sgd", learning_rate=1.0, clip_norm=1.0)
    first, second = tf.Variable([0.0]), tf.Variable([0.0])
    optimizer.apply_gradients([(tf.constant([3.0]), first), (tf.constant([4.0]), second)])
    # Global norm 5 > 1: every gradient is scaled by 1/5.
    np.testing.assert_allclose([first.numpy()[0], second.numpy()[0]], [-0.6, -0.8], rtol=1e-6)
    assert training.make_optimizer("adam", 1e-3, 0).global_clipnorm is None


def test_load_trained_gives_a_new_model_the_saved_weights(tmp_path):
    def build():
        return keras.Sequential([keras.layers.Embedding(10, 4), keras.layers.GRU(3), keras.layers.Dense(2)])

    ids = np.array([[1, 2, 3]])
    saved = build()
    saved(ids)
    saved.compile("adam", "mse")
    saved.save(tmp_path / "model.keras")
    loaded = training.load_trained(tmp_path, build, ids, tf.distribute.get_strategy())
    assert loaded is not saved
    for got, want in zip(loaded.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(got, want)


@keras.saving.register_keras_serializable(package="test_recipes_training")
class TinyClassifier(keras.Model):
    """A subclassed model, built only when first called: the kind the zoo's models are."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.embedding = keras.layers.Embedding(10, 4)
        self.rnn = keras.layers.GRU(3)
        self.head = keras.layers.Dense(2)

    def call(self, ids):
        return self.head(self.rnn(self.embedding(ids)))


def test_subclassed_model_is_built_and_restored(tmp_path):
    ids = np.random.default_rng(1).integers(0, 10, size=(12, 5))
    train = tf.data.Dataset.from_tensor_slices((ids, ids[:, 0] % 2)).batch(4)

    def train_run(*argv):
        parser = argparse.ArgumentParser()
        flags.add_shared_flags(parser, recipe="test", epochs=2, batch_size=4, learning_rate=0.01)
        args = flags.parse_args(parser, [str(arg) for arg in argv])
        return training.run_training(
            TinyClassifier,
            train,
            None,
            args,
            strategy=training.setup(args),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )

    run = tmp_path / "run"
    trained, history = train_run("--output-dir", run)
    assert history["examples_per_sec"][0] > 0 and len(history["loss"]) == 2
    # Resuming a finished run trains nothing: the model is exactly the restored checkpoint.
    restored, history_again = train_run("--resume", run)
    assert history_again == history
    assert int(restored.optimizer.iterations.numpy()) == 6
    for got, want in zip(restored.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(got, want)


def build_parser_with_a_rule():
    parser = argparse.ArgumentParser(prog="tiny")
    flags.add_shared_flags(parser, recipe="test", epochs=2, batch_size=4, learning_rate=1.0)
    parser.add_argument("--mode", choices=("plain", "fancy"), default="plain")
    parser.add_argument("--fanciness", type=flags.fraction, default=0.0)
    return parser


def needs_fancy_mode(args):
    if args.fanciness and args.mode != "fancy":
        raise flags.FlagError("--fanciness needs --mode fancy")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], r"argument --epochs: expected an integer >= 1, got 0"),
        (["--learning-rate", "-1"], r"argument --learning-rate: expected a positive number, got -1"),
        (["--fanciness", "1.5"], r"argument --fanciness: expected a fraction in \[0, 1\), got 1.5"),
        (["--fanciness", "0.5"], r"tiny: error: --fanciness needs --mode fancy"),
    ],
)
def test_bad_flags_end_as_argparse_errors_with_the_reason(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        flags.parse_args(build_parser_with_a_rule(), argv, check=needs_fancy_mode)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: tiny")
    assert re.search(message, err), err
    assert (
        flags.parse_args(
            build_parser_with_a_rule(), ["--fanciness", "0.5", "--mode", "fancy"], check=needs_fancy_mode
        ).fanciness
        == 0.5
    )


def test_derived_defaults_follow_the_flags_they_depend_on_and_lose_to_given_flags():
    def fancy_defaults(args):
        defaults = {"mode": "fancy"} if args.epochs > 5 else {}
        if args.mode == "fancy":
            defaults["fanciness"] = 0.5
        return defaults

    def parse(*argv):
        return flags.parse_args(build_parser_with_a_rule(), list(argv), derived_defaults=fancy_defaults)

    assert (parse().mode, parse().fanciness) == ("plain", 0.0)
    assert (parse("--epochs", "9").mode, parse("--epochs", "9").fanciness) == ("fancy", 0.5)
    given = parse("--epochs", "9", "--fanciness", "0.25")
    assert (given.mode, given.fanciness) == ("fancy", 0.25)
    assert parse("--mode", "fancy").fanciness == 0.5
