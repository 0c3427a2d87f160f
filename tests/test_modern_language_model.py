"""LanguageModel over every cell, in residual blocks (the modern cells' default) or the plain stack:
a training step, `.keras` and SavedModel round trips, streaming against the whole sequence, stateful
batches against one long batch, generation against the model's own greedy choices, LiteRT, and the
rejections (bad cell names, ONNX of residual blocks)."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_models import step_logits_in_plain_tensorflow

import zoo
import zoo.export
from recipes import language_model as recipe
from zoo.models.language_model import CELL_TYPES
from zoo.models.residual_block import ResidualRecurrentBlock
from zoo.models.temporal_conv import TemporalConv

VOCAB = 13
UNITS = 8


def language_model(cell_type, **kwargs):
    kwargs.setdefault("embedding_dim", 6)
    if cell_type in ("slstm", "mlstm"):
        kwargs.setdefault("recurrent_layer_kwargs", {"num_heads": 2})
    return zoo.models.LanguageModel(VOCAB, cell_type=cell_type, units=UNITS, num_layers=2, **kwargs)


def token_ids(batch=2, time=7, seed=3):
    return np.random.default_rng(seed).integers(0, VOCAB, size=(batch, time)).astype("int32")


def stream(model, ids):
    """The logits of feeding `ids` one token at a time through `streaming_step` from zero states."""
    states = model.initial_state(ids.shape[0])
    logits = []
    for position in range(ids.shape[1]):
        step_logits, states = model.streaming_step(ids[:, position : position + 1], states)
        logits.append(np.array(step_logits))
    return np.concatenate(logits, axis=1)


@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_default_blocks_classic_plain_modern_residual(cell_type):
    model = language_model(cell_type)
    expected = "plain" if cell_type in ("rnn", "gru", "lstm") else "residual"
    assert model.block == expected
    assert model.conv_width == (4 if cell_type == "rglru" else 0)


@pytest.mark.parametrize(
    "cell_type, block",
    [(cell, None) for cell in CELL_TYPES] + [("lstm", "residual"), ("mingru", "plain")],
)
def test_trains_a_step_and_streams_the_whole_sequence(cell_type, block):
    model = language_model(cell_type, block=block, dropout=0.1)
    ids = token_ids()
    # Built before fit, as the recipe builds it: fit's own symbolic build of an RG-LRU model fails
    # in the loop's gradient for some hash seeds (InvalidArgumentError in an AddN of shapes [0] and
    # [3 * units]).
    model(ids)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = [np.array(weight) for weight in model.get_weights()]
    history = model.fit(ids, np.roll(ids, -1, axis=1), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    changed = [not np.allclose(old, new) for old, new in zip(before, model.get_weights())]
    assert all(changed), "every weight gets a gradient"
    expected = np.array(model(ids))
    np.testing.assert_allclose(stream(model, ids), expected, atol=1e-5)


@pytest.mark.parametrize("cell_type", ["rglru", "mlstm", "lstm"])
def test_keras_file_and_saved_model_give_the_same_logits(cell_type, tmp_path):
    model = language_model(cell_type, block="residual")
    ids = token_ids()
    expected = np.array(model(ids))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(np.array(loaded(ids)), expected, atol=1e-6)
    np.testing.assert_allclose(stream(loaded, ids), expected, atol=1e-5)

    module = tf.Module()
    module.model = model
    path = zoo.export.saved_model(module, tmp_path / "saved_model", {}, streaming_step=model)
    logits = step_logits_in_plain_tensorflow(path, ids, tmp_path)
    np.testing.assert_allclose(logits, expected, atol=1e-5)


@pytest.mark.parametrize("cell_type", ["rglru", "slstm"])
def test_stateful_batches_carry_the_recurrent_state_and_the_convolution_window(cell_type):
    stateful = language_model(cell_type, stateful=True, conv_width=3)
    ids = token_ids(time=10)
    stateful(ids[:, :1])
    stateless = stateful.stateless_copy()
    expected = np.array(stateless(ids))
    stateful.reset_state()
    halves = [np.array(stateful(ids[:, :4])), np.array(stateful(ids[:, 4:]))]
    np.testing.assert_allclose(np.concatenate(halves, axis=1), expected, atol=1e-5)
    stateful.reset_state()
    np.testing.assert_allclose(np.array(stateful(ids[:, :4])), expected[:, :4], atol=1e-5)


@pytest.mark.parametrize("cell_type", ["mingru", "rglru"])
def test_greedy_generation_follows_the_models_own_argmax(cell_type):
    model = language_model(cell_type)
    prompt = token_ids(batch=2, time=3)
    model(prompt)
    generated = np.array(model.generate_ids(prompt, 5))
    assert generated.shape == (2, 5)
    sequence = prompt
    for position in range(5):
        choice = np.array(model(sequence))[:, -1].argmax(axis=-1)
        np.testing.assert_array_equal(generated[:, position], choice)
        sequence = np.concatenate([sequence, choice[:, None].astype("int32")], axis=1)


def test_litert_runs_residual_blocks_with_the_convolution(tmp_path):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    model = language_model("rglru")
    ids = token_ids()
    expected = np.array(model(ids))
    path = tmp_path / "model.tflite"
    zoo.export.tflite(model, path, batch_size=2, streaming_step=True)
    interpreter = litert.Interpreter(model_path=str(path))
    whole = interpreter.get_signature_runner("serving_default")(token_ids=ids)["logits"]
    np.testing.assert_allclose(whole, expected, atol=1e-5)
    step = interpreter.get_signature_runner("step")
    states = {
        f"state_{i}": np.zeros((2,) + tuple(s.shape[1:]), "float32")
        for i, s in enumerate(model.initial_state(1))
    }
    logits = []
    for position in range(ids.shape[1]):
        outputs = step(token_ids=ids[:, position : position + 1], **states)
        states = {name: outputs[name] for name in states}
        logits.append(outputs["logits"])
    np.testing.assert_allclose(np.concatenate(logits, axis=1), expected, atol=1e-5)


def test_onnx_refuses_residual_blocks_by_name():
    pytest.importorskip("onnx")
    model = language_model("mingru")
    model(token_ids())
    with pytest.raises(ValueError, match="residual blocks .* have no ONNX converter"):
        zoo.export.onnx(model, "/nonexistent/model.onnx")


def test_temporal_conv_is_a_causal_depthwise_convolution():
    conv = TemporalConv(3, bias_initializer="ones")
    inputs = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    outputs, window = conv(inputs)
    kernel = np.array(conv.kernel)
    padded = np.concatenate([np.zeros((2, 2, 4), "float32"), inputs], axis=1)
    expected = sum(padded[:, k : k + 5] * kernel[k] for k in range(3)) + 1.0
    np.testing.assert_allclose(np.array(outputs), expected, atol=1e-6)
    np.testing.assert_allclose(np.array(window), inputs[:, -2:].reshape(2, 8))
    assert TemporalConv.from_config(conv.get_config()).get_config() == conv.get_config()


def test_block_config_round_trips_and_rejects_bad_arguments():
    block = ResidualRecurrentBlock(
        "slstm", 8, conv_width=4, mlp_expansion=2, recurrent_layer_kwargs={"num_heads": 2}
    )
    assert ResidualRecurrentBlock.from_config(block.get_config()).get_config() == block.get_config()
    assert block.state_sizes == [8, 8, 8, 8, 24]
    with pytest.raises(ValueError, match="`cell_type` must be one of"):
        ResidualRecurrentBlock("transformer", 8)
    with pytest.raises(ValueError, match="the residual connection needs the same width"):
        ResidualRecurrentBlock("mingru", 8)(np.zeros((1, 2, 5), "float32"))


def test_language_model_rejects_bad_cells_and_blocks():
    with pytest.raises(ValueError, match="cell_type must be one of rnn, gru, lstm, mingru"):
        zoo.models.LanguageModel(VOCAB, cell_type="transformer")
    with pytest.raises(ValueError, match="block must be one of"):
        zoo.models.LanguageModel(VOCAB, cell_type="lstm", block="dense")
    with pytest.raises(ValueError, match="residual blocks are unidirectional"):
        zoo.models.LanguageModel(VOCAB, cell_type="lstm", block="residual", bidirectional=True)
    with pytest.raises(ValueError, match="conv_width is the convolution of residual blocks"):
        zoo.models.LanguageModel(VOCAB, cell_type="lstm", conv_width=4)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cell", "transformer"], r"argument --cell: invalid choice: 'transformer'"),
        (["--cell", "mlstm", "--units", "30", "--heads", "4"], r"--heads 4 must divide --units 30"),
        (["--cell", "mingru", "--bidirectional"], r"--bidirectional needs --block plain"),
        (["--cell", "gru", "--conv-width", "4"], r"--conv-width is the convolution of residual blocks"),
    ],
)
def test_recipe_rejects_bad_cell_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        recipe.main(argv)
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_configs_saved_before_residual_blocks_load_as_plain_stacks():
    config = language_model("lstm").get_config()
    for key in ("block", "conv_width", "mlp_expansion"):
        config.pop(key)
    model = zoo.models.LanguageModel.from_config(config)
    assert (model.block, model.conv_width) == ("plain", 0)
    assert isinstance(model.rnn, zoo.layers.StackedRNN)
