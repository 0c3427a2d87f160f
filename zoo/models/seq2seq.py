"""The course's RNN encoder-decoder for sequence-to-sequence tasks (machine translation).

Encoder: token embedding → `zoo.layers.StackedRNN` (GRU or LSTM), padding masked, so every layer's
final state is the state after the last real source token.

Decoder, two kinds:
- plain (the course's `Seq2SeqDecoder`): a `StackedRNN` of the same shape initialised with the
  encoder's final states; at every step it reads concat(embedding of y_{t-1}, context), where the
  context is the encoder's top-layer final hidden state, the same for every step.
- `attention=True` (the course's `Seq2SeqAttentionDecoder`): `zoo.attention.AttentionDecoderCell`,
  additive (Bahdanau) attention over the encoder outputs with the previous top-layer hidden state as
  the query, also initialised with the encoder's final states (GRU only: the cell is a GRU stack).

Training is teacher-forced: `model((source_ids, decoder_inputs))` gives the logits of the next
target token at every decoder position (`decoder_inputs` = `<bos>` y, targets = y `<eos>`, as
`zoo.text.seq2seq_batches` makes them). Compile with `sequence_loss()` and pass the target mask as
sample weights, so padded positions contribute nothing and the loss is the mean over real tokens.

Generation (`translate`) runs in the graph through `zoo.decoding` (greedy decoding or beam search),
one step at a time on the decoder's cells.
"""

import keras
import tensorflow as tf
from keras import ops

from zoo import decoding, layers
from zoo.attention import AttentionDecoderCell, attention_decoder_step_fn
from zoo.losses import SparseCategoricalCrossentropy

CELL_TYPES = ("gru", "lstm")
# Far below any real logit, yet finite: log-softmax and beam scores stay free of inf - inf.
_NEVER_GENERATED_LOGIT = -1e9


def sequence_loss(label_smoothing=0.0):
    """Token cross-entropy from logits, averaged over the positions whose sample weight is nonzero.

    With the target mask as sample weights (third element of `zoo.text.seq2seq_batches`), the loss is
    the mean over real tokens: adding padding to a batch does not change it.

    Args:
        label_smoothing: the share of each target spread evenly over the vocabulary (0: plain
            cross-entropy).
    """
    return SparseCategoricalCrossentropy(
        label_smoothing, from_logits=True, reduction="mean_with_sample_weight"
    )


def _check_positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


