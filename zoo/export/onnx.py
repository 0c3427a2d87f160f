"""ONNX export with ONNX's native recurrent nodes, built from the layers' weights.

The graph is written with the `onnx` package's helpers, layer by layer, from the Keras model's
structure (a functional or sequential model's graph, or the zoo's own models), so that each
recurrent layer becomes one node rather than a `Loop`:

- `LSTM` (the zoo's or Keras's): an ONNX `LSTM` node; Keras's gates i, f, c, o reordered to ONNX's
  i, o, f, c. `GRU`: a `GRU` node (gates z, r, h in both; `linear_before_reset=1` for Keras's
  `reset_after=True`). `SimpleRNN`: an `RNN` node. `go_backwards`: `direction="reverse"`;
  `zoo.layers.Bidirectional` (any merge mode): one node with `direction="bidirectional"`;
  `zoo.layers.StackedRNN`: one node per layer. Activations tanh, sigmoid, relu, hard_sigmoid.
- Masks (`Embedding(mask_zero=True)`, `Masking`) become `sequence_lens`, so masks are read as right
  padding (valid steps first, as the zoo batches); padded steps then follow Keras's rules.
- `Embedding`: `Gather`; `Dense`, `Activation`, `Dropout` (inference: identity),
  `LayerNormalization` and `BatchNormalization` over the last axis, `Masking`; `LanguageModel`
  (embedding or one-hot inputs; plain stacks only, not residual blocks), `SequenceClassifier` (any
  pooling, with or without the normalized encoding) and an `AveragedEnsemble` of them (`Mean`).
- Anything else raises a `ValueError` naming the layer: layers without a converter, custom cells,
  stateful layers, initial states passed to a recurrent layer.
"""

import keras
import numpy as np

from zoo import compat
from zoo import layers as zoo_layers
from zoo.export.portable import clean_name

OPSET = 17
_ACTIVATIONS = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu"}


def onnx(model, path, *, batch_size=None):
    """Writes `model` as an ONNX model whose recurrent layers are native `LSTM`/`GRU`/`RNN` nodes.

    Args:
        model: a built Keras model (see the module docstring for what converts).
        path: the `.onnx` file to write.
        batch_size: the batch size of the graph's inputs; None leaves it dynamic.

    Returns:
        The path written. Its inputs are named as the model's inputs (`token_ids` for the zoo's
        token models) and its outputs `logits` (`LanguageModel`) or `output` (`output_0`, ... for
        several).

    Example:

    >>> zoo.export.onnx(model, "model.onnx")
    >>> onnxruntime.InferenceSession("model.onnx").run(None, {"token_ids": ids})
    """
    import onnx as onnx_lib

    if not model.built:
        raise ValueError("build the model (call it on a batch or load trained weights) before exporting it")
    graph = _Graph()
    inputs, outputs = _convert_model(graph, model, batch_size)
    # The outputs' shapes come from ONNX's shape inference.
    onnx_model = onnx_lib.shape_inference.infer_shapes(graph.model(inputs, outputs), strict_mode=True)
    onnx_lib.checker.check_model(onnx_model, full_check=True)
    onnx_lib.save(onnx_model, str(path))
    return path


class _Value:
    """A tensor of the ONNX graph: its name, and the name of its sequence lengths (int32 [batch])
    when it carries a mask (None otherwise)."""

    def __init__(self, name, lengths=None):
        self.name = name
        self.lengths = lengths


