"""Texts and their labels (a class per text), from the files people keep them in, and how to tell
the formats apart.

- `tsv`: a header line naming the columns, then a text a line, the fields separated by tabs (no
  quoting): `review<TAB>sentiment`, `Loved it.<TAB>positive`. Told by a tab in the first line.
- `csv`: the same with commas (or semicolons), fields holding commas in double quotes:
  `review,sentiment`, `"Long, dull.",negative`. Told by a comma or semicolon in the first line.
- `jsonl`: JSON Lines, an object a line: `{"text": "Loved it.", "label": "positive"}`. Told by a
  first line starting with `{`.
- `folders`: a folder per class holding a `.txt` file per text, the layout of
  `keras.utils.text_dataset_from_directory`: `reviews/positive/1.txt`, `reviews/negative/2.txt`.
  Told by a folder.

The text and label columns (or JSON keys) are found by their names, case aside (`TEXT_COLUMNS`,
`LABEL_COLUMNS`: text, review, sentence, ...; label, sentiment, class, ...), or named by
`text_column` and `label_column`. Labels are strings: class names or numbers as written (JSON numbers
and booleans as `str` gives them); a folder's name is its texts' label.

Example:

>>> labelled_text_format("reviews.csv")
'csv'
>>> texts, labels = read_labelled_texts("reviews.csv")   # header `review,sentiment`: found by name
>>> dev_texts, dev_labels = read_labelled_texts("dev.jsonl", known_labels=set(labels))
"""

import csv
import io
import json
import os
import pathlib

from zoo.text.corpora import head_lines, read_lines, read_text
from zoo.text.data_errors import DataFormatError, quoted

LABELLED_TEXT_FORMATS = ("tsv", "csv", "jsonl", "folders")
TEXT_COLUMNS = ("text", "review", "sentence", "content", "document", "comment", "tweet")
LABEL_COLUMNS = ("label", "sentiment", "class", "target", "polarity", "category")
_SEPARATOR_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon"}


def labelled_text_format(path, encoding="utf-8"):
    """The format of a file (or folder) of labelled texts, told from its first line.

    Args:
        path: the file, or a folder of class folders.
        encoding: the file's encoding.

    Returns:
        `"folders"` for a folder; for a file, `"jsonl"` when its first non-blank line starts with `{`,
        `"tsv"` when that line holds a tab, `"csv"` when it holds a comma or semicolon.

    Raises:
        FileNotFoundError: no such file. DataFormatError: an empty file, or a first line that is none
        of these (a JSON array, a line without separators).
    """
    if os.path.isdir(path):
        return "folders"
    line_number, line = next(
        (number, line) for number, line in enumerate(head_lines(path, encoding), start=1) if line.strip()
    )
    if line.lstrip().startswith("{"):
        return "jsonl"
    if line.lstrip().startswith("["):
        raise DataFormatError(
            path, "a JSON array", line=line_number, advice="write one JSON object a line (JSON Lines)"
        )
    if "\t" in line:
        return "tsv"
    if "," in line or ";" in line:
        return "csv"
    raise DataFormatError(
        path,
        f"no tab, comma or semicolon in the first line {quoted(line)}",
        line=line_number,
        advice="a TSV or CSV file starts with a header line naming its columns (e.g. text<TAB>label)",
    )


def read_labelled_texts(
    path, format=None, text_column=None, label_column=None, encoding="utf-8", known_labels=None
):
    """Reads texts and their labels from TSV, CSV, JSON Lines or a folder per class.

    Args:
        path: the file, or the folder of class folders.
        format: one of `LABELLED_TEXT_FORMATS`, or None to tell it from the file
            (`labelled_text_format`).
        text_column, label_column: the header names (JSON keys) of the text and the label; None: the
            first of `TEXT_COLUMNS` / `LABEL_COLUMNS` the header has, case aside. Folders have neither.
        encoding: the files' encoding.
        known_labels: the labels the data may hold (e.g. the training data's, reading a dev file), or
            None.

    Returns:
        `(texts, labels)`: lists of str, aligned.

    Raises:
        DataFormatError: no text or label column, a row with other fields than the header (a wrong
        separator), a line that is not a JSON object, a folder without class folders, a label outside
        `known_labels`, bytes that do not decode, an empty file.
    """
    format = format or labelled_text_format(path, encoding)
    if format == "folders":
        if text_column is not None or label_column is not None:
            raise ValueError("a folder per class has no columns: pass neither text_column nor label_column")
        examples = _read_class_folders(path, encoding)
    elif format == "jsonl":
        examples = _read_json_lines(path, text_column, label_column, encoding)
    elif format in ("tsv", "csv"):
        examples = _read_table(path, format, text_column, label_column, encoding)
    else:
        raise ValueError(f"format must be one of {', '.join(LABELLED_TEXT_FORMATS)}, got {format!r}")
    texts, labels = [], []
    for where, text, label in examples:
        if not label.strip():
            raise DataFormatError(where[0], "an example without a label", line=where[1])
        if known_labels is not None and label not in known_labels:
            known = ", ".join(sorted(known_labels))
            raise DataFormatError(
                where[0],
                f"label {label!r} is not among the labels of the training data ({known})",
                line=where[1],
                advice="correct it, or add examples of it to the training data",
            )
        texts.append(text)
        labels.append(label)
    if not texts:
        raise DataFormatError(path, "no examples in it")
    return texts, labels


