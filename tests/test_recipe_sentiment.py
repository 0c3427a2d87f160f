"""recipes.sentiment: its data handling, and (slow tier) end to end on a slice of the IMDb subset, on
mocked TFDS, and its exported `classify` loaded without zoo."""

import json
import os
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from recipes import sentiment
from zoo.models import AveragedEnsemble, SequenceClassifier, TextClassifier

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY_MODEL = [
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "--max-length",
    "40",
    "--embedding-dim",
    "8",
    "--units",
    "8",
    "--ensemble",
    "1",
]

# Runs in a fresh interpreter that never imports zoo: the SavedModel must stand on plain TensorFlow.
LOAD_AND_CLASSIFY = r"""
import json, sys
import tensorflow as tf
if sys.argv[2] == "bpe":
    import tensorflow_text  # registers the sentencepiece op
classify = tf.saved_model.load(sys.argv[1]).signatures["classify"]
texts = ["A wonderful film.<br />Loved it", "", "great " * 20000, "zzqx unknownwordzz",
         b"\xff\xfe not utf-8 \xc3"]
out = classify(texts=tf.constant(texts))
print(json.dumps({"probabilities": out["probabilities"].numpy().tolist(),
                  "labels": [label.decode() for label in out["label"].numpy()],
                  "zoo_imported": any(name == "zoo" or name.startswith("zoo.") for name in sys.modules)}))
"""


def classify_in_subprocess(saved_model, tokenizer):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_CLASSIFY, str(saved_model), tokenizer],
        capture_output=True,
        text=True,
        cwd="/",
        env=environment,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def imdb_slice(data_file, tmp_path):
    """The header and 60 reviews of the IMDb subset (lines split on \\n only: some reviews hold U+0085)."""
    lines = data_file("imdb_subset/train.tsv").read_bytes().split(b"\n")
    path = tmp_path / "imdb_slice.tsv"
    path.write_bytes(b"\n".join(lines[:61]) + b"\n")
    return path


@pytest.mark.slow
def test_recipe_end_to_end_and_exported_classify(imdb_slice, tmp_path):
    output_dir = tmp_path / "run"
    run = sentiment.main(
        ["--data", str(imdb_slice), "--output-dir", str(output_dir), *TINY_MODEL, "--ensemble", "2"]
    )
    for name in (
        "model.keras",
        "metrics.json",
        "curves.png",
        "config.json",
        "saved_model",
        "members/0/model.keras",
        "members/1/checkpoints/state.json",
    ):
        assert (output_dir / name).exists(), name
    metrics = json.loads((output_dir / "metrics.json").read_text())
    final = metrics["final"]
    assert final["test_examples"] == 12  # 20% of 60, never trained on
    assert run.final == final and run.output_dir == output_dir
    assert 0.0 <= final["test_accuracy"] <= 1.0
    assert final["label_names"] == ["0", "1"]
    assert (final["members"], final["epochs"]) == (2, [1, 1])
    assert [entry["member"] for entry in metrics["epochs"]] == [0, 1]
    assert run.history["member"] == [0, 1]
    ensemble = keras.models.load_model(output_dir / "model.keras")
    assert isinstance(ensemble, AveragedEnsemble) and len(ensemble.members) == 2
    check_classify(output_dir / "saved_model", "word")

    # model.tflite, fed the ids of vocab.txt, gives the ensemble's probabilities.
    from ai_edge_litert.interpreter import Interpreter

    vocab = zoo.text.Vocab.load(output_dir / "vocab.txt", reserved_tokens=zoo.text.SEQUENCE_RESERVED)
    ids = np.asarray([vocab.to_ids("a wonderful film i loved it".split())], np.int32)
    classify = Interpreter(model_path=str(output_dir / "model.tflite")).get_signature_runner()
    np.testing.assert_allclose(classify(token_ids=ids)["output"], ensemble(ids), atol=1e-5)
    assert final["litert_bytes"] == (output_dir / "model.tflite").stat().st_size


