"""Tests of zoo.models.Seq2Seq: masking, the decoding path against the training path, training,
greedy vs beam search, serialization, input validation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.models.seq2seq import Seq2Seq, sequence_loss

SOURCE_VOCAB, TARGET_VOCAB = 13, 11
BOS, EOS, PAD = 2, 3, 0
VARIANTS = {
    "gru": dict(cell_type="gru"),
    "lstm": dict(cell_type="lstm"),
    "attention": dict(cell_type="gru", attention=True),
}


def make_model(variant, **overrides):
    config = dict(embedding_dim=6, units=8, num_layers=2, **VARIANTS[variant])
    config.update(overrides)
    return Seq2Seq(SOURCE_VOCAB, TARGET_VOCAB, **config)


def padded(rows, width):
    batch = np.zeros((len(rows), width), np.int32)
    for index, row in enumerate(rows):
        batch[index, : len(row)] = row
    return batch


def peaked(model):
    """Scales the output layer of an untrained model so that its next-token distributions have clear
    maxima: with near-flat logits, argmax and log-softmax top-k may break float ties differently."""
    model((np.ones((1, 2), np.int32), np.ones((1, 2), np.int32)))
    model.output_layer.kernel.assign(model.output_layer.kernel * 20.0)
    return model


SOURCES = [[4, 5, 6, EOS], [7, EOS], [8, 9, 10, 11, 12, EOS]]
TARGETS = [[4, 5, 6], [7, 8], [9]]


def teacher_forcing_batch(source_width, target_width):
    sources = padded(SOURCES, source_width)
    decoder_inputs = padded([[BOS] + t for t in TARGETS], target_width)
    decoder_targets = padded([t + [EOS] for t in TARGETS], target_width)
    return sources, decoder_inputs, decoder_targets, (decoder_targets != PAD).astype("float32")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_padding_changes_neither_logits_nor_loss(variant):
    model = make_model(variant)
    loss = sequence_loss()
    results = []
    for source_width, target_width in ((6, 4), (9, 7)):
        sources, decoder_inputs, decoder_targets, mask = teacher_forcing_batch(source_width, target_width)
        logits = model((sources, decoder_inputs))
        assert logits.shape == (3, target_width, TARGET_VOCAB)
        results.append((logits.numpy(), float(loss(decoder_targets, logits, sample_weight=mask)), mask))
    (short_logits, short_loss, mask), (long_logits, long_loss, _) = results
    valid = mask.astype(bool)
    np.testing.assert_allclose(long_logits[:, :4][valid], short_logits[valid], atol=1e-5)
    assert long_loss == pytest.approx(short_loss, abs=1e-6)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_decoding_steps_reproduce_teacher_forced_logits(variant):
    """The step function generation runs on gives, fed the reference tokens, the training logits."""
    model = make_model(variant)
    sources, decoder_inputs, _, _ = teacher_forcing_batch(6, 4)
    expected = model((sources, decoder_inputs)).numpy()
    state = model.initial_decoder_state(model.encode(sources))
    step = model.step_fn()
    for position in range(decoder_inputs.shape[1]):
        logits, state = step(tf.constant(decoder_inputs[:, position]), state)
        valid = decoder_inputs[:, position] != PAD
        np.testing.assert_allclose(logits.numpy()[valid], expected[valid, position], atol=1e-5)


def test_plain_decoder_reads_encoder_state_and_context():
    """The plain decoder against a hand-written one from the same cells: GRU layers initialised with
    the encoder's final states, reading concat(embedding, top-layer final encoder state)."""
    model = make_model("gru")
    sources, decoder_inputs, _, _ = teacher_forcing_batch(6, 4)
    logits = model((sources, decoder_inputs)).numpy()
    encoder_states = []
    for row in range(len(SOURCES)):
        length = len(SOURCES[row])
        x = model.source_embedding(sources[row : row + 1, :length])
        layer_states = []
        for layer in model.encoder.rnn_layers:
            h = tf.zeros((1, model.units))
            outputs = []
            for t in range(length):
                h, _ = layer.cell(x[:, t], [h])
                outputs.append(h)
            layer_states.append(h)
            x = tf.stack(outputs, axis=1)
        encoder_states.append(layer_states)
    for row, target in enumerate(TARGETS):
        states = list(encoder_states[row])
        context = states[-1]
        for t in range(len(target) + 1):
            x = tf.concat([model.target_embedding(decoder_inputs[row : row + 1, t]), context], axis=-1)
            for index, layer in enumerate(model.decoder.rnn_layers):
                x, _ = layer.cell(x, [states[index]])
                states[index] = x
            np.testing.assert_allclose(model.output_layer(x).numpy()[0], logits[row, t], atol=1e-5)


