"""A language model's corpus: a text as one stream of character or word ids, with its vocabulary.

Two ways to read the text (`text=`), the modes of `CharTokenizer` and `WordTokenizer`:
- `"course"`: the course's cleaning (`[^A-Za-z]+` → one space, lowercased), applied to the whole
  text, as D2L 1.0 does (a line break is a space between words); the vocabulary is the whole text's,
  as the course builds it. The Time Machine gives D2L 1.0's 173,427 characters over 28 ids.
- `"faithful"`: the text as written, in any script: case, punctuation, digits, line breaks. The
  vocabulary is the training text's (the stream's head, before the validation tail), so every
  character or word the model trains on has an id of its own and only what the validation text adds
  maps to `<unk>`.

`read_language_model_corpus()` reads The Time Machine the course's way; a file of one's own is read
faithfully unless told otherwise.
"""

import collections

import numpy as np

from zoo.text.corpora import load_time_machine, read_text
from zoo.text.data_errors import DataFormatError
from zoo.text.lm_batches import split_stream
from zoo.text.tokenizers import MODES, CharTokenizer, WordTokenizer
from zoo.text.vocab import Vocab

TEXT_MODES = MODES
TOKEN_LEVELS = ("char", "word")

LanguageModelCorpus = collections.namedtuple("LanguageModelCorpus", ["ids", "tokenizer", "vocab"])
LanguageModelCorpus.__doc__ = """A corpus as one id stream.

    Fields:
        ids: int32 NumPy array, the whole text's token ids (`zoo.text.split_stream` cuts off the
            validation tail with the same `validation_fraction`).
        tokenizer: the `CharTokenizer` or `WordTokenizer` that split it (its `mode` is the text mode).
        vocab: the `Vocab` that maps its tokens to ids.
    """


def language_model_corpus(corpus, level="char", text="course", validation_fraction=0.1):
    """Tokenizes a text for a language model.

    Args:
        corpus: the text (str).
        level: `"char"` or `"word"`.
        text: `"course"` or `"faithful"` (the module docstring says what each keeps).
        validation_fraction: the share of tokens at the end held out for validation; a faithful
            vocabulary is built from the tokens before it.

    Returns:
        A `LanguageModelCorpus`.

    Raises:
        ValueError: an unknown level or mode. DataFormatError (a ValueError): a text that holds no
        tokens (e.g. a Chinese text after the course's cleaning, which keeps Latin letters only).

    Example:
    >>> corpus = language_model_corpus("Étincelle, ёлка, 火花.\\n", text="faithful")
    >>> "".join(corpus.vocab.to_tokens(corpus.ids.tolist()))
    'Étincelle, ёлка, 火花.\\n'
    """
    return _tokenized(corpus, level, text, validation_fraction, source="the text")


def read_language_model_corpus(path=None, level="char", text=None, validation_fraction=0.1, encoding="utf-8"):
    """Reads a text file (or The Time Machine) as a language model's corpus.

    Args:
        path: the file; `None`: The Time Machine (`load_time_machine()`, the copy the zoo ships).
        level: `"char"` or `"word"`.
        text: `"course"` or `"faithful"`; `None`: `"course"` for The Time Machine (the course's
            figures), `"faithful"` for a file of one's own.
        validation_fraction: as for `language_model_corpus`.
        encoding: the file's encoding (`read_text`).

    Returns:
        A `LanguageModelCorpus`.

    Raises:
        FileNotFoundError: no such file. DataFormatError: an empty or undecodable file, or one that
        holds no tokens in the mode asked for (the message names the mode to pass).

    Example:
    >>> corpus = read_language_model_corpus("poems_ru.txt")             # faithful characters
    >>> corpus.tokenizer.mode, len(corpus.vocab)
    ('faithful', 74)
    """
    if path is None:
        return _tokenized(
            load_time_machine(), level, text or "course", validation_fraction, "The Time Machine"
        )
    corpus = read_text(path, encoding)
    return _tokenized(corpus, level, text or "faithful", validation_fraction, source=path)


def _tokenized(corpus, level, text, validation_fraction, source):
    if level not in TOKEN_LEVELS:
        raise ValueError(f"level must be one of {TOKEN_LEVELS}, got {level!r}")
    if text not in TEXT_MODES:
        raise ValueError(f"text must be one of {TEXT_MODES}, got {text!r}")
    tokenizer = (CharTokenizer if level == "char" else WordTokenizer)(text)
    # One string: the course's cleaning makes a line break a space between words, and a faithful
    # character stream keeps it as a character.
    tokens = tokenizer.tokenize(corpus)
    if not tokens:
        if text == "course":
            raise DataFormatError(
                source,
                "no tokens after the course's cleaning (Latin letters only)",
                options={"text": "faithful"},
                advice="to keep every script, case and punctuation",
            )
        raise DataFormatError(source, "no tokens")
    if text == "course":
        vocab = Vocab(tokens)
    else:
        train_tokens, _ = split_stream(np.arange(len(tokens)), validation_fraction)
        vocab = Vocab(tokens[: len(train_tokens)])
    return LanguageModelCorpus(np.asarray(vocab.to_ids(tokens), np.int32), tokenizer, vocab)
