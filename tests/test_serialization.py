"""`.keras` round trips and SavedModel export that runs in plain TensorFlow (no zoo, no custom ops)."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import zoo

RNG = np.random.default_rng(2)
T, D = 7, 4


def build_model(recurrent):
    inputs = keras.Input((T, D))
    masked = keras.layers.Masking(0.0)(inputs)
    outputs = keras.layers.Dense(3)(recurrent(masked))
    return keras.Model(inputs, outputs)


RECURRENT_FACTORIES = {
    "simple_rnn": lambda: zoo.layers.SimpleRNN(5, return_sequences=True),
    "gru_reset_before": lambda: zoo.layers.GRU(5, return_sequences=True, reset_after=False),
    "lstm_backwards": lambda: zoo.layers.LSTM(5, return_sequences=True, go_backwards=True, dropout=0.1),
    "bidirectional_gru": lambda: zoo.layers.Bidirectional(
        zoo.layers.GRU(5, return_sequences=True), merge_mode="sum"
    ),
    "stacked_lstm": lambda: zoo.layers.StackedRNN(
        "lstm", 5, num_layers=2, dropout=0.1, implementation="loop"
    ),
    "peephole_cell": lambda: keras.layers.RNN(zoo.cells.PeepholeLSTMCell(5), return_sequences=True),
    "layer_norm_cell": lambda: keras.layers.RNN(zoo.cells.LayerNormLSTMCell(5), return_sequences=True),
}


def padded_batch():
    x = RNG.normal(size=(3, T, D)).astype("float32")
    x[1, 4:] = 0.0
    x[2, 2:] = 0.0
    return x


@pytest.mark.parametrize("kind", sorted(RECURRENT_FACTORIES))
def test_keras_file_round_trip_is_exact(kind, tmp_path):
    model = build_model(RECURRENT_FACTORIES[kind]())
    x = padded_batch()
    expected = np.array(model(x))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(np.array(loaded(x)), expected)
    original_layer, loaded_layer = model.layers[2], loaded.layers[2]
    assert type(loaded_layer) is type(original_layer)
    # JSON normalises tuples to lists, as the .keras file does.
    assert json.loads(json.dumps(loaded_layer.get_config())) == json.loads(
        json.dumps(original_layer.get_config())
    )


EXPORT_CHECK = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf
    x = np.load(sys.argv[1])
    for export_dir, expected_path in zip(sys.argv[2::2], sys.argv[3::2]):
        served = tf.saved_model.load(export_dir)
        got = served.serve(tf.constant(x)).numpy()
        np.testing.assert_allclose(got, np.load(expected_path), atol=1e-5, err_msg=export_dir)
    assert "zoo" not in sys.modules and "ops" not in sys.modules
    print("EXPORT_OK")
    """
)
EXPORTED_KINDS = ("lstm_backwards", "bidirectional_gru", "stacked_lstm")


def test_exported_models_run_in_plain_tensorflow(tmp_path):
    """Trained (so traced on the fused path first), exported, and loaded in one process without zoo."""
    x = padded_batch()
    np.save(tmp_path / "x.npy", x)
    arguments = [str(tmp_path / "x.npy")]
    for kind in EXPORTED_KINDS:
        model = build_model(RECURRENT_FACTORIES[kind]())
        model.compile("sgd", "mse")
        model.fit(x, np.zeros((3, T, 3), "float32"), epochs=1, verbose=0)
        export_dir = tmp_path / kind
        model.export(export_dir, verbose=False)
        zoo_ops = {path.read_bytes().count(b"Zoo") for path in export_dir.rglob("saved_model.pb")}
        assert zoo_ops == {0}, f"the exported graph of {kind} holds zoo custom ops"
        np.save(tmp_path / f"{kind}.npy", np.array(model.predict(x, verbose=0)))
        arguments += [str(export_dir), str(tmp_path / f"{kind}.npy")]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", EXPORT_CHECK, *arguments],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "EXPORT_OK" in result.stdout, result.stderr[-3000:]


def test_portable_graph_context_forces_the_loop():
    layer = zoo.layers.LSTM(3)
    x = padded_batch()
    layer(x)
    with zoo.portable_graph():
        path, reasons = layer.choose_implementation()
    assert path == "loop" and reasons == ["tracing for export"]
