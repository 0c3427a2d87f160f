"""Additive (Bahdanau) attention and a GRU decoder cell that attends over encoder outputs.

`AdditiveAttention` scores a query against keys with a(q, k) = w_v^T tanh(W_q q + W_k k), turns
the scores into weights with a softmax over the valid keys, and returns the weighted sum of values.

`AttentionDecoderCell` is the decoder of the course's encoder-decoder with attention: at each step
the query is the previous hidden state of the top recurrent layer, the context is the attention over
the encoder outputs, and a stack of `zoo.cells.GRUCell` reads concat(embedding of y_{t-1}, context).

How the encoder outputs reach the cell
--------------------------------------
Keras 3's `keras.layers.RNN` has no `constants=` argument, and setting tensors on a layer before a
call breaks inside `tf.function` and saved models. So, as in the course's own decoder, the encoder
outputs travel in the recurrent state: `cell.get_initial_state_from_encoder(memory, memory_mask,
hidden_states)` returns the list

    [h_1, ..., h_L, memory, projected_keys, memory_mask]

whose last three entries are `[batch, source_length, size]` tensors that every step passes through
unchanged. `projected_keys = memory @ W_k` is computed once there instead of at every step.
Pass this list as `initial_state` to `keras.layers.RNN(cell)` for teacher-forced training, or to
`zoo.decoding` through `attention_decoder_step_fn` for generation (beam search repeats every entry
along the beam like any other state).
"""

import keras
from keras import ops

from zoo import cells


def _masked_softmax(scores, mask):
    """Softmax over the last axis where `mask` is True; masked entries get exactly zero weight (a row
    with no valid entry gets all zeros)."""
    if mask is None:
        return ops.softmax(scores, axis=-1)
    mask = ops.cast(mask, "bool")
    lowest = -6e4 if scores.dtype == "float16" else -1e9
    weights = ops.softmax(ops.where(mask, scores, ops.cast(lowest, scores.dtype)), axis=-1)
    return weights * ops.cast(mask, weights.dtype)


