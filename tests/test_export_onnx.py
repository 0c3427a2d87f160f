"""zoo.export.onnx: native ONNX recurrent nodes, and the exported models in ONNX Runtime against the
Keras models they come from."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from export_models import MODELS, VOCAB, features, masked_embedding, sequential, token_ids

import zoo
import zoo.export

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

RECURRENT_NODES = ("LSTM", "GRU", "RNN")
# The recurrent nodes each model of export_models becomes, in graph order.
EXPECTED_NODES = {
    "lstm": ["LSTM"],
    "lstm_last_output_no_bias": ["LSTM"],
    "go_backwards": ["LSTM"],
    "stacked_embedding_dense": ["LSTM", "LSTM"],
    "bidirectional": ["LSTM"],
    "gru_simple_rnn": ["GRU", "GRU", "RNN"],
    "masked_bidirectional_stack": ["LSTM", "LSTM", "LSTM"],
    "masked_backward_last": ["LSTM"],
    "masked_gru": ["GRU"],
    "language_model": ["LSTM", "LSTM"],
    "classifier": ["LSTM", "LSTM"],
    "fine_tuned_classifier": ["LSTM", "LSTM"],
    "ensemble": ["LSTM", "LSTM"],
}


def export(model, path):
    zoo.export.onnx(model, path)
    graph = onnx.load(str(path)).graph
    return graph, onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run(session, *inputs):
    names = [spec.name for spec in session.get_inputs()]
    return session.run(None, dict(zip(names, inputs)))


def recurrent_nodes(graph):
    return [node for node in graph.node if node.op_type in RECURRENT_NODES + ("Loop", "Scan")]


def attribute(node, name):
    for item in node.attribute:
        if item.name == name:
            return onnx.helper.get_attribute_value(item)
    return None


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_matches_keras_with_native_recurrent_nodes(name, tmp_path):
    make_model, make_inputs, _, _ = MODELS[name]
    model, inputs = make_model(), make_inputs()
    expected = model(inputs)
    graph, session = export(model, tmp_path / "model.onnx")
    assert [node.op_type for node in recurrent_nodes(graph)] == EXPECTED_NODES[name]
    (output,) = run(session, inputs)
    np.testing.assert_allclose(output, expected, atol=1e-5)


def test_node_attributes_follow_the_layers(tmp_path):
    graph, _ = export(MODELS["masked_bidirectional_stack"][0](), tmp_path / "masked.onnx")
    first, _, last = recurrent_nodes(graph)
    assert attribute(first, "direction") == b"bidirectional"
    assert first.input[4], "a masked layer's node reads sequence_lens"
    assert attribute(last, "direction") is None
    graph, _ = export(MODELS["gru_simple_rnn"][0](), tmp_path / "gru.onnx")
    reset_after, reset_before, _ = recurrent_nodes(graph)
    assert attribute(reset_after, "linear_before_reset") == 1
    assert attribute(reset_before, "linear_before_reset") == 0
    assert attribute(reset_before, "direction") == b"reverse"


@pytest.mark.parametrize("merge_mode", ["concat", "ave", "mul", None])
def test_bidirectional_merge_modes_and_states(merge_mode, tmp_path):
    inputs = keras.Input((None,), dtype="int32")
    embedded = masked_embedding()(inputs)
    results = zoo.layers.Bidirectional(
        zoo.layers.GRU(5, return_sequences=True, return_state=True), merge_mode=merge_mode
    )(embedded)
    model = keras.Model(inputs, results)
    ids = token_ids(2, 6, lengths=[6, 2])
    _, session = export(model, tmp_path / "model.onnx")
    outputs = run(session, ids)
    expected = model(ids)
    assert len(outputs) == len(expected)
    for output, reference in zip(outputs, expected):
        np.testing.assert_allclose(output, reference, atol=1e-5)


def test_keras_own_layers_and_other_activations(tmp_path):
    model = sequential(
        keras.layers.LSTM(6, return_sequences=True),
        zoo.layers.GRU(5, recurrent_activation="hard_sigmoid", return_sequences=True),
        keras.layers.SimpleRNN(4, activation="relu", return_sequences=True),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("tanh"),
        keras.layers.Dense(3, activation="softmax"),
    )
    model.layers[3].set_weights([np.full(4, 2.0), np.full(4, 0.5), np.full(4, 0.1), np.full(4, 3.0)])
    inputs = features(2, 7)
    graph, session = export(model, tmp_path / "model.onnx")
    assert [node.op_type for node in recurrent_nodes(graph)] == ["LSTM", "GRU", "RNN"]
    np.testing.assert_allclose(run(session, inputs)[0], model(inputs), atol=1e-5)


def test_masking_layer(tmp_path):
    model = sequential(
        keras.layers.Masking(0.0), zoo.layers.LSTM(6, return_sequences=True), zoo.layers.GRU(4)
    )
    inputs = features(3, 6)
    inputs[1, 4:] = 0.0
    inputs[2, 1:] = 0.0
    expected = model(inputs)
    graph, session = export(model, tmp_path / "model.onnx")
    assert all(node.input[4] for node in recurrent_nodes(graph))
    np.testing.assert_allclose(run(session, inputs)[0], expected, atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "max", "mean_max"])
def test_classifier_poolings(pooling, tmp_path):
    model = zoo.models.SequenceClassifier(
        VOCAB, num_classes=3, embedding_dim=6, units=8, cell_type="gru", pooling=pooling, pool_embeddings=True
    )
    ids = token_ids(3, 7, lengths=[7, 3, 0])
    expected = model(ids)
    _, session = export(model, tmp_path / "model.onnx")
    np.testing.assert_allclose(run(session, ids)[0], expected, atol=1e-5)


def test_one_hot_language_model(tmp_path):
    model = zoo.models.LanguageModel(VOCAB, cell_type="rnn", units=8, embedding_dim=None)
    ids = token_ids(2, 5)
    expected = model(ids)
    graph, session = export(model, tmp_path / "model.onnx")
    assert [node.op_type for node in recurrent_nodes(graph)] == ["RNN"]
    np.testing.assert_allclose(run(session, ids)[0], expected, atol=1e-5)


def test_runs_without_zoo_or_ops(tmp_path):
    """The file needs only ONNX Runtime: a process that never imports zoo or ops runs it."""
    make_model, make_inputs, _, _ = MODELS["masked_bidirectional_stack"]
    model, inputs = make_model(), make_inputs()
    expected = model(inputs)
    zoo.export.onnx(model, tmp_path / "model.onnx")
    np.save(tmp_path / "inputs.npy", inputs)
    script = f"""
