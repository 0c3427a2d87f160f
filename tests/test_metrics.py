"""Perplexity against NumPy, BLEU and entity F1 against hand-computed cases, BIOES entities against
the same entities in BIO tags."""

import math

import keras
import numpy as np
import pytest

from zoo.metrics import (
    Perplexity,
    bleu,
    corpus_bleu,
    entity_f1,
    entity_scheme,
    entity_spans,
    tagging_scores,
    token_accuracy,
)


def numpy_perplexity(targets, logits, weights):
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    cross_entropy = -np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    return np.exp(np.sum(cross_entropy * weights) / np.sum(weights))


def random_batch(seed, shape=(3, 5), vocab_size=7):
    rng = np.random.default_rng(seed)
    return (
        rng.integers(1, vocab_size, size=shape).astype(np.int32),
        rng.normal(size=shape + (vocab_size,)).astype(np.float32),
    )


def test_perplexity_matches_numpy_over_batches():
    metric = Perplexity()
    batches = [random_batch(seed) for seed in range(3)]
    for targets, logits in batches:
        metric.update_state(targets, logits)
    targets = np.concatenate([b[0] for b in batches])
    logits = np.concatenate([b[1] for b in batches])
    np.testing.assert_allclose(
        metric.result(), numpy_perplexity(targets, logits, np.ones(targets.shape)), rtol=1e-5
    )
    metric.reset_state()
    assert float(metric.result()) == 1.0


def test_perplexity_weights_ignore_class_and_probabilities():
    targets, logits = random_batch(1)
    targets[0, 3:] = 0
    targets[2, 1:] = 0
    sample_weight = np.array([1.0, 0.5, 2.0], np.float32)
    weights = (targets != 0) * sample_weight[:, None]
    metric = Perplexity(ignore_class=0)
    metric.update_state(targets, logits, sample_weight=sample_weight)
    np.testing.assert_allclose(metric.result(), numpy_perplexity(targets, logits, weights), rtol=1e-5)

    token_weight = np.random.default_rng(2).random(targets.shape).astype(np.float32)
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    metric = Perplexity(from_logits=False)
    metric.update_state(targets, probabilities, sample_weight=token_weight)
    np.testing.assert_allclose(metric.result(), numpy_perplexity(targets, logits, token_weight), rtol=1e-4)


def test_perplexity_in_compiled_model_ignores_masked_padding(tmp_path):
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(8, 4, mask_zero=True)(inputs)
    model = keras.Model(inputs, keras.layers.Dense(8)(x))
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=[Perplexity()])
    tokens = np.array([[3, 4, 5, 0, 0], [1, 2, 0, 0, 0], [7, 6, 5, 4, 3]], np.int32)
    # Targets at padding are junk on purpose: the mask must drop them.
    targets = np.where(tokens != 0, np.roll(tokens, -1, axis=1), 5)
    model.fit(tokens, targets, verbose=0)
    result = model.evaluate(tokens, targets, verbose=0, return_dict=True)
    logits = keras.ops.convert_to_numpy(model(tokens))
    np.testing.assert_allclose(
        result["perplexity"], numpy_perplexity(targets, logits, tokens != 0), rtol=1e-5
    )

    path = tmp_path / "lm.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.evaluate(tokens, targets, verbose=0, return_dict=True) == pytest.approx(result)
    config = Perplexity(from_logits=False, ignore_class=-1, name="ppl").get_config()
    assert Perplexity.from_config(config).get_config() == config


def test_perplexity_bad_input():
    targets, logits = random_batch(0)
    with pytest.raises(ValueError, match="vocab_size"):
        Perplexity().update_state(targets, logits[..., 0])
    with pytest.raises(TypeError, match="token ids"):
        Perplexity().update_state(targets.astype(bool), logits)


def test_perplexity_casts_float_ids_like_keras_sparse_losses():
    targets, logits = random_batch(0)
    as_int, as_float = Perplexity(), Perplexity()
    as_int.update_state(targets, logits)
    as_float.update_state(targets.astype(np.float32), logits)
    np.testing.assert_allclose(as_float.result(), as_int.result())


def test_bleu_d2l_examples():
    assert bleu("il est calme .", "il est calme .", k=2) == 1.0
    assert bleu(["go", "."], ["go", "."]) == 1.0
    # D2L prints 0.658 for this translation of "he's calm .".
    expected = math.sqrt(3 / 4) * (1 / 3) ** 0.25
    assert bleu("il est riche .", "il est calme .", k=2) == pytest.approx(expected)
    assert round(expected, 3) == 0.658


