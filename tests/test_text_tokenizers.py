"""Char/word tokenizers, the course's BPE merges and the vocabulary."""

import re

import numpy as np
import pytest
import tensorflow as tf

from zoo.text import (
    PAD,
    SEQUENCE_RESERVED,
    CharTokenizer,
    Vocab,
    WordTokenizer,
    apply_bpe_merges,
    course_clean,
    learn_bpe_merges,
    load_time_machine,
)


def _course_reference(line):
    return re.sub("[^A-Za-z]+", " ", line).strip().lower()


LINES = ["The Time Machine, by H. G. Wells [1898]", "  I.  ", "", "Don't stop -- naïve café 12.5!"]


def test_course_clean_matches_python_re():
    assert course_clean(LINES) == [_course_reference(line) for line in LINES]
    assert course_clean(tf.constant(LINES)).numpy().tolist() == [
        _course_reference(line).encode() for line in LINES
    ]


@pytest.mark.parametrize("mode", ["course", "faithful"])
def test_char_tokenizer_eager_graph_and_round_trip(mode):
    tokenizer = CharTokenizer(mode)
    eager = tokenizer.tokenize(LINES)
    expected = [list(_course_reference(line)) if mode == "course" else list(line) for line in LINES]
    assert eager == expected
    graph = tf.function(tokenizer.tokenize)(tf.constant(LINES))
    assert [[token.decode() for token in row] for row in graph.to_list()] == expected
    assert tokenizer.detokenize(eager) == ["".join(row) for row in expected]
    joined = tokenizer.detokenize(graph).numpy().tolist()
    assert [value.decode() for value in joined] == ["".join(row) for row in expected]


def test_word_tokenizer_course_matches_split():
    tokenizer = WordTokenizer()
    assert tokenizer.tokenize(LINES) == [_course_reference(line).split() for line in LINES]
    assert tokenizer.tokenize("") == []


def test_word_tokenizer_faithful_keeps_case_punctuation_unicode():
    tokenizer = WordTokenizer("faithful")
    assert tokenizer.tokenize(LINES[3]) == [
        "Don",
        "'",
        "t",
        "stop",
        "-",
        "-",
        "naïve",
        "café",
        "12",
        ".",
        "5",
        "!",
    ]
    assert tokenizer.tokenize("Hi\u00a0there,\tyou") == ["Hi", "there", ",", "you"]
    scalar = tokenizer.tokenize(tf.constant("Hello, world!"))
    assert scalar.numpy().tolist() == [b"Hello", b",", b"world", b"!"]
    assert tokenizer.detokenize(["Hello", ",", "world"]) == "Hello , world"


def test_tokenizers_in_tf_data_map():
    tokenizer = WordTokenizer("faithful")
    dataset = tf.data.Dataset.from_tensor_slices(LINES).map(tokenizer.tokenize)
    assert [[t.decode() for t in row.numpy()] for row in dataset] == tokenizer.tokenize(LINES)


def test_tokenizer_bad_input():
    with pytest.raises(ValueError, match="mode"):
        CharTokenizer("lower")
    with pytest.raises(TypeError, match="tf.string"):
        CharTokenizer().tokenize(tf.constant([1, 2]))
    with pytest.raises(TypeError, match="str"):
        WordTokenizer().tokenize(42)
    with pytest.raises(ValueError, match="1-D"):
        WordTokenizer().tokenize(tf.constant([["a"]]))


def test_faithful_chars_replace_invalid_utf8():
    tokens = CharTokenizer("faithful").tokenize(tf.constant([b"a\xffb"]))
    assert tokens.to_list() == [[b"a", "\ufffd".encode(), b"b"]]


def test_course_bpe_merges_on_toy_corpus():
    merges = learn_bpe_merges({"fast_": 4, "faster_": 3, "tall_": 5, "taller_": 4}, 10)
    assert merges == [
        ("t", "a"), ("ta", "l"), ("tal", "l"), ("f", "a"), ("fa", "s"),
        ("fas", "t"), ("e", "r"), ("er", "_"), ("tall", "_"), ("fast", "_"),
    ]  # fmt: skip
    assert apply_bpe_merges("tallest_", merges) == ["tall", "e", "s", "t", "_"]
    assert apply_bpe_merges("faster_", merges) == ["fast", "er_"]


def _brute_force_merges(word_freqs, num_merges):
    """Recounts every pair from scratch after each merge (the course's loop, on symbol lists)."""
    words = {tuple(word): freq for word, freq in word_freqs.items()}
    merges = []
    for _ in range(num_merges):
        counts = {}
        for symbols, freq in words.items():
            for pair in zip(symbols, symbols[1:]):
                counts[pair] = counts.get(pair, 0) + freq
        if not counts:
            break
        best = max(counts, key=counts.get)  # insertion order breaks ties, as in the course
        merges.append(best)
        words = {tuple(_merge(symbols, best)): freq for symbols, freq in words.items()}
    return merges


def _merge(symbols, pair):
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(symbols[i] + symbols[i + 1])
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def test_incremental_merges_match_brute_force():
    rng = np.random.default_rng(0)
    words = {"".join(rng.choice(list("abca_"), size=rng.integers(2, 8))) + "_": int(rng.integers(1, 9))
             for _ in range(40)}  # fmt: skip
    assert learn_bpe_merges(words, 60) == _brute_force_merges(words, 60)
    # Boundary safety: "a b" never merges across the symbols "aa" | "b".
    assert learn_bpe_merges({"aab": 1}, 5) == [("a", "a"), ("aa", "b")]


