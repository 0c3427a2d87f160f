"""recipes.tagging: its flags and best-epoch choice, and (slow tier) end to end on slices of UD English
EWT (CoNLL-U) and WNUT-17 (CoNLL), with its export."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conllu_slices import first_sentences

from recipes import flags, tagging
from recipes.recipe import RecipeError
from zoo import text as zoo_text
from zoo.callbacks import ValidationEntityF1
from zoo.models import LanguageModel, MultiTaskTagger, SequenceTagger

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
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_conllu_softmax_end_to_end_and_exported_tag(data_file, tmp_path):
    train = first_sentences(
        data_file("ud_english_ewt/en_ewt-ud-train.subset.conllu"), tmp_path / "train.conllu", 60
    )
    dev = first_sentences(
        data_file("ud_english_ewt/en_ewt-ud-dev.conllu"), tmp_path / "dev.conllu", 20, known_tags_from=train
    )
    output_dir = tmp_path / "run"
    run = tagging.main(
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
    assert run.output_dir == output_dir and run.final == final
    assert [type(member) for member in run.model.members] == [SequenceTagger] * 2
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
    check_litert(output_dir, run.model, "The cat sat on the mat .")


def check_litert(output_dir, model, sentence):
    """`model.tflite`, fed the ids of the vocabulary files beside it, tags as the trained model."""
    from ai_edge_litert.interpreter import Interpreter

    encoder = zoo_text.TokenEncoder(
        zoo_text.Vocab.load(output_dir / "word_vocab.txt", reserved_tokens=zoo_text.SEQUENCE_RESERVED),
        zoo_text.Vocab.load(output_dir / "char_vocab.txt", reserved_tokens=zoo_text.SEQUENCE_RESERVED),
        lowercase=True,
        max_chars=20,
    )
    (word_ids, char_ids), _ = encoder(tf.ragged.constant([sentence.split()]))
    expected = np.asarray(model((word_ids, char_ids)))
    tag = Interpreter(model_path=str(output_dir / "model.tflite")).get_signature_runner()
    output = tag(word_ids=word_ids.numpy().astype(np.int32), char_ids=char_ids.numpy().astype(np.int32))
    np.testing.assert_allclose(output["output"], expected, atol=1e-5)
    tag_names = (output_dir / "tags.txt").read_text().split("\n")[:-1]
    assert json.loads((output_dir / "metrics.json").read_text())["final"]["tag_names"] == tag_names


@pytest.mark.slow
def test_conll_crf_reports_entity_f1(data_file, tmp_path):
    train = first_sentences(data_file("wnut17/wnut17train.conll"), tmp_path / "train.conll", 60)
    dev = first_sentences(data_file("wnut17/emerging.dev.conll"), tmp_path / "dev.conll", 20)
    run = tagging.main(
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
        assert 0.0 <= run.final[f"dev_{key}"] <= 1.0
    assert run.final["dev_entity_support"] > 0
    final = json.loads((tmp_path / "run" / "metrics.json").read_text())["final"]
    assert final["dev_entity_f1"] == pytest.approx(run.final["dev_entity_f1"])
    # The export computes the word shapes in plain TensorFlow too.
    out = tag_in_subprocess(tmp_path / "run" / "saved_model")
    assert all(tag in final["tag_names"] for tag in out["tags"][0][:7])


@pytest.mark.slow
def test_a_modern_cell_trains_serves_without_zoo_and_converts(data_file, tmp_path):
    train = first_sentences(
        data_file("ud_english_ewt/en_ewt-ud-train.subset.conllu"), tmp_path / "train.conllu", 60
    )
    output_dir = tmp_path / "run"
    run = tagging.main(
        [
            "--data",
            str(train),
            "--output",
            "softmax",
            "--cell",
            "rglru",
            "--output-dir",
            str(output_dir),
            *TINY_MODEL,
        ]
    )
    assert run.model.encoder.cell_type == "rglru"
    assert keras.models.load_model(output_dir / "model.keras").encoder.cell_type == "rglru"
    out = tag_in_subprocess(output_dir / "saved_model")
    assert not out["zoo_imported"]
    assert all(tag in run.final["tag_names"] for tag in out["tags"][0][:7])
    check_litert(output_dir, run.model, "The cat sat on the mat .")


@pytest.mark.slow
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
    run = tagging.main(
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
    assert metrics["final"]["dev_entity_f1"] == pytest.approx(run.final["dev_entity_f1"])
    trained = output_dir / ("members/1/model.keras" if members > 1 else "model.keras")
    assert isinstance(keras.models.load_model(trained), MultiTaskTagger)
    if members > 1:  # the ensemble averages the members' main taggers
        ensemble = keras.models.load_model(output_dir / "model.keras")
        assert [type(member) for member in ensemble.members] == [SequenceTagger] * members
    out = tag_in_subprocess(output_dir / "saved_model")
    assert all(tag in metrics["final"]["tag_names"] for tag in out["tags"][0][:7])  # BIO tags, no UPOS


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
    assert (
        "error: --auxiliary needs --output softmax (pass --auxiliary none to train a CRF)"
        in capsys.readouterr().err
    )


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
    assert (
        capsys.readouterr().err == f"error: --auxiliary {tmp_path / 'none.conllu'}: no such file or folder\n"
    )


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
    assert (
        "error: --ensemble averages tag probabilities: it needs --output softmax" in capsys.readouterr().err
    )


def test_missing_file_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tagging.main(["--data", str(tmp_path / "none.conll"), "--output-dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: --data {tmp_path / 'none.conll'}: no such file or folder\n"


def drive_best_epoch_selection(callbacks, history):
    """Runs `callbacks` over epochs whose logs are `history`, the model's weight set to the epoch number."""
    model = keras.Sequential([keras.layers.Dense(1, use_bias=False)])
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
    assert isinstance(callbacks[0], ValidationEntityF1)
    # The F1 callback would tag real data; the history already holds its figure.
    best, epochs_run = drive_best_epoch_selection(callbacks[1:], HISTORY)
    assert best == 2
    assert epochs_run == 5  # epochs 3, 4 and 5 without a better F1


