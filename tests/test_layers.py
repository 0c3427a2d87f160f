"""zoo.layers against keras.layers with the same weights, on every implementation path."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo

RNG = np.random.default_rng(1)
B, T, D, H = 4, 6, 5, 3
LAYER_NAMES = ["SimpleRNN", "GRU", "LSTM"]
PATHS = ["loop", "fused"]


def inputs(batch=B, time=T):
    return RNG.normal(size=(batch, time, D)).astype("float32")


def right_padded_mask(lengths, time=T):
    return np.arange(time)[None, :] < np.asarray(lengths)[:, None]


def twins(name, path, **kwargs):
    """A Keras layer and ours with identical (random) weights."""
    theirs = getattr(keras.layers, name)(H, **kwargs)
    ours = getattr(zoo.layers, name)(H, implementation=path, **kwargs)
    x = inputs()
    theirs(x)
    ours(x)
    for variable in theirs.weights:
        variable.assign(RNG.normal(scale=0.5, size=variable.shape).astype("float32"))
    ours.set_weights(theirs.get_weights())
    return theirs, ours


def assert_same_outputs(got, want, atol=1e-5):
    got, want = tf.nest.flatten(got), tf.nest.flatten(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.array(g), np.array(w), atol=atol)


LAYERS_AND_PATHS = [(name, path) for name in LAYER_NAMES for path in PATHS]


OPTIONS = [
    dict(),
    dict(return_sequences=True),
    dict(return_state=True),
    dict(return_sequences=True, return_state=True, go_backwards=True),
    dict(return_sequences=True, zero_output_for_mask=True),
]


@pytest.mark.parametrize("name, path", LAYERS_AND_PATHS)
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "default")
def test_matches_keras_without_mask(name, path, options):
    theirs, ours = twins(name, path, **options)
    x = inputs()
    assert_same_outputs(ours(x), theirs(x))
    assert ours.implementation_used == path


@pytest.mark.parametrize("name, path", LAYERS_AND_PATHS)
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "default")
def test_matches_keras_with_right_padded_mask(name, path, options):
    theirs, ours = twins(name, path, **options)
    x = inputs()
    mask = right_padded_mask([6, 3, 1, 0])
    assert_same_outputs(ours(x, mask=mask), theirs(x, mask=mask))


@pytest.mark.parametrize("name, path", LAYERS_AND_PATHS)
def test_integer_and_boolean_inputs_are_cast_as_keras_casts_them(name, path):
    theirs, ours = twins(name, path, return_sequences=True)
    for x in (RNG.integers(-3, 4, size=(B, T, D)), RNG.integers(0, 2, size=(B, T, D)).astype(bool)):
        assert_same_outputs(ours(x), theirs(x))


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_layers_are_instances_of_keras_layers(name):
    layer = getattr(zoo.layers, name)(H)
    assert isinstance(layer, getattr(keras.layers, name))
    assert isinstance(layer, zoo.layers.RecurrentLayer)


@pytest.mark.parametrize("name", ["GRU", "LSTM"])
def test_keras_bidirectional_treats_ours_as_its_own(name):
    # Keras's wrapper takes its fused two-direction path only for its own LSTM and GRU (isinstance);
    # on CPU that path is unavailable and it calls the two layers.
    layer = keras.layers.Bidirectional(getattr(zoo.layers, name)(H, use_cudnn=False))
    assert layer.forward_layer.use_cudnn is False and layer.backward_layer.use_cudnn is False
    layer.build((None, T, D))
    eligible = getattr(layer, f"_can_attempt_fused_{name.lower()}")
    assert not eligible(mask=None)
    layer = keras.layers.Bidirectional(getattr(zoo.layers, name)(H))
    layer.build((None, T, D))
    assert eligible.__func__(layer, mask=None)
    assert layer(inputs()).shape == (B, 2 * H)
    assert layer.forward_layer.implementation_used == "fused"


@pytest.mark.parametrize("path", ["fused", "loop"])
def test_a_forced_path_keeps_keras_bidirectional_off_cudnn(path):
    layer = zoo.layers.LSTM(H, implementation=path)
    assert layer.use_cudnn is False and layer.get_config()["use_cudnn"] == "auto"
    wrapper = keras.layers.Bidirectional(layer)
    wrapper.build((None, T, D))
    assert not wrapper._can_attempt_fused_lstm(mask=None)
    assert wrapper.backward_layer.implementation == path


def test_export_keeps_keras_bidirectional_off_cudnn():
    layer = zoo.layers.GRU(H)
    assert layer.use_cudnn == "auto"
    with zoo.export.portable_graph():
        assert layer.use_cudnn is False


def test_simple_rnn_has_no_use_cudnn_like_keras():
    assert not hasattr(keras.layers.SimpleRNN(H), "use_cudnn")
    assert not hasattr(zoo.layers.SimpleRNN(H), "use_cudnn")
    assert "use_cudnn" not in zoo.layers.SimpleRNN(H).get_config()
    with pytest.raises(ValueError, match="use_cudnn"):
        zoo.layers.SimpleRNN(H, use_cudnn=False)


@pytest.mark.parametrize("name", LAYER_NAMES)
@pytest.mark.parametrize("legacy", [0, 1, 2])
def test_legacy_integer_implementation_loads_as_auto(name, legacy):
    layer = getattr(zoo.layers, name)(H)
    layer(inputs())
    config = {**layer.get_config(), "implementation": legacy}
    loaded = getattr(zoo.layers, name).from_config(config)
    assert loaded.implementation == "auto"
    loaded(inputs())
    loaded.set_weights(layer.get_weights())
    x = inputs()
    assert_same_outputs(loaded(x), layer(x))


@pytest.mark.parametrize("path", ["auto", "cudnn", "fused", "loop"])
def test_get_config_round_trips_the_path_choice(path):
    layer = zoo.layers.GRU(H, implementation=path, use_cudnn=path == "cudnn" or "auto")
    loaded = zoo.layers.GRU.from_config(layer.get_config())
    assert (loaded.implementation, loaded.use_cudnn) == (layer.implementation, layer.use_cudnn)


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_left_padded_mask_falls_back_to_the_loop_in_auto_mode(name):
    theirs, ours = twins(name, "auto", return_sequences=True, return_state=True)
    x = inputs()
    mask = np.fliplr(right_padded_mask([6, 3, 1, 2]))
    assert_same_outputs(ours(x, mask=mask), theirs(x, mask=mask))
    assert_same_outputs(tf.function(ours)(x, mask=mask), theirs(x, mask=mask))


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_initial_state_matches_keras(name):
    theirs, ours = twins(name, "auto", return_sequences=True, return_state=True)
    x = inputs()
    state_count = 2 if name == "LSTM" else 1
    initial = [RNG.normal(size=(B, H)).astype("float32") for _ in range(state_count)]
    assert_same_outputs(ours(x, initial_state=initial), theirs(x, initial_state=initial))


@pytest.mark.parametrize("name, path", LAYERS_AND_PATHS)
def test_stateful_carries_state_like_keras(name, path):
    theirs, ours = twins(name, path, stateful=True, return_sequences=True)
    theirs.reset_state()
    ours.reset_state()
    for _ in range(3):
        x = inputs()
        assert_same_outputs(ours(x), theirs(x))
    ours.reset_state()
    theirs.reset_state()
    x = inputs()
    assert_same_outputs(ours(x), theirs(x))


@pytest.mark.parametrize("name, path", LAYERS_AND_PATHS)
def test_gradients_match_keras(name, path):
    theirs, ours = twins(name, path, return_sequences=True)
    x = tf.constant(inputs())
    mask = right_padded_mask([6, 4, 2, 1])

    def grads(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(layer(x, mask=mask) ** 2)
        return tape.gradient(loss, [x] + layer.trainable_weights)

    assert_same_outputs(grads(ours), grads(theirs), atol=1e-4)


def test_gradient_against_finite_differences():
    layer = zoo.layers.LSTM(2, return_sequences=True, implementation="auto")
    x = tf.constant(RNG.normal(size=(2, 3, 2)), dtype=tf.float32)
    layer(x)
    theoretical, numerical = tf.test.compute_gradient(lambda v: layer(v), [x], delta=1e-2)
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=2e-2)


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_keras_weights_file_loads_into_ours_and_back(name, tmp_path):
    def model(module):
        return keras.Sequential([keras.Input((T, D)), getattr(module, name)(H, return_sequences=True)])

    keras_model, zoo_model = model(keras.layers), model(zoo.layers)
    x = inputs()
    keras_model.save_weights(tmp_path / "keras.weights.h5")
    zoo_model.load_weights(tmp_path / "keras.weights.h5")
    np.testing.assert_allclose(zoo_model(x), keras_model(x), atol=1e-5)
    zoo_model.layers[0].cell.kernel.assign(zoo_model.layers[0].cell.kernel * 2.0)
    zoo_model.save_weights(tmp_path / "zoo.weights.h5")
    keras_model.load_weights(tmp_path / "zoo.weights.h5")
    np.testing.assert_allclose(zoo_model(x), keras_model(x), atol=1e-5)


MERGE_MODES = ["concat", "sum", "ave", "mul", None]


@pytest.mark.parametrize("merge_mode", MERGE_MODES, ids=str)
@pytest.mark.parametrize("name", ["GRU", "LSTM"])
def test_bidirectional_matches_keras(name, merge_mode):
    kwargs = dict(return_sequences=True, return_state=True)
    theirs = keras.layers.Bidirectional(getattr(keras.layers, name)(H, **kwargs), merge_mode=merge_mode)
    ours = zoo.layers.Bidirectional(getattr(zoo.layers, name)(H, **kwargs), merge_mode=merge_mode)
    x = inputs()
    mask = right_padded_mask([6, 5, 2, 1])
    theirs(x)
    ours(x)
    for variable in theirs.weights:
        variable.assign(RNG.normal(scale=0.5, size=variable.shape).astype("float32"))
    ours.set_weights(theirs.get_weights())
    assert_same_outputs(ours(x, mask=mask), theirs(x, mask=mask))


def test_bidirectional_stateful_with_return_state_works():
    layer = zoo.layers.Bidirectional(zoo.layers.LSTM(H, stateful=True, return_state=True))
    first = layer(inputs())
    second = layer(inputs())
    assert len(first) == 5 and first[0].shape == (B, 2 * H)
    assert not np.allclose(first[1], second[1])
    model = keras.Sequential([keras.Input((T, D), batch_size=B), layer])
    assert model(inputs())[0].shape == (B, 2 * H)


def test_stacked_rnn_equals_manual_stack_of_keras_layers():
    stack = zoo.layers.StackedRNN("lstm", H, num_layers=3, return_state=True)
    keras_layers = [keras.layers.LSTM(H, return_sequences=True, return_state=True) for _ in range(3)]
    x = inputs()
    stack(x)
    y = x
    for layer in keras_layers:
        y = layer(y)[0]
    for ours, theirs in zip(stack.rnn_layers, keras_layers):
        for variable in theirs.weights:
            variable.assign(RNG.normal(scale=0.5, size=variable.shape).astype("float32"))
        ours.set_weights(theirs.get_weights())
    expected, states = x, []
    for layer in keras_layers:
        expected, h, c = layer(expected)
        states += [h, c]
    assert_same_outputs(stack(x), [expected] + states)


def test_stacked_rnn_dropout_between_layers_only_in_training():
    stack = zoo.layers.StackedRNN("gru", H, num_layers=2, dropout=0.5)
    x = inputs()
    np.testing.assert_allclose(stack(x, training=False), stack(x, training=False))
    assert not np.allclose(stack(x, training=True), stack(x, training=False))


def test_stacked_bidirectional_shapes_and_initial_state():
    stack = zoo.layers.StackedRNN("lstm", H, num_layers=2, bidirectional=True, return_state=True)
    x = inputs()
    output, *states = stack(x)
    assert output.shape == (B, T, 2 * H) and len(states) == 8
    again = stack(x, initial_state=states)
    assert again[0].shape == output.shape
    with pytest.raises(ValueError, match="expects 8 initial states"):
        stack(x, initial_state=states[:3])


def test_forcing_a_path_that_cannot_apply_says_why():
    with pytest.raises(ValueError, match="no GPU is visible"):
        zoo.layers.LSTM(H, implementation="cudnn")(inputs())
    with pytest.raises(ValueError, match="recurrent_dropout"):
        zoo.layers.GRU(H, implementation="fused", recurrent_dropout=0.2)(inputs())
    with pytest.raises(ValueError, match="implementation"):
        zoo.layers.LSTM(H, implementation="fast")


def test_simple_rnn_with_another_activation_takes_the_loop_and_says_why():
    layer = zoo.layers.SimpleRNN(H, activation="relu")
    layer(inputs())
    assert layer.implementation_used == "loop"
    with pytest.raises(ValueError, match="activation is not tanh"):
        zoo.layers.SimpleRNN(H, activation="relu", implementation="fused")(inputs())


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_auto_takes_the_fused_kernel_on_cpu(name):
    layer = getattr(zoo.layers, name)(H)
    layer(inputs())
    assert layer.implementation_used == "fused"


@pytest.fixture
def dtype_policy(request):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(request.param)
    yield request.param
    keras.config.set_dtype_policy(previous)


@pytest.mark.parametrize("dtype_policy", ["mixed_bfloat16", "mixed_float16"], indirect=True)
@pytest.mark.parametrize("name", LAYER_NAMES)
def test_mixed_precision_runs_the_fused_kernel_in_float32(name, dtype_policy):
    """Under a mixed policy the fused op computes in float32 from the float32 weights: exactly the
    float32 layer on the half-precision inputs, rounded once to the compute dtype; close to the
    half-precision cell loop, and its gradients close to the float32 layer's."""
    options = dict(return_sequences=True, return_state=True)
    layer = getattr(zoo.layers, name)(H, implementation="fused", **options)
    loop = getattr(zoo.layers, name)(H, implementation="loop", **options)
    reference = getattr(zoo.layers, name)(H, implementation="fused", dtype="float32", **options)
    compute_dtype = layer.compute_dtype
    x = tf.cast(inputs(), compute_dtype)
    mask = right_padded_mask([6, 4, 2, 1])
    for twin in (layer, loop, reference):
        twin(x)
    reference.set_weights(
        [RNG.normal(scale=0.5, size=w.shape).astype("float32") for w in reference.get_weights()]
    )
    layer.set_weights(reference.get_weights())
    loop.set_weights(reference.get_weights())

    def outputs_and_gradients(twin):
        with tf.GradientTape() as tape:
            outputs = twin(x, mask=mask)
            loss = tf.reduce_sum(tf.cast(outputs[0], "float32") ** 2)
        return outputs, tape.gradient(loss, twin.trainable_weights)

    got, got_gradients = outputs_and_gradients(layer)
    assert layer.implementation_used == "fused" and loop.implementation_used == "loop"
    want, want_gradients = outputs_and_gradients(reference)
    assert all(g.dtype == compute_dtype for g in got)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(
            np.array(tf.cast(g, "float32")), np.array(tf.cast(tf.cast(w, compute_dtype), "float32"))
        )
    for g, w in zip(got, loop(x, mask=mask)):
        np.testing.assert_allclose(
            np.array(tf.cast(g, "float32")), np.array(tf.cast(w, "float32")), atol=0.05
        )
    for g, w in zip(got_gradients, want_gradients):
        assert g.dtype == "float32"
        np.testing.assert_allclose(np.array(g), np.array(w), rtol=0.02, atol=0.02)


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_float64_layers_take_the_fused_kernel_in_float64(name):
    x = tf.constant(inputs(), "float64")
    mask = right_padded_mask([6, 4, 2, 1])
    loop, fused = (
        getattr(zoo.layers, name)(H, dtype="float64", return_sequences=True, implementation=path)
        for path in ("loop", "fused")
    )
    loop(x)
    fused(x)
    fused.set_weights(loop.get_weights())

    def outputs_and_gradients(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x, mask=mask)
            loss = tf.reduce_sum(outputs**2)
        return [outputs, *tape.gradient(loss, [x, *layer.trainable_weights])]

    got = outputs_and_gradients(fused)
    assert fused.implementation_used == "fused" and got[0].dtype == "float64"
    assert_same_outputs(got, outputs_and_gradients(loop), atol=1e-12)


