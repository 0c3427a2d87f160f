"""Each private Keras/TensorFlow internal of `zoo.compat` is still where and what the zoo expects.

A failure here names the entry of `zoo.compat` to revisit after a Keras or TensorFlow upgrade.
(The distributed-training replacements are checked in `test_distribute.py` and
`test_multi_worker.py`.)
"""

import keras
import numpy as np
import tensorflow as tf

import zoo
from zoo import compat


def test_keras_is_a_checked_version():
    assert compat.keras_version_checked(), (
        f"zoo.compat was checked with Keras {compat.KERAS_VERSIONS_CHECKED}, not {keras.version()}: "
        "check every entry of zoo.compat and add the version"
    )


def test_keras_cells_derive_from_dropout_rnn_cell():
    cell = keras.layers.LSTMCell(3, dropout=0.5)
    assert isinstance(cell, compat.DropoutRNNCell), "DropoutRNNCell moved: keras.layers.RNN stops masks"
    mask = cell.get_dropout_mask(tf.ones((2, 4)))
    assert mask.shape == (2, 4)


class _ReadsKernel(keras.layers.Layer):
    """Returns the dtypes its kernel reads as, autocast and inside `autocast_disabled()`."""

    def build(self, _):
        self.kernel = self.add_weight(shape=(1,), initializer="ones")

    def call(self, x):
        autocast = self.kernel + 0
        with compat.autocast_disabled():
            stored = self.kernel + 0
        return autocast, stored


def test_autocast_disabled_reads_variables_as_stored():
    layer = _ReadsKernel(dtype="mixed_float16")
    autocast, stored = layer(np.ones((1, 1), "float32"))
    assert (autocast.dtype, stored.dtype) == ("float16", "float32")


def test_cudnn_kernels_refuse_where_cudnn_cannot_run():
    # Keras's own layers fall back to their loop on this NotImplementedError, and so do ours.
    units, x = 2, tf.ones((1, 3, 2))
    zeros = tf.zeros((1, units))
    kernels = dict(
        kernel=tf.ones((2, 4 * units)),
        recurrent_kernel=tf.ones((units, 4 * units)),
        bias=tf.zeros((4 * units,)),
        activation=keras.activations.tanh,
        recurrent_activation=keras.activations.sigmoid,
        return_sequences=True,
        go_backwards=False,
    )
    if tf.config.list_logical_devices("GPU"):
        _, outputs, _ = compat.cudnn_lstm(x, zeros, zeros, None, **kernels)
        assert outputs.shape == (1, 3, units)
        return
    try:
        compat.cudnn_lstm(x, zeros, zeros, None, **kernels)
    except NotImplementedError:
        pass
    else:
        raise AssertionError("Keras's cuDNN LSTM ran without a GPU: check zoo.compat.cudnn_lstm")
    gru_kernels = dict(kernels, kernel=tf.ones((2, 3 * units)), recurrent_kernel=tf.ones((units, 3 * units)))
    gru_kernels["bias"] = tf.zeros((2, 3 * units))
    try:
        compat.cudnn_gru(x, zeros, None, reset_after=True, **gru_kernels)
    except NotImplementedError:
        pass
    else:
        raise AssertionError("Keras's cuDNN GRU ran without a GPU: check zoo.compat.cudnn_gru")


def test_gradient_tape_may_record_only_under_a_tape():
    assert not compat.gradient_tape_may_record()
    with tf.GradientTape():
        assert compat.gradient_tape_may_record()


def test_keras_mask_is_the_mask_keras_attaches():
    ids = np.array([[3, 1, 0], [2, 0, 0]])
    embedded = keras.layers.Embedding(5, 2, mask_zero=True)(ids)
    np.testing.assert_array_equal(np.array(compat.keras_mask(embedded)), ids != 0)
    assert compat.keras_mask(tf.ones((2, 3))) is None


def test_in_save_context_only_while_saving(tmp_path):
    seen = []
    module = tf.Module()
    module.f = tf.function(lambda: seen.append(compat.in_save_context()) or tf.constant(1.0))
    module.f.get_concrete_function()
    tf.saved_model.save(module, str(tmp_path))
    assert seen[0] is False and True in seen[1:]


def test_export_archive_endpoints_trace_portably(tmp_path):
    layer = zoo.layers.LSTM(3)
    model = keras.Sequential([keras.Input((4, 2)), layer])
    model(np.zeros((1, 4, 2), "float32"))
    assert layer.implementation_used == "fused"
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", model.__call__, [tf.TensorSpec([None, 4, 2], tf.float32)])
    # Keras traces the endpoint outside tf.saved_model.save's context (in write_out's checks).
    archive.write_out(str(tmp_path), verbose=False)
    assert layer.implementation_used == "loop"
    assert b"Zoo" not in (tmp_path / "saved_model.pb").read_bytes()


def test_model_walks():
    inputs = keras.Input((None,), dtype="int32")
    inner = keras.Sequential([keras.layers.Embedding(5, 2), keras.layers.Dense(3)])
    functional = keras.Model(inputs, keras.layers.Dense(1)(inner(inputs)))
    names = sorted(type(layer).__name__ for layer in compat.flatten_layers(functional))
    # The inner Sequential has its own InputLayer.
    assert names == ["Dense", "Dense", "Embedding", "InputLayer", "InputLayer", "Sequential"]
    assert compat.functional_graph(functional) is functional
    assert isinstance(compat.functional_graph(inner), keras.Model)
    called = []

    def call(layer, *args, **kwargs):
        called.append(layer.name)
        return layer(*args, **kwargs)

    result = compat.run_functional(compat.functional_graph(functional), np.array([[1, 2]]), call)
    assert result.shape == (1, 2, 1) and len(called) == 2


def test_litert_operators_of_a_converted_model():
    function = tf.function(lambda x: tf.nn.relu(x) + 1.0, input_signature=[tf.TensorSpec([2], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()])
    operators = [name for _, name in compat.litert_operators(converter.convert())]
    assert "RELU" in operators and "ADD" in operators


def test_optimizer_variable_index_finds_the_variables_update_step_is_given():
    variables = [keras.Variable(np.zeros(2, "float32")), keras.Variable(np.ones(3, "float32"))]
    seen = []

    class RecordsIndices(keras.optimizers.SGD):
        def update_step(self, gradient, variable, learning_rate):
            seen.append(compat.optimizer_variable_index(self, variable))
            super().update_step(gradient, variable, learning_rate)

    optimizer = RecordsIndices(0.1)
    optimizer.build(variables)
    optimizer.apply([np.ones(3, "float32"), np.ones(2, "float32")], [variables[1], variables[0]])
    assert seen == [1, 0]


def test_sentencepiece_tokenizer_keeps_its_model_through_a_reseed():
    import io

    from sentencepiece import SentencePieceTrainer
    from tensorflow_text.python.ops import sentencepiece_tokenizer

    model = io.BytesIO()
    SentencePieceTrainer.train(
        sentence_iterator=iter(["the time traveller was expounding a recondite matter"] * 20),
        model_writer=model,
        vocab_size=30,
        model_type="bpe",
    )
    tokenizer = compat.sentencepiece_tokenizer(model.getvalue())
    assert isinstance(tokenizer._model_resource, sentencepiece_tokenizer._SentencepieceModelResource)
    mapped = tf.data.Dataset.from_tensors(["the time"]).map(tokenizer.tokenize)
    expected = [ids.to_list() for ids in mapped]
    tf.random.set_seed(1)
    assert [ids.to_list() for ids in mapped] == expected
