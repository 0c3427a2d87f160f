"""LiteRT (TensorFlow Lite) export: every `zoo.layers.LSTM` as LiteRT's fused LSTM kernel.

What converts to what:

- `zoo.layers.LSTM` (alone, in `zoo.layers.StackedRNN`, in each direction of
  `zoo.layers.Bidirectional`): one `UNIDIRECTIONAL_SEQUENCE_LSTM` op per layer and direction
  (`zoo.export.litert_lstm`). Needs tanh/sigmoid activations; masks are read as right padding;
  its final cell state c must not be used by the model (the fused op does not return it).
- `zoo.layers.GRU`, `zoo.layers.SimpleRNN`, and recurrent layers over the zoo's other cells: their
  loop, a `WHILE` op over builtin ops.
- Keras's embedding, dense, dropout, normalisation and other layers whose ops LiteRT has: builtin ops.
- The zoo's token-id models (`LanguageModel`, `SequenceClassifier`, `SequenceTagger`, a
  `zoo.crf.CRFTagger` over one, an `AveragedEnsemble` of them) take `token_ids` (a tagger with
  character features: `word_ids` and `char_ids`); other subclassed models need an `input_signature`,
  or `signatures` of their own (e.g. a `Seq2Seq`'s beam search, `zoo.models.Translator`).
- Anything else (Keras's own LSTM, stateful layers, layers not in float32, ops LiteRT lacks) raises
  a `ValueError` naming the layer. The file never holds Flex (`SELECT_TF_OPS`) or custom ops.

`quantize="dynamic"` stores the weights as int8 (dynamic-range quantization: activations stay
float, the fused LSTM runs its hybrid kernel).
"""

import os
import re
import tempfile

import keras
import tensorflow as tf

from zoo import compat
from zoo import layers as zoo_layers
from zoo.export import portable, streaming
from zoo.export.litert_lstm import fused_lstm_graph, lstm_blockers

QUANTIZATIONS = (None, "dynamic")
SERVING_SIGNATURE = "serving_default"
FUSED_LSTM_OP = "UNIDIRECTIONAL_SEQUENCE_LSTM"
# The inputs of a tagger with character features.
WORD_IDS = "word_ids"
CHAR_IDS = "char_ids"