def test_other_tags_keep_the_epoch_of_the_best_validation_accuracy():
    callbacks = tagging.best_epoch_callbacks(3, ["NOUN", "VERB"], validation=(None,) * 4)
    assert not any(isinstance(callback, ValidationEntityF1) for callback in callbacks)
    assert drive_best_epoch_selection(callbacks, HISTORY) == (6, 6)
    assert tagging.best_epoch_callbacks(0, ["O", "B-person"], validation=(None,) * 4) == []


def parse(*argv):
    return flags.parse_args(tagging.build_parser(), list(argv), derived_defaults=tagging.corpus_defaults)


def test_corpus_defaults_apply_unless_the_flag_is_given():
    assert parse("--corpus", "wnut17").word_shape is True
    assert parse("--corpus", "wnut17", "--no-word-shape").word_shape is False
    assert parse().word_shape is False
    assert parse("--corpus", "wnut17").entity_weight == 5.0
    assert parse("--corpus", "ud-ewt").entity_weight == 1.0
    wnut = parse("--corpus", "wnut17")
    assert (wnut.output, wnut.auxiliary, wnut.ensemble) == ("softmax", "ud-ewt", 5)
    wnut_crf = parse("--corpus", "wnut17", "--output", "crf")
    assert (wnut_crf.auxiliary, wnut_crf.ensemble) == (tagging.NO_AUXILIARY, 1)
    ud = parse("--corpus", "ud-ewt")
    assert (ud.output, ud.auxiliary, ud.ensemble) == ("crf", tagging.NO_AUXILIARY, 1)


def test_word_shape_needs_chars(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tagging.main(["--word-shape", "--no-chars", "--output-dir", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    assert "error: --word-shape feeds the character CNN: it needs --chars" in capsys.readouterr().err


def write_language_model_run(run, tokens, *, reverse, tokenizer="char", text="faithful"):
    """A run folder as recipes.language_model leaves it, with an untrained model."""
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"tokenizer": tokenizer, "text": text, "reverse": reverse}))
    vocab = zoo_text.Vocab(tokens)
    vocab.save(run / "vocab.txt")
    model = LanguageModel(len(vocab), "gru", units=4, embedding_dim=3)
    model.build((None, None))
    model.save(run / "model.keras")


def char_lm_args(forward, backward):
    return tagging.build_parser().parse_args(["--char-lm", str(forward), str(backward)])


def test_char_lm_runs_are_checked_before_training(tmp_path):
    chars = list("a bc")
    write_language_model_run(tmp_path / "forward", chars, reverse=False)
    write_language_model_run(tmp_path / "backward", chars, reverse=True)
    forward, backward, vocab = tagging.load_char_language_models(
        char_lm_args(tmp_path / "forward", tmp_path / "backward")
    )
    assert isinstance(forward, LanguageModel) and isinstance(backward, LanguageModel)
    assert vocab.idx_to_token == zoo_text.Vocab(chars).idx_to_token

    write_language_model_run(tmp_path / "other", list("a bcd"), reverse=True)
    write_language_model_run(tmp_path / "words", ["a", " "], reverse=False, tokenizer="word")
    write_language_model_run(tmp_path / "course", chars, reverse=False, text="course")
    cases = [
        (("backward", "forward"), "the forward run is a --reverse run: give it second"),
        (("forward", "forward"), "the backward run must be trained with --reverse"),
        (("forward", "other"), "the two runs have different character vocabularies"),
        (("words", "backward"), "a --tokenizer word run; string embeddings need character models"),
        (("course", "backward"), "a --text course run; the tagger reads text as written"),
        (("forward", "nowhere"), "no config.json there"),
    ]
    for (first, second), message in cases:
        with pytest.raises(RecipeError, match=message):
            tagging.load_char_language_models(char_lm_args(tmp_path / first, tmp_path / second))


