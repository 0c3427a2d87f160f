"""Tokens to a tagger's inputs, in the graph: word ids and character ids, with optional word shapes.

One `TokenEncoder` serves training batches (`zoo.text.tagger_batches`) and the exported serving
module (`zoo.models.TextTagger`), so both encode a sentence the same way.

Example:

>>> words = zoo.text.Vocab(sentences, min_freq=2, reserved_tokens=zoo.text.SEQUENCE_RESERVED)
>>> chars = zoo.text.Vocab([list(w) for s in sentences for w in s],
...                        reserved_tokens=zoo.text.SEQUENCE_RESERVED + zoo.text.SHAPE_TOKENS)
>>> encoder = zoo.text.TokenEncoder(words, chars, lowercase=True, max_chars=20, word_shape=True)
>>> (word_ids, char_ids), mask = encoder(tf.ragged.constant([["Paris", "is", "big"]]))
"""

import tensorflow as tf

from zoo.text.word_shapes import SHAPE_TOKENS, word_shapes


class TokenEncoder(tf.Module):
    """Ragged tokens → word ids (looked up lowercased, if asked) and character ids.

    Args:
        word_vocab: word → id, `<pad>` = 0 (a `zoo.text.Vocab` with an unknown token).
        char_vocab: character → id, `<pad>` = 0; None: no character inputs. With `word_shape`, it
            must hold `SHAPE_TOKENS`.
        lowercase: look words up lowercased (the characters keep their case).
        max_chars: characters kept per word (its first ones).
        word_shape: put each word's shape token (`zoo.text.word_shapes`) before its characters.

    Call arguments:
        tokens: `tf.string` ragged `[batch, (time)]`.

    Returns:
        `(inputs, mask)`: `inputs` is word ids int `[batch, time]`, or `(word_ids, char_ids [batch,
        time, chars])` with a character vocabulary; `mask` bool `[batch, time]`. Padded to one time
        step at least, so an empty sentence still has a step.
    """

    def __init__(self, word_vocab, char_vocab, lowercase, max_chars, word_shape=False):
        super().__init__(name="token_encoder")
        if word_shape and (
            char_vocab is None or any(token not in char_vocab.token_to_idx for token in SHAPE_TOKENS)
        ):
            raise ValueError("word_shape needs a character vocabulary that holds SHAPE_TOKENS")
        self.word_vocab = word_vocab
        self.char_vocab = char_vocab
        self.lowercase = lowercase
        self.max_chars = max_chars
        self.word_shape = word_shape

    def words_of(self, tokens):
        """The strings looked up in `word_vocab`: the tokens, lowercased with `lowercase`."""
        return tf.strings.lower(tokens) if self.lowercase else tokens

    def chars_of(self, tokens):
        """Ragged tokens [batch, (time)] → their characters [batch, (time), (chars)], cut to `max_chars`,
        after the word's shape token with `word_shape`."""
        chars = tf.strings.unicode_split(tokens.flat_values, "UTF-8", errors="replace")[:, : self.max_chars]
        if self.word_shape:
            shapes = tf.RaggedTensor.from_tensor(word_shapes(tokens.flat_values)[:, None])
            chars = tf.concat([shapes, chars], axis=1)
        return tokens.with_flat_values(chars)

    def __call__(self, tokens):
        word_ids = _at_least_one_step(self.word_vocab.to_ids(self.words_of(tokens)).to_tensor(0), rank=2)
        mask = tf.not_equal(word_ids, 0)
        if self.char_vocab is None:
            return word_ids, mask
        char_ids = _at_least_one_step(self.char_vocab.to_ids(self.chars_of(tokens)).to_tensor(0), rank=3)
        # Both must span the same time steps, whatever padding each needed.
        char_ids = char_ids[:, : tf.shape(word_ids)[1]]
        return (word_ids, char_ids), mask


def _at_least_one_step(ids, rank):
    """Pads every axis after the batch axis to length 1 at least."""
    shape = tf.shape(ids)
    return tf.pad(ids, [[0, 0]] + [[0, tf.maximum(1 - shape[axis], 0)] for axis in range(1, rank)])
