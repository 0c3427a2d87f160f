"""Export: trained models as artefacts that run without zoo.

- `saved_model(module, path, signatures)`: a serving module as a SavedModel (`zoo/export/saved_model.py`).
- `portable_graph()`, `is_tracing_for_export()`: tracing without zoo's custom ops (`zoo/export/portable.py`).
"""

from zoo.export.portable import is_tracing_for_export, portable_graph
from zoo.export.saved_model import saved_model
