"""Additive attention and the attention decoder cell against NumPy references with the same weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import decoding
from zoo.attention import AdditiveAttention, AttentionDecoderCell, attention_decoder_step_fn

RNG = np.random.default_rng(3)


def numpy_attention(query, keys, values, valid_lengths, query_kernel, key_kernel, score_vector):
    """[batch, size] queries; weights zero past each row's valid length."""
    features = np.tanh((query @ query_kernel)[:, None, :] + keys @ key_kernel)
    scores = features @ score_vector
    valid = np.arange(keys.shape[1])[None, :] < valid_lengths[:, None]
    scores = np.where(valid, scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.einsum("bk,bkv->bv", weights, values), weights


def numpy_gru(inputs, state, kernel, recurrent_kernel, bias):
    """The GRU step of zoo.cells.GRUCell with reset_after=True: R applied after H W_hh, as Keras does."""
    units = state.shape[-1]
    x = inputs @ kernel + bias[0]
    h = state @ recurrent_kernel + bias[1]
    z = 1 / (1 + np.exp(-(x[:, :units] + h[:, :units])))
    r = 1 / (1 + np.exp(-(x[:, units : 2 * units] + h[:, units : 2 * units])))
    candidate = np.tanh(x[:, 2 * units :] + r * h[:, 2 * units :])
    return z * state + (1 - z) * candidate


def test_additive_attention_matches_numpy_and_masks_padded_keys():
    query, keys, values = RNG.normal(size=(3, 4)), RNG.normal(size=(3, 5, 6)), RNG.normal(size=(3, 5, 2))
    valid_lengths = np.array([5, 2, 1])
    layer = AdditiveAttention(7)
    context, weights = layer(query, keys, values, valid_lengths=valid_lengths)
    expected_context, expected_weights = numpy_attention(
        query,
        keys,
        values,
        valid_lengths,
        *[w.numpy() for w in (layer.query_kernel, layer.key_kernel, layer.score_vector)],
    )
    np.testing.assert_allclose(weights, expected_weights, atol=1e-6)
    np.testing.assert_allclose(context, expected_context, atol=1e-5)
    assert np.all(weights.numpy()[1, 2:] == 0.0) and np.all(weights.numpy()[2, 1:] == 0.0)

    # The same mask as booleans, several queries at once, and padded values that cannot leak.
    mask = np.arange(5)[None, :] < valid_lengths[:, None]
    garbage_values = np.where(mask[:, :, None], values, 1e3)
    many_context, many_weights = layer(np.stack([query, query], 1), keys, garbage_values, keys_mask=mask)
    for index in range(2):
        np.testing.assert_allclose(many_weights[:, index], expected_weights, atol=1e-6)
        np.testing.assert_allclose(many_context[:, index], expected_context, atol=1e-5)


def test_additive_attention_takes_keras_mask_of_keys():
    tokens = np.array([[4, 2, 0, 0], [1, 3, 5, 0]])
    query = keras.Input((6,))
    source = keras.Input((4,), dtype="int32")
    keys = keras.layers.Embedding(8, 6, mask_zero=True)(source)
    context, weights = AdditiveAttention(5)(query, keys)
    model = keras.Model([query, source], [context, weights])
    weights = model.predict([RNG.normal(size=(2, 6)), tokens], verbose=0)[1]
    np.testing.assert_array_equal(weights == 0, tokens == 0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)


def test_additive_attention_dropout_only_in_training():
    layer = AdditiveAttention(4, dropout=0.5)
    query, keys = RNG.normal(size=(64, 3)), RNG.normal(size=(64, 6, 3))
    inference, weights = layer(query, keys, training=False)
    np.testing.assert_allclose(inference, np.einsum("bk,bkv->bv", weights, keys), atol=1e-5)
    dropped, _ = layer(query, keys, training=True)
    assert not np.allclose(dropped, inference)


def cell_inputs(batch=3, source_length=5, memory_size=4, input_size=3, dtype="float32"):
    memory = RNG.normal(size=(batch, source_length, memory_size)).astype(dtype)
    valid_lengths = np.array([5, 3, 1][:batch])
    mask = np.arange(source_length)[None, :] < valid_lengths[:, None]
    return RNG.normal(size=(batch, input_size)).astype(dtype), memory, mask, valid_lengths


def test_decoder_cell_step_matches_numpy():
    inputs, memory, mask, valid_lengths = cell_inputs()
    cell = AttentionDecoderCell(units=6, memory_size=4, num_layers=2, attention_units=5)
    cell.build(inputs.shape)
    hidden = [RNG.normal(size=(3, 6)).astype("float32") for _ in range(2)]
    states = cell.get_initial_state_from_encoder(memory, mask, hidden)
    output, new_states = cell(inputs, states)

    attention = cell.attention
    context, _ = numpy_attention(
        hidden[1],
        memory,
        memory,
        valid_lengths,
        *[w.numpy() for w in (attention.query_kernel, attention.key_kernel, attention.score_vector)],
    )
    layer_input = np.concatenate([inputs, context], -1)
    for gru, state, new_state in zip(cell.recurrent_cells, hidden, new_states):
        layer_input = numpy_gru(layer_input, state, *[w.numpy() for w in gru.weights])
        np.testing.assert_allclose(new_state, layer_input, atol=1e-5)
    np.testing.assert_allclose(output, layer_input, atol=1e-5)
    for passed, original in zip(new_states[2:], states[2:]):
        np.testing.assert_array_equal(passed, original)


def test_decoder_cell_ignores_padded_memory():
    inputs, memory, mask, _ = cell_inputs()
    cell = AttentionDecoderCell(units=6, memory_size=4)
    cell.build(inputs.shape)
    output = cell(inputs, cell.get_initial_state_from_encoder(memory, mask))[0]
    changed = np.where(mask[:, :, None], memory, -50.0).astype("float32")
    np.testing.assert_allclose(
        cell(inputs, cell.get_initial_state_from_encoder(changed, mask))[0], output, atol=1e-6
    )
    assert not np.allclose(cell(inputs, cell.get_initial_state_from_encoder(changed))[0], output)


def test_decoder_cell_attention_dropout_only_in_training():
    inputs, memory, mask, _ = cell_inputs()
    cell = AttentionDecoderCell(units=6, memory_size=4, attention_dropout=0.5)
    rnn = keras.layers.RNN(cell, return_sequences=True)
    sequence = np.stack([inputs] * 4, 1)
    state = cell.get_initial_state_from_encoder(memory, mask)
    inference = rnn(sequence, initial_state=state)
    np.testing.assert_array_equal(rnn(sequence, initial_state=state), inference)
    assert not np.allclose(rnn(sequence, initial_state=state, training=True), inference)


def test_decoder_cell_gradients_match_finite_differences():
    inputs, memory, mask, _ = cell_inputs(
        batch=2, source_length=3, memory_size=2, input_size=2, dtype="float64"
    )
    cell = AttentionDecoderCell(units=3, memory_size=2, num_layers=2, attention_units=2, dtype="float64")
    cell.build(inputs.shape)
    rnn = keras.layers.RNN(cell, return_sequences=True, dtype="float64")
    sequence = np.stack([inputs, inputs[::-1]], 1)

    def decode(sequence, memory, hidden):
        state = cell.get_initial_state_from_encoder(memory, mask[:2, :3], [hidden, hidden])
        return rnn(sequence, initial_state=state)

    hidden = RNG.normal(size=(2, 3))
    theoretical, numerical = tf.test.compute_gradient(decode, [sequence, memory, hidden])
    for exact, approximate in zip(theoretical, numerical):
        np.testing.assert_allclose(exact, approximate, atol=1e-6)
    assert np.abs(theoretical[1]).max() > 1e-3, "the outputs must depend on the memory"


@keras.saving.register_keras_serializable(package="zoo_tests")
class TinyTranslator(keras.Model):
    """The smallest encoder-decoder with attention: enough to exercise the cell as Seq2Seq will."""

    def __init__(self, vocabulary_size, units, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.units = units
        self.source_embedding = keras.layers.Embedding(vocabulary_size, units, mask_zero=True)
        self.encoder = keras.layers.GRU(units, return_sequences=True, return_state=True)
        self.target_embedding = keras.layers.Embedding(vocabulary_size, units)
        self.cell = AttentionDecoderCell(units, num_layers=1)
        self.decoder = keras.layers.RNN(self.cell, return_sequences=True)
        self.projection = keras.layers.Dense(vocabulary_size)

    def encode(self, source):
        embedded = self.source_embedding(source)
        outputs, state = self.encoder(embedded)
        return self.cell.get_initial_state_from_encoder(outputs, source != 0, [state])

    def call(self, inputs):
        source, target = inputs
        return self.projection(self.decoder(self.target_embedding(target), initial_state=self.encode(source)))

    def step_fn(self):
        return attention_decoder_step_fn(self.cell, self.target_embedding, self.projection)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size, "units": self.units}


SOURCE = np.array([[3, 4, 5, 0], [6, 2, 0, 0]], np.int32)
BOS, EOS = 1, 2


def test_step_fn_agrees_with_teacher_forcing_and_saves(tmp_path):
    model = TinyTranslator(vocabulary_size=9, units=8)
    model((SOURCE, np.full([2, 1], BOS, np.int32)))
    generate = tf.function(
        lambda source: decoding.greedy_decode(
            model.step_fn(), tf.fill([2], BOS), model.encode(source), max_length=4
        )
    )
    tokens, _ = generate(tf.constant(SOURCE))
    # Feeding the greedy tokens back as targets must reproduce the argmax at every step.
    target_in = np.concatenate([np.full([2, 1], BOS), tokens.numpy()[:, :-1]], 1)
    logits = model((SOURCE, target_in))
    np.testing.assert_array_equal(np.argmax(logits, -1), tokens)

    path = tmp_path / "translator.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded((SOURCE, target_in)), logits, atol=1e-6)
    assert loaded.cell.get_config() == {**model.cell.get_config(), "name": loaded.cell.name}
    beam = decoding.beam_search(loaded.step_fn(), tf.fill([2], BOS), loaded.encode(SOURCE), 3, 4, EOS)
    expected = decoding.beam_search(model.step_fn(), tf.fill([2], BOS), model.encode(SOURCE), 3, 4, EOS)
    np.testing.assert_array_equal(beam.beam_sequences, expected.beam_sequences)


def test_configs_round_trip():
    cell = AttentionDecoderCell(5, memory_size=7, num_layers=3, attention_units=2, attention_dropout=0.25)
    assert AttentionDecoderCell.from_config(cell.get_config()).get_config() == cell.get_config()
    attention = AdditiveAttention(3, dropout=0.1, kernel_initializer="orthogonal")
    assert AdditiveAttention.from_config(attention.get_config()).get_config() == attention.get_config()


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="units"):
        AdditiveAttention(0)
    with pytest.raises(ValueError, match="not both"):
        AdditiveAttention(3)(
            np.ones((1, 2)), np.ones((1, 3, 2)), keys_mask=np.ones((1, 3), bool), valid_lengths=[3]
        )
    cell = AttentionDecoderCell(4, memory_size=3)
    with pytest.raises(ValueError, match="memory must be"):
        cell.get_initial_state_from_encoder(np.ones((1, 3, 5), "float32"))
    with pytest.raises(ValueError, match="get_initial_state_from_encoder"):
        keras.layers.RNN(cell)(np.ones((1, 2, 3), "float32"))
