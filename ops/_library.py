"""Loads the compiled op library once, or says (once) why the pure-TensorFlow fallbacks are used."""

import ctypes
import glob
import os
import warnings

import tensorflow as tf

_LIBRARY = None
_LIBRARY_PATH = None
_LOAD_ERROR = None
_LOADED = False


def _find_library_file():
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = sorted(glob.glob(os.path.join(here, "_zoo_ops*.so")))
    return candidates[0] if candidates else None


def load():
    """Returns the loaded op module, or None (with one warning) when it is missing or broken.

    Setting `ZOO_DISABLE_OPS=1` forces the fallbacks, which tests use to compare both paths.
    """
    global _LIBRARY, _LIBRARY_PATH, _LOAD_ERROR, _LOADED
    if _LOADED:
        return _LIBRARY
    _LOADED = True
    if os.environ.get("ZOO_DISABLE_OPS") == "1":
        _LOAD_ERROR = "disabled by ZOO_DISABLE_OPS=1"
        return None
    path = _find_library_file()
    if path is None:
        _LOAD_ERROR = "the compiled library ops/_zoo_ops*.so was not found (was `pip install` run?)"
    else:
        try:
            _LIBRARY = tf.load_op_library(path)
            _LIBRARY_PATH = path
        except (tf.errors.NotFoundError, OSError) as error:
            _LOAD_ERROR = f"{path} failed to load ({error}); rebuild it against TensorFlow {tf.__version__}"
    if _LIBRARY is None:
        warnings.warn(
            f"zoo custom ops unavailable: {_LOAD_ERROR}. Using the pure-TensorFlow fallbacks (slower).",
            RuntimeWarning,
            stacklevel=2,
        )
    return _LIBRARY


def load_error():
    """Why the library is not loaded, or None when it is."""
    load()
    return _LOAD_ERROR


def is_available():
    return load() is not None


def amx_tiles_enabled():
    """Whether the fused kernels run their per-step products on AMX tiles now: the library is
    loaded, the CPU has AMX-TILE and AMX-INT8, Linux grants tile data, and `ZOO_AMX` is not "0"
    (see BUILD.md)."""
    if load() is None:
        return False
    function = ctypes.CDLL(_LIBRARY_PATH).ZooAmxTilesEnabled
    function.restype = ctypes.c_bool
    return bool(function())
