"""In-graph cleaning of raw text for serving modules: any bytes in, tokens the model was trained on out.

- `clean_markup`: undecodable UTF-8 becomes U+FFFD, HTML line breaks (`<br />`, as in IMDb reviews)
  a space.
- `CleaningTokenizer`: `clean_markup`, then a zoo tokenizer; what `zoo.models.TextClassifier`
  tokenizes with.
- `nmt_tokens`: `zoo.text.preprocess_nmt` followed by `str.split()`, in the graph; what
  `zoo.models.Translator` reads its source text with.

Example:

>>> tokenizer = zoo.text.CleaningTokenizer(zoo.text.WordTokenizer("course"))
>>> tokenizer.tokenize(tf.constant(["A fine film.<br />Loved it"]))
>>> zoo.text.nmt_tokens(tf.constant(["Go!"]))           # [[b"go", b"!"]]
"""

import tensorflow as tf

_LINE_BREAK_TAG = r"<br\s*/?>"


def clean_markup(text):
    """Undecodable UTF-8 bytes become U+FFFD, `<br />` a space.

    Args:
        text: `tf.string` of any shape.

    Returns:
        `tf.string` of the same shape.
    """
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
    return tf.strings.regex_replace(text, _LINE_BREAK_TAG, " ")


class CleaningTokenizer(tf.Module):
    """`clean_markup`, then a zoo tokenizer.

    Args:
        tokenizer: a `zoo.text.WordTokenizer` (tokens out) or `BPETokenizer` (piece ids out).
    """

    def __init__(self, tokenizer):
        super().__init__(name="cleaning_tokenizer")
        self.tokenizer = tokenizer

    def tokenize(self, text):
        """`tf.string` `[batch]` → ragged tokens (or piece ids) `[batch, (tokens)]`."""
        return self.tokenizer.tokenize(clean_markup(text))

    def id_of(self, name):
        """The id of a special piece of a `BPETokenizer` (`zoo.text.classification_batches` checks that
        `<pad>` is 0)."""
        return self.tokenizer.id_of(name)


def nmt_tokens(text):
    """`zoo.text.preprocess_nmt` followed by `str.split()`, in the graph.

    Args:
        text: `tf.string` `[batch]`, any bytes: invalid UTF-8 sequences become U+FFFD.

    Returns:
        `tf.string` ragged `[batch, (tokens)]`.
    """
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
    # Every character str.split() splits on (Unicode separators, U+202F and U+00A0 among them).
    text = tf.strings.regex_replace(text, r"[\s\x{0b}\x{1c}-\x{1f}\x{85}\p{Z}]", " ")
    text = tf.strings.lower(text, encoding="utf-8")
    # preprocess_nmt puts a space before punctuation that lacks one; tokens come out the same when
    # every mark gets one, since splitting merges runs of spaces.
    text = tf.strings.regex_replace(text, "([,.!?])", r" \1")
    return tf.strings.split(text)