class _Graph:
    """Nodes and initializers of the ONNX graph being built, with unique names."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes = []
        self.initializers = []
        self._names = set()

    def name(self, hint):
        hint = "".join(c if c.isalnum() or c in "_." else "_" for c in hint)
        name, index = hint, 1
        while name in self._names:
            name, index = f"{hint}_{index}", index + 1
        self._names.add(name)
        return name

    def constant(self, array, hint="constant"):
        name = self.name(hint)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, hint=None, outputs=1, **attributes):
        """Adds a node; returns its output name (or a list of them when `outputs` > 1)."""
        names = [
            self.name(f"{hint or op_type}_{i}" if outputs > 1 else hint or op_type) for i in range(outputs)
        ]
        self.nodes.append(
            self.helper.make_node(
                op_type, list(inputs), names, name=self.name(f"{hint or op_type}_node"), **attributes
            )
        )
        return names if outputs > 1 else names[0]

    def model(self, inputs, outputs):
        from onnx import TensorProto

        def info(name, dtype, shape):
            element = TensorProto.INT32 if dtype == "int32" else TensorProto.FLOAT
            return self.helper.make_tensor_value_info(name, element, shape)

        graph = self.helper.make_graph(
            self.nodes,
            "zoo_model",
            [info(*spec) for spec in inputs],
            [info(name, "float32", None) for name in outputs],
            self.initializers,
        )
        model = self.helper.make_model(
            graph, opset_imports=[self.helper.make_opsetid("", OPSET)], producer_name="zoo.export.onnx"
        )
        model.ir_version = 8
        return model


# ---------------------------------------------------------------------------------------- models
def _convert_model(graph, model, batch_size):
    token_model = _token_model_converter(model)
    if token_model is not None:
        ids = _input(graph, "token_ids")
        output = token_model(graph, ids)
        name = "logits" if _is_language_model(model) else "output"
        return [("token_ids", "int32", [batch_size or "batch", "time"])], [_output(graph, output, name)]
    functional = compat.functional_graph(model)
    if functional is None:
        raise ValueError(
            f"cannot export {type(model).__name__} '{model.name}' to ONNX: only functional and sequential "
            "models, LanguageModel, SequenceClassifier and AveragedEnsemble of them are supported"
        )
    specs, values = [], []
    for tensor in functional.inputs:
        name = clean_name(tensor.name)
        dtype = "int32" if "int" in str(tensor.dtype) else "float32"
        specs.append(
            (
                name,
                dtype,
                [batch_size or "batch"]
                + [d if d is not None else f"{name}_{i}" for i, d in enumerate(tensor.shape[1:], 1)],
            )
        )
        values.append(_input(graph, name))
    results = compat.run_functional(
        functional, values, lambda layer, *args, **kwargs: _layer(graph, layer, *args, **kwargs)
    )
    results = results if isinstance(results, (list, tuple)) else [results]
    if len(results) == 1:
        return specs, [_output(graph, results[0], "output")]
    return specs, [_output(graph, value, f"output_{i}") for i, value in enumerate(results)]


def _is_language_model(model):
    from zoo.models import LanguageModel

    return isinstance(model, LanguageModel)


def _token_model_converter(model):
    """`convert(graph, ids) -> output _Value` for the zoo's token-id models; None for others."""
    from zoo.models import AveragedEnsemble, LanguageModel, SequenceClassifier

    if isinstance(model, LanguageModel):
        return lambda graph, ids: _language_model(graph, model, ids)
    if isinstance(model, SequenceClassifier):
        return lambda graph, ids: _classifier(graph, model, ids)
    if isinstance(model, AveragedEnsemble):
        members = [_token_model_converter(member) for member in model.members]
        if None in members:
            return None
        return lambda graph, ids: _Value(
            graph.op("Mean", [member(graph, ids).name for member in members], model.name)
        )
    return None


def _input(graph, name):
    graph._names.add(name)
    return _Value(name)


def _output(graph, value, name):
    graph._names.add(name)
    graph.nodes.append(
        graph.helper.make_node("Identity", [value.name], [name], name=graph.name(f"{name}_node"))
    )
    return name


def _language_model(graph, model, ids):
    if model.block != "plain":
        raise ValueError(
            f"LanguageModel '{model.name}': its {model.block} blocks (normalisation, convolution, gated MLP "
            "around the recurrent layer) have no ONNX converter; export it to LiteRT or as a SavedModel"
        )
    if model.embedding is not None:
        inputs = _embedding(graph, model.embedding, ids)
    else:
        one_hot = np.eye(model.vocab_size, dtype="float32")
        inputs = _Value(graph.op("Gather", [graph.constant(one_hot, "one_hot"), ids.name], "one_hot"))
    outputs = _stacked_rnn(graph, model.rnn, inputs)[0]
    return _dense(graph, model.head, outputs)