@pytest.mark.slow
def test_ensemble_resume_keeps_finished_members_and_continues_the_interrupted_one(imdb_slice, tmp_path):
    output_dir = tmp_path / "run"
    flags = ["--data", str(imdb_slice), *TINY_MODEL, "--ensemble", "2", "--patience", "0", "--epochs", "2"]
    sentiment.main([*flags, "--output-dir", str(output_dir)])
    member_0_weights = keras.models.load_model(output_dir / "members/0/model.keras").get_weights()
    # As if killed after member 1's first epoch: its checkpoint is there, its model.keras is not.
    (output_dir / "members/1/model.keras").unlink()
    state_path = output_dir / "members/1/checkpoints/state.json"
    state = json.loads(state_path.read_text())
    state_path.write_text(json.dumps({**state, "epoch": 1, "history": state["history"][:1]}))
    sentiment.main([*flags, "--resume", str(output_dir)])
    final = json.loads((output_dir / "metrics.json").read_text())["final"]
    assert final["epochs"] == [2, 2]
    for kept, loaded in zip(
        member_0_weights, keras.models.load_model(output_dir / "members/0/model.keras").get_weights()
    ):
        np.testing.assert_array_equal(kept, loaded)  # finished: loaded, not trained again

    # A larger --epochs extends every member, the finished ones included.
    sentiment.main([*flags, "--resume", str(output_dir), "--epochs", "3"])
    final = json.loads((output_dir / "metrics.json").read_text())["final"]
    assert final["epochs"] == [3, 3]