def tflite(
    model, path, *, quantize=None, batch_size=1, streaming_step=False, input_signature=None, signatures=None
):
    """Writes `model` as a LiteRT flatbuffer (`.tflite`).

    Args:
        model: a built Keras model of the zoo's layers and Keras's own (see the module docstring).
        path: the file to write.
        quantize: None (float32) or `"dynamic"` (int8 weights).
        batch_size: the batch size of the exported signatures (LiteRT's fused LSTM needs a static
            one). The time axis stays dynamic: resize the input to the sequence's length.
        streaming_step: also write the `step` signature of a `zoo.models.LanguageModel`
            (`zoo.export.streaming`): token ids and states in, logits and states out.
        input_signature: a list of `tf.TensorSpec` without the batch size (e.g.
            `[tf.TensorSpec([None], tf.int32, name="token_ids")]`) for a subclassed model that is not
            one of the zoo's token-id models; functional and sequential models need none.
        signatures: `{name: tf.function}` to write instead of the model's call: functions of the
            model's layers with a full `input_signature` (batch size included), returning a dict of
            tensors, e.g. `{"translate": translator.translate_ids}` (`zoo.models.Translator`).

    Returns:
        The path written. The flatbuffer's `serving_default` signature (unless `signatures` is
        given) takes the model's inputs and returns its outputs; each `invoke()` starts from the
        model's zero states.

    Example:

    >>> zoo.export.tflite(model, "model.tflite", quantize="dynamic")
    >>> runner = ai_edge_litert.interpreter.Interpreter("model.tflite").get_signature_runner()
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize must be one of {QUANTIZATIONS}; got {quantize!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
    if not model.built:
        raise ValueError("build the model (call it on a batch or load trained weights) before exporting it")
    check_layers(model)
    functions = _signature_functions(model, batch_size, input_signature, signatures)

    # The weights enter the graphs as constants: LiteRT's converter fuses an LSTM only when its
    # weights arrive as tensors, and the file holds no variables.
    weights = keras.StatelessScope(state_mapping=[(v, tf.constant(v.numpy())) for v in model.variables])
    with weights, fused_lstm_graph() as trace:
        concrete = {name: function.get_concrete_function() for name, function in functions.items()}
    lstm_layers = list(trace.traced)
    if streaming_step:
        with weights, portable.portable_graph():
            step = streaming.step_function(model, batch_size)
            concrete[streaming.STEP_SIGNATURE] = step.get_concrete_function()

    flatbuffer = _convert(concrete, quantize)
    _check_operators(flatbuffer, lstm_layers)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "wb") as file:
        file.write(flatbuffer)
    return path


def check_layers(model):
    """Raises a `ValueError` naming each layer of `model` that LiteRT export cannot convert."""
    problems = []
    for layer in compat.flatten_layers(model):
        what = f"{type(layer).__name__} '{layer.name}'"
        if isinstance(layer, zoo_layers.RecurrentLayer):
            if layer.stateful:
                problems.append(
                    f"{what} is stateful: export the model with stateful=False and carry the states "
                    "through the streaming step signature instead"
                )
            if layer.compute_dtype != "float32":
                problems.append(f"{what} computes in {layer.compute_dtype}; LiteRT export takes float32")
            if isinstance(layer, zoo_layers.LSTM):
                problems.extend(f"{what}: {reason}" for reason in lstm_blockers(layer))
        elif isinstance(layer, keras.layers.LSTM):
            problems.append(
                f"{what} is Keras's own LSTM, which LiteRT runs as a loop of small ops: use "
                "zoo.layers.LSTM (a drop-in with the same weights) for the fused kernel"
            )
    if problems:
        raise ValueError("cannot export to LiteRT:\n  " + "\n  ".join(problems))


def _signature_functions(model, batch_size, input_signature, signatures):
    """`{name: tf.function}` to trace: the model's call as `serving_default`, or `signatures`."""
    if signatures is None:
        specs = _input_specs(model, batch_size, input_signature)

        def serve(*inputs):
            outputs = model(inputs[0] if len(inputs) == 1 else list(inputs), training=False)
            return _named_outputs(model, outputs)

        return {SERVING_SIGNATURE: tf.function(serve, input_signature=specs)}
    if not signatures:
        raise ValueError("signatures must name at least one function (or be None: the model's call)")
    functions = {}
    for name, function in signatures.items():
        spec = getattr(function, "input_signature", None)
        if spec is None:
            raise ValueError(f"signature {name!r} needs a tf.function with an input_signature")
        # A fresh trace: the exporter's context decides how the layers trace (fused LSTM functions).
        functions[name] = tf.function(function.python_function, input_signature=spec)
    return functions


def _input_specs(model, batch_size, input_signature):
    if input_signature is None:
        input_signature = _zoo_model_inputs(model)
    if input_signature is not None:
        return [
            tf.TensorSpec([batch_size] + list(spec.shape), spec.dtype, name=spec.name)
            for spec in input_signature
        ]
    try:
        inputs = model.inputs
    except AttributeError:
        inputs = None
    if inputs:
        return [
            tf.TensorSpec(
                (batch_size,) + tuple(tensor.shape[1:]), tensor.dtype, name=portable.clean_name(tensor.name)
            )
            for tensor in inputs
        ]
    raise ValueError(
        f"cannot tell the inputs of {type(model).__name__} '{model.name}': pass input_signature, "
        "a list of tf.TensorSpec without the batch axis"
    )


