"""Portable tracing: graphs that plain TensorFlow runs, without zoo's custom ops.

The zoo's sequence layers (`zoo.layers`) choose a fast path when they are traced: the fused C++
kernels on CPU, cuDNN on a GPU. Neither belongs in an exported graph: the fused kernels live in zoo's
op library, which the process that loads the export does not have, and a cuDNN graph does not run on a
CPU. While a trace is for export, the layers run the cell loop, built from core TensorFlow ops only.

A trace is for export inside `portable_graph()`, inside `tf.saved_model.save`, and in the endpoints
of Keras's `ExportArchive` (behind `model.export()` in every format: importing this module makes
their functions trace inside `portable_graph()`, see `zoo.compat.install_export_tracing`; Keras may
trace them before it opens a save context).

Example:

>>> with zoo.export.portable_graph():
...     concrete = tf.function(model).get_concrete_function(tf.TensorSpec([None, None], tf.int32))
"""

import contextlib
import threading

from zoo import compat

_portable_state = threading.local()
_sequence_override = threading.local()


@contextlib.contextmanager
def portable_graph():
    """Within this context, zoo layers trace only ops that plain TensorFlow has (the cell loop).

    `model.export()` and `tf.saved_model.save` are detected without it; use it when tracing a graph
    for another kind of export yourself (e.g. `tf.function(...).get_concrete_function()` written out
    by hand, or a converter that traces the model).

    Example:

    >>> with zoo.export.portable_graph():
    ...     concrete = serve.get_concrete_function()
    """
    previous = getattr(_portable_state, "active", False)
    _portable_state.active = True
    try:
        yield
    finally:
        _portable_state.active = previous


def is_tracing_for_export():
    """Whether the current trace will be exported.

    Returns:
        True inside `portable_graph()` (which Keras's `ExportArchive` endpoints trace in) and inside
        a `tf.saved_model.save`; False otherwise.
    """
    return getattr(_portable_state, "active", False) or compat.in_save_context()


@contextlib.contextmanager
def sequence_override(run_sequence):
    """Within this context, recurrent layers first offer their whole-sequence computation to
    `run_sequence(layer, sequences, initial_state, mask)`.

    It returns `(last_output, outputs, states)` as `keras.layers.RNN.inner_loop` does, or None to
    let the layer take its own path. Exporters use it to trace a runtime's own form of a layer
    (`zoo.export.tflite`: the function LiteRT's converter turns into its fused LSTM op).
    """
    previous = getattr(_sequence_override, "run_sequence", None)
    _sequence_override.run_sequence = run_sequence
    try:
        yield
    finally:
        _sequence_override.run_sequence = previous


def current_sequence_override():
    """The `run_sequence` of the innermost `sequence_override` context, or None outside one."""
    return getattr(_sequence_override, "run_sequence", None)


def clean_name(name):
    """`name` as a signature or graph input name: letters, digits and underscores."""
    return "".join(character if character.isalnum() else "_" for character in name)


compat.install_export_tracing(portable_graph)
