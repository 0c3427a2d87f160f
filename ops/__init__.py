"""Custom TensorFlow ops for the zoo: C++ kernels, thin Python wrappers, gradients, fallbacks.

Every op here has a pure-TensorFlow fallback that gives the same numbers; the compiled library is
used when it loads (see BUILD.md).
"""

from ops._library import amx_tiles_enabled, is_available, load_error
from ops.linear_recurrence import gated_linear_recurrence, linear_recurrence
from ops.rnn import gru_sequence, lstm_sequence, simple_rnn_sequence
from ops.sequence_lengths import mask_to_lengths
from ops.slstm import slstm_sequence

__all__ = [
    "amx_tiles_enabled",
    "gated_linear_recurrence",
    "gru_sequence",
    "is_available",
    "linear_recurrence",
    "load_error",
    "lstm_sequence",
    "mask_to_lengths",
    "simple_rnn_sequence",
    "slstm_sequence",
]
