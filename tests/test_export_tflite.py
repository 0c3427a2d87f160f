"""zoo.export.tflite: the converted models' operators, and their outputs in the LiteRT interpreter
against the Keras models they come from."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_models import MODELS, VOCAB, sequential, token_ids

import zoo
import zoo.export
from zoo import compat
from zoo.models.tagger import build_tagger

litert = pytest.importorskip("ai_edge_litert.interpreter")

FUSED = "UNIDIRECTIONAL_SEQUENCE_LSTM"


def operators(path):
    with open(path, "rb") as file:
        return [name for _, name in compat.litert_operators(file.read())]


def signature_runner(path, name=None):
    return litert.Interpreter(model_path=str(path)).get_signature_runner(name)


def run_once(runner, inputs):
    outputs = runner(**inputs)
    return {name: np.array(value) for name, value in outputs.items()}


def exported(name, tmp_path):
    make_model, make_inputs, batch_size, fused = MODELS[name]
    model = make_model()
    inputs = make_inputs()
    expected = np.array(model(inputs))
    path = tmp_path / f"{name}.tflite"
    zoo.export.tflite(model, path, batch_size=batch_size)
    return model, inputs, expected, path, fused


@pytest.mark.parametrize("name", sorted(MODELS))
def test_litert_matches_keras_with_one_fused_op_per_lstm(name, tmp_path):
    _, inputs, expected, path, fused = exported(name, tmp_path)
    names = operators(path)
    assert names.count(FUSED) == fused
    assert not [op for op in names if op.startswith("CUSTOM")]
    if not fused:
        assert "WHILE" in names
    runner = signature_runner(path)
    (input_name,) = runner.get_input_details()
    first = run_once(runner, {input_name: inputs})
    (output,) = first.values()
    np.testing.assert_allclose(output, expected, atol=1e-5)
    # The fused op keeps its states in variable tensors: a second call must not start from them.
    (again,) = run_once(runner, {input_name: inputs}).values()
    np.testing.assert_array_equal(again, output)


def test_time_axis_is_dynamic(tmp_path):
    model, _, _, path, _ = exported("language_model", tmp_path)
    runner = signature_runner(path)
    for time in (1, 4, 13):
        ids = token_ids(1, time, seed=time)
        np.testing.assert_allclose(runner(token_ids=ids)["logits"], model(ids), atol=1e-5)


def test_dynamic_quantization_is_smaller_and_close(tmp_path):
    model = zoo.models.LanguageModel(64, cell_type="lstm", units=128, num_layers=2, embedding_dim=64)
    ids = token_ids(1, 12)
    expected = np.array(model(ids))
    float_path, int8_path = tmp_path / "float.tflite", tmp_path / "int8.tflite"
    zoo.export.tflite(model, float_path)
    zoo.export.tflite(model, int8_path, quantize="dynamic")
    assert os.path.getsize(float_path) / os.path.getsize(int8_path) >= 3.5
    assert operators(int8_path).count(FUSED) == 2
    quantized = signature_runner(int8_path)(token_ids=ids)["logits"]
    error = np.abs(quantized - expected).max()
    assert 0 < error < 0.05 * np.abs(expected).max()


def test_runs_without_zoo_or_ops(tmp_path):
    """The file needs only LiteRT: a process that never imports zoo or ops runs it."""
    _, inputs, expected, path, _ = exported("masked_bidirectional_stack", tmp_path)
    np.save(tmp_path / "inputs.npy", inputs)
    script = f"""
import json, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
runner = Interpreter(model_path={str(path)!r}).get_signature_runner()
(name,) = runner.get_input_details()
(output,) = runner(**{{name: np.load({str(tmp_path / "inputs.npy")!r})}}).values()
np.save({str(tmp_path / "outputs.npy")!r}, output)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("zoo", "ops", "tensorflow"))))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
    np.testing.assert_allclose(np.load(tmp_path / "outputs.npy"), expected, atol=1e-5)


@pytest.mark.parametrize(
    "make_model, match",
    [
        (lambda: sequential(keras.layers.LSTM(4)), "LSTM 'lstm.*Keras's own LSTM"),
        (lambda: sequential(zoo.layers.LSTM(4, activation="relu")), "activation is tanh"),
        (
            lambda: keras.Sequential([keras.Input((5, 3), batch_size=1), zoo.layers.GRU(4, stateful=True)]),
            "GRU 'gru.*is stateful",
        ),
    ],
)
def test_rejects_what_it_cannot_convert(make_model, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        zoo.export.tflite(make_model(), tmp_path / "model.tflite")
    assert not (tmp_path / "model.tflite").exists()


def test_rejects_an_lstm_whose_cell_state_is_used(tmp_path):
    inputs = keras.Input((None, 3))
    _, _, cell_state = zoo.layers.LSTM(4, return_state=True, name="encoder")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(cell_state))
    with pytest.raises(ValueError, match=r"fused 0 of the 1 LSTM.*\(encoder\).*cell state c"):
        zoo.export.tflite(model, tmp_path / "model.tflite")


def test_rejects_bad_arguments(tmp_path):
    model = MODELS["lstm"][0]()
    with pytest.raises(ValueError, match="quantize must be one of"):
        zoo.export.tflite(model, tmp_path / "m.tflite", quantize="int4")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        zoo.export.tflite(model, tmp_path / "m.tflite", batch_size=0)
    with pytest.raises(ValueError, match="build the model"):
        zoo.export.tflite(zoo.models.LanguageModel(VOCAB, units=4), tmp_path / "m.tflite")


