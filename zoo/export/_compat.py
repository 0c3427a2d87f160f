"""The private Keras and TensorFlow internals the exporters use, in one place.

Checked against TensorFlow 2.21.0 and Keras 3.15.1.
"""

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