def _zoo_model_inputs(model):
    """The inputs of the zoo's models of token ids, without the batch axis (a list of
    `tf.TensorSpec`), or None for another model: `token_ids` [time]; a tagger with character
    features takes `word_ids` [time] and `char_ids` [time, characters]."""
    from zoo.crf import CRFTagger
    from zoo.models import AveragedEnsemble, LanguageModel, SequenceClassifier, SequenceTagger

    if isinstance(model, AveragedEnsemble):
        members = [_zoo_model_inputs(member) for member in model.members]
        return members[0] if all(inputs is not None and inputs == members[0] for inputs in members) else None
    if isinstance(model, CRFTagger):
        return _zoo_model_inputs(model.emission_model)
    if isinstance(model, SequenceTagger) and model.string_embeddings is not None:
        raise ValueError("the LiteRT export does not take a SequenceTagger with string embeddings")
    if isinstance(model, SequenceTagger) and model.uses_chars:
        return [
            tf.TensorSpec([None], tf.int32, name=WORD_IDS),
            tf.TensorSpec([None, None], tf.int32, name=CHAR_IDS),
        ]
    if isinstance(model, (LanguageModel, SequenceClassifier, SequenceTagger)):
        return [tf.TensorSpec([None], tf.int32, name=streaming.TOKEN_IDS)]
    return None


def _named_outputs(model, outputs):
    from zoo.models import LanguageModel

    if isinstance(outputs, dict):
        return dict(outputs)
    if isinstance(outputs, (list, tuple)):
        return {f"output_{index}": output for index, output in enumerate(outputs)}
    return {streaming.LOGITS if isinstance(model, LanguageModel) else "output": outputs}


def _convert(signatures, quantize):
    with tempfile.TemporaryDirectory() as directory:
        # Through a SavedModel: freezing a concrete function would inline the LSTM functions
        # before the converter could fuse them.
        tf.saved_model.save(tf.Module(), directory, signatures=signatures)
        converter = tf.lite.TFLiteConverter.from_saved_model(directory, signature_keys=list(signatures))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.allow_custom_ops = False
        if quantize == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        try:
            return converter.convert()
        except Exception as error:  # the converter raises its own ConverterError
            raise ValueError(
                f"LiteRT's converter cannot convert this model: {_conversion_problem(error)}"
            ) from error


# An op without a builtin LiteRT kernel, in the converter's message: its node's name (the Keras
# layer's name scope first) and its TensorFlow op.
_MISSING_OP = re.compile(
    r"""fused\["\w+:", "([^"@]+)@[^"]*"\].*'tf\.(\w+)' op is neither a custom op nor a flex op"""
)
_TENSOR_LIST_NODE = re.compile(r"""fused\["\w+:", "([^"@]+)@([^"]*)"\]\):( error:)? failed to legalize""")


def _conversion_problem(error, count=12):
    """What the converter could not do, in a line when it says which ops (and where), else its first
    lines."""
    text = str(error)
    missing = dict.fromkeys(f"tf.{op} at {node}" for node, op in _MISSING_OP.findall(text))
    if missing:
        return "LiteRT has no builtin op for " + "; ".join(missing)
    if "Lowering tensor list ops is failed" in text:
        nodes = dict.fromkeys(f"{node} in {body}" for node, body, _ in _TENSOR_LIST_NODE.findall(text))
        return "LiteRT cannot lower a TensorArray of this graph to builtin ops (" + "; ".join(nodes) + ")"
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[:count])


def _check_operators(flatbuffer, lstm_layers):
    operators = [name for _, name in compat.litert_operators(flatbuffer)]
    foreign = sorted({name for name in operators if name.startswith("CUSTOM:")})
    if foreign:
        raise ValueError(f"the converted model holds custom or Flex operators {foreign}")
    fused = operators.count(FUSED_LSTM_OP)
    if fused < len(lstm_layers):
        raise ValueError(
            f"LiteRT's converter fused {fused} of the {len(lstm_layers)} LSTM layer traces "
            f"({', '.join(lstm_layers)}): a layer whose final cell state c is used by the model "
            "(returned, or fed to another layer) cannot become the fused op, which does not return it"
        )
