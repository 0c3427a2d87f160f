"""Batched, in-graph decoding loops: sampling, greedy decoding and beam search.

Every loop here is one `tf.while_loop` over time steps, so inside a `tf.function` (or a SavedModel
signature) the whole generation runs in the graph, with no Python work per token. Called eagerly, the
same code runs step by step with identical results; wrap the caller in `tf.function` for speed.

The step-function protocol
--------------------------
A model is seen through one function

    step_fn(token_ids, states) -> (logits, new_states)

- `token_ids`: int32 `[batch]`, the previous token of each sequence (at the first step, the
  `initial_ids` given to the decoder, e.g. a `<bos>` id or the last token of a prompt).
- `states`: any nested structure (tensor, list, tuple, dict) of tensors whose first dimension is the
  batch, e.g. `[h]` for a GRU, `[h, c]` for an LSTM, or the hidden states plus encoder outputs of
  an attention decoder. The decoders never look inside; beam search repeats and reorders every leaf
  along its first dimension.
- `logits`: float `[batch, vocabulary_size]`, unnormalized scores of the next token.
- `new_states`: the same structure, with the same dtypes and shapes, for the next step.

`step_fn` is traced once into the loop body: it must be built from TensorFlow ops (Keras layers
are), and must not create variables (build the model before decoding).

Token conventions shared by the functions below: the generated ids do not include the initial id;
a generated `eos_id` is kept in the output and counted in its length; every position after it holds
`pad_id`.
"""

import collections
import numbers

import tensorflow as tf


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a Python int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_initial_ids(initial_ids):
    initial_ids = tf.convert_to_tensor(initial_ids)
    if not initial_ids.dtype.is_integer:
        raise TypeError(f"initial_ids must be integer token ids, got dtype {initial_ids.dtype.name}")
    if initial_ids.shape.rank != 1:
        raise ValueError(f"initial_ids must have shape [batch], got shape {initial_ids.shape}")
    return tf.cast(initial_ids, tf.int32)


def _call_step(step_fn, token_ids, states):
    """Runs `step_fn` and checks its results against the protocol, keeping the states' static shapes
    so that the while loop sees loop variables of fixed shape."""
    logits, new_states = step_fn(token_ids, states)
    logits = tf.convert_to_tensor(logits)
    if logits.shape.rank != 2:
        raise ValueError(f"step_fn must return logits of shape [batch, vocabulary], got {logits.shape}")
    if not logits.dtype.is_floating:
        raise TypeError(f"step_fn must return float logits, got dtype {logits.dtype.name}")
    try:
        tf.nest.assert_same_structure(states, new_states)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"step_fn must return new states with the structure of its input states: {error}"
        ) from None

    def keep_shape(new, old):
        if new.dtype != old.dtype:
            raise TypeError(f"step_fn changed a state's dtype from {old.dtype.name} to {new.dtype.name}")
        return tf.ensure_shape(new, old.shape)

    return tf.cast(logits, tf.float32), tf.nest.map_structure(keep_shape, new_states, states)


def _seed_tensor(seed):
    """A stateless-RNG seed of shape [2]: from an int, a [2] tensor, or freshly drawn when None."""
    if seed is None:
        return tf.random.uniform([2], maxval=tf.int64.max, dtype=tf.int64)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return tf.constant([seed, 0], tf.int64)
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer or seed.shape.rank != 1 or seed.shape[0] not in (None, 2):
        raise ValueError(f"seed must be an int or an integer tensor of shape [2], got {seed!r}")
    return tf.cast(seed, tf.int64)


def _next_tokens(logits, temperature, top_k, seed):
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    if isinstance(temperature, numbers.Real) and temperature == 0:
        return greedy
    if top_k is not None:
        vocabulary_size = logits.shape[-1]
        if vocabulary_size is not None and top_k > vocabulary_size:
            raise ValueError(f"top_k={top_k} exceeds the vocabulary size {vocabulary_size}")
        candidate_logits, candidate_ids = tf.math.top_k(logits, k=top_k)
    else:
        candidate_logits, candidate_ids = logits, None
    temperature = tf.cast(temperature, tf.float32)
    # A temperature given as a tensor may be 0 at run time: divide by 1 there and take the argmax.
    scale = tf.where(temperature > 0, temperature, tf.ones_like(temperature))
    draws = tf.random.stateless_categorical(candidate_logits / scale, 1, seed=seed, dtype=tf.int32)[:, 0]
    if candidate_ids is not None:
        draws = tf.gather(candidate_ids, draws, batch_dims=1)
    return tf.where(temperature > 0, draws, greedy)


