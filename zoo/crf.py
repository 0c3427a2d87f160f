"""Linear-chain conditional random field (CRF) for sequence tagging.

A linear-chain CRF scores a tag sequence y_1..y_L for per-token emission scores E as

    s(E, y) = start[y_1] + sum_t E[t, y_t] + sum_{t>1} A[y_{t-1}, y_t] + end[y_L]

where `A[i, j]` is the score of tag `j` following tag `i`, and models
p(y | E) = exp(s(E, y)) / Z(E). `Z` comes from the forward algorithm in log space and the most
likely sequence from the Viterbi algorithm; both run in-graph as `tf.scan`/`tf.foldl` over time.

Masks: every function takes a boolean mask [B, T]. Masked-out positions are dropped and the chain
runs over the remaining positions in order, so right padding, left padding and holes all work; a
sequence with no valid position has score 0, log-partition 0 and decodes to all zeros.

Training from `model.fit`: Keras 3 has no place in `compile(loss=...)` for a loss that needs the
CRF's own weights and the emission mask, and a layer that returns emissions in training but tags in
inference breaks validation (Keras evaluates with `training=False`). So the layer `CRF` always
decodes, and `CRFTagger` wraps an emission model and a `CRF` with `train_step`/`test_step` that
minimise the negative log-likelihood; compiled metrics see the decoded tags with padding masked.
"""

import keras
import tensorflow as tf

from zoo import compat


def _check_emissions(emissions):
    emissions = tf.convert_to_tensor(emissions)
    if not emissions.dtype.is_floating:
        raise TypeError(f"CRF emissions must be floating point, got {emissions.dtype.name}")
    if emissions.shape.rank != 3:
        raise ValueError(
            f"CRF emissions must have shape [batch, time, num_tags], got rank "
            f"{emissions.shape.rank} (shape {emissions.shape})"
        )
    if emissions.shape[1] == 0:
        raise ValueError("CRF emissions have an empty time dimension")
    return emissions


def _check_weights(emissions, transitions, start_transitions, end_transitions):
    """Returns transitions and boundary vectors in the emissions' dtype (zeros when absent)."""
    transitions = tf.cast(tf.convert_to_tensor(transitions), emissions.dtype)
    num_tags = emissions.shape[-1]
    if transitions.shape.rank != 2 or transitions.shape[0] != transitions.shape[1]:
        raise ValueError(f"CRF transitions must be a square matrix, got shape {transitions.shape}")
    if num_tags is not None and transitions.shape[0] not in (None, num_tags):
        raise ValueError(
            f"CRF transitions are {transitions.shape[0]}x{transitions.shape[1]} but emissions "
            f"have {num_tags} tags"
        )
    boundary = []
    for name, vector in (("start", start_transitions), ("end", end_transitions)):
        if vector is None:
            vector = tf.zeros_like(transitions[0])
        vector = tf.cast(tf.convert_to_tensor(vector), emissions.dtype)
        if vector.shape.rank != 1 or not vector.shape.is_compatible_with(transitions.shape[:1]):
            raise ValueError(
                f"CRF {name}_transitions must have shape [{transitions.shape[0]}], got {vector.shape}"
            )
        boundary.append(vector)
    return transitions, boundary[0], boundary[1]


def _check_mask(emissions, mask):
    if mask is None:
        return tf.ones(tf.shape(emissions)[:2], dtype=tf.bool)
    mask = tf.convert_to_tensor(mask)
    if mask.shape.rank != 2:
        raise ValueError(f"CRF mask must have shape [batch, time], got shape {mask.shape}")
    if not mask.shape.is_compatible_with(emissions.shape[:2]):
        raise ValueError(f"CRF mask shape {mask.shape} does not match emissions shape {emissions.shape}")
    tf.debugging.assert_equal(
        tf.shape(mask),
        tf.shape(emissions)[:2],
        message="CRF mask shape does not match the emissions' [batch, time]",
    )
    return tf.cast(mask, tf.bool)


