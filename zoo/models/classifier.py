"""Sequence classification (many-to-one): token ids → a recurrent encoder → one pooled vector → classes.

The course's sentiment model (D2L "Sentiment Analysis: Using Recurrent Neural Networks") embeds the
tokens, runs a 2-layer bidirectional LSTM and concatenates the outputs at the first and the last
time steps. Here the last step is each example's last real token (padding is masked), and mean or
max pooling over the real tokens are alternatives that train better on small data.
"""

import keras
import tensorflow as tf

from zoo import layers as zoo_layers

# The vectors of the encoder's width each pooling mode concatenates, in order (the ONNX export
# builds the same parts).
POOLED_PARTS = {
    "first_last": ("first", "last"),
    "mean": ("mean",),
    "max": ("max",),
    "mean_max": ("mean", "max"),
    "last_max_mean": ("last", "max", "mean"),
}
POOLING_MODES = tuple(POOLED_PARTS)


def masked_pooling(sequences, mask, mode):
    """Pools a padded sequence of vectors over its real positions.

    Args:
        sequences: float tensor [batch, time, features].
        mask: bool tensor [batch, time], True at real positions; `None`: every position is real.
            Real positions must come first (right padding) for `"first_last"`.
        mode: `"first_last"` (the outputs at the first and the last real position, concatenated),
            `"mean"`, `"max"`, `"mean_max"` (mean and max concatenated), or `"last_max_mean"` (the
            output at the last real position, max and mean: ULMFiT's concat pooling, Howard & Ruder
            2018, section 3.3).

    Returns:
        Float tensor [batch, features] (`"first_last"`, `"mean_max"`: [batch, 2 * features];
        `"last_max_mean"`: [batch, 3 * features]). A row with no real position pools to zeros.
    """
    if mode not in POOLING_MODES:
        raise ValueError(f"pooling must be one of {POOLING_MODES}, got {mode!r}")
    sequences = tf.convert_to_tensor(sequences)
    if sequences.shape.rank != 3:
        raise ValueError(f"masked_pooling expects [batch, time, features], got shape {sequences.shape}")
    if mask is None:
        mask = tf.ones(tf.shape(sequences)[:2], dtype=tf.bool)
    mask = tf.cast(mask, tf.bool)
    # expand_dims, not [:, :, None]: LiteRT has no builtin slice that adds an axis to a tensor of two
    # unknown dimensions.
    weights = tf.expand_dims(tf.cast(mask, sequences.dtype), -1)
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    has_tokens = tf.cast(lengths > 0, sequences.dtype)[:, None]
    lowest = tf.constant(sequences.dtype.min, sequences.dtype)
    part_of = {
        "first": lambda: sequences[:, 0],
        "last": lambda: tf.gather(sequences, tf.maximum(lengths - 1, 0), batch_dims=1),
        "mean": lambda: (
            tf.reduce_sum(sequences * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)
        ),
        "max": lambda: tf.reduce_max(tf.where(tf.expand_dims(mask, -1), sequences, lowest), axis=1),
    }
    parts = [part_of[part]() for part in POOLED_PARTS[mode]]
    pooled = parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1)
    # The mean over no position is 0 already; the other parts read padding there.
    return pooled if mode == "mean" else pooled * has_tokens