@keras.saving.register_keras_serializable(package="zoo")
class Seq2Seq(keras.Model):
    """RNN encoder-decoder with an optional additive-attention decoder.

    Args:
        source_vocab_size: number of source token ids (id `pad_id` is padding).
        target_vocab_size: number of target token ids.
        embedding_dim: size of the source and target token embeddings.
        units: hidden size of every recurrent layer.
        num_layers: number of recurrent layers in the encoder and in the decoder.
        dropout: dropout rate between recurrent layers (the course's `dropout` of a deep GRU). The
            attention decoder has none between its layers.
        cell_type: `"gru"` or `"lstm"` (the attention decoder needs `"gru"`).
        attention: use the additive-attention decoder instead of the plain one.
        bos_id, eos_id, pad_id: the target ids of `<bos>`, `<eos>` and `<pad>`; source padding is
            `pad_id` too.
        unk_id: the target id of `<unk>`, or None. Generation (`translate`) never emits `<unk>`, nor
            `<bos>` or `<pad>`: an unknown word is no translation, and the decoder writes the next
            most likely word instead.
        **kwargs: base `keras.Model` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(source_ids, decoder_inputs)`, int `[batch, source_length]` and
            `[batch, target_length]`, right-padded with `pad_id`.
        training: whether dropout applies.

    Returns:
        Logits `[batch, target_length, target_vocab_size]` of the token after each decoder input.

    Example:

    >>> model = Seq2Seq(source_vocab_size=100, target_vocab_size=120, embedding_dim=32, units=32)
    >>> logits = model((source_ids, decoder_inputs))
    >>> model.compile("adam", loss=sequence_loss())
    >>> model.fit(zoo.text.seq2seq_batches(sources, targets, 64, source_vocab, target_vocab))
    >>> token_ids, lengths = model.translate(source_ids, max_length=20, beam_size=4)
    """

    def __init__(
        self,
        source_vocab_size,
        target_vocab_size,
        embedding_dim=256,
        units=256,
        num_layers=2,
        dropout=0.0,
        cell_type="gru",
        attention=False,
        bos_id=2,
        eos_id=3,
        pad_id=0,
        unk_id=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("source_vocab_size", source_vocab_size),
            ("target_vocab_size", target_vocab_size),
            ("embedding_dim", embedding_dim),
            ("units", units),
            ("num_layers", num_layers),
        ):
            _check_positive_int(name, value)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if cell_type not in CELL_TYPES:
            raise ValueError(f"cell_type must be one of {CELL_TYPES}, got {cell_type!r}")
        if attention and cell_type != "gru":
            raise ValueError("the attention decoder is a GRU stack: use cell_type='gru' with attention=True")
        for name, value in (("bos_id", bos_id), ("eos_id", eos_id), ("pad_id", pad_id)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < target_vocab_size:
                raise ValueError(f"{name} must be an id in [0, {target_vocab_size}), got {value!r}")
        if len({bos_id, eos_id, pad_id}) != 3:
            raise ValueError(f"bos_id, eos_id and pad_id must differ, got {bos_id}, {eos_id}, {pad_id}")
        if unk_id is not None and (
            not isinstance(unk_id, int)
            or isinstance(unk_id, bool)
            or not 0 <= unk_id < target_vocab_size
            or unk_id in (bos_id, eos_id, pad_id)
        ):
            raise ValueError(
                f"unk_id must be None or an id in [0, {target_vocab_size}) other than bos_id, eos_id and "
                f"pad_id, got {unk_id!r}"
            )
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.embedding_dim = embedding_dim
        self.units = units
        self.num_layers = num_layers
        self.dropout = float(dropout)
        self.cell_type = cell_type
        self.attention = bool(attention)
        self.bos_id, self.eos_id, self.pad_id, self.unk_id = bos_id, eos_id, pad_id, unk_id
        self.states_per_layer = 2 if cell_type == "lstm" else 1

        self.source_embedding = keras.layers.Embedding(
            source_vocab_size, embedding_dim, name="source_embedding"
        )
        self.encoder = layers.StackedRNN(
            cell_type, units, num_layers=num_layers, dropout=dropout, return_state=True, name="encoder"
        )
        self.target_embedding = keras.layers.Embedding(
            target_vocab_size, embedding_dim, name="target_embedding"
        )
        if self.attention:
            self.decoder_cell = AttentionDecoderCell(
                units, memory_size=units, num_layers=num_layers, name="decoder_cell"
            )
            self.decoder = keras.layers.RNN(self.decoder_cell, return_sequences=True, name="decoder")
        else:
            self.decoder = layers.StackedRNN(
                cell_type, units, num_layers=num_layers, dropout=dropout, name="decoder"
            )
        self.output_layer = keras.layers.Dense(target_vocab_size, name="output_layer")

    def build(self, inputs_shape):
        source_shape, target_shape = inputs_shape
        self.source_embedding.build(source_shape)
        self.encoder.build((None, None, self.embedding_dim))
        self.target_embedding.build(target_shape)
        if self.attention:
            self.decoder.build((None, None, self.embedding_dim))
        else:
            self.decoder.build((None, None, self.embedding_dim + self.units))
        self.output_layer.build((None, None, self.units))
        self.built = True

    @property
    def input_dtype(self):
        # Token ids: Keras converts array inputs to this dtype and gives SavedModel's default
        # serving signature int32 inputs.
        return "int32"

    @staticmethod
    def _check_ids(name, ids):
        if len(ids.shape) != 2:
            raise ValueError(f"{name} must be [batch, length] token ids, got shape {tuple(ids.shape)}")
        if not keras.backend.standardize_dtype(ids.dtype).startswith(("int", "uint")):
            raise TypeError(
                f"{name} must be integer token ids, got dtype {keras.backend.standardize_dtype(ids.dtype)}"
            )

    def encode(self, source_ids, training=False):
        """Runs the encoder.

        Args:
            source_ids: int `[batch, source_length]`, right-padded with `pad_id`.
            training: whether dropout applies.

        Returns:
            `(outputs, source_mask, final_states)`: top-layer outputs `[batch, source_length, units]`,
            bool mask `[batch, source_length]`, and the flat list of every layer's final states
            (GRU: h_1..h_L; LSTM: h_1, c_1, ..., h_L, c_L).
        """
        source_ids = ops.convert_to_tensor(source_ids)
        self._check_ids("source_ids", source_ids)
        source_mask = ops.not_equal(source_ids, self.pad_id)
        outputs, *final_states = self.encoder(
            self.source_embedding(source_ids), mask=source_mask, training=training
        )
        return outputs, source_mask, final_states

    def initial_decoder_state(self, encoded):
        """The decoder's state before its first step, from the result of `encode`.

        Plain decoder: `[*encoder final states, context]` with context = the top layer's final h.
        Attention decoder: the `AttentionDecoderCell` state list (see `zoo.attention`).
        """
        outputs, source_mask, final_states = encoded
        if self.attention:
            return self.decoder_cell.get_initial_state_from_encoder(outputs, source_mask, final_states)
        context = final_states[-self.states_per_layer]
        return [*final_states, context]

    def call(self, inputs, training=False):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError("Seq2Seq takes inputs=(source_ids, decoder_inputs)")
        source_ids, decoder_inputs = inputs
        decoder_inputs = ops.convert_to_tensor(decoder_inputs)
        self._check_ids("decoder_inputs", decoder_inputs)
        state = self.initial_decoder_state(self.encode(source_ids, training=training))
        target_mask = ops.not_equal(decoder_inputs, self.pad_id)
        embedded = self.target_embedding(decoder_inputs)
        if self.attention:
            outputs = self.decoder(embedded, initial_state=state, mask=target_mask, training=training)
        else:
            *encoder_states, context = state
            steps = ops.shape(decoder_inputs)[1]
            repeated_context = ops.repeat(ops.expand_dims(context, 1), steps, axis=1)
            outputs = self.decoder(
                ops.concatenate([embedded, repeated_context], axis=-1),
                initial_state=encoder_states,
                mask=target_mask,
                training=training,
            )
        return self.output_layer(outputs)

    def compute_mask(self, inputs, mask=None):
        return None

    def step_fn(self):
        """The `zoo.decoding` step function of the decoder (inference: no dropout), over the state
        from `initial_decoder_state`."""
        if self.attention:
            return attention_decoder_step_fn(self.decoder_cell, self.target_embedding, self.output_layer)
        per_layer = self.states_per_layer

        def step(token_ids, states):
            *rnn_states, context = states
            outputs = ops.concatenate([self.target_embedding(token_ids), context], axis=-1)
            new_states = []
            for index, layer in enumerate(self.decoder.rnn_layers):
                layer_states = rnn_states[index * per_layer : (index + 1) * per_layer]
                outputs, layer_new_states = layer.cell(outputs, layer_states, training=False)
                new_states.extend(layer_new_states)
            return self.output_layer(outputs), [*new_states, context]

        return step

    def generation_step_fn(self):
        """`step_fn` as generation uses it: the logits of the ids never generated (`<bos>`, `<pad>`
        and, with `unk_id`, `<unk>`) pushed to a large negative value."""
        step = self.step_fn()
        never_generated = [self.bos_id, self.pad_id] + ([] if self.unk_id is None else [self.unk_id])
        penalty = _NEVER_GENERATED_LOGIT * ops.sum(
            ops.one_hot(never_generated, self.target_vocab_size), axis=0
        )

        def generation_step(token_ids, states):
            logits, new_states = step(token_ids, states)
            return logits + ops.cast(penalty, logits.dtype), new_states

        return generation_step

    def translate(self, source_ids, max_length, beam_size=None, length_penalty=0.0):
        """Generates target ids for a batch of sources, in the graph (wrap in `tf.function` for speed).

        Args:
            source_ids: int `[batch, source_length]`, right-padded with `pad_id` (ending with the
                source `<eos>` as in training).
            max_length: Python int, the most target tokens to generate (`<eos>` included).
            beam_size: None for greedy decoding, or a Python int >= 1 for beam search.
            length_penalty: GNMT's alpha for beam search (0: plain log-probability).

        Returns:
            `(token_ids, lengths)`: int32 `[batch, max_length]` (`<eos>` kept, then `pad_id`) and int32
            `[batch]` lengths up to and including `<eos>`.
        """
        if not self.built:
            self.build(((None, None), (None, None)))
        state = self.initial_decoder_state(self.encode(source_ids, training=False))
        source_ids = ops.convert_to_tensor(source_ids)
        start = tf.fill(tf.shape(source_ids)[:1], tf.constant(self.bos_id, tf.int32))
        if beam_size is None:
            if length_penalty:
                raise ValueError("length_penalty applies to beam search: give beam_size too")
            return decoding.greedy_decode(
                self.generation_step_fn(), start, state, max_length, eos_id=self.eos_id, pad_id=self.pad_id
            )
        result = decoding.beam_search(
            self.generation_step_fn(),
            start,
            state,
            beam_size=beam_size,
            max_length=max_length,
            eos_id=self.eos_id,
            length_penalty=length_penalty,
            pad_id=self.pad_id,
        )
        return result.sequences, result.lengths

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "source_vocab_size": self.source_vocab_size,
                "target_vocab_size": self.target_vocab_size,
                "embedding_dim": self.embedding_dim,
                "units": self.units,
                "num_layers": self.num_layers,
                "dropout": self.dropout,
                "cell_type": self.cell_type,
                "attention": self.attention,
                "bos_id": self.bos_id,
                "eos_id": self.eos_id,
                "pad_id": self.pad_id,
                "unk_id": self.unk_id,
            }
        )
        return config
