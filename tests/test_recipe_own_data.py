"""The recipes on a user's own files: each format told from the file, parts without a file of their
own held out of `--data` (seeded, never trained on, never a corpus's file), each mistake one line on
stderr naming the flag, the file, the line and what to pass; (slow tier) each format through
`main()` for one epoch."""

import csv
import json
import re

import numpy as np
import pytest

from recipes import flags, sentiment, tagging, translation

SENTIMENT_TINY = ["--epochs", "1", "--batch-size", "8", "--max-length", "20", "--embedding-dim", "4"]
SENTIMENT_TINY += ["--units", "4", "--ensemble", "1", "--min-freq", "1"]
TAGGING_TINY = ["--epochs", "1", "--batch-size", "8", "--embedding-dim", "4", "--units", "4"]
TAGGING_TINY += ["--num-layers", "1", "--char-embedding-dim", "4", "--char-filters", "4", "--min-freq", "1"]
TRANSLATION_TINY = ["--epochs", "1", "--batch-size", "8", "--embedding-dim", "4", "--units", "4"]
TRANSLATION_TINY += ["--num-layers", "1", "--max-length", "6", "--min-freq", "1", "--beam-size", "2"]

WORDS = {"positive": ["great", "lovely", "fine", "superb"], "negative": ["awful", "dull", "boring", "bad"]}


def reviews(count, seed=0):
    """`count` short reviews (a comma in some) and their labels, alternating."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        label = "positive" if index % 2 == 0 else "negative"
        words = rng.choice(WORDS[label], size=3)
        rows.append((f"A {words[0]}, {words[1]} film, {words[2]}.", label))
    return rows


def write_reviews(path, rows, format, columns=("review", "sentiment")):
    """Writes `rows` of (text, label) as a user keeps them: CSV, TSV, JSON Lines or class folders."""
    if format == "folders":
        for index, (text, label) in enumerate(rows):
            (path / label).mkdir(parents=True, exist_ok=True)
            (path / label / f"{index}.txt").write_text(text, encoding="utf-8")
    elif format == "jsonl":
        path.write_text("".join(json.dumps(dict(zip(columns, row))) + "\n" for row in rows), encoding="utf-8")
    else:
        with open(path, "w", encoding="utf-8", newline="") as file:
            writer = csv.writer(file, delimiter="\t" if format == "tsv" else ",", lineterminator="\n")
            writer.writerows([columns, *rows])
    return path


def sentences(count, scheme="BIO", seed=0):
    """`count` sentences of (word, part of speech, entity tag) in BIO or BIOES tags."""
    rng = np.random.default_rng(seed)
    names = {"PER": ["Obama", "Ada Lovelace", "Bob"], "LOC": ["Paris", "New York", "Lyon"]}
    result = []
    for _ in range(count):
        rows = []
        for word in rng.choice(["the", "cat", "went", "to", "PER", "LOC", "home"], size=rng.integers(3, 7)):
            if word in names:
                parts = str(rng.choice(names[word])).split()
                tags = [f"B-{word}"] + [f"I-{word}"] * (len(parts) - 1)
                if scheme == "BIOES":
                    tags = [f"S-{word}"] if len(parts) == 1 else tags[:-1] + [f"E-{word}"]
                rows += [(part, "PROPN", tag) for part, tag in zip(parts, tags)]
            else:
                rows.append((str(word), "NOUN", "O"))
        result.append(rows)
    return result


def write_conll(path, rows_of_sentences, columns=(0, 2), separator="\t"):
    blocks = [
        "\n".join(separator.join(row[i] for i in columns) for row in rows) for rows in rows_of_sentences
    ]
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def write_conllu(path, rows_of_sentences):
    blocks = []
    for number, rows in enumerate(rows_of_sentences):
        lines = [f"# sent_id = {number}"]
        lines += [
            "\t".join([str(i + 1), word, word.lower(), pos, tag, "_", "0", "dep", "_", "_"])
            for i, (word, pos, tag) in enumerate(rows)
        ]
        blocks.append("\n".join(lines))
    path.write_text("\n\n".join(blocks) + "\n\n", encoding="utf-8")
    return path


def write_pairs(path, count, attribution):
    rows = []
    for index in range(count):
        english, french = [
            ("go .", "va !"),
            ("i lost .", "j'ai perdu ."),
            ("i'm home .", "je suis chez moi ."),
        ][index % 3]
        row = [f"{english} {index}", f"{french} {index}"]
        if attribution:
            row.append(
                f"CC-BY 2.0 (France) Attribution: tatoeba.org #{index} (CK) & #{index + 1} (sacredceltic)"
            )
        rows.append("\t".join(row))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def error_line(capsys, main, argv):
    """The stderr of `main(argv)`, which must end with exit status 2 and one line."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def no_data_dir(monkeypatch):
    monkeypatch.delenv(flags.DATA_ENV, raising=False)


