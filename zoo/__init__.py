"""Recurrent networks for Keras 3: cells, sequence layers with fast paths, models, text pipeline."""

from zoo import cells, layers
from zoo.cells import GRUCell, LayerNormLSTMCell, LSTMCell, PeepholeLSTMCell, SimpleRNNCell
from zoo.layers import GRU, LSTM, Bidirectional, SimpleRNN, StackedRNN, portable_graph

__version__ = "0.1.0"
