"""The modern recurrent layers (zoo.recurrent): each cell against NumPy equations of its paper, the
parallel and fused paths against the loop (outputs, states and gradients, masks included), float64
numerical gradients, round trips, wrappers and rejections."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import ops
import zoo

B, T, D, UNITS = 3, 6, 5, 4
RNG = np.random.default_rng(26)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softplus(x):
    return np.log1p(np.exp(x))


def positive_activation(x):
    return np.where(x >= 0, x + 0.5, sigmoid(x))


def block_diagonal(recurrent_kernel, gates):
    """The dense [units, gates * units] matrix of per-head blocks [heads, d, gates * d] (gate-major)."""
    heads, size, _ = recurrent_kernel.shape
    units = heads * size
    dense = np.zeros((units, gates * units))
    for head in range(heads):
        for gate in range(gates):
            rows = slice(head * size, (head + 1) * size)
            columns = slice(gate * units + head * size, gate * units + (head + 1) * size)
            dense[rows, columns] = recurrent_kernel[head, :, gate * size : (gate + 1) * size]
    return dense


# NumPy steps written from the papers' equations, unstabilised where the papers give both forms:
# each takes (projected input x_t W + b, weights, state) and returns (h_t, state).
def min_gru_step(k, weights, h):
    k_z, k_h = np.split(k, 2, axis=-1)
    z = sigmoid(k_z)
    h = (1 - z) * h + z * positive_activation(k_h)
    return h, h


def min_lstm_step(k, weights, h):
    k_f, k_i, k_h = np.split(k, 3, axis=-1)
    f, i = sigmoid(k_f), sigmoid(k_i)
    h = f / (f + i) * h + i / (f + i) * positive_activation(k_h)
    return h, h


def rg_lru_step(k, weights, h):
    k_r, k_i, u = np.split(k, 3, axis=-1)
    a = sigmoid(weights["decay_parameter"]) ** (8.0 * sigmoid(k_r))
    h = a * h + np.sqrt(1 - a**2) * (sigmoid(k_i) * u)
    return h, h


def slstm_step(k, weights, state):
    h, c, n = state
    pre = k + h @ block_diagonal(weights["recurrent_kernel"], 4)
    i_pre, f_pre, z_pre, o_pre = np.split(pre, 4, axis=-1)
    c = sigmoid(f_pre) * c + np.exp(i_pre) * np.tanh(z_pre)
    n = sigmoid(f_pre) * n + np.exp(i_pre)
    h = sigmoid(o_pre) * c / n
    return h, (h, c, n)


def mlstm_step(k, weights, state, heads):
    c, n = state  # (batch, heads, d, d), (batch, heads, d)
    units = (k.shape[-1] - 2 * heads) // 4
    size = units // heads
    q, key, v, o = (k[:, j * units : (j + 1) * units].reshape(-1, heads, size) for j in range(4))
    key = key / np.sqrt(size)
    i = np.exp(k[:, 4 * units : 4 * units + heads])[:, :, None]
    f = sigmoid(k[:, 4 * units + heads :])[:, :, None]
    c = f[..., None] * c + i[..., None] * v[..., :, None] * key[..., None, :]
    n = f * n + i * key
    h_tilde = np.einsum("bhij,bhj->bhi", c, q) / np.maximum(np.abs(np.sum(n * q, -1)), 1.0)[..., None]
    if "head_norm_scale" in weights:  # the block's group norm: each head to zero mean, unit variance
        mean, variance = h_tilde.mean(-1, keepdims=True), h_tilde.var(-1, keepdims=True)
        scale = weights["head_norm_scale"].reshape(heads, size)
        h_tilde = (h_tilde - mean) / np.sqrt(variance + 1e-5) * scale
    return sigmoid(o.reshape(-1, units)) * h_tilde.reshape(-1, units), (c, n)


def test_mlstm_without_head_norm_outputs_the_gated_memory_readout():
    layer = zoo.layers.MLSTM(UNITS, num_heads=2, head_norm=False, return_sequences=True, dtype="float64")
    x = RNG.normal(size=(B, T, D))
    layer.build(x.shape)
    randomised(layer, scale=0.7)
    weights = {w.path.split("/")[-1]: np.array(w) for w in layer.cell.weights}
    assert sorted(weights) == ["bias", "kernel"]
    projected = x @ weights["kernel"] + weights["bias"]
    state = (np.zeros((B, 2, UNITS // 2, UNITS // 2)), np.zeros((B, 2, UNITS // 2)))
    outputs = []
    for t in range(T):
        h, state = mlstm_step(projected[:, t], weights, state, heads=2)
        outputs.append(h)
    np.testing.assert_allclose(np.array(layer(x)), np.stack(outputs, 1), rtol=1e-10, atol=1e-10)


LAYERS = {
    "min_gru": (zoo.layers.MinGRU, {}),
    "min_lstm": (zoo.layers.MinLSTM, {}),
    "rg_lru": (zoo.layers.RGLRU, {}),
    "slstm": (zoo.layers.SLSTM, {"num_heads": 2}),
    "mlstm": (zoo.layers.MLSTM, {"num_heads": 2}),
}
PARALLEL = ("min_gru", "min_lstm", "rg_lru", "mlstm")
FUSED = ("min_gru", "min_lstm", "rg_lru", "slstm")
needs_ops = pytest.mark.skipif(not ops.is_available(), reason=f"custom ops unavailable: {ops.load_error()}")


def parallel_if_any(kind):
    """The layer's parallel path, or its loop (sLSTM has no parallel form)."""
    return "parallel" if kind in PARALLEL else "loop"


