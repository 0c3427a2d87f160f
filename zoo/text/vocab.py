"""A token vocabulary with eager and in-graph lookups and a plain-text file format."""

import collections
import os
import re

import numpy as np
import tensorflow as tf

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
COURSE_RESERVED = (UNK,)
SEQUENCE_RESERVED = (PAD, UNK, BOS, EOS)


def _flatten(tokens):
    for item in tokens:
        if isinstance(item, str):
            yield item
        else:
            yield from _flatten(item)


_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r"}
_UNESCAPES = {escaped: char for char, escaped in _ESCAPES.items()}
_ESCAPED = re.compile(r"\\[\\nr]")


def _escape(token):
    """A token as one line of a vocabulary file: backslash, newline and carriage return escaped."""
    return "".join(_ESCAPES.get(char, char) for char in token)


def _unescape(line):
    """The token of one line of a vocabulary file (`_escape` undone)."""
    return _ESCAPED.sub(lambda match: _UNESCAPES[match.group()], line)


class Vocab(tf.Module):
    """Maps tokens to ids and back.

    Reserved tokens come first, in the order given; then every other token with a count of at least
    `min_freq`, most frequent first, ties broken by the token's text (so the order never depends on the
    order the corpus was read in).

    How to choose the reserved tokens:
    - the default `("<unk>",)` is the course's language-model vocabulary: the Time Machine cleaned with
      the course's rule gives 28 character ids (`<unk>`, space, 26 letters);
    - for padded batches use `SEQUENCE_RESERVED = ("<pad>", "<unk>", "<bos>", "<eos>")`: padding must be id
      0, so `"<pad>"`, when reserved, has to be first;
    - for tag sets pass `unk_token=None` and `reserved_tokens=("<pad>",)`: an unknown tag is then an
      error instead of a silent `<unk>`.

    Args:
        tokens: a `collections.Counter`/mapping of token → count, or an iterable of tokens (str) or of
            nested lists of tokens (sentences), which is counted.
        min_freq: tokens seen fewer times are left out (they map to `unk_token`).
        reserved_tokens: tokens placed first, whatever their counts.
        unk_token: the token unknown tokens map to; it must be among `reserved_tokens`. `None`: unknown
            tokens are an error.

    Example:
    >>> vocab = Vocab(["a", "b", "a"])
    >>> vocab.to_ids(["a", "c"])
    [1, 0]
    """

    def __init__(self, tokens=(), min_freq=1, reserved_tokens=COURSE_RESERVED, unk_token=UNK):
        super().__init__(name="vocab")
        if isinstance(tokens, collections.abc.Mapping):
            counts = collections.Counter(dict(tokens))
        else:
            counts = collections.Counter(_flatten(tokens))
        reserved = list(reserved_tokens)
        if len(set(reserved)) != len(reserved):
            raise ValueError(f"reserved_tokens has duplicates: {reserved}")
        if PAD in reserved and reserved[0] != PAD:
            raise ValueError(f"{PAD!r} must be the first reserved token (padding id 0), got {reserved}")
        if unk_token is not None and unk_token not in reserved:
            raise ValueError(f"unk_token {unk_token!r} must be one of reserved_tokens {reserved}")
        kept = sorted(
            (token for token, count in counts.items() if count >= min_freq and token not in reserved),
            key=lambda token: (-counts[token], token),
        )
        self._init_from_tokens(reserved + kept, unk_token, reserved)
        self.counts = counts

    def _init_from_tokens(self, tokens, unk_token, reserved):
        for token in tokens:
            if not isinstance(token, str):
                raise TypeError(f"tokens must be str, got {token!r}")
        if not tokens:
            raise ValueError("the vocabulary is empty: no tokens and no reserved tokens")
        self.idx_to_token = list(tokens)
        self.token_to_idx = {token: index for index, token in enumerate(tokens)}
        self.reserved_tokens = tuple(reserved)
        self.unk_token = unk_token
        self.unk_id = -1 if unk_token is None else self.token_to_idx[unk_token]
        self._token_table = tf.constant(self.idx_to_token, dtype=tf.string)
        self._id_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                self._token_table, tf.range(len(tokens), dtype=tf.int64), tf.string, tf.int64
            ),
            default_value=self.unk_id,
        )

    def __len__(self):
        return len(self.idx_to_token)

    def __contains__(self, token):
        return token in self.token_to_idx

    def id_of(self, name):
        """The id of a reserved or known token (e.g. `vocab.id_of("<bos>")`); KeyError if absent."""
        if name not in self.token_to_idx:
            raise KeyError(f"{name!r} is not in the vocabulary")
        return self.token_to_idx[name]

    def to_ids(self, tokens):
        """Token(s) → id(s).

        Args:
            tokens: a str, a (nested) list of str, or a `tf.string` tensor (dense or ragged).

        Returns:
            An int, a nested list of ints, or an int32 tensor of the same shape. Unknown tokens map to the
            `<unk>` id; with `unk_token=None` they raise `KeyError` (eagerly) or `InvalidArgumentError`.
        """
        if isinstance(tokens, str):
            if tokens in self.token_to_idx:
                return self.token_to_idx[tokens]
            if self.unk_token is None:
                raise KeyError(f"unknown token {tokens!r} and the vocabulary has no unk_token")
            return self.unk_id
        if isinstance(tokens, (list, tuple)):
            return [self.to_ids(token) for token in tokens]
        if tokens.dtype != tf.string:
            raise TypeError(f"to_ids expects tf.string tokens, got dtype {tokens.dtype.name}")
        if isinstance(tokens, tf.RaggedTensor):
            return tf.ragged.map_flat_values(self._lookup, tokens)
        return self._lookup(tokens)

    def _lookup(self, tokens):
        ids = self._id_table.lookup(tokens)
        if self.unk_token is None:
            check = tf.debugging.assert_non_negative(
                ids, message="a token is not in the vocabulary (and it has no unk_token)"
            )
            with tf.control_dependencies([check]):
                ids = tf.identity(ids)
        return tf.cast(ids, tf.int32)

    def to_tokens(self, ids):
        """Id(s) → token(s).

        Args:
            ids: an int, a (nested) list of ints, a NumPy array, or an integer tensor (dense or ragged).

        Returns:
            A str, a nested list of str, or a `tf.string` tensor. An id outside [0, len(vocab)) raises
            `IndexError` (eagerly) or `InvalidArgumentError` (in a graph).
        """
        if isinstance(ids, (int, np.integer)):
            if not 0 <= ids < len(self):
                raise IndexError(f"id {ids} is out of range for a vocabulary of {len(self)} tokens")
            return self.idx_to_token[ids]
        if isinstance(ids, (list, tuple, np.ndarray)):
            return [self.to_tokens(item) for item in ids]
        if not ids.dtype.is_integer:
            raise TypeError(f"to_tokens expects integer ids, got dtype {ids.dtype.name}")
        if isinstance(ids, tf.RaggedTensor):
            return tf.ragged.map_flat_values(self._gather, ids)
        return self._gather(ids)

    def _gather(self, ids):
        ids = tf.cast(ids, tf.int64)
        checks = [
            tf.debugging.assert_non_negative(ids, message="token ids must be >= 0"),
            tf.debugging.assert_less(
                ids, tf.constant(len(self), tf.int64), message=f"token ids must be < {len(self)} (vocab size)"
            ),
        ]
        with tf.control_dependencies(checks):
            return tf.gather(self._token_table, ids)

    def save(self, path):
        """Writes the tokens, one per line, in id order (UTF-8).

        A token may hold any character: a backslash is written `\\\\`, a newline `\\n` and a carriage
        return `\\r` (a faithful character vocabulary has the line break as a token), so that each line
        of the file is one token; `load` reads them back.
        """
        with open(path, "w", encoding="utf-8", newline="\n") as file:
            file.write("\n".join(_escape(token) for token in self.idx_to_token) + "\n")

    @classmethod
    def load(cls, path, reserved_tokens=COURSE_RESERVED, unk_token=UNK):
        """Reads a vocabulary written by `save`; line i is the token of id i.

        Args:
            path: the file.
            reserved_tokens: the reserved tokens it was built with; they must be its first lines.
            unk_token: as in the constructor.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"vocabulary file not found: {path}")
        with open(path, encoding="utf-8", newline="") as file:
            text = file.read()
        if not text.endswith("\n"):
            raise ValueError(f"{path} is not a vocabulary file written by Vocab.save (no final newline)")
        tokens = [_unescape(line) for line in text[:-1].split("\n")]
        if len(set(tokens)) != len(tokens):
            raise ValueError(f"{path} has duplicate tokens")
        reserved = list(reserved_tokens)
        if tokens[: len(reserved)] != reserved:
            raise ValueError(f"{path} does not start with the reserved tokens {reserved}")
        vocab = cls.__new__(cls)
        tf.Module.__init__(vocab, name="vocab")
        if unk_token is not None and unk_token not in reserved:
            raise ValueError(f"unk_token {unk_token!r} must be one of reserved_tokens {reserved}")
        vocab._init_from_tokens(tokens, unk_token, reserved)
        vocab.counts = None
        return vocab
