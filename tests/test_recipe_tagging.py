"""recipes.tagging end to end on slices of UD English EWT (CoNLL-U) and WNUT-17 (CoNLL), and its export."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from recipes import tagging
from zoo.models import MultiTaskTagger, SequenceTagger

TINY_MODEL = [
    "--epochs",
    "1",
    "--batch-size",
    "16",
    "--embedding-dim",
    "8",
    "--units",
    "8",
    "--num-layers",
    "1",
    "--char-embedding-dim",
    "4",
    "--char-filters",
    "4",
]

# A fresh interpreter that never imports zoo: the SavedModel must stand on plain TensorFlow.
LOAD_AND_TAG = r"""
import json, sys
import tensorflow as tf
tag = tf.saved_model.load(sys.argv[1]).signatures["tag"]
sentences = ["The cat sat on the mat .", "", "word " * 5000, "zzqx unknownwordzz", b"\xff\xfe bad \xc3 bytes"]
out = tag(sentences=tf.constant(sentences))
print(json.dumps({"tokens": [[t.decode() for t in row] for row in out["tokens"].numpy()],
                  "tags": [[t.decode() for t in row] for row in out["tags"].numpy()],
                  "zoo_imported": any(name == "zoo" or name.startswith("zoo.") for name in sys.modules)}))
