"""Decoding loops against brute force on a tiny hand-built second-order Markov "model"."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from zoo import decoding

VOCABULARY = 4
MAX_LENGTH = 3
EOS = 3
PAD = 0
# logits[step, previous-but-one token, previous token, next token]: the next token depends on two
# tokens and the time step, so the states (previous token [B], step counter [B, 1]) must be gathered
# correctly along the beam for the search to be exact.
LOGITS = np.random.default_rng(7).normal(scale=2.0, size=(MAX_LENGTH, VOCABULARY, VOCABULARY, VOCABULARY))
LOG_PROBS = LOGITS - np.log(np.exp(LOGITS).sum(-1, keepdims=True))
FIRST_IDS = np.array([0, 1, 2, 1], np.int32)  # the token fed at the first step, per batch row
BEFORE_FIRST = np.array([2, 0, 1, 1], np.int32)  # the token before it


def markov_step(logits_table):
    def step_fn(token_ids, states):
        previous, step = states
        indices = tf.stack([step[:, 0], previous, token_ids], axis=-1)
        return tf.gather_nd(logits_table, indices), (token_ids, step + 1)

    return step_fn


STEP_FN = markov_step(tf.constant(LOGITS, tf.float32))


def initial_states(before_first=BEFORE_FIRST):
    return (tf.constant(before_first), tf.zeros([len(before_first), 1], tf.int32))


def hypotheses(row, alpha):
    """Every distinct output of the model for one batch row, with its score: {tokens: score}."""
    found = {}
    for tokens in itertools.product(range(VOCABULARY), repeat=MAX_LENGTH):
        previous, current, log_prob, length = BEFORE_FIRST[row], FIRST_IDS[row], 0.0, 0
        for step, token in enumerate(tokens):
            log_prob += LOG_PROBS[step, previous, current, token]
            previous, current, length = current, token, length + 1
            if token == EOS:
                break
        padded = tokens[:length] + (PAD,) * (MAX_LENGTH - length)
        found[padded] = (log_prob / ((5.0 + length) / 6.0) ** alpha, length)
    return found


def greedy_reference(row):
    previous, current, tokens = BEFORE_FIRST[row], FIRST_IDS[row], []
    for step in range(MAX_LENGTH):
        token = int(np.argmax(LOGITS[step, previous, current]))
        tokens.append(token)
        previous, current = current, token
        if token == EOS:
            break
    return tokens + [PAD] * (MAX_LENGTH - len(tokens)), len(tokens)


@pytest.mark.parametrize("alpha", [0.0, 0.8])
def test_full_beam_finds_exact_argmax_and_every_hypothesis(alpha):
    result = decoding.beam_search(
        STEP_FN,
        FIRST_IDS,
        initial_states(),
        beam_size=VOCABULARY**MAX_LENGTH,
        max_length=MAX_LENGTH,
        eos_id=EOS,
        length_penalty=alpha,
        pad_id=PAD,
    )
    for row in range(len(FIRST_IDS)):
        expected = hypotheses(row, alpha)
        best = max(expected, key=lambda tokens: expected[tokens][0])
        assert tuple(result.sequences[row].numpy()) == best
        np.testing.assert_allclose(result.scores[row], expected[best][0], rtol=1e-5)
        assert result.lengths[row] == expected[best][1]
        scores = result.beam_scores[row].numpy()
        kept = np.isfinite(scores)
        assert kept.sum() == len(expected)
        assert np.all(np.diff(scores[kept]) <= 1e-6), "beams must be sorted best first"
        for tokens, score, length in zip(
            result.beam_sequences[row].numpy()[kept], scores[kept], result.beam_lengths[row].numpy()[kept]
        ):
            np.testing.assert_allclose(score, expected[tuple(tokens)][0], rtol=1e-5)
            assert length == expected[tuple(tokens)][1]
        assert np.all(result.beam_lengths[row].numpy()[~kept] == 0)


def test_beam_of_one_and_top_k_of_one_are_greedy():
    ids, lengths = decoding.greedy_decode(
        STEP_FN, FIRST_IDS, initial_states(), MAX_LENGTH, eos_id=EOS, pad_id=PAD
    )
    for row in range(len(FIRST_IDS)):
        tokens, length = greedy_reference(row)
        assert ids[row].numpy().tolist() == tokens
        assert lengths[row] == length
    beam = decoding.beam_search(STEP_FN, FIRST_IDS, initial_states(), 1, MAX_LENGTH, EOS, pad_id=PAD)
    np.testing.assert_array_equal(beam.sequences, ids)
    np.testing.assert_array_equal(beam.lengths, lengths)
    top_one, top_one_lengths = decoding.sample(
        STEP_FN,
        FIRST_IDS,
        initial_states(),
        MAX_LENGTH,
        temperature=1.5,
        top_k=1,
        seed=3,
        eos_id=EOS,
        pad_id=PAD,
    )
    np.testing.assert_array_equal(top_one, ids)
    np.testing.assert_array_equal(top_one_lengths, lengths)


def sample_many(count, temperature, top_k, seed):
    row = np.full([count], 1, np.int32)
    return decoding.sample(
        STEP_FN,
        row,
        initial_states(np.full([count], 2, np.int32)),
        max_length=2,
        temperature=temperature,
        top_k=top_k,
        seed=seed,
    )


def exact_distribution(temperature, top_k):
    """p(y1, y2) for the row fed token 1 after token 2, from softmax(logits / T) over the top k."""

    def next_token(logits):
        logits = logits / temperature
        if top_k is not None:
            logits = np.where(logits >= np.sort(logits)[-top_k], logits, -np.inf)
        probs = np.exp(logits - logits.max())
        return probs / probs.sum()

    first = next_token(LOGITS[0, 2, 1])
    return np.array(
        [[first[a] * next_token(LOGITS[1, 1, a])[b] for b in range(VOCABULARY)] for a in range(VOCABULARY)]
    )


@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.6, None), (2.0, 2)])
def test_sampling_matches_softmax_distribution(temperature, top_k):
    count = 40000
    ids, lengths = sample_many(count, temperature, top_k, seed=11)
    assert np.all(lengths.numpy() == 2)
    empirical = np.zeros([VOCABULARY, VOCABULARY])
    np.add.at(empirical, (ids[:, 0].numpy(), ids[:, 1].numpy()), 1.0 / count)
    # The standard error of each frequency is at most 0.0025 here.
    np.testing.assert_allclose(empirical, exact_distribution(temperature, top_k), atol=0.012)


def test_sampling_is_reproducible_in_eager_and_graph():
    eager = sample_many(64, 1.0, None, seed=5)
    again = sample_many(64, 1.0, None, seed=5)
    graph = tf.function(lambda: sample_many(64, 1.0, None, seed=tf.constant([5, 0], tf.int64)))()
    other = sample_many(64, 1.0, None, seed=6)
    for first, second in zip(eager, again):
        np.testing.assert_array_equal(first, second)
    for first, second in zip(eager, graph):
        np.testing.assert_array_equal(first, second)
    assert not np.array_equal(eager[0], other[0])


def test_eos_stops_each_sequence_and_pads_after_it():
    count = 200
    ids, lengths = decoding.sample(
        STEP_FN,
        np.full([count], 1, np.int32),
        initial_states(np.full([count], 2, np.int32)),
        MAX_LENGTH,
        seed=2,
        eos_id=EOS,
        pad_id=PAD,
    )
    ids, lengths = ids.numpy(), lengths.numpy()
    for tokens, length in zip(ids, lengths):
        eos_positions = np.flatnonzero(tokens == EOS)
        expected_length = eos_positions[0] + 1 if len(eos_positions) else MAX_LENGTH
        assert length == expected_length
        assert np.all(tokens[length:] == PAD)
    assert 0 < np.sum(lengths < MAX_LENGTH) < count, "the seed should give both ended and full rows"


def test_loop_stops_early_when_every_sequence_ended():
    calls = tf.Variable(0)

    def counting_step(token_ids, states):
        calls.assign_add(1)
        logits = tf.one_hot(tf.fill(tf.shape(token_ids), EOS), VOCABULARY) * 10.0
        return logits, states

    ids, lengths = tf.function(
        lambda: decoding.greedy_decode(
            counting_step, tf.constant([0, 1]), (), max_length=5, eos_id=EOS, pad_id=PAD
        )
    )()
    assert calls.numpy() == 1
    np.testing.assert_array_equal(ids, [[EOS, PAD, PAD, PAD, PAD]] * 2)
    np.testing.assert_array_equal(lengths, [1, 1])


def test_temperature_tensor_zero_is_greedy_in_graph():
    decode = tf.function(
        lambda temperature: decoding.sample(
            STEP_FN, FIRST_IDS, initial_states(), MAX_LENGTH, temperature=temperature, seed=1, eos_id=EOS
        )
    )
    greedy = decoding.greedy_decode(STEP_FN, FIRST_IDS, initial_states(), MAX_LENGTH, eos_id=EOS)
    np.testing.assert_array_equal(decode(tf.constant(0.0))[0], greedy[0])


class MarkovDecoder(tf.Module):
    def __init__(self):
        self.logits = tf.Variable(LOGITS, dtype=tf.float32)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([2], tf.int64),
        ]
    )
    def decode(self, first_ids, before_first, seed):
        states = (before_first, tf.zeros([tf.shape(first_ids)[0], 1], tf.int32))
        step_fn = markov_step(self.logits)
        sampled, sampled_lengths = decoding.sample(
            step_fn, first_ids, states, MAX_LENGTH, temperature=0.8, seed=seed, eos_id=EOS
        )
        beam = decoding.beam_search(step_fn, first_ids, states, 3, MAX_LENGTH, EOS, length_penalty=0.6)
        return {
            "sampled": sampled,
            "sampled_lengths": sampled_lengths,
            "beam": beam.sequences,
            "beam_scores": beam.scores,
        }


def test_saved_model_round_trip_decodes_identically(tmp_path):
    module = MarkovDecoder()
    arguments = (tf.constant(FIRST_IDS), tf.constant(BEFORE_FIRST), tf.constant([9, 4], tf.int64))
    before = module.decode(*arguments)
    tf.saved_model.save(module, str(tmp_path), signatures={"decode": module.decode})
    loaded = tf.saved_model.load(str(tmp_path))
    after = loaded.signatures["decode"](first_ids=arguments[0], before_first=arguments[1], seed=arguments[2])
    eager = decoding.beam_search(STEP_FN, FIRST_IDS, initial_states(), 3, MAX_LENGTH, EOS, length_penalty=0.6)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])
    np.testing.assert_array_equal(after["beam"], eager.sequences)
    np.testing.assert_allclose(after["beam_scores"], eager.scores, rtol=1e-6)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(TypeError, match="initial_ids"):
        decoding.sample(STEP_FN, tf.zeros([2]), initial_states(), 2)
    with pytest.raises(ValueError, match="max_length"):
        decoding.greedy_decode(STEP_FN, FIRST_IDS, initial_states(), 0)
    with pytest.raises(ValueError, match="top_k"):
        decoding.sample(STEP_FN, FIRST_IDS, initial_states(), 2, top_k=VOCABULARY + 1)
    with pytest.raises(ValueError, match="temperature"):
        decoding.sample(STEP_FN, FIRST_IDS, initial_states(), 2, temperature=-1.0)
    with pytest.raises(ValueError, match="structure"):
        decoding.beam_search(
            lambda ids, states: (STEP_FN(ids, states)[0], ()), FIRST_IDS, initial_states(), 2, 2, EOS
        )
    with pytest.raises(ValueError, match="logits"):
        decoding.greedy_decode(lambda ids, states: (tf.zeros([4]), states), FIRST_IDS, (), 2)
    with pytest.raises(ValueError, match="length_penalty"):
        decoding.beam_search(STEP_FN, FIRST_IDS, initial_states(), 2, 2, EOS, length_penalty=-0.5)


def test_empty_batch_gives_empty_results_in_eager_and_graph():
    table = tf.math.log([[0.1, 0.9], [0.8, 0.2]])

    def step_fn(ids, states):
        return tf.gather(table, ids), states

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
    def greedy(ids):
        return decoding.greedy_decode(step_fn, ids, (), max_length=4, eos_id=1)

    for decode in (greedy, lambda ids: decoding.sample(step_fn, ids, (), max_length=4, seed=3)):
        ids, lengths = decode(tf.zeros([0], tf.int32))
        assert ids.shape == (0, 4) and lengths.shape == (0,)
