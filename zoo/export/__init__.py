"""Export: trained models as artefacts that run without zoo.

- `saved_model(module, path, signatures)`: a serving module as a SavedModel (`zoo/export/saved_model.py`).
- `tflite(model, path, ...)`: LiteRT, each `zoo.layers.LSTM` as the fused LSTM op (`zoo/export/tflite.py`).
- `onnx(model, path, ...)`: ONNX with native `LSTM`, `GRU` and `RNN` nodes (`zoo/export/onnx.py`).
- `portable_graph()`, `is_tracing_for_export()`, `sequence_override()`: how zoo's layers trace for an
  export (`zoo/export/portable.py`).
"""

from zoo.export.onnx import onnx
from zoo.export.portable import is_tracing_for_export, portable_graph, sequence_override
from zoo.export.saved_model import saved_model
from zoo.export.tflite import tflite
