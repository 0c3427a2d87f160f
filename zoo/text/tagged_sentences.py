"""Sentences tagged word by word, from CoNLL and CoNLL-U files, and how to tell the two apart.

- `conll`: a word a line, its tag in the last column: `Obama<TAB>B-PER` (WNUT-17), or more columns,
  or columns split on spaces (`Obama NNP B-NP B-PER`, CoNLL-2003). Told by any first word line that
  is not CoNLL-U's.
- `conllu`: CoNLL-U, 10 tab-separated columns, the tag in UPOS (column 4) or XPOS (column 5):
  `1<TAB>Obama<TAB>Obama<TAB>PROPN<TAB>NNP<TAB>...`. Told by a first word line of 10 tab-separated
  columns starting with a word ID.

A blank line ends a sentence. CoNLL's `-DOCSTART-` lines (CoNLL-2003) and CoNLL-U's comments (`#`),
multiword-token lines (`n-m`) and empty nodes (`n.m`) are skipped. The tags are anything the file
holds; `zoo.metrics.entity_scheme` tells BIO and BIOES entity tags, which are scored by entity.

Example:

>>> tagging_format("my_ner.conll")
'conll'
>>> sentences, tags = read_tagged_sentences("my_ner.conll")
>>> sentences[0], tags[0]
(['Obama', 'visited', 'Paris'], ['B-PER', 'O', 'B-LOC'])
>>> dev = read_tagged_sentences("my_ner_dev.conll", known_tags={t for row in tags for t in row})
"""

import re

from zoo.text.corpora import head_lines, read_lines
from zoo.text.data_errors import DataFormatError, quoted

TAGGING_FORMATS = ("conll", "conllu")
CONLLU_TAG_COLUMNS = {"upos": 3, "xpos": 4}
_CONLLU_COLUMNS = 10
_CONLLU_WORD_ID = re.compile(r"\d+([-.]\d+)?")
_DOCUMENT_START = "-DOCSTART-"


def tagging_format(path, encoding="utf-8"):
    """The format of a file of tagged sentences, told from its first word line.

    Args:
        path: the file.
        encoding: its encoding.

    Returns:
        `"conllu"` when the first line that is not blank or a comment has 10 tab-separated columns
        and a word ID (`1`, `1-2`, `1.1`) first; `"conll"` otherwise.

    Raises:
        FileNotFoundError: no such file. DataFormatError: an empty file.
    """
    for line in head_lines(path, encoding):
        if line.strip() and not (line.startswith("#") and "\t" not in line):
            fields = line.split("\t")
            is_conllu = len(fields) == _CONLLU_COLUMNS and _CONLLU_WORD_ID.fullmatch(fields[0])
            return "conllu" if is_conllu else "conll"
    raise DataFormatError(path, "no word line in the file's head, only comments")


def read_tagged_sentences(path, format=None, tag_column="upos", encoding="utf-8", known_tags=None):
    """Reads tagged sentences from a CoNLL or CoNLL-U file (`format`, or told by `tagging_format`).

    Args:
        path: the file.
        format: `"conll"`, `"conllu"`, or None to tell it from the file.
        tag_column: CoNLL-U's tag column, `"upos"` or `"xpos"`.
        encoding: the file's encoding.
        known_tags: the tags the file may hold (e.g. the training file's, reading a dev file), or None.

    Returns:
        `(sentences, tags)`: lists of word lists and of tag lists, aligned.

    Raises:
        DataFormatError: a line that does not read as the format, a tag outside `known_tags`, bytes
        that do not decode, an empty file.
    """
    format = format or tagging_format(path, encoding)
    if format == "conllu":
        return read_conllu(path, tag_column, encoding, known_tags)
    if format == "conll":
        return read_conll(path, encoding, known_tags)
    raise ValueError(f"format must be one of {', '.join(TAGGING_FORMATS)}, got {format!r}")