@pytest.mark.parametrize(
    "flags", [["--output", "softmax"], ["--output", "softmax", "--auxiliary", "ud-ewt"], ["--output", "crf"]]
)
def test_char_lm_models_are_built_on_the_encoders_inputs(tmp_path, flags):
    # Not on the first (cached) batch's shapes, which the default SavedModel signature would take.
    chars = list("a bc")
    for name, reverse in (("forward", False), ("backward", True)):
        write_language_model_run(tmp_path / name, chars, reverse=reverse)
    args = tagging.build_parser().parse_args(
        ["--char-lm", str(tmp_path / "forward"), str(tmp_path / "backward"), *flags, *TINY_MODEL]
    )
    char_lms = tagging.load_char_language_models(args)
    encoder = tagging.build_encoder(args, [["a", "bc"]], char_lms[2])
    auxiliary_tags = 3 if "--auxiliary" in flags else None
    model = tagging.build_model(args, encoder, 4, auxiliary_tags, char_lms)
    tagger = getattr(model, "tagger", model)
    for part in (model, getattr(tagger, "emission_model", tagger)):
        assert part.built
        shapes = list(part.get_build_config()["input_shape"])
        assert [tuple(shape) for shape in shapes[-2:]] == [(None, None), (None, None, 2)]


def test_char_lm_refuses_quantize_and_both_ways_of_getting_the_models(tmp_path, capsys):
    with pytest.raises(SystemExit):
        tagging.main(["--char-lm", "f", "b", "--quantize", "dynamic", "--output-dir", str(tmp_path / "r")])
    assert "--quantize is for model.tflite, which a --char-lm run does not write" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tagging.main(["--char-lm", "f", "b", "--char-lm-data", "t.txt", "--output-dir", str(tmp_path / "r")])
    assert "--char-lm reuses two language models, --char-lm-data trains them" in capsys.readouterr().err


@pytest.mark.slow
def test_char_lm_tagger_end_to_end_with_language_models_it_trains(data_file, tmp_path, monkeypatch, capsys):
    train = first_sentences(
        data_file("ud_english_ewt/en_ewt-ud-train.subset.conllu"), tmp_path / "train.conllu", 60
    )
    dev = first_sentences(
        data_file("ud_english_ewt/en_ewt-ud-dev.conllu"), tmp_path / "dev.conllu", 20, known_tags_from=train
    )
    sentences = zoo_text.read_tagged_sentences(train)[0]
    text = tmp_path / "text.txt"
    text.write_text("\n".join(" ".join(sentence) for sentence in sentences) * 3 + "\n")
    tiny_lm = ["--epochs", "1", "--layers", "1", "--units", "16", "--embedding-dim", "8"]
    monkeypatch.setattr(
        tagging, "CHAR_LM_FLAGS", [*tiny_lm, "--batch-size", "8", "--num-steps", "16", "--sample-tokens", "5"]
    )
    output_dir = tmp_path / "run"
    arguments = ["--data", str(train), "--dev", str(dev), "--char-lm-data", str(text)]
    run = tagging.main([*arguments, "--output-dir", str(output_dir), *TINY_MODEL])
    assert "--char-lm-data: training the backward language model" in capsys.readouterr().out
    for name, reverse in (("forward", False), ("backward", True)):
        lm_run = json.loads((output_dir / "char_lm" / name / "metrics.json").read_text())
        assert lm_run["final"]["reverse"] is reverse and lm_run["config"]["data"] == str(text)
    # A resumed run reuses them.
    args = tagging.build_parser().parse_args([*arguments, "--output-dir", str(output_dir)])
    assert tagging.train_char_language_models(args) == [
        output_dir / "char_lm" / n for n in ("forward", "backward")
    ]
    assert capsys.readouterr().out.count("--char-lm-data: reusing the") == 2
    assert run.model.emission_model.string_embeddings.output_dim == 32  # the default CRF's emissions
    assert not (output_dir / "model.tflite").exists()
    embeddings = keras.saving.load_model(output_dir / "model.keras").emission_model.string_embeddings
    assert embeddings.forward_model.units == 16 and not embeddings.trainable
    out = tag_in_subprocess(output_dir / "saved_model")
    assert not out["zoo_imported"]
    tag_names = set(json.loads((output_dir / "metrics.json").read_text())["final"]["tag_names"])
    assert out["tokens"][0][:7] == "The cat sat on the mat .".split()
    assert all(tag in tag_names for tag in out["tags"][0][:7]) and set(out["tags"][1]) == {""}

    # An ensemble of softmax taggers on the same models, trained on cached embeddings, serves raw
    # strings; resumed, it loads its members and exports again.
    language_models = [str(output_dir / "char_lm" / name) for name in ("forward", "backward")]
    ensemble_dir = tmp_path / "ensemble"
    ensemble_arguments = ["--data", str(train), "--dev", str(dev), "--output", "softmax", "--ensemble", "2"]
    tagging.main(
        [*ensemble_arguments, "--char-lm", *language_models, "--output-dir", str(ensemble_dir), *TINY_MODEL]
    )
    resumed = tagging.main(["--resume", str(ensemble_dir)])
    assert resumed.model.members[0].string_embeddings.forward_model.units == 16
    out = tag_in_subprocess(ensemble_dir / "saved_model")
    assert all(tag in tag_names for tag in out["tags"][0][:7]) and set(out["tags"][1]) == {""}