def _check_tags(emissions, tags, mask):
    tags = tf.convert_to_tensor(tags)
    if not tags.dtype.is_integer:
        raise TypeError(f"CRF tags must be integer ids, got {tags.dtype.name}")
    if tags.shape.rank != 2 or not tags.shape.is_compatible_with(emissions.shape[:2]):
        raise ValueError(f"CRF tags shape {tags.shape} does not match emissions shape {emissions.shape}")
    tf.debugging.assert_equal(
        tf.shape(tags),
        tf.shape(emissions)[:2],
        message="CRF tags shape does not match the emissions' [batch, time]",
    )
    tags = tf.cast(tags, tf.int32)
    valid_tags = tf.where(mask, tags, 0)
    message = "CRF tags out of range [0, num_tags) at unmasked positions"
    checks = [
        tf.debugging.assert_non_negative(valid_tags, message=message),
        tf.debugging.assert_less(valid_tags, tf.shape(emissions)[-1], message=message),
    ]
    # Graphs run ops in data order: the gathers must wait for the checks.
    with tf.control_dependencies(checks):
        return tf.identity(tags)


def _left_align(mask):
    """Permutation [B, T] that moves each row's valid positions, in order, to the front.

    The algorithms below then only handle prefix masks given by `lengths`.
    """
    order = tf.argsort(tf.cast(tf.logical_not(mask), tf.int32), axis=1, stable=True)
    lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
    return order, lengths


def _align(emissions, mask, tags=None):
    order, lengths = _left_align(mask)
    emissions = tf.gather(emissions, order, batch_dims=1)
    prefix_mask = tf.sequence_mask(lengths, tf.shape(mask)[1])
    if tags is not None:
        # Padded tags may be anything (e.g. -1): replace them so gathers stay in range.
        tags = tf.where(prefix_mask, tf.gather(tags, order, batch_dims=1), 0)
    return emissions, prefix_mask, lengths, order, tags


def _steps(emissions, prefix_mask):
    """Time-major inputs of one forward/Viterbi step each; the first step starts the chain."""
    is_first = tf.equal(tf.range(tf.shape(emissions)[1]), 0)
    return tf.transpose(emissions, [1, 0, 2]), tf.transpose(prefix_mask), is_first


def crf_sequence_score(emissions, tags, mask, transitions, start_transitions=None, end_transitions=None):
    """Unnormalised score s(E, y) of given tag sequences.

    Args:
        emissions: float tensor [batch, time, num_tags].
        tags: integer tensor [batch, time]; values at masked-out positions are ignored. Values
            outside [0, num_tags) at other positions raise `tf.errors.InvalidArgumentError`
            (not under XLA, which drops runtime checks).
        mask: boolean tensor [batch, time], or `None` for all positions valid.
        transitions: [num_tags, num_tags]; `transitions[i, j]` scores tag `j` after tag `i`.
        start_transitions, end_transitions: optional [num_tags] scores of the first and last tag.

    Returns:
        Float tensor [batch].
    """
    emissions = _check_emissions(emissions)
    transitions, start, end = _check_weights(emissions, transitions, start_transitions, end_transitions)
    mask = _check_mask(emissions, mask)
    tags = _check_tags(emissions, tags, mask)
    emissions, prefix_mask, lengths, _, tags = _align(emissions, mask, tags)
    weight = tf.cast(prefix_mask, emissions.dtype)
    unary = tf.reduce_sum(tf.gather(emissions, tags, batch_dims=2) * weight, axis=1)
    pairs = tf.stack([tags[:, :-1], tags[:, 1:]], axis=-1)
    binary = tf.reduce_sum(tf.gather_nd(transitions, pairs) * weight[:, 1:], axis=1)
    last_tags = tf.gather(tags, tf.maximum(lengths - 1, 0), batch_dims=1)
    boundary = (tf.gather(start, tags[:, 0]) + tf.gather(end, last_tags)) * weight[:, 0]
    return unary + binary + boundary


def crf_log_norm(emissions, mask, transitions, start_transitions=None, end_transitions=None):
    """Log-partition log Z(E) by the forward algorithm in log space.

    Args: as `crf_sequence_score`, without `tags`.

    Returns:
        Float tensor [batch].
    """
    emissions = _check_emissions(emissions)
    transitions, start, end = _check_weights(emissions, transitions, start_transitions, end_transitions)
    mask = _check_mask(emissions, mask)
    emissions, prefix_mask, lengths, _, _ = _align(emissions, mask)
    step_inputs = _steps(emissions, prefix_mask)

    def forward_step(alpha, step_inputs):
        step_emissions, step_mask, is_first = step_inputs
        advanced = tf.where(
            is_first,
            start + step_emissions,
            tf.reduce_logsumexp(alpha[:, :, None] + transitions, axis=1) + step_emissions,
        )
        return tf.where(step_mask[:, None], advanced, alpha)

    alpha = tf.foldl(forward_step, step_inputs, initializer=tf.zeros_like(emissions[:, 0]))
    log_norm = tf.reduce_logsumexp(alpha + end, axis=1)
    return tf.where(lengths > 0, log_norm, tf.zeros_like(log_norm))


