"""Sequence tagging (many-to-many, aligned): one tag per word, from a bidirectional RNN over the words.

Two outputs: a softmax per word (each tag chosen on its own), or a linear-chain CRF over the words'
emission scores (`zoo.crf`), which scores whole tag sequences and so learns that, say, `I-PER`
cannot follow `O`. `build_tagger` makes either; the CRF one is a `zoo.crf.CRFTagger` around a
`SequenceTagger` that outputs emission scores.
"""

import keras
import tensorflow as tf

from zoo import layers as zoo_layers
from zoo.crf import CRF, CRFTagger
from zoo.models.classifier import masked_pooling
from zoo.models.string_embeddings import ContextualStringEmbeddings

OUTPUTS = ("softmax", "logits")


@keras.saving.register_keras_serializable(package="zoo")
class SequenceTagger(keras.Model):
    """Word embeddings (+ optional character-CNN word features) → bidirectional RNN → per-word scores.

    Word id 0 is padding: it is masked in the recurrent layers and in the output mask (which Keras
    losses and metrics, and `CRFTagger`, read). Character id 0 is padding too; padded characters are
    zeroed before the convolution and left out of its max-pooling, so padding a batch (in words or in
    characters) does not change any word's scores.

    Args:
        vocab_size: the number of word ids.
        num_tags: the number of tag ids.
        embedding_dim: the word embedding size.
        units: hidden size of each recurrent layer, per direction.
        num_layers: stacked bidirectional layers.
        cell_type: `"lstm"` or `"gru"` (or `"rnn"`).
        char_vocab_size: the number of character ids; `None`: no character features.
        char_embedding_dim: the character embedding size.
        char_filters: the convolution filters, i.e. the size of each word's character feature.
        char_kernel_size: the convolution width, in characters.
        dropout: dropout on the word features, between recurrent layers and before the output.
        output: `"softmax"` (tag probabilities) or `"logits"` (emission scores, e.g. for a CRF).
        implementation: the recurrent layers' path (`zoo.layers`).
        string_embeddings: a `zoo.models.ContextualStringEmbeddings` layer whose word embeddings
            join the word (and character) features; None: none.
        **kwargs: `keras.Model` arguments.

    Call arguments:
        inputs: word ids [batch, time] (int), or a tuple that starts with them: `(word_ids,
            char_ids)` with char ids [batch, time, chars] when `char_vocab_size` is set, then the
            string embeddings' `(lm_char_ids, word_spans)` when `string_embeddings` is set
            (`zoo.text.TokenEncoder` makes them all).
        training: whether dropout applies.

    Returns:
        [batch, time, num_tags] probabilities or scores, with the words' mask attached.

    Example:
    >>> tagger = SequenceTagger(vocab_size=50, num_tags=5, embedding_dim=8, units=8)
    >>> tagger(np.array([[4, 9, 0]])).shape
    TensorShape([1, 3, 5])
    """

    def __init__(
        self,
        vocab_size,
        num_tags,
        embedding_dim=100,
        units=100,
        num_layers=1,
        cell_type="lstm",
        char_vocab_size=None,
        char_embedding_dim=25,
        char_filters=50,
        char_kernel_size=3,
        dropout=0.0,
        output="softmax",
        implementation="auto",
        string_embeddings=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(string_embeddings, dict):  # from get_config
            string_embeddings = keras.saving.deserialize_keras_object(string_embeddings)
        if string_embeddings is not None and not isinstance(string_embeddings, ContextualStringEmbeddings):
            raise TypeError(
                "string_embeddings must be a zoo.models.ContextualStringEmbeddings layer, "
                f"got {type(string_embeddings).__name__}"
            )
        self.string_embeddings = string_embeddings
        # Inputs are ids, and may be cached float string embeddings (`zoo.text.tagger_batches`):
        # never cast to `input_dtype` (a float id is refused by name instead).
        self.autocast = False
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        for name, value in (("vocab_size", vocab_size), ("num_tags", num_tags)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.vocab_size = vocab_size
        self.num_tags = num_tags
        self.embedding_dim = embedding_dim
        self.units = units
        self.num_layers = num_layers
        self.cell_type = cell_type
        self.char_vocab_size = char_vocab_size
        self.char_embedding_dim = char_embedding_dim
        self.char_filters = char_filters
        self.char_kernel_size = char_kernel_size
        self.dropout = dropout
        self.output_mode = output
        self.implementation = implementation
        self.word_embedding = keras.layers.Embedding(
            vocab_size, embedding_dim, mask_zero=True, name="word_embedding"
        )
        if char_vocab_size is not None:
            self.char_embedding = keras.layers.Embedding(
                char_vocab_size, char_embedding_dim, name="char_embedding"
            )
            self.char_convolution = keras.layers.Conv1D(
                char_filters, char_kernel_size, padding="same", activation="relu", name="char_convolution"
            )
        self.feature_dropout = keras.layers.Dropout(dropout, name="feature_dropout")
        self.encoder = zoo_layers.StackedRNN(
            cell_type,
            units,
            num_layers=num_layers,
            dropout=dropout,
            bidirectional=True,
            implementation=implementation,
            name="encoder",
        )
        self.output_dropout = keras.layers.Dropout(dropout, name="output_dropout")
        self.scores = keras.layers.Dense(
            num_tags, activation="softmax" if output == "softmax" else None, name="scores"
        )

    @property
    def input_dtype(self):
        # Token ids, not floats: Keras's SavedModel traversal traces a default signature in this dtype.
        return "int32"

    @property
    def uses_chars(self):
        return self.char_vocab_size is not None

    @property
    def input_names(self):
        """The inputs this tagger is called on, in their order."""
        return (
            ("word_ids",)
            + (("char_ids",) if self.uses_chars else ())
            + (("lm_char_ids", "word_spans") if self.string_embeddings is not None else ())
        )

    def _split_inputs(self, inputs):
        """`(word_ids, char_ids or None, (lm_char_ids, word_spans) or None)`."""
        names = self.input_names
        if len(names) > 1:
            if not isinstance(inputs, (list, tuple)) or len(inputs) != len(names):
                raise ValueError(f"this SequenceTagger is called on ({', '.join(names)})")
            values = [tf.convert_to_tensor(value) for value in inputs]
        else:
            if isinstance(inputs, (list, tuple)):
                raise ValueError("this SequenceTagger has no character features: call it on word ids only")
            values = [tf.convert_to_tensor(inputs)]
        word_ids = values[0]
        char_ids = values[1] if self.uses_chars else None
        lm_inputs = tuple(values[-2:]) if self.string_embeddings is not None else None
        if not word_ids.dtype.is_integer or word_ids.shape.rank != 2:
            raise ValueError(
                f"word ids must be integers [batch, time], got {word_ids.dtype.name} {word_ids.shape}"
            )
        if char_ids is not None and (not char_ids.dtype.is_integer or char_ids.shape.rank != 3):
            raise ValueError(
                f"char ids must be integers [batch, time, chars], got {char_ids.dtype.name} {char_ids.shape}"
            )
        return word_ids, char_ids, lm_inputs

    def build(self, inputs_shape):
        several = isinstance(inputs_shape, (list, tuple)) and all(
            isinstance(s, (list, tuple)) for s in inputs_shape
        )
        count = len(inputs_shape) if several else 1
        if count != len(self.input_names):
            # Same messages as a call on the wrong inputs: Keras builds before it calls.
            self._split_inputs([None] * count if several else None)
        shapes = [tuple(shape) for shape in inputs_shape] if several else [tuple(inputs_shape)]
        words_shape = shapes[0]
        if self.uses_chars:
            self.char_embedding.build(shapes[1])
            self.char_convolution.build((None, None, self.char_embedding_dim))
        if self.string_embeddings is not None:
            self.string_embeddings.build(shapes[-2:])
        batch, time = words_shape[:2]
        self.word_embedding.build(words_shape)
        features = (
            self.embedding_dim
            + (self.char_filters if self.uses_chars else 0)
            + (self.string_embeddings.output_dim if self.string_embeddings is not None else 0)
        )
        self.encoder.build((batch, time, features))
        self.scores.build((batch, time, 2 * self.units))

    def char_features(self, char_ids):
        """Each word's character feature [batch, time, char_filters]: a CNN max-pooled over its characters."""
        shape = tf.shape(char_ids)
        flat_ids = tf.reshape(char_ids, [-1, shape[2]])
        char_mask = tf.not_equal(flat_ids, 0)
        # expand_dims, not [:, :, None]: LiteRT has no builtin slice that adds an axis to a tensor of
        # two unknown dimensions (words times characters).
        embedded = self.char_embedding(flat_ids) * tf.expand_dims(tf.cast(char_mask, self.compute_dtype), -1)
        convolved = self.char_convolution(embedded)
        pooled = masked_pooling(convolved, char_mask, "max")
        return tf.reshape(pooled, tf.concat([shape[:2], [self.char_filters]], axis=0))

    def encode(self, inputs, training=False):
        """The recurrent encoding of each word [batch, time, 2 * units], after the output dropout: what
        the output layer reads (and what `MultiTaskTagger`'s auxiliary output layer reads too)."""
        word_ids, char_ids, lm_inputs = self._split_inputs(inputs)
        mask = tf.not_equal(word_ids, 0)
        features = self.word_embedding(word_ids)
        if char_ids is not None:
            features = tf.concat([features, self.char_features(char_ids)], axis=-1)
        if lm_inputs is not None:
            features = tf.concat([features, self.string_embeddings(lm_inputs, training=training)], axis=-1)
        features = self.feature_dropout(features, training=training)
        outputs = self.encoder(features, mask=mask, training=training)
        return self.output_dropout(outputs, training=training)

    def call(self, inputs, training=False):
        return self.scores(self.encode(inputs, training=training))

    def compute_mask(self, inputs, mask=None):
        return tf.not_equal(self._split_inputs(inputs)[0], 0)

    def compute_output_shape(self, inputs_shape):
        words_shape = inputs_shape[0] if len(self.input_names) > 1 else inputs_shape
        return (words_shape[0], words_shape[1], self.num_tags)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "num_tags": self.num_tags,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "num_layers": self.num_layers,
            "cell_type": self.cell_type,
            "char_vocab_size": self.char_vocab_size,
            "char_embedding_dim": self.char_embedding_dim,
            "char_filters": self.char_filters,
            "char_kernel_size": self.char_kernel_size,
            "dropout": self.dropout,
            "output": self.output_mode,
            "implementation": self.implementation,
            "string_embeddings": (
                None
                if self.string_embeddings is None
                else keras.saving.serialize_keras_object(self.string_embeddings)
            ),
        }


def build_tagger(output="softmax", name=None, **tagger_kwargs):
    """A tagger with a softmax or a CRF output.

    Args:
        output: `"softmax"`: a `SequenceTagger` giving tag probabilities (train it with
            `sparse_categorical_crossentropy` and the padding mask as sample weights). `"crf"`: a
            `zoo.crf.CRFTagger` over a `SequenceTagger(output="logits")`, trained on the CRF
            log-likelihood (compile without a loss) and returning Viterbi-decoded tag ids.
        name: the model's name.
        **tagger_kwargs: `SequenceTagger` arguments (`vocab_size`, `num_tags`, ...).

    Returns:
        The uncompiled model.
    """
    if output == "softmax":
        return SequenceTagger(output="softmax", name=name, **tagger_kwargs)
    if output == "crf":
        emissions = SequenceTagger(output="logits", name="emissions", **tagger_kwargs)
        return CRFTagger(emissions, CRF(emissions.num_tags, name="crf"), name=name)
    raise ValueError(f"output must be 'softmax' or 'crf', got {output!r}")
