"""The modern recurrent layers and their cells: minGRU and minLSTM (Feng et al., 2024), the RG-LRU
of Griffin and Hawk (De et al., 2024), and xLSTM's sLSTM and mLSTM (Beck et al., 2024).

Each runs step by step over its cell (`implementation="loop"`), except sLSTM in a parallel form
over the whole sequence (`"parallel"`), and except mLSTM in a fused C++ CPU kernel (`"fused"`:
`ops.gated_linear_recurrence`, `ops.slstm_sequence`); `zoo.layers` and `zoo.cells` re-export
them.
"""

from zoo.recurrent.min_gru import MinGRU, MinGRUCell
from zoo.recurrent.min_lstm import MinLSTM, MinLSTMCell
from zoo.recurrent.mlstm import MLSTM, MLSTMCell
from zoo.recurrent.rg_lru import RGLRU, RGLRUCell
from zoo.recurrent.slstm import SLSTM, SLSTMCell

__all__ = [
    "MLSTM",
    "RGLRU",
    "SLSTM",
    "MLSTMCell",
    "MinGRU",
    "MinGRUCell",
    "MinLSTM",
    "MinLSTMCell",
    "RGLRUCell",
    "SLSTMCell",
]