def crf_log_likelihood(emissions, tags, mask, transitions, start_transitions=None, end_transitions=None):
    """Log-likelihood log p(y | E) = s(E, y) - log Z(E) of given tag sequences.

    Args: as `crf_sequence_score`.

    Returns:
        Float tensor [batch]; the training loss is its negative mean.
    """
    score = crf_sequence_score(emissions, tags, mask, transitions, start_transitions, end_transitions)
    return score - crf_log_norm(emissions, mask, transitions, start_transitions, end_transitions)


def viterbi_decode(emissions, mask, transitions, start_transitions=None, end_transitions=None):
    """Most likely tag sequences by the Viterbi algorithm.

    Args: as `crf_log_norm`.

    Returns:
        `(tags, scores)`: int32 tensor [batch, time] with 0 at masked-out positions, and the float
        score s(E, tags) [batch] of each decoded sequence.
    """
    emissions = _check_emissions(emissions)
    transitions, start, end = _check_weights(emissions, transitions, start_transitions, end_transitions)
    mask = _check_mask(emissions, mask)
    emissions, prefix_mask, lengths, order, _ = _align(emissions, mask)
    batch_size, num_tags = tf.shape(emissions)[0], tf.shape(emissions)[2]
    # At padded steps every tag points to itself, so backtracking walks through the padding
    # unchanged down to the last valid position.
    identity = tf.tile(tf.range(num_tags)[None], [batch_size, 1])

    def viterbi_step(carry, step_inputs):
        alpha, _ = carry
        step_emissions, step_mask, is_first = step_inputs
        candidates = alpha[:, :, None] + transitions
        advanced = tf.where(is_first, start, tf.reduce_max(candidates, axis=1)) + step_emissions
        best_previous = tf.argmax(candidates, axis=1, output_type=tf.int32)
        return (
            tf.where(step_mask[:, None], advanced, alpha),
            tf.where(step_mask[:, None] & ~is_first, best_previous, identity),
        )

    alphas, backpointers = tf.scan(
        viterbi_step, _steps(emissions, prefix_mask), initializer=(tf.zeros_like(emissions[:, 0]), identity)
    )
    final_alpha = alphas[-1] + end
    last_tags = tf.argmax(final_alpha, axis=1, output_type=tf.int32)
    best_scores = tf.reduce_max(final_alpha, axis=1)

    def backtrack_step(next_tags, step_backpointers):
        return tf.gather(step_backpointers, next_tags, batch_dims=1)

    # Step t's backpointers give the tag at t - 1; the first step's are the identity.
    previous_tags = tf.scan(backtrack_step, backpointers, initializer=last_tags, reverse=True)
    aligned_tags = tf.transpose(tf.concat([previous_tags[1:], last_tags[None]], axis=0))
    tags = tf.gather(aligned_tags, tf.argsort(order, axis=1), batch_dims=1)
    tags = tf.where(mask, tags, 0)
    best_scores = tf.where(lengths > 0, best_scores, tf.zeros_like(best_scores))
    return tags, best_scores