@keras.saving.register_keras_serializable(package="zoo")
class SequenceClassifier(keras.Model):
    """Embedding → (deep, bidirectional) LSTM/GRU → pooling over real tokens → softmax classes.

    Token id 0 is padding (as `zoo.text.Vocab` with `SEQUENCE_RESERVED` and `BPETokenizer` lay out
    their ids): it is masked in the recurrent layers and left out of the pooling, so padding a batch
    does not change any example's prediction.

    Args:
        vocab_size: the number of token ids (embedding rows).
        num_classes: the number of classes.
        embedding_dim: the embedding size.
        units: hidden size of each recurrent layer (per direction).
        num_layers: stacked recurrent layers.
        cell_type: `"lstm"` or `"gru"` (or `"rnn"`).
        bidirectional: run each layer in both directions (outputs concatenated).
        pooling: one of `POOLING_MODES` (see `masked_pooling`); `"first_last"` is the course's.
        pool_embeddings: also mean-pool the embeddings and concatenate them to the encoding (a
            bag-of-words path beside the recurrent one).
        normalize_encoding: batch-normalize the pooled encoding before its dropout (ULMFiT's head).
            A pretrained encoder's pooled states share a large offset and differ little between
            texts; dropout on them is then noise that drowns the differences.
        dropout: dropout on the embeddings, between recurrent layers and on the pooled encoding.
        word_dropout: the chance that a token's whole embedding is zeroed while training (before
            `dropout`), so the prediction cannot hang on a few words.
        implementation: the recurrent layers' path (`zoo.layers`): `"auto"`, `"fused"`, `"loop"`, ...
        **kwargs: `keras.Model` arguments (`name`, ...).

    Call arguments:
        token_ids: int tensor [batch, time], 0 = padding.
        training: whether dropout applies.

    Returns:
        Class probabilities [batch, num_classes].

    Example:
    >>> model = SequenceClassifier(vocab_size=100, num_classes=2, embedding_dim=8, units=8)
    >>> model(np.array([[5, 7, 0]])).shape
    TensorShape([1, 2])
    """

    def __init__(
        self,
        vocab_size,
        num_classes,
        embedding_dim=100,
        units=100,
        num_layers=2,
        cell_type="lstm",
        bidirectional=True,
        pooling="first_last",
        pool_embeddings=False,
        normalize_encoding=False,
        dropout=0.0,
        word_dropout=0.0,
        implementation="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("vocab_size", vocab_size), ("num_classes", num_classes)):
            if not isinstance(value, int) or value < (2 if name == "num_classes" else 1):
                raise ValueError(
                    f"{name} must be an int >= {2 if name == 'num_classes' else 1}, got {value!r}"
                )
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if not 0.0 <= word_dropout < 1.0:
            raise ValueError(f"word_dropout must be in [0, 1), got {word_dropout!r}")
        self.vocab_size = vocab_size
        self.num_classes = num_classes
        self.embedding_dim = embedding_dim
        self.units = units
        self.num_layers = num_layers
        self.cell_type = cell_type
        self.bidirectional = bidirectional
        self.pooling = pooling
        self.pool_embeddings = pool_embeddings
        self.normalize_encoding = normalize_encoding
        self.dropout = dropout
        self.word_dropout = word_dropout
        self.implementation = implementation
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")
        self.encoder = zoo_layers.StackedRNN(
            cell_type,
            units,
            num_layers=num_layers,
            dropout=dropout,
            bidirectional=bidirectional,
            implementation=implementation,
            name="encoder",
        )
        # One draw per token, shared by its embedding's features: a dropped word is gone entirely.
        self.word_dropout_layer = keras.layers.Dropout(
            word_dropout, noise_shape=(None, None, 1), name="word_dropout"
        )
        self.embedding_dropout = keras.layers.Dropout(dropout, name="embedding_dropout")
        # Momentum 0.9, not Keras's 0.99: fine-tuning on a few labels takes a few hundred steps, too few
        # for the slower moving averages to forget their initial values.
        self.encoding_norm = (
            keras.layers.BatchNormalization(momentum=0.9, name="encoding_norm")
            if normalize_encoding
            else None
        )
        self.encoding_dropout = keras.layers.Dropout(dropout, name="encoding_dropout")
        self.classes = keras.layers.Dense(num_classes, activation="softmax", name="classes")

    @property
    def input_dtype(self):
        # Token ids, not floats: Keras's SavedModel traversal traces a default signature in this dtype.
        return "int32"

    def build(self, token_ids_shape):
        if len(token_ids_shape) != 2:
            raise ValueError(
                f"SequenceClassifier takes token ids [batch, time], got shape {tuple(token_ids_shape)}"
            )
        batch, time = tuple(token_ids_shape)
        self.embedding.build((batch, time))
        self.encoder.build((batch, time, self.embedding_dim))
        width = self.units * (2 if self.bidirectional else 1)
        width *= len(POOLED_PARTS[self.pooling])
        width += self.embedding_dim if self.pool_embeddings else 0
        if self.encoding_norm is not None:
            self.encoding_norm.build((batch, width))
        self.classes.build((batch, width))

    def encode(self, token_ids, training=False):
        """The pooled encoding [batch, width] the classes are computed from."""
        token_ids = tf.convert_to_tensor(token_ids)
        if not token_ids.dtype.is_integer:
            raise TypeError(f"SequenceClassifier takes integer token ids, got dtype {token_ids.dtype.name}")
        if token_ids.shape.rank != 2:
            raise ValueError(f"SequenceClassifier takes token ids [batch, time], got shape {token_ids.shape}")
        mask = tf.not_equal(token_ids, 0)
        embedded = self.embedding(token_ids)
        embedded = self.word_dropout_layer(embedded, training=training)
        embedded = self.embedding_dropout(embedded, training=training)
        outputs = self.encoder(embedded, mask=mask, training=training)
        pooled = masked_pooling(outputs, mask, self.pooling)
        if self.pool_embeddings:
            pooled = tf.concat([pooled, masked_pooling(embedded, mask, "mean")], axis=-1)
        if self.encoding_norm is not None:
            pooled = self.encoding_norm(pooled, training=training)
        return self.encoding_dropout(pooled, training=training)

    def call(self, token_ids, training=False):
        return self.classes(self.encode(token_ids, training=training))

    def compute_output_shape(self, token_ids_shape):
        return (token_ids_shape[0], self.num_classes)

    @classmethod
    def from_language_model(
        cls,
        language_model,
        num_classes,
        pooling="last_max_mean",
        normalize_encoding=True,
        dropout=0.0,
        word_dropout=0.0,
        **kwargs,
    ):
        """A classifier whose embedding and recurrent stack start as `language_model`'s (ULMFiT's
        transfer: Howard & Ruder 2018): the same cell, sizes and layers, their trained weights copied,
        and a new output layer.

        The classifier reads the language model's token ids, so texts must be encoded with its
        vocabulary (or tokenizer), whose id 0 is padding (as `zoo.text.Vocab` with
        `SEQUENCE_RESERVED` and `zoo.text.BPETokenizer` lay out their ids).

        Args:
            language_model: a built `zoo.models.LanguageModel` with an embedding (not one-hot) and a
                plain recurrent stack.
            num_classes: the number of classes.
            pooling: one of `POOLING_MODES`; ULMFiT's concat pooling by default.
            normalize_encoding, dropout, word_dropout: as in the constructor (the encoding is
                batch-normalized by default, as in ULMFiT's head).
            **kwargs: the other constructor arguments that do not fix the encoder's shape
                (`pool_embeddings`, `name`, ...).

        Returns:
            A built `SequenceClassifier`.

        Example:
        >>> lm = zoo.models.LanguageModel(vocab_size=1000, embedding_dim=64, units=128, num_layers=2)
        >>> lm.fit(lm_batches, epochs=5)
        >>> classifier = SequenceClassifier.from_language_model(lm, num_classes=2, dropout=0.3)
        """
        encoder = getattr(language_model, "rnn", None)
        if not isinstance(encoder, zoo_layers.StackedRNN) or not hasattr(language_model, "embedding"):
            raise TypeError(
                "from_language_model takes a zoo.models.LanguageModel with a plain recurrent stack "
                f"(embedding → StackedRNN → head), got {type(language_model).__name__}"
            )
        if not language_model.built:
            raise ValueError("the language model is not built: train it, or call it on a batch, first")
        if language_model.embedding is None:
            raise ValueError(
                "the language model feeds one-hot vectors (embedding_dim=None): a classifier needs an "
                "embedding to start from"
            )
        shape = {"cell_type", "units", "num_layers", "embedding_dim", "bidirectional", "vocab_size"}
        if shape & kwargs.keys():
            raise ValueError(f"{sorted(shape & kwargs.keys())} come from the language model")
        model = cls(
            vocab_size=language_model.vocab_size,
            num_classes=num_classes,
            embedding_dim=language_model.embedding_dim,
            units=language_model.units,
            num_layers=language_model.num_layers,
            cell_type=language_model.cell_type,
            bidirectional=language_model.bidirectional,
            pooling=pooling,
            normalize_encoding=normalize_encoding,
            dropout=dropout,
            word_dropout=word_dropout,
            **{"implementation": language_model.implementation, **kwargs},
        )
        model.build((None, None))
        # Trainable weights only: a stateful language model also holds its carried states.
        for source, target in (
            (language_model.embedding, model.embedding),
            (encoder, model.encoder),
        ):
            for weight, copy in zip(source.trainable_weights, target.trainable_weights, strict=True):
                if tuple(weight.shape) != tuple(copy.shape):
                    raise ValueError(
                        f"the language model's {weight.path} has shape {tuple(weight.shape)}, the "
                        f"classifier's {copy.path} {tuple(copy.shape)}: build the language model with "
                        "the default recurrent layer arguments"
                    )
                copy.assign(weight)
        return model

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "num_classes": self.num_classes,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "num_layers": self.num_layers,
            "cell_type": self.cell_type,
            "bidirectional": self.bidirectional,
            "pooling": self.pooling,
            "pool_embeddings": self.pool_embeddings,
            "normalize_encoding": self.normalize_encoding,
            "dropout": self.dropout,
            "word_dropout": self.word_dropout,
            "implementation": self.implementation,
        }
