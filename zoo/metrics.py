"""Evaluation metrics: perplexity (language models), BLEU (translation), token accuracy and entity F1
(tagging).

`Perplexity` is a Keras metric for `model.compile(metrics=[...])`; the others are plain Python
functions over token or tag sequences, for evaluation after decoding.
"""

import collections
import math

import keras
import numpy as np
from keras import ops

from zoo import compat


@keras.saving.register_keras_serializable(package="zoo")
class Perplexity(keras.metrics.Metric):
    """Perplexity exp(mean token cross-entropy) of integer targets under predicted distributions.

    The mean is over tokens, weighted by `sample_weight` (per sequence or per token); tokens
    masked by Keras masking (e.g. `Embedding(mask_zero=True)` upstream) or equal to
    `ignore_class` count for nothing. Before any token is seen the result is 1 (exp of 0).

    Args:
        from_logits: Whether `y_pred` holds logits (default) or probabilities.
        ignore_class: Optional target id (e.g. the padding id) to leave out.
        name: Metric name. Default `"perplexity"`.
        dtype: Dtype of the metric's state.

    Call arguments (`update_state`):
        y_true: Integer targets [batch, ...].
        y_pred: Scores [batch, ..., vocab_size].
        sample_weight: Optional weights broadcastable to `y_true`'s shape, e.g. [batch] or
            [batch, time].

    Example:

    ```python
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=[Perplexity(ignore_class=0)])
    ```
    """

    def __init__(self, from_logits=True, ignore_class=None, name="perplexity", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.from_logits = bool(from_logits)
        self.ignore_class = ignore_class
        self.total_cross_entropy = self.add_variable(
            shape=(), initializer="zeros", dtype=self.dtype, name="total_cross_entropy"
        )
        self.total_weight = self.add_variable(
            shape=(), initializer="zeros", dtype=self.dtype, name="total_weight"
        )
        self._direction = "down"

    def update_state(self, y_true, y_pred, sample_weight=None):
        mask = compat.keras_mask(y_pred)
        y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
        y_true = ops.convert_to_tensor(y_true)
        target_dtype = np.dtype(keras.backend.standardize_dtype(y_true.dtype))
        if not (np.issubdtype(target_dtype, np.integer) or np.issubdtype(target_dtype, np.floating)):
            raise TypeError(f"Perplexity targets must be token ids, got {y_true.dtype}")
        # Like Keras's sparse losses, float ids are cast (Keras traces metrics with float placeholders).
        y_true = ops.cast(y_true, "int32")
        if len(y_pred.shape) != len(y_true.shape) + 1:
            raise ValueError(
                f"Perplexity expects y_pred of shape y_true.shape + [vocab_size]; got y_true "
                f"shape {y_true.shape} and y_pred shape {y_pred.shape}"
            )
        weight = ops.ones(ops.shape(y_true), dtype=self.dtype)
        if self.ignore_class is not None:
            kept = ops.not_equal(y_true, self.ignore_class)
            weight = weight * ops.cast(kept, self.dtype)
            # The ignored id may lie outside the vocabulary (e.g. -1).
            y_true = ops.where(kept, y_true, ops.zeros_like(y_true))
        if mask is not None:
            weight = weight * ops.cast(ops.reshape(mask, ops.shape(y_true)), self.dtype)
        if sample_weight is not None:
            sample_weight = ops.convert_to_tensor(sample_weight, dtype=self.dtype)
            while len(sample_weight.shape) < len(weight.shape):
                sample_weight = ops.expand_dims(sample_weight, -1)
            weight = weight * sample_weight
        cross_entropy = keras.losses.sparse_categorical_crossentropy(
            y_true, y_pred, from_logits=self.from_logits
        )
        self.total_cross_entropy.assign_add(ops.sum(cross_entropy * weight))
        self.total_weight.assign_add(ops.sum(weight))

    def result(self):
        return ops.exp(ops.divide_no_nan(self.total_cross_entropy, self.total_weight))

    def get_config(self):
        config = super().get_config()
        config.update({"from_logits": self.from_logits, "ignore_class": self.ignore_class})
        return config


def _tokens(sequence, what):
    """A token list from a list/tuple of tokens or a string of space-separated tokens."""
    if isinstance(sequence, str):
        return sequence.split()
    if not isinstance(sequence, (list, tuple)):
        raise TypeError(f"{what} must be a list of tokens or a string, got {type(sequence).__name__}")
    return list(sequence)


def _ngram_counts(tokens, n):
    return collections.Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _clipped_matches(pred_tokens, label_tokens, n):
    """Predicted n-grams that occur in the label, each counted at most as often as there."""
    label_counts = _ngram_counts(label_tokens, n)
    return sum(min(count, label_counts[gram]) for gram, count in _ngram_counts(pred_tokens, n).items())


def bleu(pred_tokens, label_tokens, k=4):
    """Sentence BLEU as the course (D2L) defines it.

        exp(min(0, 1 - len_label / len_pred)) * prod_{n=1..k} p_n ** (1 / 2**n)

    where p_n is the fraction of the prediction's n-grams found in the label (clipped counts).
    As in D2L, n-gram orders longer than the prediction are left out of the product, so a short
    prediction is penalised only by the brevity term; an empty prediction scores 0.

    Args:
        pred_tokens: Predicted tokens (list, or a string split on whitespace).
        label_tokens: Reference tokens (same forms).
        k: Largest n-gram order.

    Returns:
        Python float in [0, 1].
    """
    pred_tokens = _tokens(pred_tokens, "pred_tokens")
    label_tokens = _tokens(label_tokens, "label_tokens")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    len_pred, len_label = len(pred_tokens), len(label_tokens)
    if len_pred == 0:
        return 0.0
    score = math.exp(min(0.0, 1 - len_label / len_pred))
    for n in range(1, min(k, len_pred) + 1):
        precision = _clipped_matches(pred_tokens, label_tokens, n) / (len_pred - n + 1)
        score *= precision ** (0.5**n)
    return score


def corpus_bleu(predictions, references, max_n=4):
    """Corpus BLEU (Papineni et al., 2002), no smoothing, with one or several references per prediction.

    Clipped n-gram matches and n-gram counts are summed over the corpus before dividing;
    BLEU = BP * exp(mean_n log p_n) for n = 1..max_n, with brevity penalty
    BP = exp(1 - r / c) when the total prediction length c is below the total reference length r,
    else 1. Any p_n of 0 (including no n-grams of that order at all) gives 0.

    With several references for a prediction (the many translations a sentence has), an n-gram
    counts as often as it occurs in the reference that holds it most often, and r takes the
    reference length closest to the prediction's (the shorter on a tie), as in Papineni et al.

    Args:
        predictions: Sequence of predictions, each a token list or a whitespace-separated string.
        references: Sequence aligned with `predictions`; each item is one reference (a token list or
            a string), or a tuple of such references.
        max_n: Largest n-gram order.

    Returns:
        Python float in [0, 1].
    """
    if isinstance(predictions, str) or isinstance(references, str):
        raise TypeError("corpus_bleu takes sequences of sentences, not a single string")
    if len(predictions) != len(references):
        raise ValueError(f"corpus_bleu got {len(predictions)} predictions but {len(references)} references")
    if not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"max_n must be a positive integer, got {max_n!r}")
    matches, totals = [0] * max_n, [0] * max_n
    pred_length = ref_length = 0
    for prediction, reference in zip(predictions, references):
        pred_tokens = _tokens(prediction, "each prediction")
        alternatives = reference if isinstance(reference, tuple) else (reference,)
        if not alternatives:
            raise ValueError("a tuple of references must hold at least one reference")
        ref_tokens = [_tokens(alternative, "each reference") for alternative in alternatives]
        pred_length += len(pred_tokens)
        ref_length += min((abs(len(tokens) - len(pred_tokens)), len(tokens)) for tokens in ref_tokens)[1]
        for n in range(1, max_n + 1):
            most = collections.Counter()
            for tokens in ref_tokens:
                most |= _ngram_counts(tokens, n)
            matches[n - 1] += sum(
                min(count, most[gram]) for gram, count in _ngram_counts(pred_tokens, n).items()
            )
            totals[n - 1] += max(0, len(pred_tokens) - n + 1)
    if pred_length == 0 or 0 in matches:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    brevity_penalty = min(0.0, 1 - ref_length / pred_length)
    return math.exp(brevity_penalty + log_precision)