@keras.saving.register_keras_serializable(package="zoo")
class CRF(keras.layers.Layer):
    """Linear-chain CRF output layer: holds the transition scores and Viterbi-decodes.

    Put it on top of per-token emission scores (typically a `Dense(num_tags)` over a BiLSTM). It
    returns the most likely tag ids; train it with `CRFTagger`, which minimises
    `-crf_log_likelihood` with this layer's weights (or call `log_likelihood` in a custom loop).

    Args:
        num_tags: Number of tags.
        use_boundary_transitions: Whether to learn start and end scores for the first and last
            tag of a sequence (in addition to the tag-to-tag transitions). Default `True`.
        transitions_initializer: Initializer of the [num_tags, num_tags] transition matrix.
        boundary_initializer: Initializer of the start and end vectors.
        transitions_regularizer: Optional regularizer of the transition matrix.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Emission scores [batch, time, num_tags].
        mask: Optional boolean [batch, time]; taken from upstream Keras masking (e.g.
            `Embedding(mask_zero=True)`) when not given.

    Returns:
        int32 tag ids [batch, time], 0 at masked-out positions. The mask passes through.

    Example:

    ```python
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(100, 16, mask_zero=True)(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(16, return_sequences=True))(x)
    tags = CRF(5)(keras.layers.Dense(5)(x))  # int32 [batch, time], 0 where input id is 0
    decoder = keras.Model(inputs, tags)
    ```
    """

    def __init__(
        self,
        num_tags,
        use_boundary_transitions=True,
        transitions_initializer="glorot_uniform",
        boundary_initializer="zeros",
        transitions_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(num_tags, int) or isinstance(num_tags, bool) or num_tags < 1:
            raise ValueError(f"num_tags must be a positive integer, got {num_tags!r}")
        self.num_tags = num_tags
        self.use_boundary_transitions = bool(use_boundary_transitions)
        self.transitions_initializer = keras.initializers.get(transitions_initializer)
        self.boundary_initializer = keras.initializers.get(boundary_initializer)
        self.transitions_regularizer = keras.regularizers.get(transitions_regularizer)
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(ndim=3, axes={-1: num_tags})

    def build(self, input_shape):
        self.transitions = self.add_weight(
            name="transitions",
            shape=(self.num_tags, self.num_tags),
            initializer=self.transitions_initializer,
            regularizer=self.transitions_regularizer,
        )
        if self.use_boundary_transitions:
            self.start_transitions = self.add_weight(
                name="start_transitions",
                shape=(self.num_tags,),
                initializer=self.boundary_initializer,
            )
            self.end_transitions = self.add_weight(
                name="end_transitions",
                shape=(self.num_tags,),
                initializer=self.boundary_initializer,
            )
        else:
            self.start_transitions = None
            self.end_transitions = None

    def _weights(self):
        return self.transitions, self.start_transitions, self.end_transitions

    def call(self, inputs, mask=None):
        tags, _ = viterbi_decode(inputs, mask, *self._weights())
        return tags

    def log_likelihood(self, emissions, tags, mask=None):
        """Per-sequence log p(tags | emissions) [batch] under this layer's weights."""
        if not self.built:
            self.build(emissions.shape)
        return crf_log_likelihood(emissions, tags, mask, *self._weights())

    def compute_mask(self, inputs, mask=None):
        return mask

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:2])

    def compute_output_spec(self, inputs, mask=None):
        return keras.KerasTensor(inputs.shape[:2], dtype="int32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_tags": self.num_tags,
                "use_boundary_transitions": self.use_boundary_transitions,
                "transitions_initializer": keras.initializers.serialize(self.transitions_initializer),
                "boundary_initializer": keras.initializers.serialize(self.boundary_initializer),
                "transitions_regularizer": keras.regularizers.serialize(self.transitions_regularizer),
            }
        )
        return config


def _exact_accuracy(metrics):
    """Maps "accuracy" to exact tag equality.

    Keras resolves "accuracy" from tensor shapes and, for predictions shaped like the targets,
    picks CategoricalAccuracy, which is wrong for decoded tag ids.
    """
    if not isinstance(metrics, (list, tuple)):
        return metrics
    return [
        keras.metrics.Accuracy(name=metric)
        if isinstance(metric, str) and metric in ("accuracy", "acc")
        else metric
        for metric in metrics
    ]


