"""Contextual string embeddings (Akbik et al., COLING 2018; the Flair library) from two character LMs.

A sentence is read as one character string, `" word1 word2 ... wordN "`, by a forward character
language model and, reversed, by a backward one (trained on the reversed character stream). A word's
embedding is the forward model's top-layer state after the word's last character, concatenated with
the backward model's state after (in its reversed reading) the word's first character: the first half
has read the sentence up to the word's end, the second half from its end back to the word's start.
Both models run once over each sentence's characters, whatever its number of words.

`zoo.text.string_embedding_inputs` turns words (ragged strings) into what `ContextualStringEmbeddings` takes,
character ids and each word's character span, with TensorFlow ops only, so that a serving graph
that takes raw strings traces it into a SavedModel.

Frozen embeddings depend on the sentence only, so training can compute them once: the layer also
takes `(embeddings, word_spans)`, embeddings it returned before, and passes them through
(`zoo.text.tagger_batches(..., string_embeddings=layer)` batches them so).

Example:

>>> embeddings = ContextualStringEmbeddings(forward_lm, backward_lm, vocab.idx_to_token)
>>> words = tf.ragged.constant([["Paris", "is", "big"]])
>>> char_ids, word_spans = zoo.text.string_embedding_inputs(words, vocab)
>>> embeddings((char_ids, word_spans)).shape       # [batch, words, forward units + backward units]
TensorShape([1, 3, 512])
"""

import keras
import tensorflow as tf

from zoo import compat
from zoo.models.language_model import LanguageModel
from zoo.text.string_embedding_inputs import WORD_SEPARATOR

_PACKAGE = "zoo"
LAYER_CHOICES = ("top", "all")