"""


def tag_in_subprocess(saved_model):
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_TAG, str(saved_model)],
        capture_output=True,
        text=True,
        cwd="/",
        env=environment,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def first_sentences(source, target, count):
    """Copies the first `count` blank-line-separated sentences of a CoNLL(-U) file."""
    blocks = source.read_text(encoding="utf-8").split("\n\n")[:count]
    target.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return target


def test_conllu_softmax_end_to_end_and_exported_tag(data_file, tmp_path):
    train = first_sentences(
        data_file("ud_english_ewt/en_ewt-ud-train.subset.conllu"), tmp_path / "train.conllu", 60
    )
    dev = first_sentences(data_file("ud_english_ewt/en_ewt-ud-dev.conllu"), tmp_path / "dev.conllu", 20)
    output_dir = tmp_path / "run"
    result = tagging.main(
        [
            "--data",
            str(train),
            "--dev",
            str(dev),
            "--output",
            "softmax",
            "--ensemble",
            "2",
            "--output-dir",
            str(output_dir),
            *TINY_MODEL,
        ]
    )
    for name in ("model.keras", "metrics.json", "curves.png", "saved_model", "members/1/model.keras"):
        assert (output_dir / name).exists(), name
    final = json.loads((output_dir / "metrics.json").read_text())["final"]
    assert final["members"] == 2
    assert 0.0 <= final["dev_token_accuracy"] <= 1.0
    assert final["dev_token_accuracy"] == pytest.approx(result["token_accuracy"])
    assert "dev_entity_f1" not in final  # UPOS tags are not BIO
    assert "NOUN" in final["tag_names"]

    out = tag_in_subprocess(output_dir / "saved_model")
    assert not out["zoo_imported"]
    upos = set(final["tag_names"])
    tokens, tags = out["tokens"], out["tags"]
    assert tokens[0][:7] == "The cat sat on the mat .".split()
    assert all(tag in upos for tag in tags[0][:7]) and set(tags[0][7:]) <= {""}
    assert set(tags[1]) == {""}  # empty sentence: no token, no tag
    assert sum(tag != "" for tag in tags[2]) == 1000  # cut to --max-tokens
    assert all(tag in upos for tag in tags[3][:2]) and all(tag in upos for tag in tags[4][:3])


def test_conll_crf_reports_entity_f1(data_file, tmp_path):
    train = first_sentences(data_file("wnut17/wnut17train.conll"), tmp_path / "train.conll", 60)
    dev = first_sentences(data_file("wnut17/emerging.dev.conll"), tmp_path / "dev.conll", 20)
    result = tagging.main(
        [
            "--data",
            str(train),
            "--dev",
            str(dev),
            "--output",
            "crf",
            "--word-shape",
            "--output-dir",
            str(tmp_path / "run"),
            *TINY_MODEL,
        ]
    )
    for key in ("token_accuracy", "entity_precision", "entity_recall", "entity_f1"):
        assert 0.0 <= result[key] <= 1.0
    assert result["entity_support"] > 0
    final = json.loads((tmp_path / "run" / "metrics.json").read_text())["final"]
    assert final["dev_entity_f1"] == pytest.approx(result["entity_f1"])
    # The export computes the word shapes in plain TensorFlow too.
    out = tag_in_subprocess(tmp_path / "run" / "saved_model")
    assert all(tag in final["tag_names"] for tag in out["tags"][0][:7])


@pytest.mark.parametrize("members", [1, 2])
def test_auxiliary_task_trains_beside_the_main_one_and_is_left_out_of_the_export(
    data_file, tmp_path, members
):
    train = first_sentences(data_file("wnut17/wnut17train.conll"), tmp_path / "train.conll", 60)
    dev = first_sentences(data_file("wnut17/emerging.dev.conll"), tmp_path / "dev.conll", 20)
    auxiliary = first_sentences(
        data_file("ud_english_ewt/en_ewt-ud-train.subset.conllu"), tmp_path / "aux.conllu", 40
    )
    output_dir = tmp_path / "run"
    result = tagging.main(
        [
            "--data",
            str(train),
            "--dev",
            str(dev),
            "--output",
            "softmax",
            "--auxiliary",
            str(auxiliary),
            "--ensemble",
            str(members),
            "--output-dir",
            str(output_dir),
            *TINY_MODEL,
        ]
    )
    metrics = json.loads((output_dir / "metrics.json").read_text())
    epoch = metrics["epochs"][0]
    assert epoch["auxiliary_loss"] > 0 and epoch["tags_loss"] > 0
    assert epoch["val_auxiliary_loss"] == 0  # validation holds main-task sentences only
    assert 0.0 <= epoch["val_tags_accuracy"] <= 1.0
    assert metrics["final"]["dev_entity_f1"] == pytest.approx(result["entity_f1"])
    trained = output_dir / ("members/1/model.keras" if members > 1 else "model.keras")
    assert isinstance(keras.models.load_model(trained), MultiTaskTagger)
    if members > 1:  # the ensemble averages the members' main taggers
        ensemble = keras.models.load_model(output_dir / "model.keras")
        assert [type(member) for member in ensemble.members] == [SequenceTagger] * members
    out = tag_in_subprocess(output_dir / "saved_model")
    assert all(tag in metrics["final"]["tag_names"] for tag in out["tags"][0][:7])  # BIO tags, no UPOS


def test_multitask_batches_mix_whole_batches_of_each_task():
    words = tagging.zoo_text.Vocab([["a", "b"]], reserved_tokens=tagging.zoo_text.SEQUENCE_RESERVED)
    encoder = tagging.TokenEncoder(words, None, lowercase=True, max_chars=5)
    bio = tagging.zoo_text.Vocab([["O", "B-person"]], reserved_tokens=(), unk_token=None)
    upos = tagging.zoo_text.Vocab([["NOUN", "DET", "VERB"]], reserved_tokens=(), unk_token=None)
    main = tagging.tagging_dataset([["a", "b"]] * 5, [["O", "B-person"]] * 5, encoder, bio, 2, True, 0, True)
    auxiliary = tagging.tagging_dataset(
        [["b", "a", "a"]] * 7, [["DET", "NOUN", "VERB"]] * 7, encoder, upos, 2, True, 0, True
    )
    mixed = tagging.multitask_batches(main, auxiliary, auxiliary_weight=0.5, seed=0)
    assert int(mixed.cardinality()) == 3 + 4
    tasks = []
    for _, tag_ids, weights in mixed:
        task = "tags" if weights["tags"].numpy().any() else "auxiliary"
        other = "auxiliary" if task == "tags" else "tags"
        assert not weights[other].numpy().any() and not tag_ids[other].numpy().any()
        expected = ("O", "B-person") if task == "tags" else ("DET", "NOUN", "VERB")
        expected_ids = [(bio if task == "tags" else upos).token_to_idx[tag] for tag in expected]
        assert (tag_ids[task].numpy() == expected_ids).all()
        assert set(weights[task].numpy().ravel()) == ({1.0} if task == "tags" else {0.5})
        tasks.append(task)
    assert tasks.count("tags") == 3 and tasks.count("auxiliary") == 4
    validation = next(iter(tagging.multitask_batches(main)))
    assert not validation[2]["auxiliary"].numpy().any()


def test_auxiliary_needs_softmax(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tagging.main(
            [
                "--corpus",
                "wnut17",
                "--output",
                "crf",
                "--auxiliary",
                "ud-ewt",
                "--output-dir",
                str(tmp_path / "run"),
            ]
        )
    assert exit_info.value.code == 2
    assert "--auxiliary none" in capsys.readouterr().err


def test_missing_auxiliary_file_is_a_one_line_error(data_file, tmp_path, capsys):
    train = first_sentences(data_file("wnut17/wnut17train.conll"), tmp_path / "train.conll", 20)
    with pytest.raises(SystemExit) as exit_info:
        tagging.main(
            [
                "--data",
                str(train),
                "--dev",
                str(train),
                "--output",
                "softmax",
                "--auxiliary",
                str(tmp_path / "none.conllu"),
                "--output-dir",
                str(tmp_path / "run"),
            ]
        )
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "none.conllu" in error and "\n" not in error


def test_ensemble_needs_softmax(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tagging.main(
            [
                "--corpus",
                "wnut17",
                "--output",
                "crf",
                "--ensemble",
                "3",
                "--output-dir",
                str(tmp_path / "run"),
            ]
        )
    assert exit_info.value.code == 2
    assert "--output softmax" in capsys.readouterr().err


def test_missing_file_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tagging.main(["--data", str(tmp_path / "none.conll"), "--output-dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: --data")


def test_word_dropout_replaces_only_real_words_by_unk():
    vocab = tagging.zoo_text.Vocab([["a", "b"]], reserved_tokens=tagging.zoo_text.SEQUENCE_RESERVED)
    tags = tagging.zoo_text.Vocab([["X"]], reserved_tokens=(), unk_token=None)
    encoder = tagging.TokenEncoder(vocab, None, lowercase=True, max_chars=5)
    sentences = [["a", "b", "a"], ["b"]]
    labels = [["X"] * 3, ["X"]]
    kept = next(iter(tagging.tagging_dataset(sentences, labels, encoder, tags, 2, False, 0, False)))[
        0
    ].numpy()
    dropped = next(
        iter(tagging.tagging_dataset(sentences, labels, encoder, tags, 2, False, 0, False, word_dropout=1.0))
    )[0].numpy()
    assert kept.tolist() == [[vocab.id_of("a"), vocab.id_of("b"), vocab.id_of("a")], [vocab.id_of("b"), 0, 0]]
    assert dropped.tolist() == [[vocab.unk_id] * 3, [vocab.unk_id, 0, 0]]


class FixedTagger:
    """Stands in for a trained softmax tagger: returns the same one-hot tag probabilities for any inputs."""

    def __init__(self, tag_ids, num_tags):
        self.probabilities = tagging.tf.one_hot(tag_ids, num_tags)

    def __call__(self, inputs, training=False):
        return self.probabilities


def test_validation_entity_f1_scores_exact_spans_into_the_logs():
    tag_vocab = tagging.zoo_text.Vocab(
        [["O", "B-person", "I-person", "B-location"]], reserved_tokens=(), unk_token=None
    )
    sentences = [["Ann", "Lee", "in", "Rome"], ["Bob", "left"]]
    gold = [["B-person", "I-person", "O", "B-location"], ["B-person", "O"]]
    # Found: "Ann Lee" (right), "Rome" as a person (wrong type), "Bob" missed, "left" spurious.
    guessed = [["B-person", "I-person", "O", "B-person"], ["O", "B-location"]]
    ids = [tag_vocab.to_ids(row + ["O"] * (4 - len(row))) for row in guessed]  # padded like a batch
    callback = tagging.ValidationEntityF1([((None,), None)], sentences, gold, tag_vocab)
    callback.set_model(FixedTagger(ids, len(tag_vocab)))
    logs = {}
    callback.on_epoch_end(0, logs)
    precision, recall = 1 / 3, 1 / 3
    assert logs["val_entity_f1"] == pytest.approx(2 * precision * recall / (precision + recall))


def drive_best_epoch_selection(callbacks, history):
    """Runs `callbacks` over epochs whose logs are `history`, the model's weight set to the epoch number."""
    model = tagging.keras.Sequential([tagging.keras.layers.Dense(1, use_bias=False)])
    model.build((None, 1))
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    epochs_run = 0
    for epoch, logs in enumerate(history):
        model.set_weights([np.full((1, 1), epoch + 1.0)])
        for callback in callbacks:
            callback.on_epoch_end(epoch, dict(logs))
        epochs_run += 1
        if getattr(model, "stop_training", False):
            break
    for callback in callbacks:
        callback.on_train_end()
    return int(model.get_weights()[0][0, 0]), epochs_run