def test_bleu_hand_computed_and_edge_cases():
    # Too short: brevity penalty exp(1 - 5/3), every n-gram matches.
    assert bleu("a b c", "a b c d e", k=2) == pytest.approx(math.exp(1 - 5 / 3))
    # Repeated tokens are clipped: p1 = 2/4, p2 = 1/3; no label trigram, so k=3 gives 0.
    assert bleu("a a a a", "a a", k=2) == pytest.approx(0.5**0.5 * (1 / 3) ** 0.25)
    assert bleu("a a a a", "a a", k=3) == 0.0
    # Orders longer than the prediction are skipped (D2L): only p1 and the brevity penalty.
    assert bleu("a", "a b c", k=4) == pytest.approx(math.exp(-2))
    assert bleu("", "a b") == 0.0
    assert bleu([], ["a"]) == 0.0
    with pytest.raises(ValueError, match="k must"):
        bleu("a", "a", k=0)
    with pytest.raises(TypeError, match="pred_tokens"):
        bleu(3, "a")


def test_corpus_bleu_pools_counts():
    prediction, reference = "the cat sat on the mat", "the cat is on the mat"
    # p1 = 5/6, p2 = 3/5, p3 = 1/4: geometric mean 0.5; no 4-gram matches.
    assert corpus_bleu([prediction], [reference], max_n=3) == pytest.approx(0.5)
    assert corpus_bleu([prediction], [reference], max_n=4) == 0.0
    # Pooled: p1 = 7/8, p2 = 4/6, p3 = 1/4, lengths c = 8 < r = 10.
    pooled = corpus_bleu([prediction, "a b"], [reference, "a b c d"], max_n=3)
    assert pooled == pytest.approx(math.exp(1 - 10 / 8) * (7 / 8 * 4 / 6 * 1 / 4) ** (1 / 3))
    assert corpus_bleu(["a b c d e", "x y z w"], ["a b c d e", "x y z w"]) == 1.0
    assert corpus_bleu([[], []], [["a"], ["b"]]) == 0.0
    # A longer prediction has no brevity penalty: p1..p4 = 5/6, 4/5, 3/4, 2/3.
    assert corpus_bleu(["a b c d e f"], ["a b c d e"]) == pytest.approx((1 / 3) ** 0.25)
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        corpus_bleu(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="single string"):
        corpus_bleu("a b", "a b")


def test_corpus_bleu_with_several_references():
    # Papineni et al.'s example: "the" is clipped at its count in the reference holding it most (2).
    references = ("the cat is on the mat", "there is a cat on the mat")
    assert corpus_bleu(["the the the the the the the"], [references], max_n=1) == pytest.approx(2 / 7)
    # A prediction equal to any one reference scores 1; a one-reference tuple is that reference.
    assert corpus_bleu(["there is a cat on the mat"], [references]) == 1.0
    assert corpus_bleu(["the cat sat on the mat"], [("the cat is on the mat",)], max_n=3) == pytest.approx(
        0.5
    )
    # r is the reference length closest to the prediction's, the shorter on a tie (p1 = 1 here):
    # 5 of (5, 7) for 3 tokens gives BP = exp(1 - 5/3); 1 of (1, 5) gives no penalty.
    assert corpus_bleu(["a b c"], [("a b c d e", "a b c d e f g")], max_n=1) == pytest.approx(
        math.exp(1 - 5 / 3)
    )
    assert corpus_bleu(["a b c"], [("a", "a b c d e")], max_n=1) == 1.0
    with pytest.raises(ValueError, match="at least one reference"):
        corpus_bleu(["a"], [()])


def test_entity_spans_follow_conlleval():
    assert entity_spans(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 2), ("LOC", 3, 4)]
    # I- without a preceding B- starts an entity.
    assert entity_spans(["O", "I-PER", "I-PER", "O"]) == [("PER", 1, 3)]
    assert entity_spans(["I-ORG"]) == [("ORG", 0, 1)]
    # A change of type ends the entity and starts another.
    assert entity_spans(["B-PER", "I-LOC", "I-LOC"]) == [("PER", 0, 1), ("LOC", 1, 3)]
    # B- always starts a new entity, even of the same type.
    assert entity_spans(["B-PER", "B-PER", "I-PER"]) == [("PER", 0, 1), ("PER", 1, 3)]
    assert entity_spans(["O", "O"]) == []
    assert entity_spans([]) == []
    for bad in ("X-PER", "B-", "B", "per"):
        with pytest.raises(ValueError, match="not a BIO or BIOES tag"):
            entity_spans(["O", bad])


