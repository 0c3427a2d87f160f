"""recipes.language_model: its data handling and samples, and (slow tier) `python -m
recipes.language_model` end to end, on the local Time Machine and slices of it."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from recipes import language_model as recipe
from zoo import text as zoo_text

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = [
    "--epochs",
    "1",
    "--layers",
    "1",
    "--units",
    "16",
    "--embedding-dim",
    "8",
    "--batch-size",
    "16",
    "--num-steps",
    "16",
    "--sample-tokens",
    "12",
]


@pytest.fixture(scope="module")
def time_machine(data_file):
    return data_file("timemachine/timemachine.txt")


@pytest.fixture
def slice_file(time_machine, tmp_path):
    """The first 8 KB of the book: enough for a few batches of each scheme."""
    path = tmp_path / "slice.txt"
    path.write_text(time_machine.read_text()[:8_000])
    return path


def recipe_env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def final_metrics(run):
    return json.loads((run / "metrics.json").read_text())


def litert_stream(path, ids):
    """The logits of `path`'s LiteRT `step` signature fed the row `ids` one token at a time from zero
    states, `[1, time, vocab]`."""
    from ai_edge_litert.interpreter import Interpreter

    step = Interpreter(model_path=str(path)).get_signature_runner("step")
    details = step.get_input_details()
    states = {name: np.zeros(d["shape"], np.float32) for name, d in details.items() if name != "token_ids"}
    logits = []
    for token in ids:
        outputs = step(token_ids=np.array([[token]], np.int32), **states)
        states = {name: outputs[name] for name in states}
        logits.append(outputs["logits"])
    return np.concatenate(logits, axis=1)


@pytest.mark.slow
def test_recipe_end_to_end_on_the_time_machine(time_machine, tmp_path, capsys):
    run = tmp_path / "run"
    run_result = recipe.main(
        [
            "--data",
            str(time_machine),
            "--output-dir",
            str(run),
            *TINY,
            "--batch-size",
            "256",
            "--num-steps",
            "32",
            "--quantize",
            "dynamic",
        ]
    )
    out = capsys.readouterr().out
    assert "173,427 char tokens, vocabulary 28" in out
    assert "epoch 1 sample: 'time traveller" in out and "tokens/s" in out
    for name in ("model.keras", "metrics.json", "curves.png", "vocab.txt", "saved_model/saved_model.pb"):
        assert (run / name).exists(), name
    metrics = final_metrics(run)
    assert metrics["final"]["val_perplexity"] == pytest.approx(run_result.history["val_perplexity"][-1])
    assert 1 < metrics["final"]["val_perplexity"] < 28
    loaded = keras.models.load_model(run / "model.keras")
    assert loaded.get_config() == run_result.model.get_config()

    # LiteRT's step signature, fed a line of the book one character at a time, gives the logits of
    # model.keras (trained stateful) on the whole line; int8 weights: a smaller file, nearly the same
    # predictions.
    vocab = zoo_text.Vocab.load(run / "vocab.txt")
    ids = np.asarray(
        vocab.to_ids(list("the time traveller for so it will be convenient to speak of him")), np.int32
    )
    expected = np.asarray(loaded.stateless_copy()(ids[None]))
    np.testing.assert_allclose(litert_stream(run / "model.tflite", ids), expected, atol=1e-4)
    quantized = litert_stream(run / "model_int8.tflite", ids)
    assert (quantized.argmax(-1) == expected.argmax(-1)).mean() > 0.8
    sizes = metrics["final"]
    assert sizes["litert_bytes"] == (run / "model.tflite").stat().st_size > sizes["litert_int8_bytes"]

    # The export runs in a process that never imports zoo, and agrees with the in-process generator.
    script = (
        "import sys, tensorflow as tf\n"
        f"lm = tf.saved_model.load({str(run / 'saved_model')!r})\n"
        "greedy = lm.generate(tf.constant(['time traveller']), num_tokens=12)\n"
        "served = lm.signatures['generate'](prefix=tf.constant(['time traveller']))['text']\n"
        "a = lm.generate(tf.constant(['the']), 30, 1.0, 7)\n"
        "b = lm.generate(tf.constant(['the']), 30, 1.0, 7)\n"
        "assert a.numpy()[0] == b.numpy()[0]\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('zoo', 'ops', 'recipes')]\n"
        "print(greedy.numpy()[0].decode()); print(len(served.numpy()[0]))\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    greedy, served_length = result.stdout.strip().split("\n")[-2:]
    assert greedy == metrics["final"]["sample"]
    assert int(served_length) == len("time traveller") + 100  # the signature's default length


def test_runs_without_a_network_on_the_book_the_zoo_ships(tmp_path, monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise OSError("URL fetch failure: no network")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    recipe.main(["--output-dir", str(tmp_path / "run"), *TINY, "--batch-size", "256", "--num-steps", "32"])
    assert "173,427 char tokens, vocabulary 28" in capsys.readouterr().out
    assert (tmp_path / "run" / "model.keras").exists()


@pytest.mark.slow
def test_sequential_batching_and_word_tokens(slice_file, tmp_path, capsys):
    run = tmp_path / "run"
    recipe.main(
        [
            "--data",
            str(slice_file),
            "--output-dir",
            str(run),
            "--batching",
            "sequential",
            "--tokenizer",
            "word",
            "--text",
            "course",
            *TINY,
            "--batch-size",
            "4",
            "--num-steps",
            "6",
        ]
    )
    out = capsys.readouterr().out
    # A slice is not the book: the prefix is its first words ("The Time Machine,"), cleaned.
    assert "text: course" in out and "epoch 1 sample: 'the time machine" in out
    assert final_metrics(run)["config"]["batching"] == "sequential"


@pytest.mark.slow
def test_bpe_run_exports_a_generator_that_needs_tensorflow_text(slice_file, tmp_path, capsys):
    run = tmp_path / "run"
    recipe.main(
        [
            "--data",
            str(slice_file),
            "--output-dir",
            str(run),
            "--tokenizer",
            "bpe",
            "--bpe-vocab-size",
            "200",
            *TINY,
        ]
    )
    out = capsys.readouterr().out
    assert "import tensorflow_text" in out and (run / "bpe.model").is_file()


@pytest.mark.slow
def test_bidirectional_run_scores_but_refuses_to_generate(slice_file, tmp_path, capsys):
    run = tmp_path / "run"
    recipe.main(["--data", str(slice_file), "--output-dir", str(run), "--bidirectional", *TINY])
    out = capsys.readouterr().out
    assert "cannot generate text" in out and "sample:" not in out
    assert not (run / "saved_model").exists()
    assert final_metrics(run)["final"]["val_perplexity"] > 1


@pytest.mark.slow
def test_pretraining_starts_the_book_from_the_pretrained_weights(time_machine, slice_file, tmp_path, capsys):
    other_text = tmp_path / "other.txt"
    other_text.write_text(time_machine.read_text()[8_000:60_000])
    flags = ["--data", str(slice_file), "--text", "course", *TINY]
    cold = recipe.main([*flags, "--output-dir", str(tmp_path / "cold")]).history
    run = tmp_path / "pretrained"
    warm = recipe.main(
        [*flags, "--output-dir", str(run), "--pretrain-data", str(other_text), "--pretrain-epochs", "3"]
    ).history
    out = capsys.readouterr().out
    tokens = final_metrics(run)["final"]["pretraining_tokens"]
    assert 50_000 < tokens < 52_000  # the other text's characters, cleaned
    assert f"pretraining on {tokens:,} tokens of --pretrain-data for 3 epochs" in out
    pretraining = json.loads((run / "pretraining" / "metrics.json").read_text())
    assert [entry["epoch"] for entry in pretraining["epochs"]] == [1, 2, 3]
    # Three epochs of English first: the book's first epoch starts far lower.
    assert warm["loss"][0] < cold["loss"][0] - 0.3

    recipe.main(["--resume", str(run), "--epochs", "2"])
    out = capsys.readouterr().out
    assert "pretraining: finished before" in out
    assert [entry["epoch"] for entry in final_metrics(run)["epochs"]] == [1, 2]


def test_samples_come_from_the_model_being_trained():
    """Pretraining and the book train different models; each epoch's sample is the current one's."""
    from zoo.models.language_model import LanguageModel
    from zoo.text import CharTokenizer, Vocab

    args = recipe.build_parser().parse_args(["--sample-tokens", "5", "--prefix", "time traveller"])
    tokenizer = CharTokenizer()
    vocab = Vocab(tokenizer.tokenize("time traveller"))
    sample = recipe.SampleText(args, tokenizer, vocab)
    pretrained, trained = (LanguageModel(len(vocab), "lstm", 4) for _ in range(2))
    for model in (pretrained, trained):
        model(np.zeros((1, 3), "int32"))
        assert sample(model, 1, {}).startswith("epoch 1 sample: 'time traveller")
        assert sample.generator.model is model


@pytest.mark.parametrize("tokenizer", ["char", "word", "bpe"])
def test_pretraining_text_is_cleaned_and_encoded_as_the_book(tokenizer, slice_file, tmp_path):
    other_text = tmp_path / "other.txt"
    other_text.write_text("The Time Traveller\nxylophones, zebras!\n")
    args = recipe.build_parser().parse_args(
        [
            "--data",
            str(slice_file),
            "--tokenizer",
            tokenizer,
            *(["--text", "course"] if tokenizer != "bpe" else []),
            "--bpe-vocab-size",
            "100",
            "--pretrain-data",
            str(other_text),
        ]
    )
    ids, book_tokenizer, vocab = recipe.tokenize(args, slice_file.read_text())
    other_ids = recipe.pretraining_ids(args, book_tokenizer, vocab)
    if tokenizer == "bpe":  # pieces of the raw lines, as the book's
        assert book_tokenizer.detokenize(other_ids.tolist()).startswith("The Time Traveller xylophones")
        return
    tokens = vocab.to_tokens(other_ids.tolist())
    if tokenizer == "char":
        assert "".join(tokens) == "the time traveller xylophones zebras"  # the line break is a space
    else:
        assert tokens == ["the", "time", "traveller", "<unk>", "<unk>"]  # words the slice lacks


def test_missing_pretrain_file_is_a_clear_error(slice_file, tmp_path, capsys):
    with pytest.raises(SystemExit):
        recipe.main(
            [
                "--data",
                str(slice_file),
                "--output-dir",
                str(tmp_path / "run"),
                "--pretrain-data",
                str(tmp_path / "nope.txt"),
                *TINY,
            ]
        )
    assert (
        capsys.readouterr().err == f"error: --pretrain-data {tmp_path / 'nope.txt'}: no such file or folder\n"
    )


@pytest.mark.slow
def test_resume_after_sigkill_mid_epoch_finishes_the_same_epochs(time_machine, tmp_path, capsys):
    run = tmp_path / "run"
    longer_slice = tmp_path / "longer.txt"
    longer_slice.write_text(time_machine.read_text()[:30_000])
    command = [
        sys.executable,
        "-m",
        "recipes.language_model",
        "--data",
        str(longer_slice),
        "--output-dir",
        str(run),
        *TINY[2:],
        "--epochs",
        "3",
        "--batch-size",
        "8",
    ]
    process = subprocess.Popen(
        command, cwd=REPO, env=recipe_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    state = run / "checkpoints" / "state.json"
    deadline = time.monotonic() + 600
    while not state.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    if not state.exists():
        process.kill()
        process.wait()
        pytest.fail(
            f"the run ended or ran out of time (exit status {process.returncode}) before its first checkpoint"
        )
    # Epoch 2 is under way: a mid-epoch kill leaves epoch 1 as the last committed one.
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert json.loads(state.read_text())["epoch"] == 1
    recipe.main(["--resume", str(run)])
    assert "resuming" in capsys.readouterr().out
    metrics = final_metrics(run)
    assert [entry["epoch"] for entry in metrics["epochs"]] == [1, 2, 3]
    assert metrics["final"]["epochs"] == 3 and metrics["config"]["batch_size"] == 8


@pytest.mark.slow
def test_mirrored_strategy_over_two_logical_cpus(slice_file, tmp_path):
    run = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "recipes.language_model",
        "--data",
        str(slice_file),
        "--output-dir",
        str(run),
        "--strategy",
        "mirrored",
        "--cpu-devices",
        "2",
        "--batching",
        "random",
        *TINY,
    ]
    result = subprocess.run(command, cwd=REPO, env=recipe_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "epoch 1 sample" in result.stdout
    assert final_metrics(run)["final"]["epochs"] == 1
    assert (run / "saved_model" / "saved_model.pb").is_file()


@pytest.mark.slow
def test_overlapping_run_keeps_the_best_epoch(slice_file, tmp_path, capsys):
    run = tmp_path / "run"
    history = recipe.main(
        [
            "--data",
            str(slice_file),
            "--output-dir",
            str(run),
            "--batching",
            "overlapping",
            *TINY,
            "--epochs",
            "3",
            "--optimizer",
            "sgd",
            "--learning-rate",
            "30",
        ]
    ).history
    final = final_metrics(run)["final"]
    best = int(np.argmin(history["val_perplexity"]))
    assert final["best_epoch"] == best + 1
    assert final["val_perplexity"] == pytest.approx(history["val_perplexity"][best])
    assert f"(epoch {best + 1}, the best)" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("recipe_name", ["language_model", "sentiment", "tagging", "translation"])
def test_help_of_every_recipe(recipe_name):
    result = subprocess.run(
        [sys.executable, "-m", f"recipes.{recipe_name}", "--help"],
        cwd=REPO,
        env=recipe_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith(f"usage: python -m recipes.{recipe_name}")
    assert "--resume DIR" in result.stdout and "--strategy" in result.stdout


def test_reverse_reads_the_stream_backwards_with_the_forward_vocabulary(slice_file):
    text = slice_file.read_text()
    forward_args = recipe.build_parser().parse_args(["--data", str(slice_file), "--text", "faithful"])
    backward_args = recipe.build_parser().parse_args(
        ["--data", str(slice_file), "--text", "faithful", "--reverse"]
    )
    forward_ids, _, forward_vocab = recipe.tokenize(forward_args, text)
    backward_ids, _, backward_vocab = recipe.tokenize(backward_args, text)
    assert backward_vocab.idx_to_token == forward_vocab.idx_to_token
    # The stream ends with the text's start (the tail holds characters only the validation part has).
    assert "".join(backward_vocab.to_tokens(backward_ids[-30:].tolist())) == text[:30][::-1]
    np.testing.assert_array_equal(backward_ids, forward_ids[::-1])


def test_reverse_run_records_it_and_writes_the_text_before_the_prompt(slice_file, tmp_path, capsys):
    import tensorflow as tf

    run = tmp_path / "run"
    recipe.main(["--data", str(slice_file), "--output-dir", str(run), "--reverse", "--prefix", "Time", *TINY])
    out = capsys.readouterr().out
    assert "text reversed (--reverse): the model reads right to left" in out
    assert "epoch 1 sample (--reverse: generated right to left, the text before the prompt): '" in out
    metrics = final_metrics(run)
    assert metrics["config"]["reverse"] is True and metrics["final"]["reverse"] is True
    assert json.loads((run / "config.json").read_text())["reverse"] is True
    # The sample and the export generate leftwards: their text ends with the prompt.
    assert metrics["final"]["sample"].endswith("Time") and len(metrics["final"]["sample"]) == 4 + 12
    served = tf.saved_model.load(str(run / "saved_model"))
    generated = served.generate(tf.constant(["Time"]), num_tokens=7).numpy()[0].decode()
    assert generated.endswith("Time") and len(generated) == 4 + 7


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--tokenizer", "word"], "--reverse reverses the text character by character: use --tokenizer char"),
        (["--bidirectional"], "--reverse trains a backward model; --bidirectional reads both ways already"),
    ],
)
def test_reverse_refuses_flags_it_cannot_serve(flags, message, slice_file, tmp_path, capsys):
    with pytest.raises(SystemExit):
        recipe.main(["--data", str(slice_file), "--output-dir", str(tmp_path / "run"), "--reverse", *flags])
    assert message in capsys.readouterr().err