def read_delimited(
    path, text_column, label_column=None, delimiter="\t", quoting=csv.QUOTE_NONE, encoding="utf-8"
):
    """Reads a delimited file with a header row: a text column and, optionally, a label column.

    Lines end at '\\n' only, so text holding U+0085 (as 13 IMDb reviews do) stays in one field.

    Args:
        path: the file.
        text_column: the header name of the text column.
        label_column: the header name of the label column, or `None`.
        delimiter: `"\\t"` for TSV, `","` for CSV.
        quoting: a `csv` quoting constant: `csv.QUOTE_NONE` (TSV as in the data sets here) or
            `csv.QUOTE_MINIMAL` (ordinary CSV with quoted fields).
        encoding: the file's encoding.

    Returns:
        `(texts, labels)`: lists of str (`labels` is `None` without `label_column`).

    Raises:
        DataFormatError: a named column the header lacks, a row with other fields than the header.
    """
    reader = csv.reader(
        io.StringIO(read_text(path, encoding), newline=""), delimiter=delimiter, quoting=quoting
    )
    header = next(reader)
    missing = [name for name in (text_column, label_column) if name is not None and name not in header]
    if missing:
        raise DataFormatError(path, f"no column {missing} in the header {header}", line=1)
    text_index = header.index(text_column)
    label_index = None if label_column is None else header.index(label_column)
    texts, labels = [], []
    for row in _rows(path, reader, header, delimiter):
        texts.append(row[text_index])
        if label_index is not None:
            labels.append(row[label_index])
    if not texts:
        raise DataFormatError(path, "a header but no rows")
    return texts, (labels if label_column is not None else None)


def read_imdb_tsv(path):
    """Reads the IMDb subset (`label<TAB>rating<TAB>source_file<TAB>text`).

    Returns:
        `(texts, labels)`: the reviews verbatim (with their `<br />` tags) and int labels (1 positive).
    """
    texts, labels = read_delimited(path, "text", "label")
    return texts, [int(label) for label in labels]


# --- The formats ------------------------------------------------------------------------------


def _read_table(path, format, text_column, label_column, encoding):
    """`((path, line), text, label)` of a TSV or CSV file's rows."""
    text = read_text(path, encoding)
    if format == "tsv":
        delimiter, quoting = "\t", csv.QUOTE_NONE
    else:
        first_line = next(line for line in text.split("\n") if line.strip())
        delimiter = ";" if ";" in first_line and "," not in first_line else ","
        quoting = csv.QUOTE_MINIMAL
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    header = next(row for row in reader if row)
    header_line = reader.line_num
    if len(header) == 1:
        other = next((name for name in ("\t", ",", ";") if name in header[0]), None)
        if other is not None:
            raise DataFormatError(
                path,
                f"the header {quoted(header[0])} is one {_SEPARATOR_NAMES[delimiter]}-separated column "
                f"with {_SEPARATOR_NAMES[other]}s in it",
                line=header_line,
                options={"format": "tsv" if other == "\t" else "csv"},
            )
    text_index, label_index = _find_columns(path, header, header_line, text_column, label_column)
    for row in _rows(path, reader, header, delimiter):
        yield (path, reader.line_num), row[text_index], row[label_index]