import json, sys
import numpy as np
import onnxruntime
session = onnxruntime.InferenceSession({str(tmp_path / "model.onnx")!r}, providers=["CPUExecutionProvider"])
(output,) = session.run(None, {{session.get_inputs()[0].name: np.load({str(tmp_path / "inputs.npy")!r})}})
np.save({str(tmp_path / "outputs.npy")!r}, output)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("zoo", "ops", "tensorflow", "keras"))))
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
        (lambda: sequential(keras.layers.Conv1D(4, 3)), "Conv1D 'conv1d.*no ONNX converter"),
        (lambda: sequential(zoo.layers.LSTM(4, activation="softplus")), "LSTM 'lstm.*'softplus'"),
        (
            lambda: sequential(keras.layers.RNN(zoo.cells.PeepholeLSTMCell(4))),
            "RNN 'rnn.*no ONNX converter",
        ),
        (
            lambda: keras.Sequential([keras.Input((5, 3), batch_size=1), zoo.layers.GRU(4, stateful=True)]),
            "GRU 'gru.*is stateful",
        ),
        (lambda: zoo.models.SequenceTagger(VOCAB, num_tags=3, embedding_dim=4, units=4), "SequenceTagger"),
    ],
)
def test_rejects_what_it_cannot_convert(make_model, match, tmp_path):
    model = make_model()
    if not model.built:
        model(token_ids(1, 4))
    with pytest.raises(ValueError, match=match):
        zoo.export.onnx(model, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()
