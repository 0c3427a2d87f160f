"""Words → the inputs of `zoo.models.ContextualStringEmbeddings`: each sentence as one character
string, `" word1 word2 ... wordN "`, with each word's character span, in TensorFlow ops (a serving
graph that takes raw strings traces them into a SavedModel)."""

import tensorflow as tf

WORD_SEPARATOR = " "


def string_embedding_inputs(words, vocab):
    """Words → the inputs of `ContextualStringEmbeddings`: each sentence as `" w1 w2 ... wN "`.

    Args:
        words: `tf.string` ragged `[batch, (words)]` (undecodable bytes become U+FFFD, as the
            language models' character tokenizer reads them); a sentence may have no words.
        vocab: the language models' character vocabulary (a `zoo.text.Vocab`, or any object whose
            `to_ids` maps a ragged `tf.string` tensor of characters to ids); characters it lacks
            map to its unknown id.

    Returns:
        `(char_ids, word_spans)`: int32 `[batch, chars]` (the sentence's characters from index 0,
        then 0s), and int32 `[batch, words, 2]`: the index of each word's first and last
        character, `(-1, -1)` for padding words.

    Raises:
        InvalidArgumentError: an empty word (it has no character to take a state after).
    """
    if not isinstance(words, tf.RaggedTensor) or words.dtype != tf.string or words.shape.rank != 2:
        raise TypeError(f"words must be a ragged tf.string tensor [batch, (words)], got {words!r}")
    words = tf.ragged.map_flat_values(tf.strings.unicode_transcode, words, "UTF-8", "UTF-8", errors="replace")
    lengths = tf.ragged.map_flat_values(tf.strings.length, words, unit="UTF8_CHAR")
    check = tf.debugging.assert_positive(
        lengths.flat_values, message="string embeddings: a word is empty (it has no character)"
    )
    with tf.control_dependencies([check]):
        lengths = tf.cast(lengths.to_tensor(0), tf.int32)
    text = WORD_SEPARATOR + tf.strings.reduce_join(words, axis=1, separator=WORD_SEPARATOR) + WORD_SEPARATOR
    chars = tf.strings.unicode_split(text, "UTF-8", errors="replace")
    char_ids = tf.cast(vocab.to_ids(chars).to_tensor(0), tf.int32)
    # The first word starts after the leading separator; each next one after the previous and one
    # separator.
    firsts = 1 + tf.math.cumsum(lengths + 1, axis=1, exclusive=True)
    lasts = firsts + lengths - 1
    is_word = tf.sequence_mask(words.row_lengths(), tf.shape(lengths)[1])
    spans = tf.stack([firsts, lasts], axis=-1)
    return char_ids, tf.where(is_word[:, :, None], spans, -1)
