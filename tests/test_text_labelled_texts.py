"""zoo.text.read_labelled_texts: TSV, CSV, JSON Lines and class folders told from the file, the
columns found by name, and each mistake rejected in one line that names the file, the line and the fix."""

import re

import pytest

from zoo.text import DataFormatError, labelled_text_format, read_imdb_tsv, read_labelled_texts

REVIEWS = (["Loved it.", "Long, dull.", "Fine."], ["positive", "negative", "positive"])


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize(
    "name, content, expected_format",
    [
        ("r.tsv", "review\tsentiment\nLoved it.\tpositive\nLong, dull.\tnegative\nFine.\tpositive\n", "tsv"),
        ("r.csv", 'review,sentiment\nLoved it.,positive\n"Long, dull.",negative\nFine.,positive\n', "csv"),
        ("r.txt", 'Sentiment;Review\npositive;Loved it.\nnegative;"Long, dull."\npositive;Fine.\n', "csv"),
        (
            "r.jsonl",
            '{"review": "Loved it.", "sentiment": "positive"}\n\n'
            '{"sentiment": "negative", "review": "Long, dull."}\n'
            '{"review": "Fine.", "sentiment": "positive", "id": 7}\n',
            "jsonl",
        ),
        # A spreadsheet's export: a byte-order mark and Windows line ends.
        (
            "excel.csv",
            '\ufeffText,Label\r\nLoved it.,positive\r\n"Long, dull.",negative\r\nFine.,positive\r\n',
            "csv",
        ),
    ],
)
def test_each_file_format_is_told_from_the_file_and_its_columns_found_by_name(
    tmp_path, name, content, expected_format
):
    path = write(tmp_path / name, content)
    assert labelled_text_format(path) == expected_format
    assert read_labelled_texts(path) == REVIEWS
    assert read_labelled_texts(path, format=expected_format) == REVIEWS


def test_class_folders_as_keras_reads_them(tmp_path):
    for label, name, text in [
        ("pos", "a.txt", "Loved it."),
        ("neg", "b.txt", "Long,\ndull."),
        ("pos", "c.txt", "Fine."),
    ]:
        (tmp_path / "reviews" / label).mkdir(parents=True, exist_ok=True)
        write(tmp_path / "reviews" / label / name, text)
    write(tmp_path / "reviews" / "README.md", "files beside the class folders are left out")
    write(tmp_path / "reviews" / "pos" / "notes.md", "so are other files than .txt")
    (tmp_path / "reviews" / "neu" / "deeper").mkdir(parents=True)
    write(tmp_path / "reviews" / "neu" / "deeper" / "d.txt", "Meh.")  # found at any depth, as Keras does
    assert labelled_text_format(tmp_path / "reviews") == "folders"
    texts, labels = read_labelled_texts(tmp_path / "reviews")
    assert list(zip(texts, labels)) == [
        ("Long,\ndull.", "neg"),
        ("Meh.", "neu"),
        ("Loved it.", "pos"),
        ("Fine.", "pos"),
    ]  # fmt: skip


def test_columns_named_by_the_caller_and_labels_of_any_kind(tmp_path):
    path = write(tmp_path / "r.csv", "id,body,stars\n1,Loved it.,5\n2,Dull.,1\n3,Fine.,3\n")
    assert read_labelled_texts(path, text_column="body", label_column="stars") == (
        ["Loved it.", "Dull.", "Fine."],
        ["5", "1", "3"],
    )
    # JSON numbers and booleans as `str` gives them; 1.0 is the integer 1.
    path = write(
        tmp_path / "r.jsonl",
        '{"text": "a", "label": 1}\n{"text": "b", "label": 0.0}\n{"text": "c", "label": true}\n',
    )
    assert read_labelled_texts(path)[1] == ["1", "0", "True"]


def test_the_imdb_subset_reads_as_tsv_with_its_columns_found(data_file):
    path = data_file("imdb_subset/train.tsv")
    assert labelled_text_format(path) == "tsv"
    texts, labels = read_labelled_texts(path)
    reference_texts, reference_labels = read_imdb_tsv(path)
    assert texts == reference_texts and labels == [str(label) for label in reference_labels]
    assert len(texts) == 1000 and sorted(set(labels)) == ["0", "1"]


