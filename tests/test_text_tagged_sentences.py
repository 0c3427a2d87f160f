"""zoo.text.read_tagged_sentences: CoNLL (tabs or spaces, extra columns, the tag last) and CoNLL-U
told from the file, on crafted files and the real corpora; each mistake in one line with its fix."""

import re

import pytest

from zoo.text import DataFormatError, read_conll, read_conllu, read_tagged_sentences, tagging_format

SENTENCES = ([["Obama", "visited", "Paris"], ["Hi", "@bob"]], [["B-PER", "O", "B-LOC"], ["O", "B-PER"]])


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def conllu_line(word_id, form, upos, xpos):
    return "\t".join([word_id, form, form.lower(), upos, xpos, "_", "0", "dep", "_", "_"])


@pytest.mark.parametrize(
    "content",
    [
        "Obama\tB-PER\nvisited\tO\nParis\tB-LOC\n\nHi\tO\n@bob\tB-PER\n",  # WNUT-17
        "Obama\tB-PER\nvisited\tO\nParis\tB-LOC\n\n\n\nHi\tO\n@bob\tB-PER",  # more blank lines, no last \n
        "Obama B-PER\nvisited O\nParis B-LOC\n\nHi O\n@bob B-PER\n",
        # CoNLL-2003: -DOCSTART-, four space-separated columns.
        "-DOCSTART- -X- -X- O\n\nObama NNP B-NP B-PER\nvisited VBD B-VP O\nParis NNP B-NP B-LOC\n\n"
        "Hi UH B-INTJ O\n@bob NN B-NP B-PER\n",
        "Obama\tNNP\tB-PER\r\nvisited\tVBD\tO\r\nParis\tNNP\tB-LOC\r\n\r\nHi\tUH\tO\r\n@bob\tNN\tB-PER\r\n",
    ],
    ids=["tab", "blank-runs", "space", "conll2003", "extra-column-crlf"],
)
def test_conll_in_its_variants(tmp_path, content):
    path = write(tmp_path / "ner.txt", content)
    assert tagging_format(path) == "conll"
    assert read_tagged_sentences(path) == SENTENCES


def test_conllu_upos_or_xpos(tmp_path):
    path = write(
        tmp_path / "pos.conllu",
        "# sent_id = 1\n# text = Obama visited Paris\n"
        + "\n".join([conllu_line("1", "Obama", "PROPN", "NNP"), conllu_line("2", "visited", "VERB", "VBD"),
                     conllu_line("3", "Paris", "PROPN", "NNP")])
        + "\n\n"
        + "\n".join([conllu_line("1-2", "Don't", "_", "_"), conllu_line("1", "Do", "AUX", "VBP"),
                     conllu_line("2", "n't", "PART", "RB"), conllu_line("2.1", "x", "X", "X"),
                     conllu_line("3", "go", "VERB", "VB")])
        + "\n",
    )  # fmt: skip
    assert tagging_format(path) == "conllu"
    sentences, tags = read_tagged_sentences(path)
    assert sentences == [["Obama", "visited", "Paris"], ["Do", "n't", "go"]]
    assert tags == [["PROPN", "VERB", "PROPN"], ["AUX", "PART", "VERB"]]
    assert read_tagged_sentences(path, tag_column="xpos")[1] == [["NNP", "VBD", "NNP"], ["VBP", "RB", "VB"]]


def test_real_corpora_are_told_apart_and_read_as_their_readers_do(data_file, tmp_path):
    ewt = data_file("ud_english_ewt/en_ewt-ud-dev.conllu")
    wnut = data_file("wnut17/emerging.dev.conll")
    assert (tagging_format(ewt), tagging_format(wnut)) == ("conllu", "conll")
    assert read_tagged_sentences(ewt) == read_conllu(ewt)
    sentences, tags = read_tagged_sentences(wnut)
    assert (sentences, tags) == read_conll(wnut) and len(sentences) == 1009
    # The same sentences written with spaces and a part-of-speech column between word and tag.
    spaced = write(
        tmp_path / "wnut.txt",
        "\n\n".join("\n".join(f"{w} X {t}" for w, t in zip(s, ts)) for s, ts in zip(sentences, tags)) + "\n",
    )
    assert tagging_format(spaced) == "conll" and read_tagged_sentences(spaced) == (sentences, tags)


@pytest.mark.parametrize(
    "content, kwargs, message",
    [
        (
            "Obama\tB-PER\nvisited O\n", {},
            r"line 2: 1 tab-separated columns in 'visited O', line 1 has 2: a mixed-format file\? every word "
            r"line needs the same columns, the tag last",
        ),
        (
            "Obama B-PER\nvisited NNP O\n", {},
            r"line 2: 3 space-separated columns in 'visited NNP O', line 1 has 2: a mixed-format file\?",
        ),
        (
            "Obama\nvisited\n", {},
            r"line 1: one column in 'Obama': CoNLL lines hold token<TAB>tag, or columns split on spaces",
        ),
        (
            conllu_line("1", "Obama", "PROPN", "NNP") + "\nvisited\tVERB\n", {},
            r"line 2: 2 tab-separated columns in 'visited\\tVERB', line 1 has 10 \(CoNLL-U\): "
            r"a mixed-format file\?",
        ),
        (
            "Obama\tB-PER\n", {"format": "conllu"},
            r"line 1: 2 tab-separated columns in 'Obama\\tB-PER', CoNLL-U has 10: pass format='conll'",
        ),
        (
            conllu_line("1", "Obama", "_", "NNP") + "\n", {},
            r"line 1: no UPOS tag \('_'\) for 'Obama': pass tag_column='xpos'",
        ),
        ("# only a comment\n", {}, r"no word line in the file's head, only comments"),
        ("", {}, r"ner.txt: the file is empty"),
        ("-DOCSTART- O\n\n", {}, r"ner.txt: the file holds no sentences"),
        (
            "Obama\tB-PER\n\nParis\tB-GPE\n", {"known_tags": {"B-PER", "B-LOC", "O"}},
            r"line 3: tag 'B-GPE' is not among the 3 tags of the training data: correct it, or add "
            r"sentences with it to the training data",
        ),
    ],
)  # fmt: skip
def test_mistakes_are_one_line_that_names_the_line_and_the_fix(tmp_path, content, kwargs, message):
    path = write(tmp_path / "ner.txt", content)
    with pytest.raises(DataFormatError, match=message) as error:
        read_tagged_sentences(path, **kwargs)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_bytes_that_are_not_utf8_are_named_by_line(tmp_path):
    path = write(tmp_path / "ner.txt", "Obama\tB-PER\n\nZ\u00fcrich\tB-LOC\n", "latin-1")
    with pytest.raises(
        DataFormatError, match=re.escape(f"{path}, line 3: not UTF-8 text (byte 0xfc at character 2)")
    ):
        read_tagged_sentences(path)
    assert read_tagged_sentences(path, encoding="latin-1")[0] == [["Obama"], ["Z\u00fcrich"]]
    with pytest.raises(ValueError, match=r"tag_column must be one of \['upos', 'xpos'\], got 'deprel'"):
        read_conllu(path, tag_column="deprel")
    with pytest.raises(ValueError, match="format must be one of conll, conllu, got 'iob'"):
        read_tagged_sentences(path, format="iob")