def bio_to_bioes(tags):
    """BIO tags rewritten in BIOES: the last tag of a span E- (S- when it is alone)."""
    spans = entity_spans(tags)
    bioes = ["O"] * len(tags)
    for entity_type, start, end in spans:
        if end - start == 1:
            bioes[start] = f"S-{entity_type}"
        else:
            bioes[start : end - 1] = [f"B-{entity_type}"] + [f"I-{entity_type}"] * (end - start - 2)
            bioes[end - 1] = f"E-{entity_type}"
    return bioes


def test_bioes_entities_are_the_bio_entities_of_the_same_spans():
    rng = np.random.default_rng(0)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    for _ in range(300):
        bio = [tags[i] for i in rng.integers(0, len(tags), size=rng.integers(0, 12))]
        assert entity_spans(bio_to_bioes(bio)) == entity_spans(bio), bio
    assert bio_to_bioes(["B-PER", "I-PER", "O", "I-LOC"]) == ["B-PER", "E-PER", "O", "S-LOC"]


def test_malformed_bioes_is_read_as_conlleval_reads_it():
    # An entity ends after E- and S-: an I- or E- tag after them starts a new one.
    assert entity_spans(["I-PER", "E-PER", "E-PER"]) == [("PER", 0, 2), ("PER", 2, 3)]
    assert entity_spans(["S-PER", "I-PER", "E-PER"]) == [("PER", 0, 1), ("PER", 1, 3)]
    # S- ends the open entity; so does a change of type at an E- tag.
    assert entity_spans(["B-PER", "I-PER", "S-PER"]) == [("PER", 0, 2), ("PER", 2, 3)]
    assert entity_spans(["B-PER", "E-LOC"]) == [("PER", 0, 1), ("LOC", 1, 2)]
    # An entity left open at the end of the sentence ends there.
    assert entity_spans(["O", "B-ORG", "I-ORG"]) == [("ORG", 1, 3)]


def test_entity_scheme_and_the_figures_it_brings():
    assert entity_scheme(["O", "B-PER", "I-PER"]) == "BIO"
    assert entity_scheme(["O", "B-PER", "I-PER", "E-PER", "S-LOC"]) == "BIOES"
    assert entity_scheme(["O", "S-PER"]) == "BIOES"
    for not_entities in (["NOUN", "VERB", "PROPN"], ["O", "B-PER", "X"], ["B-", "O"], ["O", "U-PER"]):
        assert entity_scheme(not_entities) is None, not_entities
    bioes = tagging_scores([["S-PER", "O", "B-LOC", "E-LOC"]], [["S-PER", "O", "S-LOC", "O"]])
    assert bioes == pytest.approx(
        {
            "token_accuracy": 0.5,
            "entity_precision": 0.5,
            "entity_recall": 0.5,
            "entity_f1": 0.5,
            "entity_support": 2,
        }
    )
    assert tagging_scores([["NOUN", "VERB"]], [["NOUN", "NOUN"]]) == {"token_accuracy": 0.5}


def test_entity_f1_hand_computed():
    true_seqs = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"], ["B-PER"]]
    pred_seqs = [["B-PER", "I-PER", "O", "B-PER"], ["I-ORG", "O"], ["O"]]
    # True: PER 0-2, LOC 3, ORG 0 (2nd), PER 0 (3rd). Predicted: PER 0-2, PER 3, ORG 0 (2nd).
    result = entity_f1(true_seqs, pred_seqs)
    assert result["precision"] == pytest.approx(2 / 3)
    assert result["recall"] == pytest.approx(2 / 4)
    assert result["f1"] == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))
    assert result["support"] == 4
    per_type = result["per_type"]
    assert per_type["PER"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert per_type["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert per_type["ORG"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    # A span in another sentence is not a match.
    assert entity_f1([["B-PER"], ["O"]], [["O"], ["B-PER"]])["f1"] == 0.0
    with pytest.raises(ValueError, match="sequence 0"):
        entity_f1([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="1 true sequences but 2"):
        entity_f1([["O"]], [["O"], ["O"]])


def test_token_accuracy_ignores_padding():
    true_tags = np.array([[1, 2, 3, 0], [4, 0, 0, 0]])
    pred_tags = np.array([[1, 2, 0, 2], [4, 1, 1, 1]])
    assert token_accuracy(true_tags, pred_tags, mask=true_tags != 0) == pytest.approx(3 / 4)
    assert token_accuracy(true_tags, pred_tags) == pytest.approx(3 / 8)
    assert token_accuracy([["B-PER", "O"], ["O"]], [["B-PER", "B-LOC"], ["O"]]) == 2 / 3
    assert token_accuracy([], []) == 0.0
    with pytest.raises(ValueError, match="sequence 0"):
        token_accuracy([[1, 2]], [[1]])