def check_classify(saved_model, tokenizer):
    out = classify_in_subprocess(saved_model, tokenizer)
    assert not out["zoo_imported"]
    probabilities = np.array(out["probabilities"])
    assert probabilities.shape == (5, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert set(out["labels"]) <= {"0", "1"}


@pytest.mark.slow
def test_a_modern_cell_trains_serves_without_zoo_and_converts(imdb_slice, tmp_path):
    output_dir = tmp_path / "run"
    run = sentiment.main(
        ["--data", str(imdb_slice), "--cell", "mingru", "--output-dir", str(output_dir), *TINY_MODEL]
    )
    assert run.model.cell_type == "mingru"
    assert keras.models.load_model(output_dir / "model.keras").cell_type == "mingru"
    check_classify(output_dir / "saved_model", "word")
    from ai_edge_litert.interpreter import Interpreter

    vocab = zoo.text.Vocab.load(output_dir / "vocab.txt", reserved_tokens=zoo.text.SEQUENCE_RESERVED)
    ids = np.asarray([vocab.to_ids("a wonderful film i loved it".split())], np.int32)
    classify = Interpreter(model_path=str(output_dir / "model.tflite")).get_signature_runner()
    np.testing.assert_allclose(classify(token_ids=ids)["output"], run.model(ids), atol=1e-5)


@pytest.mark.slow
def test_bpe_export_classifies_raw_strings(imdb_slice, tmp_path):
    args = sentiment.build_parser().parse_args(
        ["--data", str(imdb_slice), "--tokenizer", "bpe", "--bpe-vocab-size", "300"]
    )
    texts, _ = sentiment.load_examples(args)
    tokenizer, vocab = sentiment.build_tokenizer(args, texts)
    assert vocab is None and tokenizer.tokenizer.vocab_size == 300
    model = SequenceClassifier(300, 2, embedding_dim=4, units=4, num_layers=1)
    classifier = TextClassifier(model, tokenizer, vocab, ["0", "1"], max_length=50)
    in_process = classifier.classify(tf.constant(["A wonderful film.<br />Loved it", ""]))["probabilities"]
    ids = tf.constant([tokenizer.tokenize(tf.constant("A wonderful film.<br />Loved it")).numpy().tolist()])
    np.testing.assert_allclose(in_process[0], model(ids)[0], rtol=1e-6)
    zoo.export.saved_model(classifier, tmp_path / "saved_model", {"classify": classifier.classify})
    check_classify(tmp_path / "saved_model", "bpe")


def test_csv_with_chosen_columns(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('stars,review\nbad,"awful, boring"\ngood,"fine, ""great"""\n', encoding="utf-8")
    args = sentiment.build_parser().parse_args(
        ["--data", str(path), "--text-column", "review", "--label-column", "stars"]
    )
    texts, labels = sentiment.load_examples(args)
    assert texts == ["awful, boring", 'fine, "great"'] and labels == ["bad", "good"]
    assert sentiment.label_vocabulary(labels) == (["bad", "good"], [0, 1])


@pytest.mark.slow
def test_tfds_imdb_reviews_with_mock_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40):
        run = sentiment.main(["--tfds", "--output-dir", str(tmp_path / "run"), *TINY_MODEL])
    assert 0.0 <= run.final["test_accuracy"] <= 1.0
    assert (tmp_path / "run" / "saved_model").is_dir()


def test_missing_file_and_bad_columns_are_one_line_errors(tmp_path, imdb_slice, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sentiment.main(["--data", str(tmp_path / "missing.tsv"), "--output-dir", str(tmp_path / "a")])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        sentiment.main(
            ["--data", str(imdb_slice), "--text-column", "body", "--output-dir", str(tmp_path / "b")]
        )
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[0] == f"error: --data {tmp_path / 'missing.tsv'}: no such file or folder"
    assert re.fullmatch(
        r"error: --data .*imdb_slice\.tsv, line 1: no column 'body' in the header \[.*\]: "
        r"pass --text-column NAME",
        errors[1],
    ), errors[1]


def test_split_fractions_are_checked_by_the_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sentiment.main(["--test-fraction", "1.5", "--output-dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert "argument --test-fraction: expected a fraction in (0, 1), got 1.5" in capsys.readouterr().err


@pytest.fixture
def unlabelled_reviews(data_file, tmp_path):
    """120 of the unlabelled IMDb reviews, one per line."""
    lines = data_file("imdb_unlabeled/reviews.txt").read_text(encoding="utf-8").split("\n")[:120]
    path = tmp_path / "unlabelled.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_pretrained_language_model_starts_the_classifier_and_is_reused(
    imdb_slice, unlabelled_reviews, tmp_path
):
    tiny = [*TINY_MODEL, "--epochs", "2", "--pretrain-batch-size", "8", "--pretrain-num-steps", "20"]
    run = sentiment.main(
        [
            "--data",
            str(imdb_slice),
            "--pretrain-data",
            str(unlabelled_reviews),
            "--output-dir",
            str(tmp_path / "a"),
        ]
        + tiny
    )
    lm_dir = tmp_path / "a" / "pretrained_lm"
    for name in ("model.keras", "vocab.txt", "metrics.json", "checkpoints/state.json"):
        assert (lm_dir / name).exists(), name
    language_model = keras.models.load_model(lm_dir / "model.keras", compile=False)
    vocab = zoo.text.Vocab.load(lm_dir / "vocab.txt", reserved_tokens=zoo.text.SEQUENCE_RESERVED)
    assert language_model.vocab_size == len(vocab) == run.final["vocab_size"]
    # The default pretraining is sequential: a stateful model, its state carried from batch to batch.
    assert language_model.stateful
    # The vocabulary covers the unlabelled text, not only the 60 labelled reviews.
    labelled_words = set(zoo.text.WordTokenizer("course").tokenize(imdb_slice.read_text(encoding="utf-8")))
    unlabelled_words = set(zoo.text.WordTokenizer("course").tokenize(unlabelled_reviews.read_text("utf-8")))
    only_unlabelled = set(vocab.idx_to_token) - labelled_words
    assert only_unlabelled and only_unlabelled - {"<pad>", "<unk>", "<bos>", "<eos>"} <= unlabelled_words
    assert len(only_unlabelled) > 100
    classifier = keras.models.load_model(tmp_path / "a" / "model.keras")
    assert isinstance(classifier, SequenceClassifier)
    assert (classifier.pooling, classifier.bidirectional) == ("last_max_mean", False)
    check_classify(tmp_path / "a" / "saved_model", "word")

    # A later run starts from the same language model, with its vocabulary, and pretrains nothing.
    again = sentiment.main(
        ["--data", str(imdb_slice), "--pretrained-lm", str(lm_dir), "--output-dir", str(tmp_path / "b")]
        + TINY_MODEL
    )
    assert again.final["vocab_size"] == len(vocab)
    assert not (tmp_path / "b" / "pretrained_lm").exists()
    assert (tmp_path / "b" / "vocab.txt").read_bytes() == (lm_dir / "vocab.txt").read_bytes()


def test_transfer_flags_are_checked(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        sentiment.main(
            [
                "--pretrain-data",
                "a.txt",
                "--pretrained-lm",
                str(tmp_path),
                "--output-dir",
                str(tmp_path / "r"),
            ]
        )
    assert exit_info.value.code == 2
    assert "--pretrain-data trains a language model, --pretrained-lm reuses one" in capsys.readouterr().err
    with pytest.raises(sentiment.RecipeError, match="no model.keras"):
        sentiment.load_pretrained(tmp_path)