@pytest.fixture
def corpus_data_dir(monkeypatch, tmp_path):
    """A `$ZOO_DATA_DIR` whose corpus files would read as anything but the user's data."""
    root = tmp_path / "corpora"
    for name in ["imdb_subset/train.tsv", *(f for files in tagging.CORPORA.values() for f in files)]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("not\tthe\tuser's\tdata\n")
    monkeypatch.setenv(flags.DATA_ENV, str(root))
    return root


# --- sentiment ------------------------------------------------------------------------------


@pytest.mark.parametrize("format", ["csv", "tsv", "jsonl", "folders"])
def test_sentiment_reads_each_format_and_holds_out_seeded_parts(tmp_path, corpus_data_dir, format, capsys):
    rows = reviews(40)
    path = write_reviews(tmp_path / f"reviews.{format}", rows, format)
    args = flags.parse_args(sentiment.build_parser(), ["--data", str(path), "--split-seed", "3"])
    examples = sentiment.load_data(args)
    assert examples.label_names == ["negative", "positive"]
    assert sorted(zip(examples.texts, (examples.label_names[i] for i in examples.class_ids))) == sorted(rows)
    parts = [examples.train, examples.validation, examples.test]
    assert [len(part) for part in parts] == [27, 5, 8]  # 0.2 of 40 for testing, 0.15 of the other 32
    assert sorted(np.concatenate(parts)) == list(range(40))
    assert f"--data {path}: {format}, 40 examples" in capsys.readouterr().out
    again = sentiment.load_data(args)
    assert [list(part) for part in (again.train, again.validation, again.test)] == [list(p) for p in parts]


def test_sentiment_dev_and_test_files_replace_the_held_out_parts(tmp_path, no_data_dir, capsys):
    data = write_reviews(tmp_path / "train.jsonl", reviews(30), "jsonl", columns=("text", "label"))
    dev = write_reviews(tmp_path / "dev.csv", reviews(6, seed=1), "csv")
    test = write_reviews(tmp_path / "test", reviews(4, seed=2), "folders")
    args = flags.parse_args(
        sentiment.build_parser(), ["--data", str(data), "--dev", str(dev), "--test", str(test)]
    )
    examples = sentiment.load_data(args)
    assert [len(examples.train), len(examples.validation), len(examples.test)] == [30, 6, 4]
    assert [examples.texts[i] for i in examples.validation] == [text for text, _ in reviews(6, seed=1)]
    assert "30 train, 6 validation (--dev), 4 test (--test)" in capsys.readouterr().out


def test_sentiment_integer_labels_and_three_classes(tmp_path, no_data_dir):
    rows = [(f"text {i}", str(i % 3 * 5)) for i in range(30)]  # labels 0, 5 and 10: sorted as numbers
    path = write_reviews(tmp_path / "stars.tsv", rows, "tsv", columns=("Comment", "Target"))
    examples = sentiment.load_data(flags.parse_args(sentiment.build_parser(), ["--data", str(path)]))
    assert examples.label_names == ["0", "5", "10"]
    assert [examples.label_names[i] for i in examples.class_ids] == [label for _, label in rows]