def _classifier(graph, model, ids):
    embedded = _embedding(graph, model.embedding, ids)
    outputs = _stacked_rnn(graph, model.encoder, embedded)[0]
    pooled = _pooling(graph, outputs, embedded.lengths, model.pooling)
    if model.pool_embeddings:
        mean = _pooling(graph, embedded, embedded.lengths, "mean")
        pooled = graph.op("Concat", [pooled, mean], "pooled", axis=-1)
    if model.encoding_norm is not None:
        pooled = _batch_norm(graph, model.encoding_norm, pooled)
    return _dense(graph, model.classes, _Value(pooled))


def _pooling(graph, sequences, lengths, mode):
    """`zoo.models.classifier.masked_pooling` over right-padded sequences."""
    from zoo.models.classifier import POOLED_PARTS  # zoo.models imports this package

    x = sequences.name if isinstance(sequences, _Value) else sequences
    valid = _valid_steps(graph, x, lengths)  # float [batch, time, 1]
    has_tokens = graph.op("Cast", [graph.op("Greater", [lengths, graph.constant(np.int32(0))])], to=1)
    has_tokens = graph.op("Unsqueeze", [has_tokens, graph.constant(np.array([1], "int64"))])

    def first():
        return graph.op("Gather", [x, graph.constant(np.int64(0))], axis=1)

    def last():
        return _gather_steps(graph, x, lengths)

    def mean():
        total = graph.op(
            "ReduceSum", [graph.op("Mul", [x, valid]), graph.constant(np.array([1], "int64"))], keepdims=0
        )
        count = graph.op("ReduceSum", [valid, graph.constant(np.array([1], "int64"))], keepdims=0)
        return graph.op("Div", [total, graph.op("Max", [count, graph.constant(np.float32(1))])])

    def maximum():
        lowest = graph.constant(np.float32(np.finfo("float32").min))
        masked = graph.op("Where", [graph.op("Cast", [valid], to=9), x, lowest])
        return graph.op("ReduceMax", [masked], axes=[1], keepdims=0)

    parts_of = {"first": first, "last": last, "mean": mean, "max": maximum}
    parts = [parts_of[part]() for part in POOLED_PARTS[mode]]
    pooled = parts[0] if len(parts) == 1 else graph.op("Concat", parts, axis=-1)
    if mode == "mean":
        return pooled
    return graph.op("Mul", [pooled, has_tokens], "pooled")


# ---------------------------------------------------------------------------------------- layers
def _layer(graph, layer, *args, **kwargs):
    """The converter of one functional-graph node: `_Value`s in, `_Value`(s) out."""
    if not isinstance(layer, keras.layers.Layer):
        # The mask computations Keras records in a functional graph (`ids != 0` for
        # Embedding(mask_zero=True), `any(x != value, axis=-1)` for Masking).
        return _mask_operation(graph, layer, *args)
    inputs = args[0] if args else kwargs.pop("inputs", None)
    mask = kwargs.pop("mask", None)
    if isinstance(mask, _Value) and isinstance(inputs, _Value):
        inputs = _Value(inputs.name, _lengths(graph, mask.name))
    if kwargs.get("initial_state") is not None:
        raise ValueError(f"{_what(layer)}: initial states passed to a layer are not supported in ONNX export")
    if isinstance(inputs, (list, tuple)):
        raise ValueError(f"{_what(layer)}: layers with several inputs are not supported in ONNX export")
    if isinstance(layer, keras.layers.Embedding):
        return _embedding(graph, layer, inputs)
    if isinstance(layer, zoo_layers.StackedRNN):
        results = _stacked_rnn(graph, layer, inputs)
        return results if layer.return_state else results[0]
    if isinstance(layer, keras.layers.Bidirectional) or _is_recurrent(layer):
        results = _recurrent(graph, layer, inputs)
        return results if layer.return_state else results[0]
    if isinstance(layer, keras.layers.Dense):
        return _Value(_dense(graph, layer, inputs).name, inputs.lengths)
    if isinstance(layer, keras.layers.Dropout):
        return inputs
    if isinstance(layer, keras.layers.Activation):
        return _Value(_activation(graph, layer.activation, inputs.name, layer), inputs.lengths)
    if isinstance(layer, keras.layers.LayerNormalization):
        return _Value(_layer_norm(graph, layer, inputs.name), inputs.lengths)
    if isinstance(layer, keras.layers.BatchNormalization):
        return _Value(_batch_norm(graph, layer, inputs.name), inputs.lengths)
    if isinstance(layer, keras.layers.Masking):
        return _masking(graph, layer, inputs)
    raise ValueError(f"{_what(layer)}: no ONNX converter for this layer type")