# Token accuracy keeps rising (more O guesses) while entity F1 peaks at epoch 2.
HISTORY = [
    {"val_accuracy": 0.90, "val_entity_f1": 0.10},
    {"val_accuracy": 0.91, "val_entity_f1": 0.30},
    {"val_accuracy": 0.92, "val_entity_f1": 0.25},
    {"val_accuracy": 0.93, "val_entity_f1": 0.20},
    {"val_accuracy": 0.94, "val_entity_f1": 0.28},
    {"val_accuracy": 0.95, "val_entity_f1": 0.29},
]


def test_bio_tags_keep_the_epoch_of_the_best_validation_entity_f1():
    callbacks = tagging.best_epoch_callbacks(3, ["O", "B-person", "I-person"], validation=(None,) * 4)
    assert isinstance(callbacks[0], tagging.ValidationEntityF1)
    # The F1 callback would tag real data; the history already holds its figure.
    best, epochs_run = drive_best_epoch_selection(callbacks[1:], HISTORY)
    assert best == 2
    assert epochs_run == 5  # epochs 3, 4 and 5 without a better F1


def test_other_tags_keep_the_epoch_of_the_best_validation_accuracy():
    callbacks = tagging.best_epoch_callbacks(3, ["NOUN", "VERB"], validation=(None,) * 4)
    assert not any(isinstance(callback, tagging.ValidationEntityF1) for callback in callbacks)
    assert drive_best_epoch_selection(callbacks, HISTORY) == (6, 6)
    assert tagging.best_epoch_callbacks(0, ["O", "B-person"], validation=(None,) * 4) == []