def test_bpe_merges_bad_input():
    with pytest.raises(ValueError, match="empty"):
        learn_bpe_merges({}, 3)
    with pytest.raises(ValueError, match="positive"):
        learn_bpe_merges({"ab": 0}, 3)


def test_vocab_order_ids_and_unknowns():
    vocab = Vocab(["b", "a", "c", "a", "b", "d"], min_freq=1)
    assert vocab.idx_to_token == ["<unk>", "a", "b", "c", "d"]  # ties broken by text
    assert Vocab(["b", "a", "a", "b", "d"], min_freq=2).idx_to_token == ["<unk>", "a", "b"]
    assert vocab.to_ids(["a", "zzz"]) == [1, 0]
    ids = vocab.to_ids(tf.ragged.constant([["a", "zzz"], ["d"]]))
    assert ids.to_list() == [[1, 0], [4]]
    assert tf.function(vocab.to_ids)(tf.constant(["c", "q"])).numpy().tolist() == [3, 0]
    assert vocab.to_tokens([[1, 2], [4]]) == [["a", "b"], ["d"]]
    assert vocab.to_tokens(tf.constant([3, 0])).numpy().tolist() == [b"c", b"<unk>"]
    with pytest.raises(IndexError, match="out of range"):
        vocab.to_tokens(5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="< 5"):
        vocab.to_tokens(tf.constant([5]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=">= 0"):
        vocab.to_tokens(tf.constant([-1]))


def test_vocab_reserved_tokens_rules():
    vocab = Vocab([["x", "y", "x"]], reserved_tokens=SEQUENCE_RESERVED)
    assert vocab.idx_to_token == ["<pad>", "<unk>", "<bos>", "<eos>", "x", "y"]
    assert vocab.id_of("<bos>") == 2
    with pytest.raises(ValueError, match="first"):
        Vocab(["a"], reserved_tokens=("<unk>", PAD))
    with pytest.raises(ValueError, match="unk_token"):
        Vocab(["a"], reserved_tokens=(PAD,))
    tags = Vocab(["N", "V"], reserved_tokens=(PAD,), unk_token=None)
    with pytest.raises(KeyError, match="unknown token"):
        tags.to_ids("ADJ")
    with pytest.raises(tf.errors.InvalidArgumentError, match="not in the vocabulary"):
        tags.to_ids(tf.constant(["ADJ"]))


def test_vocab_save_load_round_trip(tmp_path):
    vocab = Vocab(list("the time machine"), reserved_tokens=SEQUENCE_RESERVED)
    path = tmp_path / "vocab.txt"
    vocab.save(path)
    assert path.read_text(encoding="utf-8").split("\n")[:5] == ["<pad>", "<unk>", "<bos>", "<eos>", "e"]
    loaded = Vocab.load(path, reserved_tokens=SEQUENCE_RESERVED)
    assert loaded.idx_to_token == vocab.idx_to_token  # includes the space token
    assert loaded.to_ids(tf.constant([" ", "q"])).numpy().tolist() == [vocab.to_ids(" "), 1]
    with pytest.raises(ValueError, match="reserved"):
        Vocab.load(path)
    with pytest.raises(FileNotFoundError, match="nope"):
        Vocab.load(tmp_path / "nope.txt")
    # Line breaks and backslashes are escaped, so any token is one line and reads back as it was.
    odd = Vocab(["a\nb", "\n", "\r", "\\", "\\n", "x\\y"])
    odd.save(tmp_path / "odd.txt")
    assert len((tmp_path / "odd.txt").read_text(encoding="utf-8").split("\n")) == len(odd) + 1
    assert Vocab.load(tmp_path / "odd.txt").idx_to_token == odd.idx_to_token


def test_time_machine_course_figures(data_file):
    text = load_time_machine(data_file("timemachine/timemachine.txt"))
    # D2L 1.0 cleans the whole text (its corpus also keeps the trailing space that `strip` drops).
    whole_text_chars = CharTokenizer().tokenize(text)
    assert len(whole_text_chars) == 173_427
    assert "speak of him was expounding" in "".join(whole_text_chars)  # across a line break
    # D2L 0.17 cleans each line and runs the lines together.
    lines = text.split("\n")
    chars = [token for line in CharTokenizer().tokenize(lines) for token in line]
    assert len(chars) == 170_580
    assert "speak of himwas expounding" in "".join(chars)
    assert set(chars) == set(whole_text_chars)
    char_vocab = Vocab(chars)
    assert len(char_vocab) == 28
    assert char_vocab.idx_to_token[:3] == ["<unk>", " ", "e"]
    words = [token for line in WordTokenizer().tokenize(lines) for token in line]
    assert len(words) == 32_775
    assert len(Vocab(words)) == 4_579 + 1
    ids = char_vocab.to_ids(tf.constant(chars))
    assert char_vocab.to_tokens(ids.numpy()) == chars


def test_vocab_and_tokenizer_in_saved_model(tmp_path):
    vocab = Vocab(list("the time machine"))
    tokenizer = CharTokenizer()
    module = tf.Module()
    module.vocab = vocab
    module.encode = tf.function(
        lambda text: vocab.to_ids(tokenizer.tokenize(text)),
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    module.decode = tf.function(
        lambda ids: tokenizer.detokenize(vocab.to_tokens(ids)),
        input_signature=[tf.RaggedTensorSpec([None, None], tf.int32)],
    )
    tf.saved_model.save(module, str(tmp_path / "text"))
    loaded = tf.saved_model.load(str(tmp_path / "text"))
    ids = loaded.encode(tf.constant(["The Dice!", "time"]))
    assert ids.to_list() == vocab.to_ids([list("the dice"), list("time")])
    assert loaded.decode(ids).numpy().tolist() == [b"the <unk>ice", b"time"]