@pytest.mark.parametrize("name", ["GRU", "LSTM"])
def test_fused_op_keeps_activations_only_where_a_gradient_may_be_taken(name):
    layer = getattr(zoo.layers, name)(H, implementation="fused")
    x = tf.constant(inputs())
    layer(x)

    def kept_for_gradient(function):
        graph = tf.function(function).get_concrete_function().graph
        return [
            op.get_attr("keep_for_gradient")
            for op in graph.get_operations()
            if op.type.startswith("Zoo") and op.type.endswith("Sequence")
        ]

    assert kept_for_gradient(lambda: layer(x, training=False)) == [False]
    assert kept_for_gradient(lambda: layer(x, training=True)) == [True]

    def under_tape():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=False)
        return tape.gradient(y, x)

    assert kept_for_gradient(under_tape) == [True]
    with tf.GradientTape() as tape:  # a tape outside the traced function sees it too
        tape.watch(x)
        assert kept_for_gradient(lambda: layer(x)) == [True]


def test_auto_reports_the_loop_when_the_configuration_needs_it():
    layer = zoo.layers.LSTM(H, activation="relu")
    layer(inputs())
    assert layer.implementation_used == "loop"
    _, reasons = layer.choose_implementation()
    assert any("activation is not tanh" in reason for reason in reasons)


