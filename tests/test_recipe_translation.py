"""recipes.translation: its flags, and (slow tier) the end-to-end run on a slice of the real fra.txt,
resume, and the exported SavedModel loaded in a process that never imports zoo."""

import json
import re
import subprocess
import sys
import textwrap

import pytest

from recipes import translation
from zoo.models import Translator
from zoo.text import SEQUENCE_RESERVED, Vocab, read_sentence_pairs

TINY = [
    "--epochs",
    "1",
    "--embedding-dim",
    "8",
    "--units",
    "8",
    "--num-layers",
    "1",
    "--batch-size",
    "32",
    "--max-pairs",
    "300",
    "--max-length",
    "8",
    "--min-freq",
    "1",
]


@pytest.fixture(scope="module")
def finished_run(data_file, tmp_path_factory):
    output = tmp_path_factory.mktemp("translation") / "run"
    argv = ["--data", str(data_file("fra-eng/fra.txt")), "--output-dir", str(output), "--attention", *TINY]
    run = translation.main(argv)
    return output, run.model


@pytest.mark.slow
def test_run_writes_its_files_and_scores(finished_run, data_file):
    output, _ = finished_run
    for name in (
        "config.json",
        "metrics.json",
        "curves.png",
        "model.keras",
        "source_vocab.txt",
        "target_vocab.txt",
        "saved_model/saved_model.pb",
        "checkpoints/state.json",
    ):
        assert (output / name).exists(), name
    final = json.loads((output / "metrics.json").read_text())["final"]
    assert final["epochs"] == 1
    sources, _ = read_sentence_pairs(data_file("fra-eng/fra.txt"), max_pairs=300)
    assert final["test_sentences"] == round(0.05 * len(set(sources)))  # 5% of the sentences, never trained on
    assert 0.0 <= final["test_corpus_bleu"] <= 1.0
    assert [row["source"] for row in final["course_sentences"]] == [
        s for s, _ in translation.COURSE_SENTENCES
    ]


@pytest.mark.slow
def test_resume_continues_to_more_epochs(finished_run, data_file, tmp_path):
    import shutil

    output, _ = finished_run
    resumed = tmp_path / "resumed"
    shutil.copytree(output, resumed)
    translation.main(["--resume", str(resumed), "--epochs", "2"])
    epochs = json.loads((resumed / "metrics.json").read_text())["epochs"]
    assert [entry["epoch"] for entry in epochs] == [1, 2]


@pytest.mark.slow
def test_greedy_decoding_runs_with_the_default_length_penalty(data_file, tmp_path):
    output = tmp_path / "greedy"
    translation.main(
        ["--data", str(data_file("fra-eng/fra.txt")), "--output-dir", str(output), "--beam-size", "0", *TINY]
    )
    final = json.loads((output / "metrics.json").read_text())["final"]
    assert 0.0 <= final["test_corpus_bleu"] <= 1.0


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        translation.main(["--data", str(tmp_path / "nope.txt"), "--output-dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: --data {tmp_path / 'nope.txt'}: no such file or folder\n"


LOAD_WITHOUT_ZOO = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    loaded = tf.saved_model.load(sys.argv[1])
    translate = loaded.signatures["translate"]
    batch = [b"go .", b"i lost .", b"", b"word " * 5000, b"zzyzx qwerty blorf", b"caf\\xc3\\xa9 \\xff\\xfe !"]
    result = {"batch": [t.decode("utf-8") for t in translate(text=tf.constant(batch))["translation"].numpy()]}
    result["scalar"] = loaded.translate(tf.constant("go ."))["translation"].numpy().decode("utf-8")
    result["empty_shape"] = loaded.translate(tf.constant([], tf.string))["translation"].shape.as_list()
    matrix = tf.constant([["go .", "a"], ["b", "c"]])
    result["matrix_shape"] = loaded.translate(matrix)["translation"].shape.as_list()
    try:
        loaded.translate(tf.constant([1, 2]))
        result["ints"] = "accepted"
    except (TypeError, ValueError) as error:
        result["ints"] = type(error).__name__
    result["imported"] = sorted(m for m in sys.modules if m.split(".")[0] in ("zoo", "ops", "recipes"))
    print(json.dumps(result))
    """
)


@pytest.mark.slow
def test_saved_model_runs_without_zoo_and_survives_bad_input(finished_run):
    output, model = finished_run
    completed = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_ZOO, str(output / "saved_model")],
        capture_output=True,
        text=True,
        timeout=600,
        cwd="/",
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["imported"] == []
    assert len(result["batch"]) == 6 and all(isinstance(text, str) for text in result["batch"])
    assert result["scalar"] == result["batch"][0]
    assert result["empty_shape"] == [0]
    assert result["matrix_shape"] == [2, 2]
    assert result["ints"] in ("TypeError", "ValueError")
    # The exported graph translates as the in-process model does.
    source_vocab = Vocab.load(output / "source_vocab.txt", SEQUENCE_RESERVED)
    target_vocab = Vocab.load(output / "target_vocab.txt", SEQUENCE_RESERVED)
    in_process = Translator(model, source_vocab, target_vocab, 8, 20)
    assert in_process(["go .", "i lost ."]) == result["batch"][:2]


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--attention", "--cell", "lstm"],
            r"error: --attention needs --cell gru \(the attention decoder is a GRU stack\)",
        ),
        (["--max-length", "1"], "error: argument --max-length: expected an integer >= 2, got 1"),
        (
            ["--label-smoothing", "1"],
            r"error: argument --label-smoothing: expected a fraction in \[0, 1\), got 1",
        ),
        (
            ["--test-fraction", "0.5", "--val-fraction", "0.5"],
            "error: --test-fraction 0.5 and --validation-fraction 0.5 leave no pairs",
        ),
    ],
)
def test_bad_flags_are_refused_with_the_reason(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        translation.main([*argv, "--output-dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "run").exists()  # refused before anything is written