def sample(
    step_fn,
    initial_ids,
    initial_states,
    max_length,
    temperature=1.0,
    top_k=None,
    seed=None,
    eos_id=None,
    pad_id=0,
):
    """Generates token sequences by sampling from `softmax(logits / temperature)` one step at a time.

    Args:
        step_fn: the model's step function (see the module docstring for the protocol).
        initial_ids: int `[batch]`, the token fed at the first step.
        initial_states: nested structure of `[batch, ...]` tensors, the model's state before it.
        max_length: Python int >= 1, the number of tokens to generate.
        temperature: float >= 0 (Python number or scalar tensor). 0 means greedy (argmax).
        top_k: None, or a Python int >= 1: sample among the `top_k` most likely tokens only
            (`top_k=1` is greedy).
        seed: int, or int tensor of shape `[2]`, for `tf.random.stateless_categorical`; the same
            seed gives the same samples in eager and graph mode. None draws a fresh seed each call.
        eos_id: optional end-of-sequence id. A sequence that emits it stops; the loop ends as soon
            as every sequence has stopped.
        pad_id: id written after `eos_id`.

    Returns:
        `(token_ids, lengths)`: int32 `[batch, max_length]` generated ids (`eos_id` included, then
        `pad_id`), and int32 `[batch]` number of generated tokens up to and including `eos_id`
        (`max_length` where no `eos_id` was generated).

    Example:

    >>> table = tf.math.log([[0.1, 0.9], [0.8, 0.2]])      # a two-token Markov chain
    >>> step_fn = lambda ids, states: (tf.gather(table, ids), states)
    >>> ids, lengths = sample(step_fn, tf.zeros([3], tf.int32), (), max_length=5, seed=7)
    """
    max_length = _check_int("max_length", max_length, 1)
    if top_k is not None:
        top_k = _check_int("top_k", top_k, 1)
    if isinstance(temperature, numbers.Real) and temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    initial_ids = _check_initial_ids(initial_ids)
    seed = _seed_tensor(seed)
    batch_size = tf.shape(initial_ids)[0]
    # Greedy decoding without eos_id needs neither per-step seeds nor the bookkeeping of ended
    # sequences: fewer ops in the loop body, which is what batch-1 generation speed is made of.
    greedy = isinstance(temperature, numbers.Real) and temperature == 0

    def keep_going(step, ids, states, finished, lengths, outputs):
        if eos_id is None:
            return step < max_length
        return tf.logical_and(step < max_length, tf.logical_not(tf.reduce_all(finished)))

    def one_step(step, ids, states, finished, lengths, outputs):
        logits, states = _call_step(step_fn, ids, states)
        step_seed = None if greedy else tf.random.experimental.stateless_fold_in(seed, step)
        tokens = _next_tokens(logits, temperature, top_k, step_seed)
        if eos_id is not None:
            tokens = tf.where(finished, tf.constant(pad_id, tf.int32), tokens)
            lengths += tf.cast(tf.logical_not(finished), tf.int32)
            finished = tf.logical_or(finished, tf.equal(tokens, eos_id))
        return step + 1, tokens, states, finished, lengths, outputs.write(step, tokens)

    _, _, _, _, counted_lengths, outputs = tf.while_loop(
        keep_going,
        one_step,
        (
            tf.constant(0),
            initial_ids,
            initial_states,
            tf.zeros([batch_size], tf.bool),
            tf.zeros([batch_size], tf.int32),
            tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=initial_ids.shape),
        ),
    )
    # Without eos_id every sequence runs to max_length (an empty batch has no steps to count).
    lengths = counted_lengths if eos_id is not None else tf.fill([batch_size], max_length)
    # An empty batch ends the loop before its first step, and an empty TensorArray cannot stack.
    generated = tf.cond(
        outputs.size() > 0,
        lambda: tf.transpose(outputs.stack()),
        lambda: tf.zeros([batch_size, 0], tf.int32),
    )
    # The loop stops early once every sequence has ended; the remaining columns are padding.
    generated = tf.pad(generated, [[0, 0], [0, max_length - tf.shape(generated)[1]]], constant_values=pad_id)
    generated.set_shape([initial_ids.shape[0], max_length])
    return generated, lengths


