"""Streaming inference: LanguageModel's one-token step, fed token by token from zero states, against
the model on the whole sequence, in Keras, in LiteRT's `step` signature and in a SavedModel's."""

import os
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from export_models import step_logits_in_plain_tensorflow

import zoo
import zoo.export
from zoo.export import streaming

VOCAB = 17


def language_model(cell_type, num_layers=2, embedding_dim=5):
    model = zoo.models.LanguageModel(
        VOCAB, cell_type=cell_type, units=8, num_layers=num_layers, embedding_dim=embedding_dim
    )
    ids = token_ids()
    return model, ids, np.array(model(ids))


def token_ids(batch=2, time=9):
    return np.random.default_rng(3).integers(0, VOCAB, size=(batch, time)).astype("int32")


def stream(step, ids, state_shapes):
    """Feeds `ids` one token at a time to `step(token_ids=..., state_0=..., ...)` from zero states."""
    states = {streaming.state_name(i): np.zeros(shape, "float32") for i, shape in enumerate(state_shapes)}
    logits = []
    for position in range(ids.shape[1]):
        outputs = step(token_ids=ids[:, position : position + 1], **states)
        states = {name: np.array(outputs[name]) for name in states}
        logits.append(np.array(outputs[streaming.LOGITS]))
    return np.concatenate(logits, axis=1)


def state_shapes(model, batch):
    return [(batch,) + tuple(state.shape[1:]) for state in model.initial_state(1)]


@pytest.mark.parametrize(
    "cell_type, num_layers, embedding_dim", [("lstm", 2, 5), ("gru", 1, 5), ("rnn", 2, None)]
)
def test_keras_step_function_matches_the_whole_sequence(cell_type, num_layers, embedding_dim):
    model, ids, expected = language_model(cell_type, num_layers, embedding_dim)
    step = streaming.step_function(model)
    shapes = state_shapes(model, ids.shape[0])

    def by_name(token_ids, **states):
        return step(token_ids, *[states[streaming.state_name(i)] for i in range(len(shapes))])

    logits = stream(by_name, ids, shapes)
    np.testing.assert_allclose(logits, expected, atol=1e-5)


@pytest.mark.parametrize("cell_type", ["lstm", "gru"])
def test_litert_step_signature(cell_type, tmp_path):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    model, ids, expected = language_model(cell_type)
    path = tmp_path / "model.tflite"
    zoo.export.tflite(model, path, batch_size=2, streaming_step=True)
    interpreter = litert.Interpreter(model_path=str(path))
    count = len(model.initial_state(1))
    state_names = [streaming.state_name(i) for i in range(count)]
    signatures = interpreter.get_signature_list()
    assert sorted(signatures["step"]["inputs"]) == sorted(["token_ids"] + state_names)
    assert sorted(signatures["step"]["outputs"]) == sorted(["logits"] + state_names)
    logits = stream(interpreter.get_signature_runner("step"), ids, state_shapes(model, 2))
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    # The sequence signature sits beside it, unchanged.
    whole = interpreter.get_signature_runner("serving_default")(token_ids=ids)["logits"]
    np.testing.assert_allclose(whole, expected, atol=1e-5)


def test_saved_model_step_runs_in_plain_tensorflow(tmp_path):
    """A server's SavedModel with the `step` signature, loaded where zoo and ops were never imported."""
    model, ids, expected = language_model("lstm")
    module = tf.Module()
    module.model = model
    zoo.export.saved_model(module, tmp_path / "saved_model", {}, streaming_step=model)
    logits = step_logits_in_plain_tensorflow(tmp_path / "saved_model", ids, tmp_path)
    np.testing.assert_allclose(logits, expected, atol=1e-4)


def test_saved_model_keeps_the_step_name_for_the_streaming_step(tmp_path):
    model, _, _ = language_model("gru", num_layers=1)
    module = tf.Module()
    module.model = model
    named_step = tf.function(lambda text: text, input_signature=[tf.TensorSpec([None], tf.string)])
    with pytest.raises(ValueError, match="signature 'step' is the streaming step's"):
        zoo.export.saved_model(module, tmp_path / "sm", {"step": named_step}, streaming_step=model)
    with pytest.raises(ValueError, match="needs at least one signature"):
        zoo.export.saved_model(module, tmp_path / "sm", {})


def test_streaming_step_rejects_bad_input():
    model, _, _ = language_model("lstm")
    states = model.initial_state(2)
    with pytest.raises(ValueError, match=r"shape \(batch, 1\)"):
        model.streaming_step(np.zeros((2, 3), "int32"), states)
    with pytest.raises(ValueError, match="takes 4 states; got 2"):
        model.streaming_step(np.zeros((2, 1), "int32"), states[:2])


def test_bidirectional_model_has_no_streaming_step():
    model = zoo.models.LanguageModel(VOCAB, units=4, bidirectional=True, embedding_dim=3)
    model(token_ids())
    with pytest.raises(ValueError, match="bidirectional language model cannot generate"):
        streaming.step_function(model)
    with pytest.raises(TypeError, match="has no streaming step"):
        streaming.step_function(zoo.models.SequenceClassifier(VOCAB, num_classes=2))


def readme_deploy_code():
    """The Python block of the README's "Deploy" section."""
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("\n## Deploy", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_greedy_loop_over_the_litert_step(tmp_path):
    """The README's loop, run with LiteRT and NumPy only in a run folder of model.tflite and vocab.txt,
    generates what greedy decoding of the Keras model on the whole sequence generates."""
    pytest.importorskip("ai_edge_litert.interpreter")
    vocab = zoo.text.Vocab(list("time traveller and the psychologist"))
    keras.utils.set_random_seed(4)
    model = zoo.models.LanguageModel(len(vocab), "lstm", units=16, num_layers=2, embedding_dim=8)
    ids = list(vocab.to_ids(list("time traveller")))
    model(np.array([ids]))
    zoo.export.tflite(model, tmp_path / "model.tflite", streaming_step=True)
    vocab.save(tmp_path / "vocab.txt")
    for _ in range(50):
        ids.append(int(np.asarray(model(np.array([ids])))[0, -1].argmax()))
    expected = "time traveller" + "".join(vocab.idx_to_token[i] for i in ids[len("time traveller") :])

    script = readme_deploy_code() + (
        "import sys\nassert not [m for m in sys.modules if m.split('.')[0] in ('zoo', 'ops', 'tensorflow')]\n"
    )
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().split("\n")[-1] == expected