def _split_tag(tag):
    if tag == "O":
        return "O", ""
    prefix, dash, entity_type = tag.partition("-")
    if prefix not in ("B", "I") or (dash and not entity_type):
        raise ValueError(f"not a BIO tag: {tag!r} (expected 'O', 'B-TYPE' or 'I-TYPE')")
    return prefix, entity_type


def entity_spans(tags):
    """Entities in one BIO tag sequence, as conlleval and seqeval (default mode) read them.

    An entity starts at every B- tag, at an I- tag after O (no preceding B-), and at an I- tag
    whose type differs from the previous tag's; it ends before O, B- or a change of type.

    Args:
        tags: Sequence of tag strings such as `["B-PER", "I-PER", "O"]`.

    Returns:
        List of `(type, start, end)` tuples with `end` exclusive, in order.
    """
    if isinstance(tags, str):
        raise TypeError("entity_spans takes a sequence of tags, not a single string")
    spans = []
    current = None  # [type, start] of the open entity
    for position, tag in enumerate(tags):
        prefix, entity_type = _split_tag(tag)
        continues = prefix == "I" and current is not None and current[0] == entity_type
        if current is not None and not continues:
            spans.append((current[0], current[1], position))
            current = None
        if prefix != "O" and not continues:
            current = [entity_type, position]
    if current is not None:
        spans.append((current[0], current[1], len(tags)))
    return spans