@pytest.mark.parametrize("variant", ["gru", "attention"])
def test_teacher_forcing_learns_to_copy(variant):
    rng = np.random.default_rng(0)
    rows = [list(rng.integers(4, TARGET_VOCAB, size=rng.integers(1, 4))) for _ in range(48)]
    sources = padded([row + [EOS] for row in rows], 6)
    decoder_inputs = padded([[BOS] + row for row in rows], 6)
    decoder_targets = padded([row + [EOS] for row in rows], 6)
    mask = (decoder_targets != PAD).astype("float32")
    model = make_model(variant, embedding_dim=16, units=32)
    model.compile(keras.optimizers.Adam(0.01, global_clipnorm=1.0), loss=sequence_loss())
    history = model.fit(
        (sources, decoder_inputs), decoder_targets, sample_weight=mask, batch_size=8, epochs=15, verbose=0
    )
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    token_ids, lengths = tf.function(lambda s: model.translate(s, 6))(sources)
    exact = [list(ids[: n - 1]) == row for ids, n, row in zip(token_ids.numpy(), lengths.numpy(), rows)]
    assert np.mean(exact) > 0.3


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_greedy_equals_beam_of_one(variant):
    model = peaked(make_model(variant))
    sources = padded(SOURCES, 6)
    greedy_ids, greedy_lengths = model.translate(sources, 7)
    beam_ids, beam_lengths = model.translate(sources, 7, beam_size=1)
    np.testing.assert_array_equal(greedy_ids, beam_ids)
    np.testing.assert_array_equal(greedy_lengths, beam_lengths)
    beam_ids, _ = model.translate(sources, 7, beam_size=3, length_penalty=0.6)
    assert beam_ids.shape == (3, 7)


def test_beam_search_finds_the_most_likely_sequence():
    """With a beam as wide as the number of candidate prefixes, beam search is exhaustive: its best
    sequence has the highest log-probability of all sequences, found by brute force."""
    model = peaked(make_model("gru"))
    sources = padded(SOURCES[:1], 4)
    max_length = 2
    token_ids, lengths = model.translate(sources, max_length, beam_size=TARGET_VOCAB**2)
    step = model.generation_step_fn()

    def log_probability(sequence):
        state = model.initial_decoder_state(model.encode(sources))
        total, previous = 0.0, BOS
        for token in sequence:
            logits, state = step(tf.constant([previous]), state)
            total += float(tf.nn.log_softmax(logits)[0, token])
            previous = token
        return total

    candidates = [[EOS]] + [[a, b] for a in range(TARGET_VOCAB) if a != EOS for b in range(TARGET_VOCAB)]
    best = max(candidates, key=log_probability)
    assert list(token_ids.numpy()[0, : lengths.numpy()[0]]) == best


@pytest.mark.parametrize("beam_size", [None, 3])
def test_generation_never_emits_bos_pad_or_unk(beam_size):
    """Even when the output layer favours them most, `<bos>`, `<pad>` and `<unk>` are never generated."""
    unk = 1
    model = make_model("attention", unk_id=unk)
    model((np.ones((1, 2), np.int32), np.ones((1, 2), np.int32)))
    bias = np.zeros(TARGET_VOCAB, np.float32)
    bias[[BOS, PAD, unk]] = 50.0
    model.output_layer.bias.assign(bias)
    sources = padded(SOURCES, 6)
    token_ids, lengths = model.translate(sources, 6, beam_size=beam_size)
    for row, length in zip(token_ids.numpy(), lengths.numpy()):
        assert not set(row[:length]) & {BOS, PAD, unk}
    # The raw decoder step does favour them: without the suppression they would be generated.
    logits, _ = model.step_fn()(
        tf.constant([BOS] * len(SOURCES)), model.initial_decoder_state(model.encode(sources))
    )
    assert set(np.argmax(logits.numpy(), axis=-1)) <= {BOS, PAD, unk}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_keras_round_trip_is_exact(variant, tmp_path):
    model = make_model(variant, dropout=0.1)
    sources, decoder_inputs, _, _ = teacher_forcing_batch(6, 4)
    expected = model((sources, decoder_inputs)).numpy()
    path = tmp_path / "seq2seq.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, Seq2Seq)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded((sources, decoder_inputs)).numpy(), expected)
    np.testing.assert_array_equal(loaded.translate(sources, 5)[0], model.translate(sources, 5)[0])


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="cell_type"):
        Seq2Seq(10, 10, cell_type="rnn")
    with pytest.raises(ValueError, match="attention"):
        Seq2Seq(10, 10, cell_type="lstm", attention=True)
    with pytest.raises(ValueError, match="units"):
        Seq2Seq(10, 10, units=0)
    with pytest.raises(ValueError, match="eos_id"):
        Seq2Seq(10, 10, eos_id=10)
    with pytest.raises(ValueError, match="unk_id"):
        Seq2Seq(SOURCE_VOCAB, TARGET_VOCAB, unk_id=EOS)
    with pytest.raises(ValueError, match="differ"):
        Seq2Seq(10, 10, bos_id=3, eos_id=3)
    model = make_model("gru")
    with pytest.raises(ValueError, match="source_ids, decoder_inputs"):
        model(np.zeros((2, 3), np.int32))
    with pytest.raises(ValueError, match="batch, length"):
        model((np.zeros((2, 3, 1), np.int32), np.zeros((2, 3), np.int32)))
    with pytest.raises(ValueError, match="length_penalty"):
        model.translate(np.ones((1, 2), np.int32), 4, length_penalty=0.5)