@pytest.mark.parametrize(
    "x, mask, error, message",
    [
        (np.zeros((B, D), "float32"), None, ValueError, "expected ndim=3"),
        (np.zeros((B, T, D + 2), "float32"), None, ValueError, "built for 5 features"),
        (np.zeros((B, T, D), "complex64"), None, TypeError, "expects numeric inputs; got dtype complex64"),
        (np.zeros((B, T, D), "float32"), np.ones((B, T + 1), bool), ValueError, "mask must have shape"),
        (np.zeros((B, T, D), "float32"), np.ones((B, T), "float32"), TypeError, "mask must be bool"),
        (np.zeros((B, 0, D), "float32"), None, ValueError, "zero time steps"),
    ],
    ids=["rank", "features", "dtype", "mask-shape", "mask-dtype", "empty"],
)
def test_bad_input_raises_clear_errors(x, mask, error, message):
    layer = zoo.layers.LSTM(H)
    layer(inputs())
    with pytest.raises(error, match=message):
        layer(x, mask=mask)


def test_trains_with_model_fit():
    x = RNG.integers(1, 10, size=(64, T))
    y = (x[:, -1] > 5).astype("int32")
    model = keras.Sequential(
        [
            keras.Input((T,)),
            keras.layers.Embedding(10, 8, mask_zero=True),
            zoo.layers.GRU(16),
            keras.layers.Dense(2),
        ]
    )
    model.compile(keras.optimizers.Adam(0.01), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, epochs=10, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] * 0.5