def _scores(correct, predicted, true):
    precision = correct / predicted if predicted else 0.0
    recall = correct / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": true}


def entity_f1(true_seqs, pred_seqs):
    """Entity-level precision, recall and F1 (exact span and type match), as conlleval/seqeval.

    Args:
        true_seqs: Sequence of reference BIO tag sequences.
        pred_seqs: Sequence of predicted BIO tag sequences, aligned token by token.

    Returns:
        Dict with micro-averaged `"precision"`, `"recall"`, `"f1"`, `"support"` (number of true
        entities) and `"per_type"`: {type: the same four keys}. Ratios with a zero denominator
        are 0.
    """
    if len(true_seqs) != len(pred_seqs):
        raise ValueError(f"entity_f1 got {len(true_seqs)} true sequences but {len(pred_seqs)} predicted ones")
    true_counts, pred_counts, correct_counts = (collections.Counter() for _ in range(3))
    for index, (true_tags, pred_tags) in enumerate(zip(true_seqs, pred_seqs)):
        if len(true_tags) != len(pred_tags):
            raise ValueError(f"sequence {index}: {len(true_tags)} true tags but {len(pred_tags)} predicted")
        true_spans, pred_spans = set(entity_spans(true_tags)), set(entity_spans(pred_tags))
        true_counts.update(span[0] for span in true_spans)
        pred_counts.update(span[0] for span in pred_spans)
        correct_counts.update(span[0] for span in true_spans & pred_spans)
    result = _scores(sum(correct_counts.values()), sum(pred_counts.values()), sum(true_counts.values()))
    result["per_type"] = {
        entity_type: _scores(correct_counts[entity_type], pred_counts[entity_type], true_counts[entity_type])
        for entity_type in sorted(true_counts | pred_counts)
    }
    return result


def token_accuracy(true_seqs, pred_seqs, mask=None):
    """Fraction of tokens tagged correctly, leaving out padding.

    Args:
        true_seqs: Reference tags: an array [batch, time] or a list of per-sentence sequences.
        pred_seqs: Predicted tags, same shape.
        mask: Optional boolean array-like of the same shape, True at real tokens. Without it
            every position counts (use it for padded arrays).

    Returns:
        Python float; 0 when there is no token.
    """
    if len(true_seqs) != len(pred_seqs):
        raise ValueError(f"token_accuracy got {len(true_seqs)} true sequences but {len(pred_seqs)} predicted")
    if mask is None:
        mask = [[True] * len(true_tags) for true_tags in true_seqs]
    elif len(mask) != len(true_seqs):
        raise ValueError(f"mask has {len(mask)} rows but there are {len(true_seqs)} sequences")
    correct = total = 0
    for index, (true_tags, pred_tags, row_mask) in enumerate(zip(true_seqs, pred_seqs, mask)):
        if not len(true_tags) == len(pred_tags) == len(row_mask):
            raise ValueError(
                f"sequence {index}: {len(true_tags)} true tags, {len(pred_tags)} predicted, "
                f"{len(row_mask)} mask entries"
            )
        for true_tag, pred_tag, keep in zip(true_tags, pred_tags, row_mask):
            if keep:
                total += 1
                correct += bool(true_tag == pred_tag)
    return correct / total if total else 0.0


def is_bio(tag_names):
    """Whether every tag is `O`, `B-...` or `I-...`: a tag set of entities, scored by `entity_f1`."""
    return all(tag == "O" or tag[:2] in ("B-", "I-") for tag in tag_names)


def tagging_scores(true_seqs, pred_seqs, tag_names=None):
    """The figures of a tagger: token accuracy, and for BIO tags entity precision, recall and F1.

    Args:
        true_seqs: reference tag sequences.
        pred_seqs: predicted tag sequences, aligned token by token.
        tag_names: the tag set, to tell whether the tags are BIO tags; None: the reference tags.

    Returns:
        `{"token_accuracy"}`, plus `"entity_precision"`, `"entity_recall"`, `"entity_f1"` and
        `"entity_support"` (see `entity_f1`) when the tags are BIO tags.

    Example:
    >>> tagging_scores([["B-PER", "O"]], [["B-PER", "B-LOC"]])["entity_precision"]
    0.5
    """
    figures = {"token_accuracy": token_accuracy(true_seqs, pred_seqs)}
    if is_bio(tag_names if tag_names is not None else [tag for tags in true_seqs for tag in tags]):
        entities = entity_f1(true_seqs, pred_seqs)
        figures.update({f"entity_{key}": entities[key] for key in ("precision", "recall", "f1", "support")})
    return figures