def randomised(layer, scale=0.5):
    """Random weights (not the initialisation) so that every gate matters."""
    layer.set_weights([RNG.normal(scale=scale, size=w.shape).astype(w.dtype) for w in layer.get_weights()])
    return layer


def make_layer(kind, dtype="float32", **kwargs):
    cls, extra = LAYERS[kind]
    return cls(UNITS, return_sequences=True, return_state=True, dtype=dtype, **extra, **kwargs)


def twin(layer, **changes):
    """A built copy of `layer` with the same weights and some config changed."""
    other = layer.__class__.from_config({**layer.get_config(), **changes})
    other.build((None, None, D))
    other.set_weights(layer.get_weights())
    return other


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_cell_follows_the_papers_equations(kind):
    cls, extra = LAYERS[kind]
    layer = make_layer(kind, dtype="float64", implementation="loop")
    x = RNG.normal(size=(B, T, D))
    layer.build(x.shape)
    randomised(layer, scale=0.7)
    got = layer(x)
    weights = {w.path.split("/")[-1]: np.array(w) for w in layer.cell.weights}
    projected = x @ weights["kernel"] + weights["bias"]
    heads = extra.get("num_heads", 1)
    if kind == "slstm":
        state = (np.zeros((B, UNITS)),) * 3
        step = slstm_step
    elif kind == "mlstm":
        size = UNITS // heads
        state = (np.zeros((B, heads, size, size)), np.zeros((B, heads, size)))

        def step(k, weights, state):
            return mlstm_step(k, weights, state, heads)
    else:
        state = np.zeros((B, UNITS))
        step = {"min_gru": min_gru_step, "min_lstm": min_lstm_step, "rg_lru": rg_lru_step}[kind]
    outputs = []
    for t in range(T):
        h, state = step(projected[:, t], weights, state)
        outputs.append(h)
    np.testing.assert_allclose(np.array(got[0]), np.stack(outputs, 1), rtol=1e-10, atol=1e-10)
    if kind == "slstm":  # the stabilised states hold c and n scaled by exp(-m)
        _, c, n, m = (np.array(s) for s in got[1:])
        np.testing.assert_allclose(c / n, state[1] / state[2], rtol=1e-10)
        np.testing.assert_allclose(n * np.exp(m), state[2], rtol=1e-10)
    if kind == "mlstm":
        c, n, m = (np.array(s) for s in got[1:])
        scale = np.exp(m)[:, :, None]
        np.testing.assert_allclose(n.reshape(B, heads, -1) * scale, state[1], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(c.reshape(B, heads, -1) * scale, state[0].reshape(B, heads, -1), rtol=1e-9)


def right_padded_mask():
    return np.array([[True] * T, [True] * 4 + [False] * (T - 4), [True] + [False] * (T - 1)])


def scattered_mask():
    return np.array([[False, True, True, False, True, False], [True] * T, [False] * T])


def random_initial_state(layer, batch=B, dtype="float32"):
    sizes = layer.cell.state_size if isinstance(layer.cell.state_size, list) else [layer.cell.state_size]
    states = [RNG.normal(scale=0.5, size=(batch, size)).astype(dtype) for size in sizes]
    if isinstance(layer, zoo.layers.SLSTM):  # its normaliser state n stays positive
        states[2] = np.abs(states[2]) + 0.5
    return states


def outputs_and_gradients(layer, x, mask, initial_state):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        results = layer(x, mask=mask, initial_state=initial_state)
        loss = sum(tf.reduce_sum(r * np.cos(np.arange(np.prod(r.shape))).reshape(r.shape)) for r in results)
    gradients = tape.gradient(loss, [x] + layer.trainable_weights)
    return [np.array(r) for r in results], [np.array(g) for g in gradients]


PATH_CASES = {
    "plain": {},
    "right_padded": {"mask": right_padded_mask},
    "scattered_mask": {"mask": scattered_mask},
    "backwards_masked": {"mask": right_padded_mask, "go_backwards": True},
    "zero_output_masked": {"mask": scattered_mask, "zero_output_for_mask": True},
    "initial_state": {"initial_state": True},
}


def loop_and_path_results(kind, path, case_options, dtype="float32"):
    """`(loop layer, path layer, pairs)`: a randomised loop layer and its twin on `path`, and the
    (loop, path) pairs of their outputs, states and gradients for the case's mask and options."""
    options = dict(case_options)
    mask = options.pop("mask", lambda: None)()
    with_initial_state = options.pop("initial_state", False)
    loop = make_layer(kind, dtype=dtype, implementation="loop", **options)
    x = RNG.normal(size=(B, T, D)).astype(dtype)
    loop.build(x.shape)
    randomised(loop)
    other = twin(loop, implementation=path)
    initial_state = random_initial_state(loop, dtype=dtype) if with_initial_state else None
    expected, expected_gradients = outputs_and_gradients(loop, x, mask, initial_state)
    got, got_gradients = outputs_and_gradients(other, x, mask, initial_state)
    return loop, other, zip(expected + expected_gradients, got + got_gradients)


@pytest.mark.parametrize("case", sorted(PATH_CASES))
@pytest.mark.parametrize("kind", PARALLEL)
def test_parallel_path_gives_the_loops_outputs_and_gradients(kind, case):
    options = PATH_CASES[case]
    if kind == "mlstm":
        # The group norm divides by each head's spread, which magnifies the float32 rounding in
        # which the two forms differ: float32 compares them without it, float64 with it (below).
        options = {**options, "head_norm": False}
    loop, parallel, pairs = loop_and_path_results(kind, "parallel", options)
    assert loop.implementation_used == "loop" and parallel.implementation_used == "parallel"
    for e, g in pairs:
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", sorted(PATH_CASES))
def test_mlstm_parallel_path_with_head_norm_gives_the_loops_results_in_float64(case):
    _, _, pairs = loop_and_path_results("mlstm", "parallel", PATH_CASES[case], dtype="float64")
    for e, g in pairs:
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-9)