def sentiment_mistakes(tmp_path):
    """(argv, the error line as a regular expression) of each mistake the issue lists."""
    good = write_reviews(tmp_path / "good.csv", reviews(20), "csv")
    columns = write_reviews(tmp_path / "columns.csv", reviews(20), "csv", columns=("body", "stars"))
    empty = tmp_path / "empty.csv"
    empty.write_text("\n")
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"text": "Great.", "label": "positive"}\nDull.,negative\n')
    unknown = write_reviews(tmp_path / "dev.csv", [("Fine.", "positive"), ("So-so.", "neutral")], "csv")
    cp1252 = tmp_path / "cp1252.csv"
    cp1252.write_bytes("review,sentiment\nGreat,positive\nCaf\u00e9 was dull,negative\n".encode("cp1252"))
    return [
        (
            ["--data", str(good), "--format", "tsv"],
            rf"error: --data {good}, line 1: the header 'review,sentiment' is one tab-separated column "
            r"with commas in it: pass --format csv",
        ),
        (
            ["--data", str(columns)],
            rf"error: --data {columns}, line 1: no text column \(looked for text/review/sentence/.*\) and no "
            r"label column \(looked for label/sentiment/class/.*\) in the header \['body', 'stars'\]: pass "
            r"--text-column NAME and --label-column NAME",
        ),
        (["--data", str(empty)], rf"error: --data {empty}: the file is empty"),
        (
            ["--data", str(mixed)],
            rf"error: --data {mixed}, line 2: not JSON \(Expecting value\): 'Dull.,negative': a "
            r"mixed-format file\? JSON Lines hold one JSON object a line",
        ),
        (
            ["--data", str(good), "--dev", str(unknown)],
            rf"error: --dev {unknown}, line 3: label 'neutral' is not among the labels of the training data "
            r"\(negative, positive\): correct it, or add examples of it to the training data",
        ),
        (
            ["--data", str(cp1252)],
            rf"error: --data {cp1252}, line 3: not UTF-8 text \(byte 0xe9 at character 4\): pass --encoding "
            r"ENCODING \(e.g. cp1252 or latin-1\), or save the file as UTF-8",
        ),
        (
            ["--data", str(tmp_path / "missing.csv")],
            rf"error: --data {tmp_path / 'missing.csv'}: no such file or folder",
        ),
        (
            ["--data", str(tmp_path), "--text-column", "review"],
            rf"error: --data {tmp_path} is a folder per class, which has no columns: leave out --text-column "
            r"and --label-column",
        ),
    ]


def test_sentiment_mistakes_are_one_line_naming_the_file_line_and_flag(tmp_path, no_data_dir, capsys):
    for argv, message in sentiment_mistakes(tmp_path):
        line = error_line(capsys, sentiment.main, [*argv, "--output-dir", str(tmp_path / "run")])
        assert re.fullmatch(message, line), (message, line)


def test_sentiment_names_the_column_flags_for_the_issue_header(tmp_path, no_data_dir, capsys):
    """`review,sentiment` is found by name; `opinion,verdict` names both flags, which then read it."""
    rows = reviews(20)
    found = write_reviews(tmp_path / "my_reviews.csv", rows, "csv")
    args = flags.parse_args(sentiment.build_parser(), ["--data", str(found)])
    assert sentiment.load_examples(args) == tuple(map(list, zip(*rows)))
    named = write_reviews(tmp_path / "named.csv", rows, "csv", columns=("opinion", "verdict"))
    line = error_line(capsys, sentiment.main, ["--data", str(named), "--output-dir", str(tmp_path / "run")])
    assert line.endswith(
        "in the header ['opinion', 'verdict']: pass --text-column NAME and --label-column NAME"
    )
    argv = ["--data", str(named), "--text-column", "opinion", "--label-column", "verdict"]
    assert sentiment.load_examples(flags.parse_args(sentiment.build_parser(), argv)) == tuple(
        map(list, zip(*rows))
    )


# --- tagging --------------------------------------------------------------------------------


@pytest.mark.parametrize("corpus", ["ud-ewt", "wnut17"])
def test_tagging_data_without_dev_holds_out_its_own_dev_set_not_the_corpus_file(
    tmp_path, corpus_data_dir, corpus, capsys
):
    """The issue's `--data my_ner.conll` (and with `--corpus wnut17`): the dev set is a seeded share
    of the user's file, never the corpus's dev file, with or without `$ZOO_DATA_DIR`."""
    data = write_conll(tmp_path / "my_ner.conll", sentences(60))
    argv = ["--data", str(data), "--corpus", corpus, "--auxiliary", "none"]
    args = flags.parse_args(tagging.build_parser(), argv, derived_defaults=tagging.corpus_defaults)
    train, validation, dev, _, tag_vocab = tagging.read_data(args)
    assert [len(part.sentences) for part in (train, validation, dev)] == [49, 5, 6]  # 0.1, then 0.1 of 54
    everything = sorted(map(tuple, train.sentences + validation.sentences + dev.sentences))
    assert everything == sorted(tuple(word for word, _, _ in rows) for rows in sentences(60))
    assert sorted(tag_vocab.idx_to_token) == ["B-LOC", "B-PER", "I-LOC", "I-PER", "O"]
    out = capsys.readouterr().out
    assert f"--data {data}: conll, 60 sentences" in out and "6 dev (--dev-fraction 0.1)" in out
    assert str(corpus_data_dir) not in out


