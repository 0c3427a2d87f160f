"""zoo.cells against a NumPy implementation of the course's equations and against Keras's cells."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import cells

RNG = np.random.default_rng(0)
BATCH, FEATURES, UNITS = 3, 5, 4


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def layer_norm(x, norm):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + norm.epsilon) * np.array(norm.gamma) + np.array(norm.beta)


def numpy_step(cell, x, states):
    """One step of each cell from the course's equations, with the cell's own weights."""
    w = {v.name: np.array(v) for v in cell.weights if v.path.count("/") == 1}
    W, U = w["kernel"], w["recurrent_kernel"]
    b = w.get("bias")
    if isinstance(cell, cells.SimpleRNNCell):
        h = np.tanh(x @ W + states[0] @ U + b)
        return h, [h]
    if isinstance(cell, cells.GRUCell):
        h_prev = states[0]
        n = cell.units
        if cell.reset_after:
            xp, hp = x @ W + b[0], h_prev @ U + b[1]
            z = sigmoid(xp[:, :n] + hp[:, :n])
            r = sigmoid(xp[:, n : 2 * n] + hp[:, n : 2 * n])
            cand = np.tanh(xp[:, 2 * n :] + r * hp[:, 2 * n :])
        else:
            xp = x @ W + b
            z = sigmoid(xp[:, :n] + h_prev @ U[:, :n])
            r = sigmoid(xp[:, n : 2 * n] + h_prev @ U[:, n : 2 * n])
            cand = np.tanh(xp[:, 2 * n :] + (r * h_prev) @ U[:, 2 * n :])
        h = z * h_prev + (1 - z) * cand
        return h, [h]
    h_prev, c_prev = states
    n = cell.units
    if isinstance(cell, cells.LayerNormLSTMCell):
        pre = layer_norm(x @ W, cell.kernel_norm) + layer_norm(h_prev @ U, cell.recurrent_norm) + b
    else:
        pre = x @ W + h_prev @ U + b
    zi, zf, zc, zo = (pre[:, k * n : (k + 1) * n] for k in range(4))
    if isinstance(cell, cells.PeepholeLSTMCell):
        zi = zi + w["input_gate_peephole_weights"] * c_prev
        zf = zf + w["forget_gate_peephole_weights"] * c_prev
    i, f = sigmoid(zi), sigmoid(zf)
    c = f * c_prev + i * np.tanh(zc)
    if isinstance(cell, cells.PeepholeLSTMCell):
        zo = zo + w["output_gate_peephole_weights"] * c
    o = sigmoid(zo)
    c_out = layer_norm(c, cell.state_norm) if isinstance(cell, cells.LayerNormLSTMCell) else c
    h = o * np.tanh(c_out)
    return h, [h, c]


CELL_FACTORIES = {
    "simple_rnn": lambda: cells.SimpleRNNCell(UNITS),
    "gru_reset_after": lambda: cells.GRUCell(UNITS, reset_after=True),
    "gru_reset_before": lambda: cells.GRUCell(UNITS, reset_after=False),
    "lstm": lambda: cells.LSTMCell(UNITS),
    "peephole_lstm": lambda: cells.PeepholeLSTMCell(UNITS),
    "layer_norm_lstm": lambda: cells.LayerNormLSTMCell(UNITS),
}


def randomise(cell):
    for variable in cell.weights:
        variable.assign(RNG.normal(scale=0.5, size=variable.shape).astype("float32"))


@pytest.mark.parametrize("kind", sorted(CELL_FACTORIES))
def test_cell_step_matches_numpy_equations(kind):
    cell = CELL_FACTORIES[kind]()
    cell.build((None, FEATURES))
    randomise(cell)
    x = RNG.normal(size=(BATCH, FEATURES)).astype("float32")
    sizes = cell.state_size if isinstance(cell.state_size, list) else [cell.state_size]
    states = [RNG.normal(size=(BATCH, s)).astype("float32") for s in sizes]
    output, new_states = cell(x, states)
    expected_output, expected_states = numpy_step(cell, x, states)
    np.testing.assert_allclose(output, expected_output, atol=1e-5)
    for got, want in zip(new_states, expected_states):
        np.testing.assert_allclose(got, want, atol=1e-5)


KERAS_TWINS = {
    "simple_rnn": keras.layers.SimpleRNNCell,
    "gru_reset_after": lambda units: keras.layers.GRUCell(units, reset_after=True),
    "gru_reset_before": lambda units: keras.layers.GRUCell(units, reset_after=False),
    "lstm": keras.layers.LSTMCell,
}


@pytest.mark.parametrize("kind", sorted(KERAS_TWINS))
def test_cell_in_keras_rnn_matches_keras_cell(kind):
    ours = keras.layers.RNN(CELL_FACTORIES[kind](), return_sequences=True, return_state=True)
    theirs = keras.layers.RNN(KERAS_TWINS[kind](UNITS), return_sequences=True, return_state=True)
    x = RNG.normal(size=(BATCH, 6, FEATURES)).astype("float32")
    theirs(x)
    ours(x)
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
    randomise(theirs.cell)
    ours.set_weights(theirs.get_weights())
    for got, want in zip(ours(x), theirs(x)):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_lstm_unit_forget_bias_initialises_forget_gate_to_one():
    cell = cells.LSTMCell(UNITS)
    cell.build((None, FEATURES))
    bias = np.array(cell.bias)
    np.testing.assert_array_equal(bias[UNITS : 2 * UNITS], 1.0)
    np.testing.assert_array_equal(np.delete(bias, np.s_[UNITS : 2 * UNITS]), 0.0)


@pytest.mark.parametrize("kind", sorted(CELL_FACTORIES))
def test_gradient_matches_finite_differences(kind):
    cell = CELL_FACTORIES[kind]()
    cell.build((None, FEATURES))
    randomise(cell)
    sizes = cell.state_size if isinstance(cell.state_size, list) else [cell.state_size]
    states = [tf.constant(RNG.normal(size=(2, s)).astype("float32")) for s in sizes]

    def step(x):
        return cell(x, states)[0]

    x = tf.constant(RNG.normal(size=(2, FEATURES)).astype("float32"))
    theoretical, numerical = tf.test.compute_gradient(step, [x], delta=1e-2)
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=2e-2)


@pytest.mark.parametrize("kind", ["lstm", "gru_reset_after", "simple_rnn"])
def test_dropout_applies_only_in_training_and_is_fixed_across_steps(kind):
    cell = CELL_FACTORIES[kind]()
    cell.dropout = 0.5
    layer = keras.layers.RNN(cell, return_sequences=True)
    x = np.ones((BATCH, 4, FEATURES), "float32")
    inference = np.array(layer(x, training=False))
    np.testing.assert_allclose(inference, layer(x, training=False))
    training = np.array(layer(x, training=True))
    assert not np.allclose(training, inference)


def test_recurrent_dropout_changes_training_outputs():
    layer = keras.layers.RNN(cells.LSTMCell(UNITS, recurrent_dropout=0.5), return_sequences=True)
    x = RNG.normal(size=(BATCH, 4, FEATURES)).astype("float32")
    assert not np.allclose(layer(x, training=True), layer(x, training=False))


@pytest.mark.parametrize("kind", sorted(CELL_FACTORIES))
def test_config_round_trip(kind):
    cell = CELL_FACTORIES[kind]()
    config = keras.saving.serialize_keras_object(cell)
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is type(cell)
    assert clone.get_config() == cell.get_config()


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: cells.LSTMCell(0), "positive integer"),
        (lambda: cells.GRUCell(4, dropout=1.5), "dropout"),
        (lambda: cells.SimpleRNNCell(4, recurrent_dropout=-0.1), "recurrent_dropout"),
    ],
)
def test_bad_arguments_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_step_input_of_wrong_size_raises():
    cell = cells.GRUCell(UNITS)
    cell.build((None, FEATURES))
    with pytest.raises(ValueError, match="built for 5 input features"):
        cell(np.zeros((2, FEATURES + 1), "float32"), [np.zeros((2, UNITS), "float32")])