def read_conll(path, encoding="utf-8", known_tags=None):
    """Reads CoNLL: a word a line, its tag in the last column (`token<TAB>tag`, as WNUT-17; or more
    columns; or columns split on spaces, as CoNLL-2003), a blank line between sentences.

    The first word line sets the columns: tab-separated if it holds a tab, else split on spaces;
    every word line must have as many.

    Args:
        path: the file.
        encoding: its encoding.
        known_tags: the tags the file may hold, or None.

    Returns:
        `(sentences, tags)`: lists of token lists and of tag lists, aligned.
    """
    layout = {}  # of the first word line: "separator", "columns", "line"

    def parse(line, line_number):
        if not layout:
            layout.update(separator="\t" if "\t" in line else None, line=line_number)
        fields = line.split(layout["separator"])
        if fields[0] == _DOCUMENT_START:
            return None
        if "columns" not in layout:
            if len(fields) < 2:
                raise DataFormatError(
                    path,
                    f"one column in {quoted(line)}",
                    line=line_number,
                    advice="CoNLL lines hold token<TAB>tag, or columns split on spaces, the tag last",
                )
            layout.update(columns=len(fields), line=line_number)
        elif len(fields) != layout["columns"]:
            separated = "tab-separated" if layout["separator"] else "space-separated"
            raise DataFormatError(
                path,
                f"{len(fields)} {separated} columns in {quoted(line)}, line {layout['line']} has "
                f"{layout['columns']}",
                line=line_number,
                advice="a mixed-format file? every word line needs the same columns, the tag last",
            )
        return fields[0], fields[-1]

    return _sentences_of(path, read_lines(path, encoding), parse, known_tags)


def read_conllu(path, tag_column="upos", encoding="utf-8", known_tags=None):
    """Reads CoNLL-U: one (form, tag) per syntactic word.

    Comments (`#`), multiword-token lines (`n-m`) and empty nodes (`n.m`) are skipped.

    Args:
        path: the file.
        tag_column: `"upos"` (column 4) or `"xpos"` (column 5).
        encoding: the file's encoding.
        known_tags: the tags the file may hold, or None.

    Returns:
        `(sentences, tags)`: lists of word lists and of tag lists, aligned.
    """
    if tag_column not in CONLLU_TAG_COLUMNS:
        raise ValueError(f"tag_column must be one of {sorted(CONLLU_TAG_COLUMNS)}, got {tag_column!r}")
    tag_index = CONLLU_TAG_COLUMNS[tag_column]
    (other_column,) = set(CONLLU_TAG_COLUMNS) - {tag_column}
    first_word_line = []

    def parse(line, line_number):
        if line.startswith("#"):
            return None
        fields = line.split("\t")
        if len(fields) != _CONLLU_COLUMNS:
            found = f"{len(fields)} tab-separated columns in {quoted(line)}"
            if first_word_line:
                raise DataFormatError(
                    path,
                    f"{found}, line {first_word_line[0]} has {_CONLLU_COLUMNS} (CoNLL-U)",
                    line=line_number,
                    advice="a mixed-format file?",
                )
            raise DataFormatError(
                path, f"{found}, CoNLL-U has {_CONLLU_COLUMNS}", line=line_number, options={"format": "conll"}
            )
        first_word_line[:] = first_word_line or [line_number]
        if "-" in fields[0] or "." in fields[0]:
            return None
        if fields[tag_index] == "_":
            has_other = fields[CONLLU_TAG_COLUMNS[other_column]] != "_"
            raise DataFormatError(
                path,
                f"no {tag_column.upper()} tag ('_') for {fields[1]!r}",
                line=line_number,
                options={"tag_column": other_column} if has_other else None,
            )
        return fields[1], fields[tag_index]

    return _sentences_of(path, read_lines(path, encoding), parse, known_tags)


def _sentences_of(path, lines, parse, known_tags):
    """Sentences and tags of `lines`: `parse(line, line_number)` gives a word line's `(word, tag)`, or
    None for a line to skip; blank lines end sentences."""
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
        if parsed is None:
            continue
        if known_tags is not None and parsed[1] not in known_tags:
            raise DataFormatError(
                path,
                f"tag {parsed[1]!r} is not among the {len(known_tags)} tags of the training data",
                line=line_number,
                advice="correct it, or add sentences with it to the training data",
            )
        words.append(parsed[0])
        word_tags.append(parsed[1])
    if not sentences:
        raise DataFormatError(path, "the file holds no sentences")
    return sentences, tags