def test_tagging_wnut17_defaults_on_own_data_name_their_auxiliary_corpus(tmp_path, no_data_dir, capsys):
    """`--corpus wnut17` brings `--auxiliary ud-ewt`, a corpus file: without `$ZOO_DATA_DIR` the run
    says so before training, and names the flags that do without it."""
    data = write_conll(tmp_path / "my_ner.conll", sentences(20))
    line = error_line(
        capsys,
        tagging.main,
        ["--corpus", "wnut17", "--data", str(data), "--output-dir", str(tmp_path / "run")],
    )
    assert line == (
        "error: pass --auxiliary FILE or --auxiliary none (--auxiliary ud-ewt reads "
        "$ZOO_DATA_DIR/ud_english_ewt/en_ewt-ud-train.subset.conllu) or set ZOO_DATA_DIR (the folder of the "
        "data sets)"
    )


@pytest.mark.parametrize(
    "writer, format",
    [
        (lambda path, rows: write_conll(path, rows, columns=(0, 1, 2), separator=" "), "conll"),
        (write_conllu, "conllu"),
    ],
    ids=["conll-spaces-extra-column", "conllu-xpos"],
)
def test_tagging_reads_each_format_for_data_and_dev(tmp_path, no_data_dir, writer, format):
    data = writer(tmp_path / "train.txt", sentences(30, "BIOES"))
    dev = writer(tmp_path / "dev.txt", sentences(8, "BIOES", seed=1))
    argv = ["--data", str(data), "--dev", str(dev), "--tag-column", "xpos"]
    train, validation, dev_part, _, tag_vocab = tagging.read_data(
        flags.parse_args(tagging.build_parser(), argv)
    )
    assert [len(train.sentences), len(validation.sentences), len(dev_part.sentences)] == [27, 3, 8]
    assert dev_part.tags == [[tag for _, _, tag in rows] for rows in sentences(8, "BIOES", seed=1)]
    assert tagging.entity_scheme(tag_vocab.idx_to_token) == "BIOES"


def test_tagging_mistakes_are_one_line_naming_the_file_line_and_flag(tmp_path, no_data_dir, capsys):
    good = write_conll(tmp_path / "good.conll", sentences(20))
    mixed = tmp_path / "mixed.conll"
    mixed.write_text("Obama\tB-PER\nvisited\tO\n\n1\tParis\tparis\tPROPN\tNNP\t_\t0\troot\t_\t_\n")
    unknown = tmp_path / "dev.conll"
    unknown.write_text("Obama\tB-PER\n\nParis\tB-GPE\n")
    empty = tmp_path / "empty.conll"
    empty.write_text("")
    latin = tmp_path / "latin.conll"
    latin.write_bytes("Obama\tB-PER\n\nZ\u00fcrich\tB-LOC\n".encode("latin-1"))
    cases = [
        (
            ["--data", str(mixed)],
            rf"error: --data {mixed}, line 4: 10 tab-separated columns in '1\\tParis\\tparis.*', "
            r"line 1 has 2: a mixed-format file\? every word line needs the same columns, the tag last",
        ),
        (
            ["--data", str(good), "--dev", str(unknown)],
            rf"error: --dev {unknown}, line 3: tag 'B-GPE' is not among the 5 tags of the training data: "
            r"correct it, or add sentences with it to the training data",
        ),
        (["--data", str(empty)], rf"error: --data {empty}: the file is empty"),
        (
            ["--data", str(good), "--dev", str(latin)],
            rf"error: --dev {latin}, line 3: not UTF-8 text \(byte 0xfc at character 2\): pass --encoding "
            r"ENCODING \(e.g. cp1252 or latin-1\), or save the file as UTF-8",
        ),
        (
            ["--data", str(good), "--format", "conllu"],
            rf"error: --data {good}, line 1: 2 tab-separated columns in '.*', CoNLL-U has 10: "
            r"pass --format conll",
        ),
    ]
    for argv, message in cases:
        line = error_line(capsys, tagging.main, [*argv, "--output-dir", str(tmp_path / "run")])
        assert re.fullmatch(message, line), (message, line)


# --- translation ----------------------------------------------------------------------------


@pytest.mark.parametrize("attribution", [True, False], ids=["tatoeba", "two-columns"])
def test_translation_reads_pairs_with_or_without_attribution(tmp_path, corpus_data_dir, attribution, capsys):
    path = write_pairs(tmp_path / "pairs.txt", 60, attribution)
    args = flags.parse_args(translation.build_parser(), ["--data", str(path), "--split-seed", "1"])
    train, validation, test = translation.load_pairs(args)
    assert [len(part.sources) for part in (train, validation, test)] == [54, 3, 3]
    assert sorted(train.sources + validation.sources + test.sources) == sorted(
        f"{english} {index}" for index, english in zip(range(60), ["go .", "i lost .", "i'm home ."] * 20)
    )
    assert "54 training, 3 validation (--validation-fraction 0.05), 3 test (--test-fraction 0.05)" in (
        capsys.readouterr().out
    )