def _rows(path, reader, header, delimiter):
    """The non-blank rows of a `csv.reader` after its header, each checked to have the header's
    number of fields."""
    for row in reader:
        if not row or row == [""]:
            continue
        line = delimiter.join(row)  # as in the file when no field is quoted
        if line.lstrip().startswith("{") and _is_json_object(line):
            raise DataFormatError(
                path,
                f"a JSON object in a {_SEPARATOR_NAMES[delimiter]}-separated file: {quoted(line)}",
                line=reader.line_num,
                advice="a mixed-format file? keep to one format a file",
            )
        if len(row) != len(header):
            separator = _SEPARATOR_NAMES[delimiter]
            if delimiter == "\t":
                advice = "(a tab in a text?) remove tabs from the texts, or save the file as CSV"
            else:
                advice = f'(a {separator} in a text?) put texts in double quotes: "Long, dull.",negative'
            raise DataFormatError(
                path,
                f"{len(row)} {separator}-separated fields, the header has {len(header)}",
                line=reader.line_num,
                advice=advice,
            )
        yield row


def _is_json_object(line):
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False


def _find_columns(path, header, line, text_column, label_column):
    """The indices of the text and label columns in `header`, by the names given or by the common ones."""
    lowered = [name.strip().lower() for name in header]
    indices, missing = [], {}
    for role, given, common in (("text", text_column, TEXT_COLUMNS), ("label", label_column, LABEL_COLUMNS)):
        if given is not None:
            index = header.index(given) if given in header else None
        else:
            index = next((lowered.index(name) for name in common if name in lowered), None)
        if index is None:
            missing[role] = (
                f"column {given!r}" if given is not None else f"{role} column (looked for {'/'.join(common)})"
            )
        indices.append(index)
    if missing:
        raise DataFormatError(
            path,
            f"no {' and no '.join(missing.values())} in the header {header}",
            line=line,
            options={f"{role}_column": "NAME" for role in missing},
        )
    return indices


def _read_json_lines(path, text_column, label_column, encoding):
    """`((path, line), text, label)` of a JSON Lines file's objects."""
    keys = None
    for line_number, line in enumerate(read_lines(path, encoding), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataFormatError(
                path,
                f"not JSON ({error.msg}): {quoted(line)}",
                line=line_number,
                advice="a mixed-format file? JSON Lines hold one JSON object a line",
            ) from None
        if not isinstance(record, dict):
            raise DataFormatError(
                path, f"a JSON {type(record).__name__}, not an object: {quoted(line)}", line=line_number
            )
        if keys is None:
            keys = _find_columns(path, list(record), line_number, text_column, label_column)
            keys = [list(record)[index] for index in keys]
            first_line = line_number
        missing = [key for key in keys if key not in record]
        if missing:
            raise DataFormatError(
                path, f"no key {missing[0]!r} (line {first_line} has it): {quoted(line)}", line=line_number
            )
        text, label = record[keys[0]], record[keys[1]]
        if not isinstance(text, str):
            raise DataFormatError(
                path, f"the text {keys[0]!r} is not a string: {quoted(line)}", line=line_number
            )
        if isinstance(label, float) and label.is_integer():
            label = int(label)
        if not isinstance(label, (str, int)):  # bool is an int
            raise DataFormatError(
                path, f"the label {keys[1]!r} is not a string or an integer: {quoted(line)}", line=line_number
            )
        yield (path, line_number), text, str(label)


def _read_class_folders(path, encoding):
    """`((file, None), text, label)` of the `.txt` files in each class folder (at any depth), the
    classes and files in sorted order; files beside the class folders are left out, as Keras does."""
    root = pathlib.Path(path)
    if not root.is_dir():
        raise DataFormatError(
            path,
            "a file, not a folder of class folders",
            advice="name its format (tsv, csv or jsonl), or leave the format to be told from the file",
        )
    classes = sorted(entry for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        files = sum(1 for entry in root.iterdir() if entry.is_file())
        raise DataFormatError(
            path,
            f"no class folders in it ({files} files)",
            advice="put each class's .txt files in a folder named after the class: "
            f"{root / 'positive' / '1.txt'}, {root / 'negative' / '2.txt'}, ...",
        )
    for folder in classes:
        files = sorted(file for file in folder.rglob("*.txt") if file.is_file())
        if not files:
            raise DataFormatError(folder, "no .txt files in this class folder")
        for file in files:
            yield (file, None), read_text(file, encoding), folder.name