def _mask_operation(graph, operation, *args):
    """A mask of a functional graph: a bool tensor."""
    kind = type(operation).__name__
    if kind == "NotEqual" and isinstance(args[0], _Value) and not isinstance(args[1], _Value):
        value = args[1]
        padding = graph.constant(np.float32(value) if isinstance(value, float) else np.int32(value))
        return _Value(graph.op("Not", [graph.op("Equal", [args[0].name, padding])], "mask"))
    if (
        kind == "Any"
        and isinstance(args[0], _Value)
        and getattr(operation, "axis", None) in (-1, [-1], 2, [2])
    ):
        valid = graph.op("ReduceMax", [graph.op("Cast", [args[0].name], to=6)], axes=[-1], keepdims=0)
        return _Value(graph.op("Cast", [valid], "mask", to=9))
    raise ValueError(f"operation {kind} '{operation.name}': no ONNX converter (only masks convert)")


def _lengths(graph, mask):
    """int32 [batch]: the valid steps of a bool [batch, time] mask, read as right padding."""
    valid = graph.op("Cast", [mask], to=6)
    return graph.op("ReduceSum", [valid, graph.constant(np.array([1], "int64"))], "lengths", keepdims=0)


def _what(layer):
    return f"{type(layer).__name__} '{layer.name}'"


def _embedding(graph, layer, ids):
    table = graph.constant(np.asarray(layer.embeddings.numpy(), "float32"), f"{layer.name}.embeddings")
    output = graph.op("Gather", [table, ids.name], layer.name)
    lengths = ids.lengths
    if layer.mask_zero:
        valid = graph.op(
            "Cast", [graph.op("Not", [graph.op("Equal", [ids.name, graph.constant(np.int32(0))])])], to=6
        )
        lengths = graph.op(
            "ReduceSum", [valid, graph.constant(np.array([1], "int64"))], f"{layer.name}.lengths", keepdims=0
        )
    return _Value(output, lengths)


def _masking(graph, layer, inputs):
    # The mask itself comes from the NotEqual and Any operations Keras records beside the layer.
    mask_value = graph.constant(np.float32(layer.mask_value))
    differs = graph.op("Not", [graph.op("Equal", [inputs.name, mask_value])])
    keep = graph.op("Cast", [graph.op("Cast", [differs], to=6)], to=1)
    keep = graph.op("ReduceMax", [keep], axes=[-1], keepdims=1)
    # Keras's Masking also zeroes the masked steps.
    return _Value(graph.op("Mul", [inputs.name, keep], layer.name), inputs.lengths)


def _dense(graph, layer, inputs):
    kernel = graph.constant(np.asarray(layer.kernel.numpy(), "float32"), f"{layer.name}.kernel")
    output = graph.op("MatMul", [inputs.name, kernel], layer.name)
    if layer.use_bias:
        output = graph.op(
            "Add", [output, graph.constant(np.asarray(layer.bias.numpy(), "float32"), f"{layer.name}.bias")]
        )
    return _Value(_activation(graph, layer.activation, output, layer), inputs.lengths)


def _activation(graph, activation, name, layer):
    activation_name = keras.activations.serialize(activation)
    activation_name = (
        activation_name if isinstance(activation_name, str) else activation_name.get("config", "")
    )
    if activation_name in ("linear", None):
        return name
    if activation_name == "softmax":
        return graph.op("Softmax", [name], axis=-1)
    if activation_name in _ACTIVATIONS:
        return graph.op(_ACTIVATIONS[activation_name], [name])
    raise ValueError(f"{_what(layer)}: activation {activation_name!r} has no ONNX converter")


