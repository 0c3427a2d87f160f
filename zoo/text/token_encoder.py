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

from zoo.text.string_embedding_inputs import string_embedding_inputs
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
        string_embedding_vocab: the character vocabulary of the language models of a
            `zoo.models.ContextualStringEmbeddings` layer: adds its inputs
            (`zoo.text.string_embedding_inputs`, the words as written); None: none.

    Call arguments:
        tokens: `tf.string` ragged `[batch, (time)]`.

    Returns:
        `(inputs, mask)`: `inputs` is word ids int `[batch, time]`, or a tuple of them, then
        `char_ids [batch, time, chars]` with a character vocabulary, then `lm_char_ids [batch,
        lm_chars]` and `word_spans [batch, time, 2]` with `string_embedding_vocab`; `mask` bool
        `[batch, time]`. Padded to one time step at least, so an empty sentence still has a step.
    """

    def __init__(
        self, word_vocab, char_vocab, lowercase, max_chars, word_shape=False, string_embedding_vocab=None
    ):
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
        self.string_embedding_vocab = string_embedding_vocab

    def input_shapes(self):
        """The shapes of the inputs this encoder makes, in order, with unknown batch and lengths:
        what to `build` a model on before it first sees batches of another shape (e.g. cached
        string embeddings)."""
        shapes = [(None, None)]
        if self.char_vocab is not None:
            shapes.append((None, None, None))
        if self.string_embedding_vocab is not None:
            shapes += [(None, None), (None, None, 2)]
        return shapes if len(shapes) > 1 else shapes[0]

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
        inputs = [word_ids]
        if self.char_vocab is not None:
            char_ids = _at_least_one_step(self.char_vocab.to_ids(self.chars_of(tokens)).to_tensor(0), rank=3)
            # Both must span the same time steps, whatever padding each needed.
            inputs.append(char_ids[:, : tf.shape(word_ids)[1]])
        if self.string_embedding_vocab is not None:
            lm_char_ids, word_spans = string_embedding_inputs(tokens, self.string_embedding_vocab)
            steps = tf.shape(word_ids)[1]
            # -1: no word, at the steps padded for an empty batch.
            word_spans = tf.pad(
                word_spans, [[0, 0], [0, steps - tf.shape(word_spans)[1]], [0, 0]], constant_values=-1
            )
            inputs += [lm_char_ids, word_spans]
        return (tuple(inputs) if len(inputs) > 1 else word_ids), mask


def _at_least_one_step(ids, rank):
    """Pads every axis after the batch axis to length 1 at least."""
    shape = tf.shape(ids)
    return tf.pad(ids, [[0, 0]] + [[0, tf.maximum(1 - shape[axis], 0)] for axis in range(1, rank)])