@keras.saving.register_keras_serializable(package="zoo")
class CRFTagger(keras.Model):
    """Sequence tagger trained by CRF log-likelihood: an emission model followed by a `CRF`.

    `fit`/`evaluate` minimise the mean over sequences of -log p(y | x); the loss is computed here,
    so `compile` takes no `loss`. Compiled metrics compare the Viterbi-decoded tags with the
    targets, ignoring padding; `"accuracy"` means the fraction of tags that are exactly right. A
    `sample_weight` is one weight per sequence: it scales the sequence's term of the loss, and, as in
    Keras, of the metrics only `weighted_metrics` use it.
    `predict` and calling the model return decoded tags.

    Args:
        emission_model: A Keras model or layer mapping inputs to emission scores
            [batch, time, num_tags]; its output mask (e.g. from `Embedding(mask_zero=True)`)
            marks padding.
        crf: The `CRF` layer, with `num_tags` equal to the emission size.
        **kwargs: Base model keyword arguments, such as `name`.

    Call arguments:
        inputs: Whatever `emission_model` takes.
        training: Python boolean, passed to `emission_model`.

    Returns:
        int32 tag ids [batch, time], 0 at padded positions.

    Example:

    ```python
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(100, 16, mask_zero=True)(inputs)
    x = keras.layers.Bidirectional(keras.layers.LSTM(16, return_sequences=True))(x)
    tagger = CRFTagger(keras.Model(inputs, keras.layers.Dense(5)(x)), CRF(5))
    tagger.compile(optimizer="adam", metrics=["accuracy"])
    tagger.fit(token_ids, tag_ids, epochs=5)  # int arrays [N, T]; token id 0 = padding
    tags = tagger.predict(token_ids)  # int32 [N, T], 0 at padding
    ```
    """

    def __init__(self, emission_model, crf, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(crf, CRF):
            raise TypeError(f"crf must be a zoo CRF layer, got {type(crf).__name__}")
        self.emission_model = emission_model
        self.crf = crf
        self.autocast = False  # the emission model casts (or checks) its own inputs
        # The CRF's own steps compute the loss, so they track it themselves (Keras's tracker is
        # updated only by Keras's own train and test steps).
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def input_dtype(self):
        # The dtype of the default SavedModel signature: the emission model's (token ids for a tagger).
        return self.emission_model.input_dtype

    @property
    def metrics(self):
        return [self.loss_tracker] + [metric for metric in super().metrics if metric.name != "loss"]

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, weighted_metrics=None, **kwargs):
        if loss is not None:
            raise ValueError(
                "CRFTagger trains on the CRF negative log-likelihood: do not pass `loss` to compile"
            )
        super().compile(
            optimizer=optimizer,
            metrics=_exact_accuracy(metrics),
            weighted_metrics=_exact_accuracy(weighted_metrics),
            **kwargs,
        )

    def compile_from_config(self, config):
        # Keras skips models that override `compile`; ours takes Keras's own arguments.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def call(self, inputs, training=None):
        return self.crf(self.emission_model(inputs, training=training))

    def _loss_and_tags(self, x, y, sample_weight, training):
        emissions = self.emission_model(x, training=training)
        # Keras attaches the emission model's output mask to its output tensor.
        mask = compat.keras_mask(emissions)
        if mask is None:
            mask = tf.ones(tf.shape(emissions)[:2], dtype=tf.bool)
        nll = -self.crf.log_likelihood(emissions, y, mask)
        token_weight = tf.cast(mask, nll.dtype)
        if sample_weight is not None:
            sample_weight = tf.cast(sample_weight, nll.dtype)
            if sample_weight.shape.rank != 1:
                raise ValueError(
                    f"CRFTagger takes one sample weight per sequence (rank 1), got shape "
                    f"{sample_weight.shape}"
                )
            nll = nll * sample_weight
            token_weight = token_weight * sample_weight[:, None]
        loss = tf.reduce_mean(nll)
        if self.losses:
            loss = loss + tf.add_n([tf.cast(term, loss.dtype) for term in self.losses])
        tags = self.crf(emissions, mask=mask)
        return loss, tags, token_weight

    def _track_loss(self, loss, x):
        # Weighted by batch size, as Keras's own TensorFlow train/test steps track theirs.
        batch_size = tf.shape(tf.nest.flatten(x)[0])[0]
        self.loss_tracker.update_state(loss, sample_weight=batch_size)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            loss, tags, token_weight = self._loss_and_tags(x, y, sample_weight, training=True)
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        self._track_loss(loss, x)
        return self.compute_metrics(x, y, tags, sample_weight=token_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        loss, tags, token_weight = self._loss_and_tags(x, y, sample_weight, training=False)
        self._track_loss(loss, x)
        return self.compute_metrics(x, y, tags, sample_weight=token_weight)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "emission_model": keras.saving.serialize_keras_object(self.emission_model),
                "crf": keras.saving.serialize_keras_object(self.crf),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["emission_model"] = keras.saving.deserialize_keras_object(config["emission_model"])
        config["crf"] = keras.saving.deserialize_keras_object(config["crf"])
        return cls(**config)