def greedy_decode(step_fn, initial_ids, initial_states, max_length, eos_id=None, pad_id=0):
    """Generates by taking the most likely token at each step: `sample` with temperature 0.

    Args and Returns: as `sample`, without the sampling arguments.
    """
    return sample(
        step_fn, initial_ids, initial_states, max_length, temperature=0.0, eos_id=eos_id, pad_id=pad_id
    )


BeamSearchResult = collections.namedtuple(
    "BeamSearchResult",
    ["sequences", "scores", "lengths", "beam_sequences", "beam_scores", "beam_lengths"],
)
BeamSearchResult.__doc__ = """Output of `beam_search`.

Fields:
    sequences: int32 `[batch, max_length]`, the best hypothesis of each batch row.
    scores: float32 `[batch]`, its score: log-probability divided by the length penalty.
    lengths: int32 `[batch]`, its length (up to and including `eos_id`).
    beam_sequences: int32 `[batch, beam_size, max_length]`, every kept hypothesis, best first.
    beam_scores: float32 `[batch, beam_size]`; `-inf` marks an empty slot (fewer distinct
        hypotheses than `beam_size` exist, e.g. beam_size > vocabulary size at short lengths).
    beam_lengths: int32 `[batch, beam_size]` (0 for empty slots).
"""


