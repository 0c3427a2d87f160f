"""Corpus readers on the real data sets and on small crafted files (never the network)."""

import pathlib
import warnings

import keras
import pytest

from zoo.text import (
    load_tfds,
    load_time_machine,
    preprocess_nmt,
    read_conll,
    read_conllu,
    read_delimited,
    read_imdb_tsv,
    read_sentence_pairs,
    read_text,
)


def test_time_machine_local_and_checksum(data_file, tmp_path):
    text = load_time_machine(data_file("timemachine/timemachine.txt"))
    assert len(text.encode()) == 178_979
    wrong = tmp_path / "timemachine.txt"
    wrong.write_text(text[:-10])
    with pytest.raises(ValueError, match="SHA-1"):
        load_time_machine(wrong)


def test_time_machine_ships_with_the_package(data_file, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("load_time_machine() reached for the network")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    assert load_time_machine() == load_time_machine(data_file("timemachine/timemachine.txt"))


def test_read_text_errors_and_bad_bytes(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text(" \n")
    with pytest.raises(ValueError, match="empty"):
        read_text(tmp_path / "empty.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9 and na\xefve\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert read_text(bad) == "caf\ufffd and na\ufffdve\n"
    assert len(caught) == 1 and "bad.txt" in str(caught[0].message)


def test_imdb_subset(data_file):
    texts, labels = read_imdb_tsv(data_file("imdb_subset/train.tsv"))
    assert len(texts) == 1000 and sum(labels) == 500
    assert sum("\x85" in text for text in texts) == 13


def test_delimited_splits_on_newline_only(tmp_path):
    path = tmp_path / "data.tsv"
    path.write_text("id\ttext\tlabel\n1\tone\x85line\tpos\n2\ttwo\tneg\n", encoding="utf-8")
    assert read_delimited(path, "text", "label") == (["one\x85line", "two"], ["pos", "neg"])
    csv_path = tmp_path / "data.csv"
    csv_path.write_text('text,label\n"a, quoted",1\nplain,0\n')
    import csv

    assert read_delimited(csv_path, "text", "label", ",", csv.QUOTE_MINIMAL) == (
        ["a, quoted", "plain"],
        ["1", "0"],
    )
    with pytest.raises(ValueError, match="no column"):
        read_delimited(path, "review")
    (tmp_path / "ragged.tsv").write_text("text\tlabel\nonly-one-field\n")
    with pytest.raises(ValueError, match="row 2"):
        read_delimited(tmp_path / "ragged.tsv", "text", "label")


def test_conllu_counts_and_skips(data_file, tmp_path):
    sentences, tags = read_conllu(data_file("ud_english_ewt/en_ewt-ud-train.subset.conllu"))
    assert len(sentences) == 3142 and all(len(s) == len(t) for s, t in zip(sentences, tags))
    assert len({tag for sentence in tags for tag in sentence}) == 17
    dev, dev_tags = read_conllu(data_file("ud_english_ewt/en_ewt-ud-dev.conllu"))
    assert len(dev) == 2001
    assert dev[0] == ["From", "the", "AP", "comes", "this", "story", ":"]
    assert dev_tags[0] == ["ADP", "DET", "PROPN", "VERB", "DET", "NOUN", "PUNCT"]
    crafted = tmp_path / "x.conllu"
    row = "\t".join
    crafted.write_text(
        "# text = don't go\n"
        + row(["1-2", "don't", "_", "_", "_", "_", "_", "_", "_", "_"]) + "\n"
        + row(["1", "do", "do", "AUX", "VBP", "_", "3", "aux", "_", "_"]) + "\n"
        + row(["2", "n't", "not", "PART", "RB", "_", "3", "advmod", "_", "_"]) + "\n"
        + row(["2.1", "x", "x", "X", "X", "_", "_", "_", "_", "_"]) + "\n"
        + row(["3", "go", "go", "VERB", "VB", "_", "0", "root", "_", "_"]) + "\n\n"
    )  # fmt: skip
    assert read_conllu(crafted) == ([["do", "n't", "go"]], [["AUX", "PART", "VERB"]])
    assert read_conllu(crafted, "xpos")[1] == [["VBP", "RB", "VB"]]


def test_wnut17_counts(data_file):
    train, train_tags = read_conll(data_file("wnut17/wnut17train.conll"))
    dev, _ = read_conll(data_file("wnut17/emerging.dev.conll"))
    assert (len(train), len(dev)) == (3394, 1009)
    assert len({tag for sentence in train_tags for tag in sentence}) == 13


def test_fra_eng_pairs(data_file):
    sources, targets = read_sentence_pairs(data_file("fra-eng/fra.txt"))
    assert len(sources) == 70_000
    pairs = dict(zip(sources, targets))
    assert pairs["go ."] == "va !"
    assert pairs["i lost ."] == "j'ai perdu ."
    assert all("\u202f" not in target and "\xa0" not in target for target in targets)


def test_preprocess_nmt():
    assert preprocess_nmt("Hello,world!\u00a0Ça va\u202f? Oui .") == "hello ,world ! ça va ? oui ."


def test_tfds_by_name_offline():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=5):
        dataset = load_tfds("imdb_reviews", split="train")
        examples = list(dataset)
    assert len(examples) == 5
    text, label = examples[0]
    assert text.dtype.name == "string" and label.dtype.is_integer
    with pytest.raises(ValueError, match="not a TensorFlow Datasets"):
        load_tfds("no_such_dataset_zzz")


def test_missing_files_are_named(tmp_path):
    for reader in (read_conll, read_conllu, read_sentence_pairs, read_imdb_tsv):
        with pytest.raises(FileNotFoundError, match="absent"):
            reader(pathlib.Path(tmp_path / "absent"))