def _check_language_model(model, role):
    if not isinstance(model, LanguageModel):
        raise TypeError(f"{role} must be a zoo.models.LanguageModel, got {type(model).__name__}")
    if model.bidirectional:
        raise ValueError(
            f"{role} is bidirectional: its states have read characters after the word; "
            "string embeddings need unidirectional language models"
        )
    if model.stateful:
        if not model.built:
            raise ValueError(f"{role} is stateful and not built: build it or pass model.stateless_copy()")
        # Each sentence starts from zero states: the carried state of training is no part of it.
        return model.stateless_copy()
    return model


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ContextualStringEmbeddings(keras.layers.Layer):
    """Word embeddings from a forward and a backward character language model (Flair's).

    Args:
        forward_model: a unidirectional `LanguageModel` trained on characters.
        backward_model: one trained on the reversed character stream, over the same vocabulary.
        vocabulary: the models' character vocabulary, a list of tokens in id order (e.g. a
            `zoo.text.Vocab`'s `idx_to_token`): reserved tokens (`<...>`) and single characters.
        trainable: False (the default) freezes both models (they run without dropout); True
            fine-tunes them with the model that uses the embeddings.
        layers: `"top"` (the default, Flair's) takes each model's top layer; `"all"` concatenates
            every layer's state (`LanguageModel.hidden_states(..., all_layers=True)`), which gives
            a tagger the lower layers' more syntactic features.
        **kwargs: `keras.layers.Layer` arguments.

    A stateful model (the language model recipe's default, sequential batching) is replaced by its
    `stateless_copy()`: each sentence is read from zero states.

    Call arguments:
        inputs: `(char_ids, word_spans)` from `zoo.text.string_embedding_inputs`: int
            `[batch, chars]` and int `[batch, words, 2]`. A sentence's characters end one after its
            last word's last character (the closing separator); the rest of the row is padding.
            Or `(embeddings, word_spans)`: float `[batch, words, output_dim]` this layer returned
            before, when frozen (the cache of training batches); they are returned as they are.
        training: whether dropout applies in fine-tuned models.

    Returns:
        float `[batch, words, output_dim]` (forward units + backward units, each times its number
        of layers with `layers="all"`), zeros at padding words, with the words' mask attached.

    Example:

    >>> embeddings = ContextualStringEmbeddings(forward_lm, backward_lm, vocab.idx_to_token)
    >>> inputs = zoo.text.string_embedding_inputs(tf.ragged.constant([["Paris", "is", "big"]]), vocab)
    >>> embeddings(inputs).shape
    TensorShape([1, 3, 512])
    """

    def __init__(self, forward_model, backward_model, vocabulary, trainable=False, layers="top", **kwargs):
        super().__init__(trainable=trainable, **kwargs)
        if layers not in LAYER_CHOICES:
            raise ValueError(f"layers must be one of {LAYER_CHOICES}, got {layers!r}")
        forward_model = _check_language_model(forward_model, "forward_model")
        backward_model = _check_language_model(backward_model, "backward_model")
        vocabulary = list(vocabulary)
        if not vocabulary or not all(isinstance(token, str) for token in vocabulary):
            raise TypeError("vocabulary must be a non-empty list of str (the tokens in id order)")
        words = [token for token in vocabulary if len(token) != 1 and not _is_reserved(token)]
        if words:
            raise ValueError(
                "string embeddings need character language models; the vocabulary holds tokens "
                f"longer than one character: {words[:5]}"
            )
        for role, model in (("forward_model", forward_model), ("backward_model", backward_model)):
            if model.vocab_size != len(vocabulary):
                raise ValueError(
                    f"{role} has {model.vocab_size} token ids but the vocabulary has {len(vocabulary)}: "
                    "both language models must be trained over the same character vocabulary"
                )
        if WORD_SEPARATOR not in vocabulary:
            raise ValueError(f"the vocabulary has no {WORD_SEPARATOR!r}, which separates the words")
        self.forward_model = forward_model
        self.backward_model = backward_model
        self.vocabulary = vocabulary
        self.layers = layers
        # Now that the models are attributes, Keras passes it on to their variables. (Not by
        # `self.trainable = trainable`: tracking skips an assignment of the value already there.)
        self._set_trainable(trainable)
        self.supports_masking = True
        compat.keep_input_dtypes(self)  # char ids or cached float embeddings

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._set_trainable(value)

    def _set_trainable(self, value):
        # The property's setter itself, on each model too: an attribute assignment of the value a
        # layer already holds is skipped by tracking, though its variables (made by a later build,
        # as when loading) may not follow it.
        keras.layers.Layer.trainable.fset(self, value)
        for model in (getattr(self, "forward_model", None), getattr(self, "backward_model", None)):
            if model is None:
                continue
            keras.layers.Layer.trainable.fset(model, value)
            for variable in model.weights:
                variable.trainable = value
            # The output layer is no part of the embeddings: it gets no gradient.
            keras.layers.Layer.trainable.fset(model.head, False)

    @property
    def output_dim(self):
        return sum(
            model.units * (model.num_layers if self.layers == "all" else 1)
            for model in (self.forward_model, self.backward_model)
        )

    def build(self, inputs_shape=None):
        for model in (self.forward_model, self.backward_model):
            if not model.built:
                model.build((None, None))
        # Variables made by the build above are trainable whatever their layer says.
        self._set_trainable(self.trainable)
        self.built = True

    def _check_inputs(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError("ContextualStringEmbeddings takes (char_ids, word_spans)")
        char_ids, word_spans = (tf.convert_to_tensor(value) for value in inputs)
        cached = char_ids.dtype.is_floating and char_ids.shape.rank == 3
        if cached and char_ids.shape[-1] not in (self.output_dim, None):
            raise TypeError(
                f"cached embeddings must be floats [batch, words, {self.output_dim}], "
                f"got {char_ids.dtype.name} {char_ids.shape}"
            )
        if not cached and (not char_ids.dtype.is_integer or char_ids.shape.rank != 2):
            raise TypeError(
                f"char_ids must be integers [batch, chars] (or cached embeddings, floats [batch, words, "
                f"{self.output_dim}]), got {char_ids.dtype.name} {char_ids.shape}"
            )
        if (
            not word_spans.dtype.is_integer
            or word_spans.shape.rank != 3
            or word_spans.shape[-1] not in (2, None)
        ):
            raise TypeError(
                "word_spans must be integers [batch, words, 2], "
                f"got {word_spans.dtype.name} {word_spans.shape}"
            )
        return (char_ids if cached else tf.cast(char_ids, tf.int32)), tf.cast(word_spans, tf.int32)

    def call(self, inputs, training=False):
        char_ids, word_spans = self._check_inputs(inputs)
        training = bool(training) and self.trainable
        firsts, lasts = word_spans[:, :, 0], word_spans[:, :, 1]
        mask = tf.greater_equal(lasts, 0)
        if char_ids.dtype.is_floating:
            if training:
                raise ValueError(
                    "cached string embeddings cannot fine-tune the language models: "
                    "pass character ids to a trainable ContextualStringEmbeddings"
                )
            return tf.cast(char_ids, self.compute_dtype) * tf.cast(mask, self.compute_dtype)[:, :, None]
        # Each row's characters: through the separator after its last word.
        lengths = tf.clip_by_value(tf.reduce_max(lasts, axis=1) + 2, 1, tf.shape(char_ids)[1])
        all_layers = self.layers == "all"
        forward = self.forward_model.hidden_states(char_ids, training=training, all_layers=all_layers)
        backward = self.backward_model.hidden_states(
            tf.reverse_sequence(char_ids, lengths, seq_axis=1, batch_axis=0),
            training=training,
            all_layers=all_layers,
        )
        forward_at = tf.where(mask, lasts, 0)
        # The word's first character, counted from the row's end, as the backward model read it.
        backward_at = tf.where(mask, lengths[:, None] - 1 - firsts, 0)
        embeddings = tf.concat(
            [tf.gather(forward, forward_at, batch_dims=1), tf.gather(backward, backward_at, batch_dims=1)],
            axis=-1,
        )
        return embeddings * tf.cast(mask, embeddings.dtype)[:, :, None]

    def compute_mask(self, inputs, mask=None):
        # keras.ops: Keras also calls this on the symbolic inputs of a functional model.
        return keras.ops.greater_equal(inputs[1][:, :, 1], 0)

    def compute_output_shape(self, inputs_shape):
        spans_shape = inputs_shape[1]
        return (spans_shape[0], spans_shape[1], self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "forward_model": keras.saving.serialize_keras_object(self.forward_model),
            "backward_model": keras.saving.serialize_keras_object(self.backward_model),
            "vocabulary": list(self.vocabulary),
            "layers": self.layers,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("forward_model", "backward_model"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _is_reserved(token):
    return token.startswith("<") and token.endswith(">") and len(token) > 2
