"""LanguageModel and TextGenerator: training metric, serialization, state carrying, generation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.metrics import Perplexity
from zoo.models.language_model import LanguageModel, TextGenerator
from zoo.text import BPETokenizer, CharTokenizer, Vocab, WordTokenizer, random_sampling_batches

TEXT = (
    "the time traveller for so it will be convenient to speak of him was expounding a recondite "
    "matter to us his grey eyes shone and twinkled and his usually pale face was flushed and animated "
) * 8


def char_setup():
    tokenizer = CharTokenizer()
    tokens = tokenizer.tokenize(TEXT)
    vocab = Vocab(tokens)
    return tokenizer, vocab, np.asarray(vocab.to_ids(tokens), np.int32)


def built(model, batch=2, steps=5):
    model(np.zeros((batch, steps), np.int32))
    return model


def test_perplexity_is_exp_of_mean_cross_entropy():
    _, vocab, ids = char_setup()
    model = built(LanguageModel(len(vocab), "gru", 12, embedding_dim=6))
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[Perplexity()],
    )
    x, y = ids[:60].reshape(4, 15), ids[1:61].reshape(4, 15)
    results = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    logits = model.predict(x, verbose=0).astype(np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    cross_entropy = -np.take_along_axis(log_probs, y[..., None], axis=-1).mean()
    np.testing.assert_allclose(results["perplexity"], np.exp(cross_entropy), rtol=1e-5)
    np.testing.assert_allclose(results["loss"], cross_entropy, rtol=1e-5)


@pytest.mark.parametrize(
    "options",
    [
        dict(cell_type="lstm", units=8, num_layers=2, embedding_dim=4, dropout=0.1),
        dict(cell_type="rnn", units=8),  # one-hot inputs
        dict(cell_type="gru", units=8, bidirectional=True, embedding_dim=4),
    ],
)
def test_keras_round_trip_is_exact(tmp_path, options):
    model = built(LanguageModel(11, **options), batch=3, steps=7)
    x = np.random.default_rng(0).integers(0, 11, (3, 7))
    path = tmp_path / "lm.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, LanguageModel)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_one_hot_model_matches_the_course_formula():
    """Without an embedding, the first layer sees one-hot vectors: H_1 = tanh(W_xh[x] + b)."""
    model = built(LanguageModel(5, "rnn", 3), batch=1, steps=1)
    logits, states = model(np.array([[2]]), return_state=True)
    cell = model.rnn.rnn_layers[0].cell
    expected_h = np.tanh(cell.kernel.numpy()[2] + cell.bias.numpy())
    np.testing.assert_allclose(states[0].numpy()[0], expected_h, rtol=1e-6)
    expected = expected_h @ model.head.kernel.numpy() + model.head.bias.numpy()
    np.testing.assert_allclose(logits.numpy()[0, 0], expected, rtol=1e-5, atol=1e-6)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="vocab_size"):
        LanguageModel(0)
    with pytest.raises(ValueError, match="dropout"):
        LanguageModel(5, dropout=1.5)
    model = built(LanguageModel(5, units=4))
    with pytest.raises(TypeError, match="integer token ids"):
        model(tf.zeros((2, 3), tf.float32))
    with pytest.raises(ValueError, match="top_k"):
        model.generate_ids([[1, 2]], 3, top_k=6)
    with pytest.raises(ValueError, match="needs the Vocab"):
        TextGenerator(model, CharTokenizer())


def python_greedy(model, prefix_ids, num_tokens):
    """Reference: run the whole model on the growing sequence, take the argmax of the last step."""
    sequence = list(prefix_ids)
    for _ in range(num_tokens):
        logits = model(np.array([sequence]), training=False)
        sequence.append(int(np.argmax(logits[0, -1])))
    return sequence[len(prefix_ids) :]


@pytest.mark.parametrize("cell_type,num_layers", [("lstm", 2), ("gru", 1), ("rnn", 1)])
def test_greedy_generation_matches_a_step_by_step_python_reference(cell_type, num_layers):
    _, vocab, _ = char_setup()
    model = built(LanguageModel(len(vocab), cell_type, 16, num_layers=num_layers, embedding_dim=8))
    prompts = [[3, 4, 5, 6], [7], [8, 9]]
    generated = model.generate_ids(tf.ragged.constant(prompts), 12).numpy()
    for prompt, row in zip(prompts, generated):
        assert row.tolist() == python_greedy(model, prompt, 12)


def test_sampling_is_deterministic_for_a_seed_in_eager_and_graph_and_batched():
    _, vocab, _ = char_setup()
    model = built(LanguageModel(len(vocab), "lstm", 16, embedding_dim=8))
    prompts = tf.ragged.constant([[3, 4, 5], [6, 7]])
    first = model.generate_ids(prompts, 20, temperature=1.0, seed=5).numpy()
    again = model.generate_ids(prompts, 20, temperature=1.0, seed=5).numpy()
    in_graph = tf.function(lambda: model.generate_ids(prompts, 20, temperature=1.0, seed=5))().numpy()
    other = model.generate_ids(prompts, 20, temperature=1.0, seed=6).numpy()
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, in_graph)
    assert not np.array_equal(first, other)
    # top_k=1 is greedy whatever the temperature.
    np.testing.assert_array_equal(
        model.generate_ids(prompts, 20, temperature=2.0, top_k=1, seed=1).numpy(),
        model.generate_ids(prompts, 20).numpy(),
    )


def test_run_time_token_count_gives_the_same_tokens_as_a_fixed_count():
    _, vocab, _ = char_setup()
    model = built(LanguageModel(len(vocab), "gru", 16, embedding_dim=8))
    prompts = tf.ragged.constant([[3, 4], [5]])
    fixed = model.generate_ids(prompts, 7, temperature=0.7, top_k=5, seed=2).numpy()
    run_time = tf.function(
        lambda count: model.generate_ids(prompts, count, temperature=0.7, top_k=5, seed=2, max_tokens=30)
    )
    np.testing.assert_array_equal(run_time(tf.constant(7)).numpy(), fixed)
    assert run_time(tf.constant(3)).shape == (2, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_tokens"):
        run_time(tf.constant(31))


def test_bidirectional_model_refuses_to_generate_and_says_why():
    _, vocab, _ = char_setup()
    model = built(LanguageModel(len(vocab), "lstm", 8, bidirectional=True))
    with pytest.raises(ValueError, match="bidirectional.*tokens after t"):
        model.generate_ids([[1, 2]], 5)
    with pytest.raises(ValueError, match="cannot generate"):
        TextGenerator(model, CharTokenizer(), vocab)


@pytest.mark.parametrize("cell_type", ["lstm", "gru"])
def test_initial_state_continues_a_sequence_exactly(cell_type):
    model = LanguageModel(vocab_size=11, cell_type=cell_type, units=6, num_layers=2, embedding_dim=4)
    ids = np.random.default_rng(3).integers(0, 11, size=(2, 12))
    whole = np.asarray(model(ids))
    first, states = model(ids[:, :5], return_state=True)
    rest, _ = model(ids[:, 5:], initial_state=states, return_state=True)
    np.testing.assert_allclose(np.concatenate([first, rest], axis=1), whole, rtol=1e-5, atol=1e-6)


def test_stateful_model_carries_state_across_batches_and_resets():
    """Sequential partitioning: batch 2 continues where batch 1 ended, row by row."""
    rng = np.random.default_rng(1)
    first, second = rng.integers(0, 9, (2, 6)), rng.integers(0, 9, (2, 6))
    stateful = built(LanguageModel(9, "lstm", 8, embedding_dim=4, stateful=True), batch=2, steps=6)
    stateless = built(LanguageModel(9, "lstm", 8, embedding_dim=4), batch=2, steps=6)
    stateless.set_weights(stateful.get_weights())
    stateful.reset_state()
    stateful(first)
    carried = stateful(second).numpy()
    whole = stateless(np.concatenate([first, second], axis=1)).numpy()
    np.testing.assert_allclose(carried, whole[:, 6:], rtol=1e-5, atol=1e-6)
    stateful.reset_state()
    np.testing.assert_allclose(stateful(second).numpy(), stateless(second).numpy(), rtol=1e-5, atol=1e-6)
    # The stateless model (random sampling) starts every batch from zeros.
    stateless(first)
    np.testing.assert_array_equal(stateless(second).numpy(), stateless(second).numpy())
    assert not np.allclose(stateless(second).numpy(), whole[:, 6:], atol=1e-4)


def test_stateless_copy_has_the_weights_and_no_carried_state():
    rng = np.random.default_rng(2)
    first, second = rng.integers(0, 9, (2, 6)), rng.integers(0, 9, (2, 6))
    stateful = built(LanguageModel(9, "gru", 8, num_layers=2, embedding_dim=4, stateful=True), batch=2)
    stateful(first)  # leaves a carried state behind
    copy = stateful.stateless_copy()
    assert not copy.stateful and stateful.stateful
    assert copy.get_config() == {**stateful.get_config(), "stateful": False}
    stateful.reset_state()
    np.testing.assert_allclose(copy(second).numpy(), stateful(second).numpy(), rtol=1e-5, atol=1e-6)
    # Any batch size, each call from zero states.
    np.testing.assert_allclose(copy(second[:1]).numpy(), copy(second).numpy()[:1], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="build the model"):
        LanguageModel(9, units=4, stateful=True).stateless_copy()


def test_fit_with_random_batches_lowers_perplexity():
    _, vocab, ids = char_setup()
    model = LanguageModel(len(vocab), "lstm", 32, embedding_dim=16)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2, global_clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[Perplexity()],
    )
    history = model.fit(random_sampling_batches(ids, 8, 20, seed=0), epochs=3, verbose=0)
    ppl = history.history["perplexity"]
    assert ppl[-1] < ppl[0] < len(vocab) * 1.5


def test_text_generator_with_char_word_and_bpe_tokenizers(tmp_path):
    char_tokenizer, char_vocab, _ = char_setup()
    word_tokenizer = WordTokenizer()
    word_vocab = Vocab(word_tokenizer.tokenize(TEXT))
    bpe = BPETokenizer.train([TEXT], vocab_size=60)
    cases = [
        (char_tokenizer, char_vocab, len(char_vocab)),
        (word_tokenizer, word_vocab, len(word_vocab)),
        (bpe, None, bpe.vocab_size),
    ]
    for tokenizer, vocab, size in cases:
        model = built(LanguageModel(size, "gru", 8, embedding_dim=4))
        generator = TextGenerator(model, tokenizer, vocab, max_tokens=20, default_tokens=5)
        prompts = ["the time traveller", "his grey"]
        texts = generator(prompts, 6)
        ids = generator.encode(tf.constant(prompts))
        expected = model.generate_ids(ids, 6).numpy()
        for prompt_ids, row, text in zip(ids.to_list(), expected, texts):
            assert (
                text == generator.decode(tf.ragged.constant([prompt_ids + row.tolist()])).numpy()[0].decode()
            )
        assert generator("the time", 6, temperature=1.0, seed=4) == generator(
            "the time", 6, temperature=1.0, seed=4
        )
        assert generator.generate(tf.constant(["the"])).shape == (1,)


def test_reversed_generator_writes_the_text_before_the_prompt():
    tokenizer = CharTokenizer("faithful")
    # No "<unk>": every token is one character, so reversing a string reverses its tokens.
    vocab = Vocab(tokenizer.tokenize(TEXT + "Tx"), reserved_tokens=(), unk_token=None)
    model = built(LanguageModel(len(vocab), "gru", 8, embedding_dim=4))
    reading_order = TextGenerator(model, tokenizer, vocab, max_tokens=20, default_tokens=5)
    reversed_text = TextGenerator(model, tokenizer, vocab, max_tokens=20, default_tokens=5, reverse=True)
    prompts = ["The time", "his grey x"]
    # The model reads the prompt right to left and what it writes is put before the prompt.
    expected = [text[::-1] for text in reading_order([prompt[::-1] for prompt in prompts], 7)]
    assert reversed_text(prompts, 7) == expected
    assert all(
        text.endswith(prompt) and len(text) == len(prompt) + 7 for text, prompt in zip(expected, prompts)
    )
    with pytest.raises(ValueError, match="reverse=True is for character models"):
        TextGenerator(model, WordTokenizer(), vocab, reverse=True)


def test_empty_prompt_is_an_error():
    tokenizer, vocab, _ = char_setup()
    model = built(LanguageModel(len(vocab), "gru", 8, embedding_dim=4))
    generator = TextGenerator(model, tokenizer, vocab, max_tokens=20, default_tokens=5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one token"):
        generator("!!!", 3)