# The fused kernels take right-padded masks (a forced "fused" rejects others).
FUSED_CASES = {
    "plain": {},
    "right_padded": {"mask": right_padded_mask},
    "backwards_masked": {"mask": right_padded_mask, "go_backwards": True},
    "zero_output_masked": {"mask": right_padded_mask, "zero_output_for_mask": True},
    "backwards_zero_output": {"mask": right_padded_mask, "go_backwards": True, "zero_output_for_mask": True},
    "initial_state": {"initial_state": True},
    "initial_state_masked": {"mask": right_padded_mask, "initial_state": True, "go_backwards": True},
}


@needs_ops
@pytest.mark.parametrize("case", sorted(FUSED_CASES))
@pytest.mark.parametrize("kind", FUSED)
def test_fused_path_gives_the_loops_outputs_and_gradients(kind, case):
    _, fused, pairs = loop_and_path_results(kind, "fused", FUSED_CASES[case])
    assert fused.implementation_used == "fused"
    for e, g in pairs:
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


@needs_ops
@pytest.mark.parametrize("kind", FUSED)
def test_auto_runs_the_loop_for_masks_that_are_not_right_padded(kind):
    loop = make_layer(kind, implementation="loop")
    x = RNG.normal(size=(B, T, D)).astype("float32")
    loop.build(x.shape)
    randomised(loop)
    auto = twin(loop, implementation="auto")
    for mask in (scattered_mask(), right_padded_mask()):
        expected, expected_gradients = outputs_and_gradients(loop, x, mask, None)
        got, got_gradients = outputs_and_gradients(auto, x, mask, None)
        for e, g in zip(expected + expected_gradients, got + got_gradients):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
    assert auto.implementation_used == "fused (loop for masks that are not right-padded)"
    forced = twin(loop, implementation="fused")
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="implementation='fused' needs right-padded masks"
    ):
        forced(x, mask=scattered_mask())


