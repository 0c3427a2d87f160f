"""BPE with sentencepiece: the same ids eagerly, in tf.function, in tf.data and after a SavedModel trip."""

import pathlib

import pytest
import sentencepiece as spm
import tensorflow as tf

from zoo.text import BPETokenizer

CORPUS = [
    "the time traveller for so it will be convenient to speak of him",
    "was expounding a recondite matter to us his grey eyes shone and twinkled",
    "and his usually pale face was flushed and animated the fire burned brightly",
] * 20
SAMPLES = ["the time traveller", "his grey eyes twinkled brightly", "unseen wordz ÿ", ""]


@pytest.fixture(scope="module")
def tokenizer():
    return BPETokenizer.train(CORPUS, vocab_size=120)


def test_train_is_bpe_with_padding_at_zero(tokenizer):
    processor = spm.SentencePieceProcessor(model_proto=tokenizer.model_proto)
    assert tokenizer.vocab_size == 120
    assert (processor.pad_id(), processor.unk_id(), processor.bos_id(), processor.eos_id()) == (0, 1, 2, 3)
    assert tokenizer.id_of("<eos>") == 3
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    model = model_pb2.ModelProto.FromString(tokenizer.model_proto)
    assert model.trainer_spec.model_type == model_pb2.TrainerSpec.BPE


def test_same_ids_everywhere(tokenizer, tmp_path):
    expected = [tokenizer.python_tokenize(text) for text in SAMPLES]
    assert tokenizer.tokenize(SAMPLES) == expected
    assert tokenizer.tokenize(SAMPLES[0]) == expected[0]
    in_function = tf.function(tokenizer.tokenize)(tf.constant(SAMPLES))
    assert in_function.to_list() == expected
    mapped = tf.data.Dataset.from_tensor_slices(SAMPLES).map(tokenizer.tokenize)
    assert [ids.numpy().tolist() for ids in mapped] == expected

    module = tf.Module()
    module.tokenizer = tokenizer
    module.tokenize = tf.function(
        lambda text: tokenizer.tokenize(text), input_signature=[tf.TensorSpec([None], tf.string)]
    )
    module.detokenize = tf.function(
        lambda ids: tokenizer.detokenize(ids), input_signature=[tf.RaggedTensorSpec([None, None], tf.int32)]
    )
    tf.saved_model.save(module, str(tmp_path / "bpe"))
    loaded = tf.saved_model.load(str(tmp_path / "bpe"))
    assert loaded.tokenize(tf.constant(SAMPLES)).to_list() == expected
    texts = loaded.detokenize(tf.ragged.constant(expected, dtype=tf.int32, ragged_rank=1))
    assert [text.decode() for text in texts.numpy()] == [
        spm.SentencePieceProcessor(model_proto=tokenizer.model_proto).decode(ids) for ids in expected
    ]


def test_detokenize_round_trip(tokenizer):
    assert tokenizer.detokenize(tokenizer.tokenize(SAMPLES[:2])) == SAMPLES[:2]
    assert tokenizer.detokenize(tokenizer.tokenize(SAMPLES[1])) == SAMPLES[1]
    with pytest.raises(IndexError, match="out of range"):
        tokenizer.detokenize([5, 120])
    with pytest.raises(tf.errors.InvalidArgumentError, match="vocab size"):
        tokenizer.detokenize(tf.ragged.constant([[5, 999]], dtype=tf.int32))


def test_save_load(tokenizer, tmp_path):
    path = tmp_path / "bpe.model"
    tokenizer.save(path)
    loaded = BPETokenizer.load(path)
    assert loaded.tokenize(SAMPLES) == tokenizer.tokenize(SAMPLES)
    assert spm.SentencePieceProcessor(model_file=str(path)).encode(SAMPLES[0]) == tokenizer.tokenize(
        SAMPLES[0]
    )
    with pytest.raises(FileNotFoundError, match="missing.model"):
        BPETokenizer.load(tmp_path / "missing.model")
    (tmp_path / "junk.model").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a sentencepiece model"):
        BPETokenizer.load(tmp_path / "junk.model")


def test_train_errors(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        BPETokenizer.train(["", "   \n"], vocab_size=50)
    with pytest.raises(ValueError, match="too large"):
        BPETokenizer.train(["ab ba"], vocab_size=500)
    with pytest.raises(FileNotFoundError, match="absent.txt"):
        BPETokenizer.train(tmp_path / "absent.txt", vocab_size=50)


def test_train_from_file(data_file):
    path = data_file("timemachine/timemachine.txt")
    tokenizer = BPETokenizer.train(path, vocab_size=300)
    assert tokenizer.tokenize("the time machine") == BPETokenizer.train([pathlib.Path(path)], 300).tokenize(
        "the time machine"
    )


def test_eager_calls_datasets_and_functions_survive_a_reseed(tokenizer):
    import keras

    expected = tokenizer.python_tokenize(SAMPLES[1])
    mapped = tf.data.Dataset.from_tensor_slices(SAMPLES[1:2]).map(tokenizer.tokenize)
    in_function = tf.function(tokenizer.tokenize)
    assert in_function(tf.constant(SAMPLES[1])).numpy().tolist() == expected
    # Clears TF's kernel cache: a model resource private to its kernel would be gone under the
    # dataset and the function traced before.
    keras.utils.set_random_seed(7)
    assert tokenizer.tokenize(SAMPLES[1]) == expected
    assert [ids.numpy().tolist() for ids in mapped] == [expected]
    assert in_function(tf.constant(SAMPLES[1])).numpy().tolist() == expected