def length_penalty_factor(lengths, alpha):
    """GNMT's length penalty `((5 + length) / 6) ** alpha` (Wu et al., 2016); 1 when alpha is 0."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


def beam_search(
    step_fn,
    initial_ids,
    initial_states,
    beam_size,
    max_length,
    eos_id,
    length_penalty=0.0,
    pad_id=0,
):
    """Finds high-scoring sequences by keeping the `beam_size` best hypotheses at each step.

    A hypothesis's score is its total log-probability (eos included) divided by
    `length_penalty_factor(length, length_penalty)`. At each step every unfinished hypothesis is
    extended by every token; a finished one (it emitted `eos_id`) is carried over unchanged with its
    score; the `beam_size` best of these candidates, ranked by score, are kept. The loop ends when
    every hypothesis of every batch row is finished, or after `max_length` tokens.

    Args:
        step_fn: the model's step function (see the module docstring for the protocol).
        initial_ids: int `[batch]`, the token fed at the first step.
        initial_states: nested structure of `[batch, ...]` tensors; each leaf is repeated
            `beam_size` times along its first dimension, then reordered with the hypotheses.
        beam_size: Python int >= 1. 1 is greedy decoding.
        max_length: Python int >= 1, the longest hypothesis.
        eos_id: Python int, the end-of-sequence id.
        length_penalty: alpha >= 0 of GNMT's penalty; 0 ranks by plain log-probability, larger
            values favour longer hypotheses.
        pad_id: id written after `eos_id`.

    Returns:
        A `BeamSearchResult` (see its docstring).

    Example:

    >>> table = tf.math.log([[0.1, 0.5, 0.4], [0.3, 0.3, 0.4], [0.2, 0.2, 0.6]])
    >>> step_fn = lambda ids, states: (tf.gather(table, ids), states)
    >>> result = beam_search(step_fn, tf.constant([1]), (), beam_size=3, max_length=4, eos_id=0)
    """
    beam_size = _check_int("beam_size", beam_size, 1)
    max_length = _check_int("max_length", max_length, 1)
    eos_id = _check_int("eos_id", eos_id, 0)
    pad_id = _check_int("pad_id", pad_id, 0)
    if not isinstance(length_penalty, numbers.Real) or length_penalty < 0:
        raise ValueError(f"length_penalty must be a number >= 0, got {length_penalty!r}")
    initial_ids = _check_initial_ids(initial_ids)
    batch_size = tf.shape(initial_ids)[0]
    static_batch = initial_ids.shape[0]
    static_flat_batch = None if static_batch is None else static_batch * beam_size

    def repeat_along_beam(state):
        state = tf.repeat(state, beam_size, axis=0)
        return tf.ensure_shape(state, [static_flat_batch] + state.shape[1:].as_list())

    # Only the first copy of each row starts with a finite score, so the first step's top-k does not
    # pick the same extension beam_size times.
    first_beam_only = tf.concat([[0.0], tf.fill([beam_size - 1], -float("inf"))], axis=0)
    length_positions = tf.range(max_length)

    def keep_going(step, ids, states, log_probs, finished, lengths, sequences):
        return tf.logical_and(step < max_length, tf.logical_not(tf.reduce_all(finished)))

    def one_step(step, ids, states, log_probs, finished, lengths, sequences):
        logits, states = _call_step(step_fn, ids, states)
        vocabulary_size = tf.shape(logits)[-1]
        step_log_probs = tf.reshape(tf.nn.log_softmax(logits), [batch_size, beam_size, vocabulary_size])
        # A finished hypothesis has one continuation, pad, at no cost: it keeps its score.
        carry_over = tf.where(tf.equal(tf.range(vocabulary_size), pad_id), 0.0, -float("inf"))
        step_log_probs = tf.where(finished[:, :, None], carry_over, step_log_probs)
        candidate_log_probs = log_probs[:, :, None] + step_log_probs
        candidate_lengths = tf.where(finished, lengths, step + 1)
        candidate_scores = (
            candidate_log_probs / length_penalty_factor(candidate_lengths, length_penalty)[:, :, None]
        )

        flat_shape = [batch_size, beam_size * vocabulary_size]
        _, best = tf.math.top_k(tf.reshape(candidate_scores, flat_shape), k=beam_size)
        parents = best // vocabulary_size
        tokens = best % vocabulary_size
        log_probs = tf.gather(tf.reshape(candidate_log_probs, flat_shape), best, batch_dims=1)
        was_finished = tf.gather(finished, parents, batch_dims=1)
        lengths = tf.where(was_finished, tf.gather(lengths, parents, batch_dims=1), step + 1)
        tokens = tf.where(was_finished, pad_id, tokens)
        # An empty slot (-inf) is finished too, so it never keeps the loop running.
        finished = was_finished | tf.equal(tokens, eos_id) | tf.math.is_inf(log_probs)

        sequences = tf.gather(sequences, parents, batch_dims=1)
        sequences = tf.where(tf.equal(length_positions, step), tokens[:, :, None], sequences)

        flat_parents = tf.reshape(parents + beam_size * tf.range(batch_size)[:, None], [-1])
        states = tf.nest.map_structure(
            lambda state: tf.ensure_shape(tf.gather(state, flat_parents), state.shape), states
        )
        return step + 1, tf.reshape(tokens, [-1]), states, log_probs, finished, lengths, sequences

    _, _, _, log_probs, _, lengths, sequences = tf.while_loop(
        keep_going,
        one_step,
        (
            tf.constant(0),
            repeat_along_beam(initial_ids),
            tf.nest.map_structure(repeat_along_beam, initial_states),
            tf.tile(first_beam_only[None, :], [batch_size, 1]),
            tf.zeros([batch_size, beam_size], tf.bool),
            tf.zeros([batch_size, beam_size], tf.int32),
            tf.fill([batch_size, beam_size, max_length], tf.constant(pad_id, tf.int32)),
        ),
    )
    # Hypotheses are kept sorted by score at every step, so slot 0 is the best one.
    empty = tf.math.is_inf(log_probs)
    lengths = tf.where(empty, 0, lengths)
    sequences = tf.where(empty[:, :, None], pad_id, sequences)
    scores = log_probs / length_penalty_factor(lengths, length_penalty)
    return BeamSearchResult(
        sequences=sequences[:, 0],
        scores=scores[:, 0],
        lengths=lengths[:, 0],
        beam_sequences=sequences,
        beam_scores=scores,
        beam_lengths=lengths,
    )