@needs_ops
@pytest.mark.parametrize("kind", FUSED)
def test_fused_gradients_match_finite_differences_in_float64(kind):
    layer = make_layer(kind, dtype="float64", implementation="fused", go_backwards=True)
    x = RNG.normal(size=(2, 5, D))
    layer.build(x.shape)
    randomised(layer)
    mask = tf.constant([[True] * 5, [True, True, True, False, False]])
    initial_state = [tf.constant(s) for s in random_initial_state(layer, batch=2, dtype="float64")]

    def loss(x, *initial_state):
        outputs, *states = layer(x, mask=mask, initial_state=list(initial_state))
        return tf.reduce_sum(outputs**2) + sum(tf.reduce_sum(tf.sin(state)) for state in states)

    theoretical, numerical = tf.test.compute_gradient(loss, [tf.constant(x), *initial_state], delta=1e-5)
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, rtol=1e-6, atol=1e-7)
    assert layer.implementation_used == "fused"


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_gradients_match_finite_differences_in_float64(kind):
    layer = make_layer(kind, dtype="float64", implementation=parallel_if_any(kind))
    x = RNG.normal(size=(2, 5, D))
    layer.build(x.shape)
    randomised(layer)
    mask = tf.constant([[True] * 5, [True, True, True, False, False]])

    def loss(x):
        return tf.reduce_sum(layer(x, mask=mask)[0] ** 2)

    theoretical, numerical = tf.test.compute_gradient(loss, [tf.constant(x)], delta=1e-5)
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-6, atol=1e-7)
    assert layer.implementation_used == parallel_if_any(kind)


@needs_ops
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_auto_runs_the_faster_path_on_cpu_and_says_why(kind):
    layer = make_layer(kind)
    layer(np.zeros((B, T, D), "float32"))
    path, reasons = layer.choose_implementation()
    assert layer.implementation_used == path
    if kind in FUSED:
        assert path == "fused" and reasons == []
    else:
        assert path == "parallel" and reasons == ["fused: the ops package has no fused kernel for MLSTM"]


