"""Tests of recipes.translation: in-graph preprocessing, the end-to-end run on a slice of the real
fra.txt, resume, and the exported SavedModel loaded in a process that never imports zoo."""

import json
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

from recipes import translation
from zoo.text import preprocess_nmt, read_sentence_pairs

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


def test_course_tokens_match_preprocess_nmt(data_file):
    sources, targets = read_sentence_pairs(data_file("fra-eng/fra.txt"), max_pairs=500, preprocess=False)
    crafted = ["Hé\u202f! Ça va\u00a0?", "Wait...", "a ,b.c!d?", "  spaced   out  ", "", "ÉCOLE, École."]
    texts = sources + targets + crafted
    tokens = translation.course_tokens(tf.constant(texts)).to_list()
    assert [[token.decode("utf-8") for token in row] for row in tokens] == [
        preprocess_nmt(t).split() for t in texts
    ]


def test_course_tokens_replace_undecodable_bytes():
    tokens = translation.course_tokens(tf.constant([b"caf\xc3 \xff!"])).to_list()
    assert tokens == [["caf\ufffd".encode(), "\ufffd".encode(), b"!"]]


def test_split_is_fixed_disjoint_complete_and_keeps_a_sentences_translations_together():
    sources = [f"sentence {index % 400}" for index in range(1000)]  # 400 sentences, 2-3 pairs each
    train, val, test = translation.split_pairs(sources, 0.05, 0.05, seed=0)
    again = translation.split_pairs(sources, 0.05, 0.05, seed=0)
    assert [list(part) for part in again] == [list(train), list(val), list(test)]
    assert sorted([*train, *val, *test]) == list(range(1000))
    sentences = [{sources[i] for i in part} for part in (train, val, test)]
    assert (len(sentences[1]), len(sentences[2])) == (20, 20)  # 5% of the distinct sentences each
    assert not (sentences[0] & sentences[1] or sentences[0] & sentences[2] or sentences[1] & sentences[2])
    with pytest.raises(translation.common.RecipeError, match="too few"):
        translation.split_pairs(["a", "a", "b"], 0.4, 0.4, seed=0)


def test_evaluate_scores_each_sentence_against_all_its_translations():
    def translator(sentences):
        return [{"go .": "va !", "run !": "file !"}[s] for s in sentences]

    sources = ["go .", "go .", "run !"]
    references = ["marche .", "va !", "cours !"]
    scores, translations = translation.evaluate(translator, sources, references)
    assert translations == ["va !", "va !", "file !"]
    assert scores["exact"] == 0.5  # "go ." matches one of its references, "run !" none
    assert scores["corpus_bleu"] == translation.corpus_bleu(
        ["va !", "file !"], [("marche .", "va !"), ("cours !",)]
    )
    assert scores["corpus_bleu_single_reference"] == translation.corpus_bleu(translations, references)


@pytest.fixture(scope="module")
def finished_run(data_file, tmp_path_factory):
    output = tmp_path_factory.mktemp("translation") / "run"
    argv = ["--data", str(data_file("fra-eng/fra.txt")), "--output-dir", str(output), "--attention", *TINY]
    model = translation.main(argv)
    return output, model


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


def test_resume_continues_to_more_epochs(finished_run, data_file, tmp_path):
    import shutil

    output, _ = finished_run
    resumed = tmp_path / "resumed"
    shutil.copytree(output, resumed)
    translation.main(["--resume", str(resumed), "--epochs", "2"])
    epochs = json.loads((resumed / "metrics.json").read_text())["epochs"]
    assert [entry["epoch"] for entry in epochs] == [1, 2]


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
    assert "nope.txt" in capsys.readouterr().err


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


def test_saved_model_runs_without_zoo_and_survives_bad_input(finished_run):
    output, model = finished_run
    completed = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_ZOO, str(output / "saved_model")],
        capture_output=True,
        text=True,
        timeout=120,
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
    source_vocab = translation.Vocab.load(output / "source_vocab.txt", translation.SEQUENCE_RESERVED)
    target_vocab = translation.Vocab.load(output / "target_vocab.txt", translation.SEQUENCE_RESERVED)
    in_process = translation.Translator(model, source_vocab, target_vocab, 8, 20)
    assert in_process(["go .", "i lost ."]) == result["batch"][:2]


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
    import keras

    model = keras.Sequential([keras.layers.Dense(1)])
    clock = FakeClock()
    budget = translation.TimeBudget(minutes=milliseconds / 60_000, clock=clock)
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