def test_real_reviews_in_each_format_read_the_same(data_file, tmp_path):
    """The first 50 IMDb reviews written as CSV (by the csv module: quotes, commas, U+0085 inside),
    JSON Lines and class folders read back as they were."""
    import csv
    import json

    texts, labels = read_imdb_tsv(data_file("imdb_subset/train.tsv"))
    texts, labels = texts[:50], ["positive" if label else "negative" for label in labels[:50]]
    with open(tmp_path / "r.csv", "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["review", "sentiment"])
        writer.writerows(zip(texts, labels))
    write(
        tmp_path / "r.jsonl",
        "".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels)),
    )
    for index, (text, label) in enumerate(zip(texts, labels)):
        (tmp_path / "folders" / label).mkdir(parents=True, exist_ok=True)
        write(tmp_path / "folders" / label / f"{index:03d}.txt", text)
    assert read_labelled_texts(tmp_path / "r.csv") == (texts, labels)
    assert read_labelled_texts(tmp_path / "r.jsonl") == (texts, labels)
    by_folder = sorted(zip(labels, [f"{i:03d}" for i in range(50)], texts))
    assert read_labelled_texts(tmp_path / "folders") == (
        [t for *_, t in by_folder],
        [y for y, *_ in by_folder],
    )


@pytest.mark.parametrize(
    "name, content, kwargs, message",
    [
        # A missing column: what was looked for, and the keyword that names it.
        (
            "r.csv",
            "id,body,stars\n1,Loved it.,5\n",
            {},
            r"r.csv, line 1: no text column \(looked for text/review/.*\) and no label column "
            r"\(looked for label/sentiment/.*\) in the header \['id', 'body', 'stars'\]: "
            r"pass text_column='NAME' and label_column='NAME'",
        ),
        (
            "r.csv",
            "review,label\nLoved it.,5\n",
            {"text_column": "body"},
            r"r.csv, line 1: no column 'body' in the header \['review', 'label'\]: pass text_column='NAME'",
        ),
        # A wrong delimiter: a CSV file said to be TSV, a TSV file said to be CSV.
        (
            "r.csv",
            "text,label\nLoved it.,1\n",
            {"format": "tsv"},
            r"r.csv, line 1: the header 'text,label' is one tab-separated column with commas in it: "
            r"pass format='csv'",
        ),
        (
            "r.tsv",
            "text\tlabel\nLoved it.\t1\n",
            {"format": "csv"},
            r"r.tsv, line 1: the header 'text\\tlabel' is one comma-separated column with tabs in it: "
            r"pass format='tsv'",
        ),
        # A comma inside an unquoted text.
        (
            "r.csv",
            "text,label\nLoved it.,1\nLong, dull.,0\n",
            {},
            r"r.csv, line 3: 3 comma-separated fields, the header has 2: \(a comma in a text\?\) put texts "
            r"in double quotes",
        ),
        (
            "r.tsv",
            "text\tlabel\nLoved\tit.\t1\n",
            {},
            r"r.tsv, line 2: 3 tab-separated fields, the header has 2: \(a tab in a text\?\)",
        ),
        # Mixed formats: a CSV line in JSON Lines, a JSON line in a CSV file.
        (
            "r.jsonl",
            '{"text": "a", "label": 1}\ntext,label\n',
            {},
            r"r.jsonl, line 2: not JSON \(Expecting value\): 'text,label': a mixed-format file\?",
        ),
        (
            "r.csv",
            'text,label\na,1\n{"text": "b", "label": 0}\n',
            {},
            r"""r.csv, line 3: a JSON object in a comma-separated file: '{"text": "b", "label": 0}': """
            r"a mixed-format file\? keep to one format a file",
        ),
        (
            "r.json",
            '[{"text": "a", "label": 1}]\n',
            {},
            r"r.json, line 1: a JSON array: write one JSON object a line",
        ),
        (
            "r.jsonl",
            '{"text": "a", "label": 1}\n{"body": "b", "label": 0}\n',
            {},
            r"r.jsonl, line 2: no key 'text' \(line 1 has it\)",
        ),
        (
            "r.jsonl",
            '{"text": "a", "label": [1]}\n',
            {},
            r"r.jsonl, line 1: the label 'label' is not a string or an integer",
        ),
        ("r.jsonl", '{"text": 3, "label": 1}\n', {}, r"r.jsonl, line 1: the text 'text' is not a string"),
        # Empty files, a file of one column, a header without rows, an example without a label.
        ("r.csv", "", {}, r"r.csv: the file is empty"),
        ("r.csv", " \n\n", {}, r"r.csv: the file is empty"),
        ("r.txt", "just some text\n", {}, r"r.txt, line 1: no tab, comma or semicolon in the first line"),
        ("r.csv", "text,label\n", {}, r"r.csv: no examples in it"),
        ("r.csv", "text,label\nLoved it.,\n", {}, r"r.csv, line 2: an example without a label"),
        # An unknown label (reading a dev file with the training data's labels).
        (
            "dev.csv",
            "text,label\na,positive\nb,Positive\n",
            {"known_labels": {"positive", "negative"}},
            r"dev.csv, line 3: label 'Positive' is not among the labels of the training data "
            r"\(negative, positive\): correct it, or add examples of it to the training data",
        ),
    ],
)
def test_mistakes_are_one_line_that_names_the_line_and_the_fix(tmp_path, name, content, kwargs, message):
    path = write(tmp_path / name, content)
    with pytest.raises(DataFormatError, match=message) as error:
        read_labelled_texts(path, **kwargs)
    assert "\n" not in str(error.value)