@keras.saving.register_keras_serializable(package="zoo")
class AdditiveAttention(keras.layers.Layer):
    """Additive attention: a(q, k) = w_v^T tanh(W_q q + W_k k), softmax over valid keys.

    Args:
        units: size of the hidden layer of the scoring network (the rows of W_q, W_k and w_v).
        dropout: rate of dropout on the attention weights during training.
        kernel_initializer: initializer of W_q, W_k and w_v.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `[batch, query_size]` (one query per example) or `[batch, queries, query_size]`.
        keys: `[batch, keys, key_size]`.
        values: `[batch, keys, value_size]`; defaults to `keys`.
        keys_mask: bool `[batch, keys]`, True at valid keys. Filled in by Keras from the mask of
            `keys` (e.g. an `Embedding(mask_zero=True)` or `Masking` upstream) when not given.
        valid_lengths: int `[batch]`, the number of valid keys (a right-padded alternative to
            `keys_mask`; give one of the two).
        training: whether dropout applies.

    Returns:
        `(context, weights)`: context `[batch, value_size]` or `[batch, queries, value_size]`,
        weights `[batch, keys]` or `[batch, queries, keys]`, zero at masked keys.

    Example:

    >>> attention = AdditiveAttention(8)
    >>> context, weights = attention(keras.ops.ones([2, 4]), keras.ops.ones([2, 5, 3]),
    ...                              valid_lengths=keras.ops.convert_to_tensor([5, 2]))
    """

    def __init__(self, units, dropout=0.0, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(f"units must be a positive int, got {units!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.units = units
        self.dropout = float(dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.weights_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)

    def build(self, query_shape, keys_shape, values_shape=None):
        self.query_kernel = self.add_weight(
            shape=(query_shape[-1], self.units), initializer=self.kernel_initializer, name="query_kernel"
        )
        self.key_kernel = self.add_weight(
            shape=(keys_shape[-1], self.units), initializer=self.kernel_initializer, name="key_kernel"
        )
        self.score_vector = self.add_weight(
            shape=(self.units,), initializer=self.kernel_initializer, name="score_vector"
        )

    def project_keys(self, keys):
        """W_k k for every key, `[batch, keys, units]`: the part of the score that does not depend on
        the query, computed once when many queries (decoder steps) attend to the same keys."""
        return ops.matmul(keys, self.key_kernel)

    def attend(self, query, projected_keys, values, keys_mask=None, training=None):
        """The attention of `call`, given keys already passed through `project_keys`."""
        single_query = len(query.shape) == 2
        if single_query:
            query = ops.expand_dims(query, 1)
        projected_query = ops.matmul(query, self.query_kernel)
        # [batch, queries, keys, units]: every query added to every key.
        features = ops.tanh(ops.expand_dims(projected_query, 2) + ops.expand_dims(projected_keys, 1))
        scores = ops.matmul(features, self.score_vector)
        if keys_mask is not None:
            keys_mask = ops.expand_dims(keys_mask, 1)
        weights = _masked_softmax(scores, keys_mask)
        context = ops.matmul(self.weights_dropout(weights, training=training), values)
        if single_query:
            return ops.squeeze(context, 1), ops.squeeze(weights, 1)
        return context, weights

    def call(self, query, keys, values=None, keys_mask=None, valid_lengths=None, training=None):
        if len(query.shape) not in (2, 3):
            raise ValueError(
                f"query must be [batch, size] or [batch, queries, size], got shape {query.shape}"
            )
        if len(keys.shape) != 3:
            raise ValueError(f"keys must be [batch, keys, size], got shape {keys.shape}")
        if valid_lengths is not None:
            if keys_mask is not None:
                raise ValueError("give keys_mask or valid_lengths, not both")
            positions = ops.arange(ops.shape(keys)[1])
            keys_mask = ops.expand_dims(positions, 0) < ops.expand_dims(ops.cast(valid_lengths, "int32"), 1)
        if values is None:
            values = keys
        return self.attend(query, self.project_keys(keys), values, keys_mask, training=training)

    def compute_mask(self, *args, **kwargs):
        # The outputs are per query, not per key: the keys' mask does not apply to them.
        return None

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config


def _recurrent_cell(units, dtype, name):
    """The recurrent cell of each decoder layer; any cell with Keras's cell interface fits here."""
    return cells.GRUCell(units, dtype=dtype, name=name)


@keras.saving.register_keras_serializable(package="zoo")
class AttentionDecoderCell(keras.layers.Layer):
    """One decoder step of an encoder-decoder with additive attention, usable in `keras.layers.RNN`.

    At each step: query = previous hidden state of the top recurrent layer; context = additive
    attention of the query over the encoder outputs (`memory`); the stack of `num_layers` GRU cells
    reads concat(inputs, context), where `inputs` is the embedding of the previous target token.
    The step's output is the top layer's new hidden state (project it to the vocabulary outside).

    The state is `[h_1, ..., h_L, memory, projected_keys, memory_mask]`, built by
    `get_initial_state_from_encoder` (see the module docstring); `state_size` lists the feature
    sizes: `units` per layer, then `memory_size`, `attention_units` and 1.

    Args:
        units: hidden size of each recurrent layer.
        memory_size: feature size of the encoder outputs (default: `units`).
        num_layers: number of stacked recurrent layers.
        attention_units: hidden size of the attention's scoring network (default: `units`).
        attention_dropout: dropout rate on the attention weights during training.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        inputs: `[batch, input_size]`, the embedded previous token.
        states: the state list described above.
        training: whether dropout applies.

    Returns:
        `(output, new_states)`: `[batch, units]` and the next state list.

    Example:

    >>> cell = AttentionDecoderCell(units=16, num_layers=2)
    >>> state = cell.get_initial_state_from_encoder(encoder_outputs, encoder_mask, encoder_states)
    >>> outputs = keras.layers.RNN(cell, return_sequences=True)(embedded_targets, initial_state=state)
    """

    def __init__(
        self, units, memory_size=None, num_layers=1, attention_units=None, attention_dropout=0.0, **kwargs
    ):
        super().__init__(**kwargs)
        for name, value in (("units", units), ("num_layers", num_layers)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.units = units
        self.memory_size = units if memory_size is None else memory_size
        self.num_layers = num_layers
        self.attention_units = units if attention_units is None else attention_units
        self.attention_dropout = attention_dropout
        self.attention = AdditiveAttention(
            self.attention_units, dropout=attention_dropout, dtype=self.dtype_policy, name="attention"
        )
        self.recurrent_cells = [
            _recurrent_cell(units, self.dtype_policy, name=f"recurrent_cell_{layer}")
            for layer in range(num_layers)
        ]
        self.state_size = [units] * num_layers + [self.memory_size, self.attention_units, 1]
        self.output_size = units

    def build(self, inputs_shape):
        # get_initial_state_from_encoder may have built the attention already.
        if not self.attention.built:
            self.attention.build((None, self.units), (None, None, self.memory_size))
        input_size = inputs_shape[-1] + self.memory_size
        for cell in self.recurrent_cells:
            cell.build((None, input_size))
            input_size = self.units

    def get_initial_state_from_encoder(self, memory, memory_mask=None, hidden_states=None):
        """The decoder's initial state list.

        Args:
            memory: encoder outputs, `[batch, source_length, memory_size]`.
            memory_mask: bool `[batch, source_length]`, True at real (not padded) source tokens;
                None means all are real.
            hidden_states: None (zeros) or a list of `num_layers` tensors `[batch, units]`, e.g.
                the encoder's final states, as in the course's decoder.

        Returns:
            `[h_1, ..., h_L, memory, projected_keys, memory_mask]` (mask as `[batch, length, 1]`
            floats, so that every state is a float tensor as `keras.layers.RNN` expects).
        """
        memory = ops.convert_to_tensor(memory, dtype=self.compute_dtype)
        if len(memory.shape) != 3 or memory.shape[-1] != self.memory_size:
            raise ValueError(
                f"memory must be [batch, source_length, {self.memory_size}], got shape {memory.shape}"
            )
        if not self.attention.built:
            self.attention.build((None, self.units), memory.shape)
        batch_size = ops.shape(memory)[0]
        if memory_mask is None:
            memory_mask = ops.ones(ops.shape(memory)[:2], dtype=self.compute_dtype)
        elif len(memory_mask.shape) != 2:
            raise ValueError(f"memory_mask must be [batch, source_length], got shape {memory_mask.shape}")
        memory_mask = ops.expand_dims(ops.cast(memory_mask, self.compute_dtype), -1)
        if hidden_states is None:
            hidden_states = [ops.zeros((batch_size, self.units), self.compute_dtype)] * self.num_layers
        else:
            hidden_states = list(hidden_states)
            if len(hidden_states) != self.num_layers:
                raise ValueError(f"expected {self.num_layers} hidden states, got {len(hidden_states)}")
            hidden_states = [ops.cast(state, self.compute_dtype) for state in hidden_states]
        return [*hidden_states, memory, self.attention.project_keys(memory), memory_mask]

    def get_initial_state(self, batch_size=None):
        raise ValueError(
            "AttentionDecoderCell needs the encoder outputs in its state: pass "
            "initial_state=cell.get_initial_state_from_encoder(memory, memory_mask, hidden_states)"
        )

    def call(self, inputs, states, training=None):
        if len(states) != self.num_layers + 3:
            raise ValueError(
                f"expected {self.num_layers + 3} states (see get_initial_state_from_encoder), "
                f"got {len(states)}"
            )
        hidden_states = states[: self.num_layers]
        memory, projected_keys, memory_mask = states[self.num_layers :]
        context, _ = self.attention.attend(
            hidden_states[-1], projected_keys, memory, memory_mask[..., 0] > 0, training=training
        )
        outputs = ops.concatenate([inputs, context], axis=-1)
        new_hidden_states = []
        for cell, state in zip(self.recurrent_cells, hidden_states):
            outputs, new_state = cell(outputs, [state], training=training)
            new_hidden_states.append(new_state[0] if isinstance(new_state, (list, tuple)) else new_state)
        return outputs, [*new_hidden_states, memory, projected_keys, memory_mask]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "memory_size": self.memory_size,
                "num_layers": self.num_layers,
                "attention_units": self.attention_units,
                "attention_dropout": self.attention_dropout,
            }
        )
        return config


def attention_decoder_step_fn(cell, embedding, output_layer):
    """A `zoo.decoding` step function for an `AttentionDecoderCell` (inference, no dropout).

    Args:
        cell: a built `AttentionDecoderCell`.
        embedding: layer mapping int token ids `[batch]` to `[batch, input_size]`.
        output_layer: layer mapping the cell's `[batch, units]` output to `[batch, vocabulary]` logits.

    Returns:
        `step_fn(token_ids, states) -> (logits, new_states)`, where `states` is the list from
        `cell.get_initial_state_from_encoder`.

    Example:

    >>> step_fn = attention_decoder_step_fn(cell, embedding, dense)
    >>> state = cell.get_initial_state_from_encoder(encoder_outputs, encoder_mask, encoder_states)
    >>> best = zoo.decoding.beam_search(step_fn, bos_ids, state, beam_size=4, max_length=20, eos_id=eos)
    """

    def step_fn(token_ids, states):
        outputs, new_states = cell(embedding(token_ids), list(states), training=False)
        return output_layer(outputs), new_states

    return step_fn
