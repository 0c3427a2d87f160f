"""Readers of plain text, sentence pairs and The Time Machine, and TFDS by name; the text files every
reader of `zoo.text` opens through `read_text`.

Every reader decodes UTF-8 unless told another `encoding` (a UTF-8 byte-order mark is dropped, Windows
line ends are read as '\\n'). A missing file raises `FileNotFoundError` naming it; a file that does not
read as its format, `zoo.text.DataFormatError` (a `ValueError`) naming the line, what was found there
and what to pass: bytes that do not decode, an empty file, a line without its columns.

The readers of labelled texts (TSV/CSV, JSON Lines, a folder per class) are in
`zoo.text.labelled_texts`, those of tagged sentences (CoNLL, CoNLL-U) in `zoo.text.tagged_sentences`.
"""

import codecs
import gzip
import hashlib
import os
import warnings

from zoo.text.data_errors import DataFormatError, quoted

TIME_MACHINE_URL = "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt"
TIME_MACHINE_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"
_NO_SPACE_BEFORE = ",.!?"


def read_text(path, encoding="utf-8", errors="strict"):
    """Reads a text file; a UTF-8 byte-order mark (as spreadsheet programs write) is dropped.

    Args:
        path: the file (str or path-like).
        encoding: the file's encoding, any Python codec name (`"utf-8"`, `"cp1252"`, `"utf-16"`).
        errors: `"strict"`: bytes that do not decode raise `DataFormatError` naming their line;
            `"replace"`: they become U+FFFD, with one warning.

    Returns:
        The text (str), newlines as in the file.

    Raises:
        FileNotFoundError: no such file. DataFormatError: bytes that do not decode (strict), or an
        empty file. LookupError: an unknown encoding.

    Example:
    >>> read_text("reviews.csv", encoding="cp1252")
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise FileNotFoundError(f"{path} is a folder, not a file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    if errors not in ("strict", "replace"):
        raise ValueError(f"errors must be 'strict' or 'replace', got {errors!r}")
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    with open(path, "rb") as file:
        data = file.read()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        if errors == "strict":
            raise _undecodable(path, data, encoding, error) from None
        text = data.decode(encoding, errors="replace")
        warnings.warn(
            f"{path} is not valid {error.encoding} (first bad byte at offset {error.start}); undecodable "
            "bytes were replaced by U+FFFD",
            UnicodeWarning,
            stacklevel=2,
        )
    if not text.strip():
        raise DataFormatError(path, "the file is empty")
    return text


def _undecodable(path, data, encoding, error):
    """The `DataFormatError` of a file whose bytes do not decode: where, and which encoding to pass."""
    before = data[: error.start].decode(encoding)
    line = before.count("\n") + 1
    column = len(before) - (before.rfind("\n") + 1) + 1
    name = "UTF-8" if codecs.lookup(encoding).name.startswith("utf-8") else encoding
    problem = f"not {name} text (byte 0x{data[error.start]:02x} at character {column})"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return DataFormatError(
            path,
            problem + ", and the file starts with a UTF-16 byte-order mark",
            line=line,
            options={"encoding": "utf-16"},
        )
    return DataFormatError(
        path,
        problem,
        line=line,
        options={"encoding": "ENCODING"},
        advice="(e.g. cp1252 or latin-1), or save the file as UTF-8",
    )


def read_lines(path, encoding="utf-8"):
    """The lines of a text file (`read_text`), split on '\\n' only (not on U+0085 or other Unicode
    breaks), without the '\\r' of Windows line ends."""
    text = read_text(path, encoding)
    lines = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def head_lines(path, encoding="utf-8", size=1 << 16):
    """The complete lines in the first `size` bytes of a file (for telling its format), without a
    byte-order mark or '\\r' line ends; bytes that do not decode are replaced (reading the whole file
    says where they are).

    Raises:
        FileNotFoundError: no such file. DataFormatError: the file holds only whitespace.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, "rb") as file:
        data = file.read(size + 1)
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"
    text = data[:size].decode(encoding, errors="replace")
    if not text.strip():
        raise DataFormatError(path, "the file is empty")
    lines = text.split("\n")
    if len(data) > size and len(lines) > 1:
        lines = lines[:-1]  # cut off in the middle
    return [line[:-1] if line.endswith("\r") else line for line in lines]


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


def read_sentence_pairs(path, max_pairs=None, preprocess=True, encoding="utf-8"):
    """Reads tab-separated sentence pairs, one a line: `source<TAB>target`, or with more columns, which
    are ignored (as Tatoeba's attribution column, `CC-BY 2.0 (France) Attribution: tatoeba.org ...`).

    Args:
        path: the file (e.g. fra-eng's `fra.txt`).
        max_pairs: keep the first pairs only.
        preprocess: apply `preprocess_nmt` (the course's preprocessing) to both sides.
        encoding: the file's encoding.

    Returns:
        `(sources, targets)`: lists of str; split them with `str.split()` for the course's tokens.

    Raises:
        DataFormatError: a line without a tab or with an empty side, an empty file.

    Example:
    >>> sources, targets = read_sentence_pairs("fra.txt", max_pairs=1000)
    >>> sources[0], targets[0]
    ('go .', 'va !')
    """
    sources, targets = [], []
    for line_number, line in enumerate(read_lines(path, encoding), start=1):
        if max_pairs is not None and len(sources) >= max_pairs:
            break
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataFormatError(
                path,
                f"no tab in {quoted(line)}",
                line=line_number,
                advice="a line holds source<TAB>target (more columns, as Tatoeba's attribution, are ignored)",
            )
        source, target = fields[0], fields[1]
        if not source.strip() or not target.strip():
            side = "source" if not source.strip() else "target"
            raise DataFormatError(path, f"the {side} sentence is empty in {quoted(line)}", line=line_number)
        if preprocess:
            source, target = preprocess_nmt(source), preprocess_nmt(target)
        sources.append(source)
        targets.append(target)
    if not sources:
        raise DataFormatError(path, "the file holds no sentence pairs")
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