def _layer_norm(graph, layer, name):
    if layer.axis not in (-1, [-1]) or getattr(layer, "rms_scaling", False):
        raise ValueError(f"{_what(layer)}: only normalisation over the last axis (axis=-1) converts to ONNX")
    width = layer.gamma.shape[0] if layer.scale else layer.beta.shape[0]
    scale = layer.gamma.numpy() if layer.scale else np.ones(width, "float32")
    bias = layer.beta.numpy() if layer.center else np.zeros(width, "float32")
    return graph.op(
        "LayerNormalization",
        [name, graph.constant(np.asarray(scale, "float32")), graph.constant(np.asarray(bias, "float32"))],
        layer.name,
        axis=-1,
        epsilon=float(layer.epsilon),
    )


def _batch_norm(graph, layer, name):
    if layer.axis != -1:
        raise ValueError(f"{_what(layer)}: only normalisation over the last axis converts to ONNX")
    variance = layer.moving_variance.numpy()
    scale = (layer.gamma.numpy() if layer.scale else 1.0) / np.sqrt(variance + layer.epsilon)
    shift = (layer.beta.numpy() if layer.center else 0.0) - layer.moving_mean.numpy() * scale
    scaled = graph.op("Mul", [name, graph.constant(np.asarray(scale, "float32"))])
    return graph.op("Add", [scaled, graph.constant(np.asarray(shift, "float32"))], layer.name)


# ------------------------------------------------------------------------------ recurrent layers
def _is_recurrent(layer):
    return isinstance(
        layer, (zoo_layers.RecurrentLayer, keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN)
    )


def _kind(layer):
    """`"lstm"`, `"gru"` or `"rnn"`, checking that the cell is the plain one of its layer."""
    expected = {
        "lstm": (zoo_layers.LSTM.cell_class, keras.layers.LSTMCell),
        "gru": (zoo_layers.GRU.cell_class, keras.layers.GRUCell),
        "rnn": (zoo_layers.SimpleRNN.cell_class, keras.layers.SimpleRNNCell),
    }
    for kind, classes in expected.items():
        if type(layer.cell) in classes:
            return kind
    raise ValueError(f"{_what(layer)}: its cell, a {type(layer.cell).__name__}, has no ONNX node")


def _stacked_rnn(graph, layer, inputs):
    outputs, states = inputs, []
    for rnn in layer.rnn_layers:
        outputs, *layer_states = _recurrent(graph, rnn, outputs)
        states.extend(layer_states)
    return [outputs] + states


def _rnn_activation(name, layer):
    if name == "hard_sigmoid":
        return "HardSigmoid", 1.0 / 6.0, 0.5
    if name in _ACTIVATIONS:
        return _ACTIVATIONS[name], None, None
    raise ValueError(f"{_what(layer)}: activation {name!r} has no ONNX recurrent-node equivalent")