def test_translation_mistakes_are_one_line(tmp_path, no_data_dir, capsys):
    commas = tmp_path / "pairs.csv"
    commas.write_text("go.,va !\n")
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("go .\tva !\ncaf\u00e9 .\tcaf\u00e9 .\n".encode("latin-1"))
    good = write_pairs(tmp_path / "good.txt", 30, attribution=False)
    one_sided = tmp_path / "dev.txt"
    one_sided.write_text("go .\tva !\nhello .\t\n")
    cases = [
        (
            ["--data", str(commas)],
            rf"error: --data {commas}, line 1: no tab in 'go.,va !': a line holds source<TAB>target \(more "
            r"columns, as Tatoeba's attribution, are ignored\)",
        ),
        (["--data", str(empty)], rf"error: --data {empty}: the file is empty"),
        (
            ["--data", str(latin)],
            rf"error: --data {latin}, line 2: not UTF-8 text \(byte 0xe9 at character 4\): pass --encoding "
            r"ENCODING \(e.g. cp1252 or latin-1\), or save the file as UTF-8",
        ),
        (
            ["--data", str(good), "--dev", str(one_sided)],
            rf"error: --dev {one_sided}, line 2: the target sentence is empty in 'hello .\\t'",
        ),
    ]
    for argv, message in cases:
        line = error_line(capsys, translation.main, [*argv, "--output-dir", str(tmp_path / "run")])
        assert re.fullmatch(message, line), (message, line)


# --- each format through main() for one epoch (slow tier) -----------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "data_format, other_flag, other_format",
    [("csv", "--dev", "jsonl"), ("folders", "--test", "tsv")],
)
def test_sentiment_main_on_each_format(tmp_path, no_data_dir, data_format, other_flag, other_format):
    data = write_reviews(tmp_path / f"data.{data_format}", reviews(40), data_format)
    other = write_reviews(tmp_path / f"other.{other_format}", reviews(6, seed=5), other_format)
    argv = [
        "--data",
        str(data),
        other_flag,
        str(other),
        "--output-dir",
        str(tmp_path / "run"),
        *SENTIMENT_TINY,
    ]
    run = sentiment.main(argv)
    assert run.final["label_names"] == ["negative", "positive"]
    assert run.final["test_examples"] == (6 if other_flag == "--test" else 8)  # the file's 6, or 0.2 of 40
    assert 0.0 <= run.final["test_accuracy"] <= 1.0
    assert (tmp_path / "run" / "saved_model").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("format", ["conll", "conllu"])
def test_tagging_main_on_each_format(tmp_path, no_data_dir, format):
    if format == "conll":
        data = write_conll(tmp_path / "data.txt", sentences(40, "BIOES"), columns=(0, 1, 2), separator=" ")
        argv = ["--data", str(data)]  # the dev set held out of it
    else:
        data = write_conllu(tmp_path / "data.txt", sentences(40, "BIO"))
        dev = write_conllu(tmp_path / "dev.txt", sentences(8, "BIO", seed=1))
        argv = ["--data", str(data), "--dev", str(dev), "--tag-column", "xpos", "--output", "softmax"]
    run = tagging.main([*argv, "--output-dir", str(tmp_path / "run"), *TAGGING_TINY])
    assert 0.0 <= run.final["dev_token_accuracy"] <= 1.0
    assert 0.0 <= run.final["dev_entity_f1"] <= 1.0  # BIO and BIOES tags are scored by entity
    assert (tmp_path / "run" / "saved_model").is_dir()


@pytest.mark.slow
def test_translation_main_on_tatoeba_pairs_with_a_two_column_dev_file(tmp_path, no_data_dir):
    data = write_pairs(tmp_path / "pairs.txt", 60, attribution=True)
    dev = write_pairs(tmp_path / "dev.txt", 9, attribution=False)
    argv = ["--data", str(data), "--dev", str(dev), "--output-dir", str(tmp_path / "run"), *TRANSLATION_TINY]
    run = translation.main(argv)
    assert run.final["test_pairs"] == 3
    assert 0.0 <= run.final["test_corpus_bleu"] <= 1.0
