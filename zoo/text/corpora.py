"""Readers for the corpora the recipes use: plain text, TSV/CSV, CoNLL, CoNLL-U, sentence pairs, TFDS.

Every reader decodes UTF-8; undecodable bytes are replaced by U+FFFD with one warning per file. A missing
file raises `FileNotFoundError` naming it; a file with no usable content raises `ValueError`.
"""

import csv
import gzip
import hashlib
import io
import os
import warnings

TIME_MACHINE_URL = "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"
TIME_MACHINE_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"
_NO_SPACE_BEFORE = ",.!?"


def read_text(path):
    """Reads a UTF-8 text file, replacing undecodable bytes (U+FFFD) with one warning.

    Args:
        path: the file (str or path-like).

    Returns:
        The text (str), newlines as in the file.

    Raises:
        FileNotFoundError: no such file. ValueError: the file is empty.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, "rb") as file:
        data = file.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        text = data.decode("utf-8", errors="replace")
        warnings.warn(
            f"{path} is not valid UTF-8 (first bad byte at offset {error.start}); undecodable bytes "
            "were replaced by U+FFFD",
            UnicodeWarning,
            stacklevel=2,
        )
    if not text.strip():
        raise ValueError(f"{path} is empty")
    return text


def read_lines(path):
    """The lines of a text file, split on '\\n' only (not on U+0085 or other Unicode breaks)."""
    text = read_text(path)
    return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")


def load_time_machine(path=None):
    """The Time Machine (H. G. Wells, public domain), D2L's copy, checked against its SHA-1.

    The zoo ships it, gzip-compressed, in `zoo/text/data/timemachine.txt.gz` (D2L serves it at
    `TIME_MACHINE_URL`), so it loads without a network.

    The course's cleaning of the whole text, `CharTokenizer("course").tokenize(text)`, gives D2L 1.0's
    corpus: 173,427 characters over 28 ids with the default `Vocab` (D2L 1.0 keeps one more, a
    trailing space). D2L 0.17 cleaned each line and ran them together, `[c for line in
    CharTokenizer("course").tokenize(text.split("\\n")) for c in line]`: 170,580 characters.

    Args:
        path: another copy of the plain text. `None`: the copy the zoo ships.

    Returns:
        The text (str).

    Raises:
        FileNotFoundError: no such file. ValueError: the text's SHA-1 is not D2L's.
    """
    if path is None:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "timemachine.txt.gz")
        with gzip.open(path, "rb") as file:
            data = file.read()
    else:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such file: {path}")
        with open(path, "rb") as file:
            data = file.read()
    digest = hashlib.sha1(data).hexdigest()
    if digest != TIME_MACHINE_SHA1:
        raise ValueError(
            f"{path} has SHA-1 {digest}, not the Time Machine's {TIME_MACHINE_SHA1}: wrong or corrupt file"
        )
    return data.decode("utf-8")


def read_delimited(path, text_column, label_column=None, delimiter="\t", quoting=csv.QUOTE_NONE):
    """Reads a delimited file with a header row: a text column and, optionally, a label column.

    Lines end at '\\n' only, so text holding U+0085 (as 13 IMDb reviews do) stays in one field.

    Args:
        path: the file.
        text_column: the header name of the text column.
        label_column: the header name of the label column, or `None`.
        delimiter: `"\\t"` for TSV, `","` for CSV.
        quoting: a `csv` quoting constant: `csv.QUOTE_NONE` (TSV as in the data sets here) or
            `csv.QUOTE_MINIMAL` (ordinary CSV with quoted fields).

    Returns:
        `(texts, labels)`: lists of str (`labels` is `None` without `label_column`).
    """
    text = read_text(path)
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting))
    header, body = rows[0], [row for row in rows[1:] if row]
    missing = [name for name in (text_column, label_column) if name is not None and name not in header]
    if missing:
        raise ValueError(f"{path}: no column {missing} in the header {header}")
    text_index = header.index(text_column)
    label_index = None if label_column is None else header.index(label_column)
    texts, labels = [], []
    for line_number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(f"{path}, row {line_number}: {len(row)} fields, the header has {len(header)}")
        texts.append(row[text_index])
        if label_index is not None:
            labels.append(row[label_index])
    if not texts:
        raise ValueError(f"{path} has a header but no rows")
    return texts, (labels if label_column is not None else None)


def read_imdb_tsv(path):
    """Reads the IMDb subset (`label<TAB>rating<TAB>source_file<TAB>text`).

    Returns:
        `(texts, labels)`: the reviews verbatim (with their `<br />` tags) and int labels (1 positive).
    """
    texts, labels = read_delimited(path, "text", "label")
    return texts, [int(label) for label in labels]


def _sentences_of(path, lines, parse):
    sentences, tags = [], []
    words, word_tags = [], []
    for line_number, line in enumerate(lines + [""], start=1):
        if not line.strip():
            if words:
                sentences.append(words)
                tags.append(word_tags)
                words, word_tags = [], []
            continue
        parsed = parse(line, line_number)
        if parsed is not None:
            words.append(parsed[0])
            word_tags.append(parsed[1])
    if not sentences:
        raise ValueError(f"{path} holds no sentences")
    return sentences, tags


def read_conll(path):
    """Reads `token<TAB>tag` lines, a blank line between sentences (WNUT-17 style).

    Returns:
        `(sentences, tags)`: lists of token lists and of tag lists, aligned.
    """

    def parse(line, line_number):
        fields = line.split("\t")
        if len(fields) < 2:
            raise ValueError(f"{path}, line {line_number}: expected token<TAB>tag, got {line!r}")
        return fields[0], fields[-1]

    return _sentences_of(path, read_lines(path), parse)


def read_conllu(path, tag_column="upos"):
    """Reads CoNLL-U: one (form, tag) per syntactic word.

    Comments (`#`), multiword-token lines (`n-m`) and empty nodes (`n.m`) are skipped.

    Args:
        path: the file.
        tag_column: `"upos"` (column 4) or `"xpos"` (column 5).

    Returns:
        `(sentences, tags)`: lists of word lists and of tag lists, aligned.
    """
    columns = {"upos": 3, "xpos": 4}
    if tag_column not in columns:
        raise ValueError(f"tag_column must be one of {sorted(columns)}, got {tag_column!r}")
    tag_index = columns[tag_column]

    def parse(line, line_number):
        if line.startswith("#"):
            return None
        fields = line.split("\t")
        if len(fields) != 10:
            raise ValueError(f"{path}, line {line_number}: CoNLL-U needs 10 columns, got {len(fields)}")
        if "-" in fields[0] or "." in fields[0]:
            return None
        return fields[1], fields[tag_index]

    return _sentences_of(path, read_lines(path), parse)


def preprocess_nmt(text):
    """The course's fra-eng preprocessing: U+202F/U+00A0 → space, lowercase, space before `, . ! ?`.

    Example:
    >>> preprocess_nmt("Go.\\tVa\\u202f!")
    'go .\\tva !'
    """
    text = text.replace("\u202f", " ").replace("\xa0", " ").lower()
    return "".join(
        " " + char if index > 0 and char in _NO_SPACE_BEFORE and text[index - 1] != " " else char
        for index, char in enumerate(text)
    )


def read_sentence_pairs(path, max_pairs=None, preprocess=True):
    """Reads tab-separated sentence pairs (`source<TAB>target[<TAB>...]`, extra columns ignored).

    Args:
        path: the file (e.g. fra-eng's `fra.txt`).
        max_pairs: keep the first pairs only.
        preprocess: apply `preprocess_nmt` (the course's preprocessing) to both sides.

    Returns:
        `(sources, targets)`: lists of str; split them with `str.split()` for the course's tokens.
    """
    sources, targets = [], []
    for line_number, line in enumerate(read_lines(path), start=1):
        if max_pairs is not None and len(sources) >= max_pairs:
            break
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise ValueError(f"{path}, line {line_number}: expected source<TAB>target, got {line!r}")
        source, target = fields[0], fields[1]
        if preprocess:
            source, target = preprocess_nmt(source), preprocess_nmt(target)
        sources.append(source)
        targets.append(target)
    if not sources:
        raise ValueError(f"{path} holds no sentence pairs")
    return sources, targets


def load_tfds(name, split="train", as_supervised=True, **kwargs):
    """Loads a TensorFlow Datasets data set by name (e.g. `"imdb_reviews"`) as a `tf.data.Dataset`.

    Args:
        name: the TFDS name.
        split: the split (`"train"`, `"test[:10%]"`, ...).
        as_supervised: yield `(text, label)` tuples instead of feature dicts.
        **kwargs: passed to `tfds.load` (e.g. `data_dir`, `download=False`).
    """
    import tensorflow_datasets as tfds

    if name not in tfds.list_builders():
        raise ValueError(f"{name!r} is not a TensorFlow Datasets data set")
    return tfds.load(name, split=split, as_supervised=as_supervised, **kwargs)
