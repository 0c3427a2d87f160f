"""Character and word tokenizers that run the same ops eagerly and inside a TensorFlow graph.

Both tokenizers have two modes:
- `"course"`: the course's cleaning, `[^A-Za-z]+` replaced by one space, ends stripped, lowercased.
  Applied to the whole Time Machine, it reproduces D2L 1.0's corpus; applied to each line, with the
  lines run together, D2L 0.17's.
- `"faithful"`: the text as written (case, punctuation, digits, any Unicode). Words are runs of letters,
  marks and digits; every other non-space character is a token of its own.

Python strings are tokenized by the same TensorFlow ops as tensors (converted and back), so the eager and
in-graph results cannot drift apart.
"""

import tensorflow as tf

MODES = ("course", "faithful")
COURSE_NON_LETTERS = r"[^A-Za-z]+"
# RE2 syntax: letters, marks and digits of any script; \p{Z} catches Unicode spaces RE2's \s does not.
_FAITHFUL_SYMBOL = r"([^\pL\pM\pN\s\p{Z}])"
_ANY_SPACE = r"[\s\p{Z}]+"


def course_clean(text):
    """The course's cleaning of a string or string tensor: non-letters → one space, strip, lowercase.

    Args:
        text: a Python `str`, a list of them, or a `tf.string` tensor of any shape.

    Returns:
        The cleaned text, of the same kind as `text`.
    """
    return _map_text(text, _course_clean_tensor)


def _course_clean_tensor(text):
    return tf.strings.lower(tf.strings.strip(tf.strings.regex_replace(text, COURSE_NON_LETTERS, " ")))


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def _is_python_text(text):
    return isinstance(text, str) or (
        isinstance(text, (list, tuple)) and all(isinstance(item, str) for item in text)
    )


def _as_string_tensor(text):
    if isinstance(text, (tf.Tensor, tf.RaggedTensor)) or tf.is_symbolic_tensor(text):
        if text.dtype != tf.string:
            raise TypeError(f"expected a tf.string tensor, got dtype {text.dtype.name}")
        return text
    raise TypeError(f"expected a str, a list of str or a tf.string tensor, got {type(text).__name__}")


def _decode(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _to_python(result, single):
    """Ragged or dense string tensor → list (of lists) of str."""
    if isinstance(result, tf.RaggedTensor):
        rows = [[_decode(token) for token in row] for row in result.to_list()]
    else:
        rows = [_decode(value) for value in result.numpy().tolist()]
    return rows[0] if single else rows


def _map_text(text, tensor_fn):
    """Applies `tensor_fn` to a string tensor, or to Python text through a tensor and back."""
    if _is_python_text(text):
        single = isinstance(text, str)
        batch = tf.constant([text] if single else list(text), dtype=tf.string)
        return _to_python(tensor_fn(batch), single)
    return tensor_fn(_as_string_tensor(text))


class _Tokenizer:
    separator = ""

    def __init__(self, mode="course"):
        _check_mode(mode)
        self.mode = mode

    def tokenize(self, text):
        """Splits text into tokens.

        Args:
            text: a `str` (→ list of str), a list of `str` (→ list of lists), or a `tf.string` tensor of
                rank 0 (→ 1-D tensor of tokens) or rank 1 (→ `tf.RaggedTensor` [batch, (tokens)]).

        Returns:
            The tokens, of the kind described above.
        """
        if _is_python_text(text):
            return _map_text(text, self._tokenize_tensor)
        text = _as_string_tensor(text)
        if text.shape.rank is None or text.shape.rank > 1:
            raise ValueError(f"expected a scalar or 1-D string tensor, got shape {text.shape}")
        return self._tokenize_tensor(text)

    def detokenize(self, tokens):
        """Joins tokens back into text (with `separator` between tokens).

        Args:
            tokens: a list of str, a list of lists of str, or a string tensor whose last axis holds tokens
                (dense or ragged).

        Returns:
            A str, a list of str, or a string tensor with the token axis removed.
        """
        if isinstance(tokens, (list, tuple)):
            if all(isinstance(token, str) for token in tokens):
                return self.separator.join(tokens)
            return [self.detokenize(row) for row in tokens]
        tokens = _as_string_tensor(tokens)
        return tf.strings.reduce_join(tokens, axis=-1, separator=self.separator)

    def _clean(self, text):
        return _course_clean_tensor(text) if self.mode == "course" else text

    def get_config(self):
        return {"mode": self.mode}


class CharTokenizer(_Tokenizer):
    """Splits text into Unicode characters.

    Args:
        mode: `"course"` (letters and single spaces, lowercased) or `"faithful"` (every character kept,
            undecodable UTF-8 bytes replaced by U+FFFD).

    Example:
    >>> CharTokenizer().tokenize("The Time!")
    ['t', 'h', 'e', ' ', 't', 'i', 'm', 'e']
    """

    separator = ""

    def _tokenize_tensor(self, text):
        return tf.strings.unicode_split(self._clean(text), "UTF-8", errors="replace")


class WordTokenizer(_Tokenizer):
    """Splits text into words.

    Args:
        mode: `"course"` (lowercase letter runs) or `"faithful"` (case kept; letter/digit runs are words,
            every other non-space character is a token of its own: `"Don't!"` → `Don ' t !`).

    `detokenize` joins tokens with one space, so in the faithful mode it does not restore the original
    spacing around punctuation.

    Example:
    >>> WordTokenizer("faithful").tokenize("Hello, world!")
    ['Hello', ',', 'world', '!']
    """

    separator = " "

    def _tokenize_tensor(self, text):
        text = self._clean(text)
        if self.mode == "faithful":
            text = tf.strings.regex_replace(text, _FAITHFUL_SYMBOL, r" \1 ")
            text = tf.strings.strip(tf.strings.regex_replace(text, _ANY_SPACE, " "))
        return tf.strings.split(text)