def test_bytes_that_are_not_utf8_are_named_by_line_and_read_with_their_encoding(tmp_path):
    path = write(
        tmp_path / "r.csv", "review,sentiment\nGreat,positive\nCaf\u00e9 was dull,negative\n", "cp1252"
    )
    with pytest.raises(
        DataFormatError,
        match=re.escape(f"{path}, line 3: not UTF-8 text (byte 0xe9 at character 4): pass encoding="),
    ):
        read_labelled_texts(path)
    assert read_labelled_texts(path, encoding="cp1252")[0] == ["Great", "Caf\u00e9 was dull"]


def test_folder_mistakes(tmp_path):
    (tmp_path / "flat").mkdir()
    write(tmp_path / "flat" / "1.txt", "Loved it.")
    with pytest.raises(DataFormatError, match=r"flat: no class folders in it \(1 files\): put each class's"):
        read_labelled_texts(tmp_path / "flat")
    (tmp_path / "classes" / "pos").mkdir(parents=True)
    (tmp_path / "classes" / "neg").mkdir()
    write(tmp_path / "classes" / "pos" / "1.txt", "Loved it.")
    with pytest.raises(DataFormatError, match=r"neg: no \.txt files in this class folder"):
        read_labelled_texts(tmp_path / "classes")
    path = write(tmp_path / "r.csv", "text,label\na,1\n")
    with pytest.raises(DataFormatError, match="r.csv: a file, not a folder of class folders"):
        read_labelled_texts(path, format="folders")
    with pytest.raises(ValueError, match="a folder per class has no columns"):
        read_labelled_texts(tmp_path / "classes", text_column="text")
    with pytest.raises(ValueError, match="format must be one of tsv, csv, jsonl, folders, got 'xlsx'"):
        read_labelled_texts(path, format="xlsx")
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        read_labelled_texts(tmp_path / "missing.csv")


def test_a_spreadsheet_saved_as_utf16_is_named_with_the_encoding_to_pass(tmp_path):
    path = write(
        tmp_path / "r.txt", "\ufeffreview\tsentiment\nCaf\u00e9\tpositive\nBad\tnegative\n", "utf-16-le"
    )
    with pytest.raises(
        DataFormatError,
        match=re.escape(
            f"{path}, line 1: not UTF-8 text (byte 0xff at character 1), and the file starts with a UTF-16 "
            "byte-order mark: pass encoding='utf-16'"
        ),
    ):
        read_labelled_texts(path)
    assert read_labelled_texts(path, encoding="utf-16") == (["Caf\u00e9", "Bad"], ["positive", "negative"])
