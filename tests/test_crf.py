"""Linear-chain CRF: functions against brute-force enumeration, the layer, training, saving."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.crf import (
    CRF,
    CRFTagger,
    crf_log_likelihood,
    crf_log_norm,
    crf_sequence_score,
    viterbi_decode,
)

NUM_TAGS = 3
# Full, right-padded, length 1, left-padded, holes, empty.
MASK = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1], [0, 1, 0, 1], [0, 0, 0, 0]], bool)


def random_problem(seed, boundary=True, batch=None, time=4):
    batch = len(MASK) if batch is None else batch
    rng = np.random.default_rng(seed)
    emissions = rng.normal(size=(batch, time, NUM_TAGS))
    transitions = rng.normal(size=(NUM_TAGS, NUM_TAGS))
    start = rng.normal(size=NUM_TAGS) if boundary else None
    end = rng.normal(size=NUM_TAGS) if boundary else None
    tags = rng.integers(0, NUM_TAGS, size=(batch, time))
    return emissions, tags, transitions, start, end


def path_score(emissions, path, positions, transitions, start, end):
    """Score of one tag path over the given (valid) positions of one sequence."""
    if not positions:
        return 0.0
    value = sum(emissions[p, y] for p, y in zip(positions, path))
    value += sum(transitions[a, b] for a, b in zip(path[:-1], path[1:]))
    if start is not None:
        value += start[path[0]] + end[path[-1]]
    return value


def brute_force(emissions, tags, mask, transitions, start, end):
    """log Z, score of `tags`, best path and its score, by enumerating every tag sequence."""
    log_norms, scores, best_paths, best_scores = [], [], [], []
    for b in range(len(emissions)):
        positions = list(np.flatnonzero(mask[b]))
        all_scores = {
            path: path_score(emissions[b], path, positions, transitions, start, end)
            for path in itertools.product(range(NUM_TAGS), repeat=len(positions))
        }
        values = np.array(list(all_scores.values()))
        log_norms.append(np.log(np.exp(values).sum()) if positions else 0.0)
        scores.append(
            path_score(emissions[b], [tags[b, p] for p in positions], positions, transitions, start, end)
        )
        best = max(all_scores, key=all_scores.get)
        best_path = np.zeros(mask.shape[1], np.int32)
        best_path[positions] = best
        best_paths.append(best_path)
        best_scores.append(all_scores[best])
    return np.array(log_norms), np.array(scores), np.array(best_paths), np.array(best_scores)


@pytest.mark.parametrize("time", [1, 2, 4])
@pytest.mark.parametrize("boundary", [True, False])
def test_functions_match_brute_force(time, boundary):
    emissions, tags, transitions, start, end = random_problem(time, boundary, time=time)
    mask = MASK[:, :time]
    log_norm, score, best_path, best_score = brute_force(emissions, tags, mask, transitions, start, end)
    np.testing.assert_allclose(crf_log_norm(emissions, mask, transitions, start, end), log_norm, rtol=1e-10)
    np.testing.assert_allclose(
        crf_sequence_score(emissions, tags, mask, transitions, start, end), score, rtol=1e-10
    )
    np.testing.assert_allclose(
        crf_log_likelihood(emissions, tags, mask, transitions, start, end),
        score - log_norm,
        rtol=1e-10,
        atol=1e-12,
    )
    decoded, decoded_score = viterbi_decode(emissions, mask, transitions, start, end)
    assert decoded.dtype == tf.int32
    np.testing.assert_array_equal(decoded, best_path)
    np.testing.assert_allclose(decoded_score, best_score, rtol=1e-10)


def test_no_mask_means_every_position():
    emissions, tags, transitions, start, end = random_problem(7)
    full = np.ones(emissions.shape[:2], bool)
    np.testing.assert_allclose(
        crf_log_norm(emissions, None, transitions, start, end),
        crf_log_norm(emissions, full, transitions, start, end),
    )
    np.testing.assert_array_equal(
        viterbi_decode(emissions, None, transitions, start, end)[0],
        brute_force(emissions, tags, full, transitions, start, end)[2],
    )


def test_padded_tags_are_ignored():
    emissions, tags, transitions, start, end = random_problem(3)
    padded = np.where(MASK, tags, -1)
    np.testing.assert_allclose(
        crf_log_likelihood(emissions, padded, MASK, transitions, start, end),
        crf_log_likelihood(emissions, tags, MASK, transitions, start, end),
    )


def test_gradients_match_finite_differences():
    emissions, tags, transitions, start, end = random_problem(11, batch=4)
    mask = MASK[:4]

    def total_log_likelihood(emissions, transitions, start, end):
        return tf.reduce_sum(crf_log_likelihood(emissions, tags, mask, transitions, start, end))

    theoretical, numerical = tf.test.compute_gradient(
        total_log_likelihood, [tf.constant(v) for v in (emissions, transitions, start, end)]
    )
    for analytic, finite in zip(theoretical, numerical):
        np.testing.assert_allclose(analytic, finite, atol=1e-6)
    # Padded emissions get no gradient.
    np.testing.assert_array_equal(theoretical[0].reshape(emissions.shape)[~mask], 0)


def test_runs_in_graph_for_any_length():
    _, _, transitions, start, end = random_problem(5)
    spec = tf.TensorSpec([None, None, NUM_TAGS], tf.float64)
    decode = tf.function(
        lambda e, m: viterbi_decode(e, m, transitions, start, end),
        input_signature=[spec, tf.TensorSpec([None, None], tf.bool)],
    )
    log_norm = tf.function(
        lambda e, m: crf_log_norm(e, m, transitions, start, end),
        input_signature=[spec, tf.TensorSpec([None, None], tf.bool)],
    )
    for time in (1, 3, 4):
        emissions = random_problem(time, time=time)[0]
        mask = MASK[:, :time]
        eager_tags, eager_scores = viterbi_decode(emissions, mask, transitions, start, end)
        graph_tags, graph_scores = decode(emissions, mask)
        np.testing.assert_array_equal(graph_tags, eager_tags)
        np.testing.assert_allclose(graph_scores, eager_scores)
        np.testing.assert_allclose(
            log_norm(emissions, mask), crf_log_norm(emissions, mask, transitions, start, end)
        )
    assert len(decode._list_all_concrete_functions()) == 1


def test_bad_input_raises():
    emissions, tags, transitions, start, end = random_problem(0)
    with pytest.raises(ValueError, match="rank 2"):
        viterbi_decode(emissions[0], None, transitions)
    with pytest.raises(ValueError, match="transitions"):
        crf_log_norm(emissions, MASK, transitions[:2, :2])
    with pytest.raises(ValueError, match="start_transitions"):
        crf_log_norm(emissions, MASK, transitions, start[:2], end)
    with pytest.raises(ValueError, match="mask shape"):
        crf_log_norm(emissions, MASK[:, :2], transitions)
    with pytest.raises(ValueError, match="tags shape"):
        crf_sequence_score(emissions, tags[:, :3], MASK, transitions)
    with pytest.raises(TypeError, match="integer"):
        crf_sequence_score(emissions, tags.astype(float), MASK, transitions)
    with pytest.raises(TypeError, match="floating"):
        crf_log_norm(tags[:, :, None], MASK, transitions[:1, :1])
    out_of_range = tags.copy()
    out_of_range[0, 1] = NUM_TAGS
    with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
        crf_log_likelihood(emissions, out_of_range, MASK, transitions)
    in_graph = tf.function(crf_log_likelihood)
    with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
        in_graph(emissions, -out_of_range, MASK, transitions)
    with pytest.raises(ValueError, match="num_tags"):
        CRF(0)
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 4"):
        CRF(4)(keras.ops.zeros((2, 3, 5)))


def emission_model(vocab_size=6, num_tags=5, recurrent=True):
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(vocab_size, 8, mask_zero=True)(inputs)
    if recurrent:
        x = keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True))(x)
    return keras.Model(inputs, keras.layers.Dense(num_tags)(x))


TOKENS = np.array([[2, 4, 4, 1, 3], [3, 4, 1, 0, 0], [1, 0, 0, 0, 0]], np.int32)


def test_layer_decodes_with_upstream_mask():
    emissions_of = emission_model()
    inputs = keras.Input((None,), dtype="int32")
    crf = CRF(5)
    decoder = keras.Model(inputs, crf(emissions_of(inputs)))
    tags = decoder(TOKENS)
    assert tags.dtype == tf.int32 and tags.shape == TOKENS.shape
    mask = TOKENS != 0
    expected, _ = viterbi_decode(
        emissions_of(TOKENS), mask, crf.transitions, crf.start_transitions, crf.end_transitions
    )
    np.testing.assert_array_equal(tags, expected)
    np.testing.assert_array_equal(tags.numpy()[~mask], 0)


def test_layer_save_round_trip(tmp_path):
    inputs = keras.Input((None,), dtype="int32")
    crf = CRF(5, use_boundary_transitions=False, transitions_regularizer="l2")
    decoder = keras.Model(inputs, crf(emission_model()(inputs)))
    path = tmp_path / "decoder.keras"
    decoder.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(restored(TOKENS), decoder(TOKENS))
    restored_crf = restored.layers[-1]
    assert restored_crf.get_config() == crf.get_config()
    assert restored_crf.start_transitions is None
    np.testing.assert_array_equal(restored_crf.transitions, crf.transitions)


def entity_task(num_sequences, seed):
    """Tokens: o, B, C, a (ids 1..4, 0 = pad). Tags: o->0, B->1, C->3, `a` continues the entity
    it follows (2 after B, 4 after C). A per-token model cannot tag `a`; transitions can."""
    rng = np.random.default_rng(seed)
    time = 8
    tokens = np.zeros((num_sequences, time), np.int32)
    tags = np.zeros((num_sequences, time), np.int32)
    for row in range(num_sequences):
        length, position = rng.integers(3, time + 1), 0
        while position < length:
            if rng.random() < 0.3:
                tokens[row, position], position = 1, position + 1
                continue
            head = rng.integers(0, 2)
            tokens[row, position], tags[row, position] = (2, 1) if head == 0 else (3, 3)
            position += 1
            for _ in range(rng.integers(0, 3)):
                if position < length:
                    tokens[row, position], tags[row, position] = 4, 2 if head == 0 else 4
                    position += 1
    return tokens, tags


def test_tagger_learns_pattern_that_needs_transitions():
    tokens, tags = entity_task(256, seed=0)
    tagger = CRFTagger(emission_model(recurrent=False), CRF(5))
    tagger.compile(optimizer=keras.optimizers.Adam(0.05), metrics=["accuracy"])
    history = tagger.fit(tokens, tags, batch_size=32, epochs=12, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.2 * losses[0]
    test_tokens, test_tags = entity_task(64, seed=1)
    predicted = tagger.predict(test_tokens, verbose=0)
    valid = test_tokens != 0
    continuation = test_tokens == 4
    assert continuation.sum() > 30
    assert np.mean(predicted[continuation] == test_tags[continuation]) > 0.99
    assert np.mean(predicted[valid] == test_tags[valid]) > 0.99
    np.testing.assert_array_equal(predicted[~valid], 0)


def test_tagger_loss_and_accuracy_match_reference(tmp_path):
    tokens, tags = entity_task(6, seed=2)
    weights = np.array([1.0, 0.0, 2.0, 1.0, 0.5, 1.0])
    tagger = CRFTagger(emission_model(), CRF(5))
    tagger.compile(
        optimizer="sgd",
        metrics=["accuracy"],
        weighted_metrics=[keras.metrics.Accuracy(name="weighted_accuracy")],
    )
    result = tagger.evaluate(tokens, tags, sample_weight=weights, batch_size=6, verbose=0, return_dict=True)
    emissions = tagger.emission_model(tokens)
    mask = tokens != 0
    log_likelihood = crf_log_likelihood(
        emissions,
        tags,
        mask,
        tagger.crf.transitions,
        tagger.crf.start_transitions,
        tagger.crf.end_transitions,
    ).numpy()
    np.testing.assert_allclose(result["loss"], np.mean(-log_likelihood * weights), rtol=1e-5)
    predicted = tagger.predict(tokens, verbose=0)
    correct = predicted == tags
    np.testing.assert_allclose(result["accuracy"], correct[mask].mean(), rtol=1e-5)
    token_weights = mask * weights[:, None]
    np.testing.assert_allclose(
        result["weighted_accuracy"], np.sum(correct * token_weights) / token_weights.sum(), rtol=1e-5
    )
    path = tmp_path / "tagger.keras"
    tagger.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(restored.predict(tokens, verbose=0), predicted)
    for saved, loaded in zip(tagger.weights, restored.weights):
        np.testing.assert_array_equal(saved, loaded)
    assert restored.evaluate(
        tokens, tags, sample_weight=weights, verbose=0, return_dict=True
    ) == pytest.approx(result)


def test_tagger_rejects_a_compiled_loss_and_other_layers():
    tagger = CRFTagger(emission_model(), CRF(5))
    with pytest.raises(ValueError, match="loss"):
        tagger.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match="CRF layer"):
        CRFTagger(emission_model(), keras.layers.Dense(5))
