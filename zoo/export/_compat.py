"""The private Keras and TensorFlow internals the exporters use, in one place.

Checked against TensorFlow 2.21.0 and Keras 3.15.1.
"""

import keras
from keras.src.models.functional import Functional
from tensorflow.lite.python import schema_py_generated as _litert_schema

_BUILTIN_NAMES = {
    code: name for name, code in vars(_litert_schema.BuiltinOperator).items() if not name.startswith("_")
}


def flatten_layers(model):
    """Every layer inside `model` (nested ones too, wrappers' inner layers included), not `model`."""
    return model._flatten_layers(include_self=False, recursive=True)


def litert_operators(flatbuffer):
    """The operators of a LiteRT flatbuffer: a list of `(subgraph_name, operator_name)` pairs.

    Builtin operators are named as in LiteRT's schema (`"UNIDIRECTIONAL_SEQUENCE_LSTM"`); a
    custom or Flex operator by its custom code, prefixed with `"CUSTOM:"`.
    """
    model = _litert_schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    names = []
    for code in model.operatorCodes:
        # Schema v3 keeps codes below 127 in the deprecated byte and newer ones in `builtinCode`.
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == _litert_schema.BuiltinOperator.CUSTOM:
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            names.append(f"CUSTOM:{custom}")
        else:
            names.append(_BUILTIN_NAMES.get(builtin, str(builtin)))
    operators = []
    for subgraph in model.subgraphs:
        subgraph_name = subgraph.name.decode() if isinstance(subgraph.name, bytes) else subgraph.name
        for operator in subgraph.operators or []:
            operators.append((subgraph_name or "", names[operator.opcodeIndex]))
    return operators


def functional_graph(model):
    """The functional graph of a functional or sequential model; None for a subclassed model (or a
    sequential one built without an input shape)."""
    if isinstance(model, keras.Sequential):
        return model._functional
    if isinstance(model, Functional):
        return model
    return None


def run_functional(functional, inputs, call):
    """Walks a functional graph from `inputs`, computing each node as `call(layer, *args, **kwargs)`
    (the node's arguments with its input tensors replaced by what `call` returned for them)."""
    return functional._run_through_graph(inputs, operation_fn=lambda operation: operation, call_fn=call)


def clean_name(name):
    """`name` as a signature or graph input name: letters, digits and underscores."""
    return "".join(character if character.isalnum() else "_" for character in name)