def reference_shape(token):
    """The shape `word_shapes` must give, written with Python's str methods."""
    if token.lower().startswith(("http://", "https://", "www.")):
        return "<shape:url>"
    if len(token) > 1 and token[0] in "@#":
        return "<shape:handle>"
    if sum(c.isupper() for c in token) >= 2 and all(c.isupper() or c.isdigit() for c in token):
        return "<shape:caps>"
    if token[0].isupper():
        return "<shape:capitalized>"
    if token[0].islower():
        return "<shape:lower>"
    if token[0].isdigit():
        return "<shape:number>"
    return "<shape:other>"


def test_word_shapes_match_a_python_reference():
    tokens = [
        "Hello",
        "HELLO",
        "U2",
        "UK2",
        "hello",
        "iPhone",
        "@bob",
        "#tag",
        "@",
        "HTTP://x.co",
        "www.a.b",
        "2017",
        "3D",
        ".",
        "'s",
        "McDonald",
        "ÉCOLE",
        "été",
        "A",
        "😂",
        "Ünï",
    ]
    shapes = [shape.decode() for shape in tagging.word_shapes(tokens).numpy()]
    assert shapes == [reference_shape(token) for token in tokens]
    assert set(shapes) <= set(tagging.SHAPE_TOKENS)


def test_word_shape_is_the_first_character_before_the_cut_characters():
    reserved = tagging.zoo_text.SEQUENCE_RESERVED
    words = tagging.zoo_text.Vocab([["paris"]], reserved_tokens=reserved)
    chars = tagging.zoo_text.Vocab([list("Paris")], reserved_tokens=reserved + tagging.SHAPE_TOKENS)
    encoder = tagging.TokenEncoder(words, chars, lowercase=True, max_chars=3, word_shape=True)
    (word_ids, char_ids), mask = encoder(tagging.tf.ragged.constant([["Paris", "@x"], ["NYC"]]))
    expected = [
        [["<shape:capitalized>", "P", "a", "r"], ["<shape:handle>", "@", "x", "<pad>"]],
        [["<shape:caps>", "N", "Y", "C"], ["<pad>"] * 4],
    ]
    assert char_ids.numpy().tolist() == [[chars.to_ids(word) for word in row] for row in expected]
    assert word_ids.numpy().tolist() == [[words.id_of("paris"), words.unk_id], [words.unk_id, 0]]
    plain = tagging.TokenEncoder(words, chars, lowercase=True, max_chars=3)
    assert plain(tagging.tf.ragged.constant([["Paris"]]))[0][1].numpy().tolist() == [
        [chars.to_ids(list("Par"))]
    ]
    with pytest.raises(ValueError, match="SHAPE_TOKENS"):
        tagging.TokenEncoder(
            words, tagging.zoo_text.Vocab([list("ab")], reserved_tokens=reserved), True, 3, word_shape=True
        )