def _recurrent(graph, layer, inputs):
    """One ONNX LSTM/GRU/RNN node for a recurrent layer or a bidirectional pair.

    Returns `[outputs, *states]` as `_Value`s (states in Keras's order: forward then backward)."""
    bidirectional = isinstance(layer, keras.layers.Bidirectional)
    directions = [layer.forward_layer, layer.backward_layer] if bidirectional else [layer]
    for direction in directions:
        if direction.stateful:
            raise ValueError(f"{_what(direction)} is stateful: export it with stateful=False")
    if bidirectional and (
        type(directions[0]) is not type(directions[1])
        or directions[0].get_config()["units"] != directions[1].get_config()["units"]
        or not directions[1].go_backwards
        or directions[0].go_backwards
    ):
        raise ValueError(f"{_what(layer)}: its two directions must be the same kind of layer, one forward")
    forward = directions[0]
    kind = _kind(forward)
    cells = [direction.cell for direction in directions]
    units = forward.cell.units
    weights = [_onnx_weights(kind, cell) for cell in cells]
    w, r, b = (
        graph.constant(np.stack(part), f"{layer.name}.{label}") for part, label in zip(zip(*weights), "WRB")
    )

    activations, alphas, betas = [], [], []
    for cell in cells:
        names = [keras.activations.serialize(cell.activation)]
        if kind != "rnn":
            names.insert(0, keras.activations.serialize(cell.recurrent_activation))
        if kind == "lstm":
            names.append(names[1])
        for name in names:
            op_name, alpha, beta = _rnn_activation(name, layer)
            activations.append(op_name)
            alphas.append(alpha if alpha is not None else 0.0)
            betas.append(beta if beta is not None else 0.0)
    attributes = {"hidden_size": units, "activations": activations}
    if "HardSigmoid" in activations:
        attributes.update(activation_alpha=alphas, activation_beta=betas)
    if bidirectional:
        attributes["direction"] = "bidirectional"
    elif forward.go_backwards:
        attributes["direction"] = "reverse"
    if kind == "gru":
        attributes["linear_before_reset"] = int(forward.cell.reset_after)

    x = graph.op("Transpose", [inputs.name], f"{layer.name}.time_major", perm=[1, 0, 2])
    lengths = inputs.lengths
    sequence_lens = ""
    if lengths is not None:
        # ONNX Runtime rejects zero lengths: a fully padded row runs one step, undone below.
        sequence_lens = graph.op("Max", [lengths, graph.constant(np.int32(1))], f"{layer.name}.sequence_lens")
    node_outputs = 3 if kind == "lstm" else 2
    results = graph.op(
        {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[kind],
        [x, w, r, b, sequence_lens],
        layer.name,
        outputs=node_outputs,
        **attributes,
    )
    y, states = (
        results[0],
        results[1:],
    )  # Y [time, directions, batch, units]; Y_h, Y_c [directions, batch, units]

    has_steps = None
    if lengths is not None:
        has_steps = graph.op(
            "Unsqueeze",
            [
                graph.op("Greater", [lengths, graph.constant(np.int32(0))]),
                graph.constant(np.array([1], "int64")),
            ],
        )
    per_direction = []
    for index, direction in enumerate(directions):
        sequence = graph.op("Gather", [y, graph.constant(np.int64(index))], axis=1)
        sequence = graph.op("Transpose", [sequence], perm=[1, 0, 2])  # [batch, time, units], input order
        sequence = _keras_padding(graph, direction, sequence, lengths, has_steps, bidirectional)
        final = [graph.op("Gather", [state, graph.constant(np.int64(index))], axis=0) for state in states]
        if has_steps is not None:
            zero = graph.constant(np.float32(0))
            final = [graph.op("Where", [has_steps, state, zero]) for state in final]
        per_direction.append((sequence, final))

    return_sequences = layer.return_sequences
    merged = []
    for index, (sequence, _) in enumerate(per_direction):
        if return_sequences:
            merged.append(sequence)
        else:
            # Keras's last output: the output at the last step processed; a backward direction
            # inside Bidirectional is in input order here, so its last step is the first.
            last_index = 0 if index == 1 else -1
            merged.append(graph.op("Gather", [sequence, graph.constant(np.int64(last_index))], axis=1))
    if bidirectional:
        mode = layer.merge_mode
        if mode == "concat":
            output = [graph.op("Concat", merged, layer.name, axis=-1)]
        elif mode == "sum":
            output = [graph.op("Add", merged, layer.name)]
        elif mode == "ave":
            output = [graph.op("Mul", [graph.op("Add", merged), graph.constant(np.float32(0.5))], layer.name)]
        elif mode == "mul":
            output = [graph.op("Mul", merged, layer.name)]
        else:
            output = merged
    else:
        output = merged
    output_lengths = lengths if return_sequences else None
    values = [_Value(name, output_lengths) for name in output]
    states = [_Value(state) for _, final in per_direction for state in final]
    return values + states


def _keras_padding(graph, direction, sequence, lengths, has_steps, in_bidirectional):
    """ONNX's outputs (zeros past each length, in input order) rewritten to Keras's: processing
    order for `go_backwards` alone, and the last valid output repeated at the padded steps of a
    forward layer unless `zero_output_for_mask`."""
    if lengths is not None and not direction.go_backwards and not direction.zero_output_for_mask:
        last = _gather_steps(graph, sequence, lengths)  # [batch, units]
        last = graph.op("Where", [has_steps, last, graph.constant(np.float32(0))])
        valid = graph.op("Cast", [_valid_steps(graph, sequence, lengths)], to=9)
        last = graph.op("Unsqueeze", [last, graph.constant(np.array([1], "int64"))])
        sequence = graph.op("Where", [valid, sequence, last])
    elif lengths is not None and has_steps is not None:
        # Fully padded rows ran one step (see sequence_lens): their outputs are zeros in Keras.
        valid = graph.op("Cast", [_valid_steps(graph, sequence, lengths)], to=9)
        sequence = graph.op("Where", [valid, sequence, graph.constant(np.float32(0))])
    if direction.go_backwards and not in_bidirectional:
        sequence = _reverse_time(graph, sequence)
    return sequence


def _reverse_time(graph, sequence):
    big = np.iinfo("int64").max
    return graph.op(
        "Slice",
        [
            sequence,
            graph.constant(np.array([-1], "int64")),
            graph.constant(np.array([-big], "int64")),
            graph.constant(np.array([1], "int64")),
            graph.constant(np.array([-1], "int64")),
        ],
    )


def _valid_steps(graph, sequence, lengths):
    """float [batch, time, 1]: 1 at steps before each row's length."""
    time = graph.op("Gather", [graph.op("Shape", [sequence]), graph.constant(np.int64(1))])
    steps = graph.op("Range", [graph.constant(np.int64(0)), time, graph.constant(np.int64(1))])
    lengths64 = graph.op(
        "Unsqueeze", [graph.op("Cast", [lengths], to=7), graph.constant(np.array([1], "int64"))]
    )
    valid = graph.op(
        "Less", [graph.op("Unsqueeze", [steps, graph.constant(np.array([0], "int64"))]), lengths64]
    )
    return graph.op("Unsqueeze", [graph.op("Cast", [valid], to=1), graph.constant(np.array([2], "int64"))])


def _gather_steps(graph, sequence, lengths):
    """sequence[b, max(lengths[b] - 1, 0)] for each row b: [batch, units]."""
    index = graph.op(
        "Max", [graph.op("Sub", [lengths, graph.constant(np.int32(1))]), graph.constant(np.int32(0))]
    )
    index = graph.op("Cast", [index], to=7)
    index = graph.op("Unsqueeze", [index, graph.constant(np.array([1, 2], "int64"))])  # [batch, 1, 1]
    shape = graph.op("Shape", [sequence])
    batch_units = graph.op(
        "Concat",
        [
            graph.op(
                "Slice",
                [shape, graph.constant(np.array([0], "int64")), graph.constant(np.array([1], "int64"))],
            ),
            graph.constant(np.array([1], "int64")),
            graph.op(
                "Slice",
                [shape, graph.constant(np.array([2], "int64")), graph.constant(np.array([3], "int64"))],
            ),
        ],
        axis=0,
    )
    index = graph.op("Expand", [index, batch_units])
    gathered = graph.op("GatherElements", [sequence, index], axis=1)
    return graph.op("Squeeze", [gathered, graph.constant(np.array([1], "int64"))])


def _onnx_weights(kind, cell):
    """`(W [gates*units, input], R [gates*units, units], B [2*gates*units])` of one direction."""
    kernel = np.asarray(cell.kernel.numpy(), "float32")
    recurrent = np.asarray(cell.recurrent_kernel.numpy(), "float32")
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    units = cell.units
    if cell.use_bias:
        bias = np.asarray(cell.bias.numpy(), "float32")
    else:
        bias = np.zeros(
            [2, gates * units] if kind == "gru" and cell.reset_after else [gates * units], "float32"
        )
    if kind == "gru" and cell.reset_after:
        input_bias, recurrent_bias = bias[0], bias[1]
    else:
        input_bias, recurrent_bias = bias, np.zeros_like(bias)
    if kind == "lstm":
        # Keras: i, f, c, o. ONNX: i, o, f, c.
        order = [0, 3, 1, 2]

        def reorder(matrix):
            blocks = np.split(matrix, 4, axis=-1)
            return np.concatenate([blocks[i] for i in order], axis=-1)

        kernel, recurrent, input_bias = reorder(kernel), reorder(recurrent), reorder(input_bias)
        recurrent_bias = reorder(recurrent_bias)
    return kernel.T.copy(), recurrent.T.copy(), np.concatenate([input_bias, recurrent_bias])