class Doubler(keras.Model):
    """A subclassed model: its inputs cannot be read off a functional graph."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.lstm = zoo.layers.LSTM(4, return_sequences=True)

    def call(self, inputs):
        return 2.0 * self.lstm(inputs)


def test_subclassed_model_takes_an_input_signature(tmp_path):
    model = Doubler()
    inputs = np.random.default_rng(0).normal(size=(1, 5, 3)).astype("float32")
    expected = np.array(model(inputs))
    with pytest.raises(ValueError, match="cannot tell the inputs of Doubler.*pass input_signature"):
        zoo.export.tflite(model, tmp_path / "model.tflite")
    signature = [tf.TensorSpec([None, 3], tf.float32, name="features")]
    zoo.export.tflite(model, tmp_path / "model.tflite", input_signature=signature)
    assert operators(tmp_path / "model.tflite").count(FUSED) == 1
    output = signature_runner(tmp_path / "model.tflite")(features=inputs)["output"]
    np.testing.assert_allclose(output, expected, atol=1e-5)


def char_ids(batch, time, chars, lengths, seed=1):
    ids = np.random.default_rng(seed).integers(1, 12, size=(batch, time, chars)).astype("int32")
    ids[:, :, chars - 2 :] = 0  # short words: padded characters
    for row, length in enumerate(lengths):
        ids[row, length:] = 0
    return ids


def char_tagger(output, seed):
    keras.utils.set_random_seed(seed)
    return build_tagger(
        output,
        vocab_size=VOCAB,
        num_tags=5,
        embedding_dim=6,
        units=5,
        char_vocab_size=12,
        char_embedding_dim=3,
        char_filters=4,
    )


@pytest.mark.parametrize(
    "make_model, fused",
    [
        (lambda: char_tagger("crf", 0), 2),
        (lambda: zoo.models.AveragedEnsemble([char_tagger("softmax", seed) for seed in (1, 2)]), 4),
    ],
)
def test_taggers_with_character_features(make_model, fused, tmp_path):
    """The recipe's taggers: word and character ids in (right-padded in both), CRF tags or tag
    probabilities out."""
    model = make_model()
    lengths = [7, 4]
    inputs = {"word_ids": token_ids(2, 7, lengths=lengths), "char_ids": char_ids(2, 7, 5, lengths)}
    expected = np.array(model((inputs["word_ids"], inputs["char_ids"])))
    path = tmp_path / "tagger.tflite"
    zoo.export.tflite(model, path, batch_size=2)
    assert operators(path).count(FUSED) == fused
    output = signature_runner(path)(**inputs)["output"]
    np.testing.assert_allclose(output, expected, atol=1e-5)


def translator(attention, beam_size):
    model = zoo.models.Seq2Seq(
        VOCAB, VOCAB + 3, embedding_dim=6, units=8, num_layers=2, attention=attention, unk_id=1
    )
    model((token_ids(1, 4), token_ids(1, 3)))
    source = zoo.text.Vocab([[str(i) for i in range(VOCAB)]], reserved_tokens=zoo.text.SEQUENCE_RESERVED)
    target = zoo.text.Vocab([[str(i) for i in range(VOCAB + 3)]], reserved_tokens=zoo.text.SEQUENCE_RESERVED)
    return zoo.models.Translator(
        model,
        source,
        target,
        max_source_length=6,
        max_output_length=7,
        beam_size=beam_size,
        length_penalty=1.0 if beam_size else 0.0,
    )


@pytest.mark.parametrize("attention", [False, True])
def test_translator_beam_search_as_a_signature(attention, tmp_path):
    serving = translator(attention, beam_size=3)
    signature = serving.ids_signature()
    path = tmp_path / "translate.tflite"
    zoo.export.tflite(serving.model, path, signatures={"translate": signature})
    translate = signature_runner(path, "translate")
    for length in (1, 3, 5):
        source = np.zeros((1, 6), "int32")
        source[0, :length] = token_ids(1, length, seed=length)[0]
        source[0, length] = serving.source_eos
        expected = signature(tf.constant(source))
        outputs = translate(source_ids=source)
        np.testing.assert_array_equal(outputs["token_ids"], expected["token_ids"])
        np.testing.assert_array_equal(outputs["lengths"], expected["lengths"])


def test_converter_failures_name_the_ops_and_where(tmp_path):
    """Greedy decoding grows a TensorArray, which LiteRT cannot lower without Flex ops."""
    serving = translator(attention=False, beam_size=None)
    with pytest.raises(ValueError, match=r"cannot lower a TensorArray .*while"):
        zoo.export.tflite(
            serving.model, tmp_path / "m.tflite", signatures={"translate": serving.ids_signature()}
        )
    assert not (tmp_path / "m.tflite").exists()
    with pytest.raises(ValueError, match="signature 'translate' needs a tf.function with an input_signature"):
        zoo.export.tflite(serving.model, tmp_path / "m.tflite", signatures={"translate": tf.function(len)})


class NewAxis(keras.Model):
    """Adds an axis by slicing a tensor of two unknown dimensions, which LiteRT's builtin slice lacks."""

    def call(self, inputs):
        return tf.reduce_sum(tf.cast(tf.not_equal(inputs, 0.0), inputs.dtype)[:, :, :, None], axis=-1)


def test_an_op_litert_lacks_is_named_with_its_layer(tmp_path):
    model = NewAxis(name="new_axis")
    model(np.ones((1, 2, 3), "float32"))
    with pytest.raises(ValueError, match=r"LiteRT has no builtin op for tf\.StridedSlice at new_axis"):
        zoo.export.tflite(
            model, tmp_path / "m.tflite", input_signature=[tf.TensorSpec([None, None], tf.float32)]
        )