def test_corpus_defaults_apply_unless_the_flag_is_given():
    assert tagging.parse_args(["--corpus", "wnut17", "--output-dir", "x"]).word_shape is True
    assert (
        tagging.parse_args(["--corpus", "wnut17", "--no-word-shape", "--output-dir", "x"]).word_shape is False
    )
    assert tagging.parse_args(["--output-dir", "x"]).word_shape is False
    assert tagging.parse_args(["--corpus", "wnut17", "--output-dir", "x"]).entity_weight == 5.0
    assert tagging.parse_args(["--corpus", "ud-ewt", "--output-dir", "x"]).entity_weight == 1.0
    wnut = tagging.parse_args(["--corpus", "wnut17", "--output-dir", "x"])
    assert (wnut.output, wnut.auxiliary, wnut.ensemble) == ("softmax", "ud-ewt", 5)
    wnut_crf = tagging.parse_args(["--corpus", "wnut17", "--output", "crf", "--output-dir", "x"])
    assert (wnut_crf.auxiliary, wnut_crf.ensemble) == (tagging.NO_AUXILIARY, 1)
    ud = tagging.parse_args(["--corpus", "ud-ewt", "--output-dir", "x"])
    assert (ud.output, ud.auxiliary, ud.ensemble) == ("crf", tagging.NO_AUXILIARY, 1)


def test_entity_weight_weighs_entity_tokens_or_sentences():
    words = tagging.zoo_text.Vocab([["a"]], reserved_tokens=tagging.zoo_text.SEQUENCE_RESERVED)
    tags = tagging.zoo_text.Vocab([["O", "B-person"]], reserved_tokens=(), unk_token=None)
    encoder = tagging.TokenEncoder(words, None, lowercase=True, max_chars=5)
    sentences = [["a", "Ann", "a"], ["a"]]
    labels = [["O", "B-person", "O"], ["O"]]

    def weights(with_mask_weights):
        batch = next(
            iter(
                tagging.tagging_dataset(
                    sentences, labels, encoder, tags, 2, False, 0, with_mask_weights, entity_weight=4.0
                )
            )
        )
        return batch[2].numpy().tolist()

    assert weights(True) == [[1.0, 4.0, 1.0], [1.0, 0.0, 0.0]]  # per token, padding 0
    assert weights(False) == [4.0, 1.0]  # per sentence, for the CRF
    unweighted = next(iter(tagging.tagging_dataset(sentences, labels, encoder, tags, 2, False, 0, False)))
    assert len(unweighted) == 2