@pytest.mark.parametrize("kind", FUSED)
def test_auto_without_the_ops_says_why_not_fused(kind):
    code = textwrap.dedent(
        f"""
        import warnings
        import numpy as np
        import zoo
        warnings.simplefilter("ignore")
        layer = zoo.layers.{LAYERS[kind][0].__name__}(4)
        layer(np.zeros((2, 3, 5), "float32"))
        print(layer.implementation_used, layer.choose_implementation()[1])
        try:
            zoo.layers.{LAYERS[kind][0].__name__}(4, implementation="fused")(np.zeros((2, 3, 5), "float32"))
        except ValueError as error:
            print(error)
        """
    )
    env = dict(os.environ, ZOO_DISABLE_OPS="1", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loop ['fused: the custom ops are unavailable (disabled by ZOO_DISABLE_OPS=1)'" in result.stdout
    assert "implementation='fused' cannot run: the custom ops are unavailable" in result.stdout


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_stateful_layer_carries_its_states_across_batches(kind):
    x = RNG.normal(size=(B, T, D)).astype("float32")
    whole = make_layer(kind, implementation=parallel_if_any(kind))
    whole.build(x.shape)
    randomised(whole)
    stateful = twin(whole, stateful=True)
    first = stateful(x[:, :3])[0]
    second = stateful(x[:, 3:])[0]
    np.testing.assert_allclose(np.concatenate([first, second], 1), np.array(whole(x)[0]), atol=1e-5)
    stateful.reset_state()
    np.testing.assert_allclose(np.array(stateful(x[:, :3])[0]), first, atol=1e-6)


@pytest.mark.parametrize(
    "kind, path",
    [(kind, parallel_if_any(kind)) for kind in sorted(LAYERS)] + [(kind, "fused") for kind in FUSED],
)
def test_mixed_precision_runs_in_half_and_follows_float32(kind, path):
    if path == "fused" and not ops.is_available():
        pytest.skip(f"custom ops unavailable: {ops.load_error()}")
    x = RNG.normal(size=(B, T, D)).astype("float32")
    reference = make_layer(kind, implementation=path)
    reference.build(x.shape)
    randomised(reference)
    mixed = twin(reference, dtype="mixed_float16")
    got = mixed(x, mask=right_padded_mask())
    assert got[0].dtype == "float16"
    np.testing.assert_allclose(
        np.array(got[0], "float32"), np.array(reference(x, mask=right_padded_mask())[0]), atol=2e-2
    )


def build_model(recurrent):
    inputs = keras.Input((T, D))
    masked = keras.layers.Masking(0.0)(inputs)
    return keras.Model(inputs, keras.layers.Dense(2)(recurrent(masked)))


def padded_batch():
    x = RNG.normal(size=(B, T, D)).astype("float32")
    x[1, 4:] = 0.0
    x[2, 1:] = 0.0
    return x


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_keras_file_round_trip_is_exact(kind, tmp_path):
    cls, extra = LAYERS[kind]
    model = build_model(cls(UNITS, return_sequences=True, go_backwards=True, **extra))
    x = padded_batch()
    expected = np.array(model(x))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(np.array(loaded(x)), expected)
    original, restored = model.layers[2], loaded.layers[2]
    assert type(restored) is cls
    assert json.loads(json.dumps(restored.get_config())) == json.loads(json.dumps(original.get_config()))


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
    assert "zoo" not in sys.modules
    print("EXPORT_OK")
    """
)


def test_exported_models_run_in_plain_tensorflow(tmp_path):
    x = padded_batch()
    np.save(tmp_path / "x.npy", x)
    arguments = [str(tmp_path / "x.npy")]
    for kind in sorted(LAYERS):
        cls, extra = LAYERS[kind]
        model = build_model(cls(UNITS, return_sequences=True, **extra))
        export_dir = tmp_path / kind
        model.export(export_dir, verbose=False)
        np.save(tmp_path / f"{kind}.npy", np.array(model(x)))
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


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_bidirectional_wrapper_runs_both_directions(kind):
    cls, extra = LAYERS[kind]
    forward = cls(UNITS, return_sequences=True, implementation=parallel_if_any(kind), **extra)
    layer = zoo.layers.Bidirectional(forward, merge_mode="concat")
    x = padded_batch()
    mask = np.any(x != 0, axis=-1)
    got = np.array(layer(x, mask=mask))
    forward = np.array(layer.forward_layer(x, mask=mask))
    # Keras reverses the backward layer's outputs (processing order) back to input order.
    backward = np.array(layer.backward_layer(x, mask=mask))[:, ::-1]
    np.testing.assert_allclose(got, np.concatenate([forward, backward], axis=-1), atol=1e-6)
    assert layer.forward_layer.implementation_used == layer.backward_layer.implementation_used


@pytest.mark.parametrize("cell_type", ["mingru", "minlstm", "rglru", "slstm", "mlstm"])
def test_stacked_rnn_builds_deep_modern_layers(cell_type):
    extra = {"num_heads": 2} if cell_type in ("slstm", "mlstm") else {}
    stack = zoo.layers.StackedRNN(cell_type, UNITS, num_layers=2, **extra)
    x = padded_batch()
    assert tuple(stack(x).shape) == (B, T, UNITS)
    loaded = zoo.layers.StackedRNN.from_config(stack.get_config())
    assert loaded.rnn_layers[1].__class__ is stack.rnn_layers[1].__class__


@pytest.mark.parametrize("cell_type", ["slstm", "mlstm"])
def test_stacked_rnn_returns_and_takes_every_state_of_each_layer(cell_type):
    stack = zoo.layers.StackedRNN(
        cell_type, UNITS, num_layers=2, bidirectional=True, return_state=True, num_heads=2
    )
    x = padded_batch()
    outputs, *states = stack(x)
    per_layer = 2 * len(stack.rnn_layers[0].forward_layer.cell.state_size)
    assert len(states) == 2 * per_layer
    expected = stack.compute_output_shape(tuple(x.shape))[1:]
    assert [tuple(state.shape) for state in states] == [tuple(shape) for shape in expected]
    # The returned states start the same stack again: the second layer's backward state is its own.
    again, *_ = stack(x, initial_state=states)
    assert tuple(again.shape) == tuple(outputs.shape)
    with pytest.raises(ValueError, match=f"expects {2 * per_layer} initial states"):
        stack(x, initial_state=states[:-1])


def test_integer_inputs_are_cast_as_keras_casts_them():
    layer = zoo.layers.MinGRU(UNITS, return_sequences=True)
    counts = np.random.default_rng(0).integers(0, 4, (B, T, D))
    np.testing.assert_allclose(layer(counts.astype("int32")), layer(counts.astype("float32")), atol=0)


def test_public_api_reexports_the_layers_and_cells():
    for name in ("MinGRU", "MinLSTM", "RGLRU", "SLSTM", "MLSTM"):
        assert getattr(zoo.layers, name) is getattr(zoo, name) is getattr(zoo.recurrent, name)
        cell = name + "Cell"
        assert getattr(zoo.cells, cell) is getattr(zoo, cell) is getattr(zoo.recurrent, cell)


def test_rg_lru_decay_starts_in_the_papers_range():
    layer = zoo.layers.RGLRU(256)
    layer.build((None, None, 3))
    a = sigmoid(np.array(layer.cell.decay_parameter, "float64"))
    assert 0.9 - 1e-6 <= a.min() and a.max() <= 0.999 + 1e-6 and a.std() > 0.01


def test_rg_lru_decay_is_seeded_and_builds_inside_fit():
    def built_layer():
        layer = zoo.layers.RGLRU(8)
        layer.build((None, None, 3))
        return layer

    keras.utils.set_random_seed(3)
    first, second = built_layer(), built_layer()
    keras.utils.set_random_seed(3)
    again = built_layer()
    np.testing.assert_array_equal(first.cell.decay_parameter, again.cell.decay_parameter)
    assert not np.allclose(first.cell.decay_parameter, second.cell.decay_parameter)


def test_stacked_rg_lru_layers_build_inside_the_first_training_step():
    # In a fresh process (no global seed generator yet), layers built lazily by the first step's
    # trace once drew their decay from Keras's global seed generator inside the loop, and failed.
    code = textwrap.dedent(
        """
        import keras, numpy as np, zoo

        class TwoLayers(keras.Model):
            def __init__(self):
                super().__init__()
                self.embedding = keras.layers.Embedding(20, 8)
                self.stack = [
                    zoo.layers.RGLRU(16, return_sequences=True, implementation="loop") for _ in range(2)
                ]
                self.head = keras.layers.Dense(20)

            def call(self, tokens):
                x = self.embedding(tokens)
                for layer in self.stack:
                    x = layer(x)
                return self.head(x)

        model = TwoLayers()
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        tokens = np.random.default_rng(0).integers(0, 20, (4, 10))
        print("loss", model.fit(tokens, tokens, epochs=1, verbose=0).history["loss"][0])
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert np.isfinite(float(result.stdout.split("loss")[-1]))


def test_xlstm_forget_gate_biases_start_open():
    mlstm = zoo.layers.MLSTM(8, num_heads=4)
    mlstm.build((None, None, 3))
    np.testing.assert_allclose(np.array(mlstm.cell.bias)[-4:], [3.0, 4.0, 5.0, 6.0], rtol=1e-6)
    slstm = zoo.layers.SLSTM(4)
    slstm.build((None, None, 3))
    np.testing.assert_allclose(np.array(slstm.cell.bias)[4:8], [3.0, 4.0, 5.0, 6.0], rtol=1e-6)


def test_rejections_name_the_problem():
    x = np.zeros((B, T, D), "float32")
    with pytest.raises(ValueError, match="sLSTM's gates read h_\\{t-1\\}.*no parallel form"):
        zoo.layers.SLSTM(UNITS, implementation="parallel")(x)
    with pytest.raises(ValueError, match="`implementation` must be one of"):
        zoo.layers.MinGRU(UNITS, implementation="cudnn")
    with pytest.raises(
        ValueError, match="implementation='fused' cannot run: the ops package has no fused kernel"
    ):
        zoo.layers.MLSTM(UNITS, implementation="fused")(x)
    with pytest.raises(ValueError, match="implementation='fused' cannot run: unroll=True"):
        zoo.layers.RGLRU(UNITS, unroll=True, implementation="fused")(x)
    with pytest.raises(ValueError, match="must be divisible by `num_heads`"):
        zoo.layers.MLSTM(6, num_heads=4)
    with pytest.raises(ValueError, match="`num_heads` must be a positive integer"):
        zoo.cells.SLSTMCell(4, num_heads=0)
    with pytest.raises(ValueError, match="`units` must be a positive integer"):
        zoo.layers.RGLRU(0)
    with pytest.raises(ValueError, match="cannot run: unroll=True"):
        zoo.layers.MinLSTM(UNITS, unroll=True, implementation="parallel")(x)
    layer = zoo.layers.MinGRU(UNITS)
    layer(x)
    with pytest.raises(ValueError, match="was built for 5 features per step; got 3"):
        layer(np.zeros((B, T, 3), "float32"))
    with pytest.raises(TypeError, match="expects numeric inputs; got dtype complex64"):
        zoo.layers.MLSTM(UNITS)(np.zeros((B, T, D), "complex64"))
