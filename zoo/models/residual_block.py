"""The residual block of the modern recurrent language models: pre-normalisation, a recurrent layer
(after a short causal convolution, Hawk's), a gated MLP, and a residual connection around each."""

import inspect

import keras

from zoo.layers import _RECURRENT_LAYERS
from zoo.models.temporal_conv import TemporalConv

_SERIALIZATION_PACKAGE = "zoo"
# RMSNorm's epsilon, as in recurrentgemma.
NORM_EPSILON = 1e-6


def cell_step(cell, inputs, states):
    """One step of a recurrent cell at inference: `(output, new states as a flat list)`. The classic
    cells take `training` (their dropout masks), the modern ones have none."""
    if "training" in inspect.signature(cell.call).parameters:
        output, new_states = cell.call(inputs, states, training=False)
    else:
        output, new_states = cell.call(inputs, states)
    return output, list(keras.tree.flatten(new_states))


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class ResidualRecurrentBlock(keras.layers.Layer):
    """One residual block of a recurrent language model, as Griffin/Hawk (De et al., 2024, Sec. 2.1,
    Fig. 2), minGRU/minLSTM's language models (Feng et al., 2024, Sec. 4.3) and xLSTM's
    post-up-projection block (Beck et al., 2024, Sec. 2.4) stack them:

        h = x + Dropout(Recurrent(Conv(RMSNorm(x))))
        y = h + Dropout(W_down (GeLU(h' W_gate) ⊙ (h' W_up))),   h' = RMSNorm(h)

    The recurrent layer keeps the block's width (`units`); the convolution (`TemporalConv`, Hawk's
    width 4 before the RG-LRU) is left out with `conv_width=0`; the gated MLP (GeGLU) widens to
    `mlp_expansion * units`. The temporal block here is the recurrent layer alone: Hawk's extra
    GeLU branch and linear projections around it are not part of it.

    Args:
        cell_type: A key of `zoo.layers.StackedRNN`'s layers: `"rnn"`, `"gru"`, `"lstm"`,
            `"mingru"`, `"minlstm"`, `"rglru"`, `"slstm"` or `"mlstm"`.
        units: Width of the block: its input, output and recurrent layer.
        conv_width: Width of the causal convolution before the recurrent layer; 0 for none.
        mlp_expansion: Hidden width of the gated MLP, as a multiple of `units`.
        dropout: Dropout rate of both residual branches.
        stateful: Carry the recurrent state and the convolution's window across batches.
        implementation: The recurrent layer's `implementation`.
        recurrent_layer_kwargs: Other keyword arguments of the recurrent layer (e.g.
            `{"num_heads": 4}` for sLSTM and mLSTM).

    Call arguments:
        inputs: `(batch, time, units)` float tensor.
        initial_state: Optional flat list of states, `state_sizes`' order: the recurrent layer's,
            then the convolution's window (with a convolution).
        training: Whether dropout applies.

    Returns:
        `(outputs, states)`: `(batch, time, units)` and the final states.

    Example:

    >>> block = ResidualRecurrentBlock("rglru", 64, conv_width=4)
    >>> outputs, states = block(np.zeros((2, 7, 64), "float32"))
    >>> outputs.shape, [state.shape for state in states]
    ((2, 7, 64), [(2, 64), (2, 192)])
    """

    def __init__(
        self,
        cell_type,
        units,
        conv_width=0,
        mlp_expansion=3,
        dropout=0.0,
        stateful=False,
        implementation="auto",
        recurrent_layer_kwargs=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if cell_type not in _RECURRENT_LAYERS:
            raise ValueError(f"`cell_type` must be one of {sorted(_RECURRENT_LAYERS)}; got {cell_type!r}")
        for name, value, minimum in (("units", units, 1), ("conv_width", conv_width, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}")
        if not mlp_expansion > 0:
            raise ValueError(f"`mlp_expansion` must be positive; got {mlp_expansion!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"`dropout` must be in [0, 1); got {dropout!r}")
        self.cell_type = cell_type
        self.units = units
        self.conv_width = conv_width
        self.mlp_expansion = mlp_expansion
        self.dropout = dropout
        self.stateful = bool(stateful)
        self.implementation = implementation
        self.recurrent_layer_kwargs = dict(recurrent_layer_kwargs or {})
        self.mixer_norm = keras.layers.RMSNormalization(epsilon=NORM_EPSILON, name="mixer_norm")
        self.conv = TemporalConv(conv_width, stateful=stateful, name="conv") if conv_width else None
        self.recurrent = _RECURRENT_LAYERS[cell_type](
            units,
            return_sequences=True,
            return_state=True,
            stateful=stateful,
            implementation=implementation,
            name=cell_type,
            **self.recurrent_layer_kwargs,
        )
        self.mlp_norm = keras.layers.RMSNormalization(epsilon=NORM_EPSILON, name="mlp_norm")
        hidden = int(round(mlp_expansion * units))
        self.mlp_gate = keras.layers.Dense(hidden, activation="gelu", name="mlp_gate")
        self.mlp_up = keras.layers.Dense(hidden, name="mlp_up")
        self.mlp_down = keras.layers.Dense(units, name="mlp_down")
        self.branch_dropout = keras.layers.Dropout(dropout) if dropout else None
        # The recurrent layer's states (2 for an LSTM, 4 for an sLSTM, ...), then the window.
        self.state_sizes = [int(size) for size in keras.tree.flatten(self.recurrent.cell.state_size)]
        if self.conv is not None:
            self.state_sizes.append((conv_width - 1) * units)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if input_shape[-1] != self.units:
            raise ValueError(
                f"ResidualRecurrentBlock '{self.name}' of width {self.units} got inputs of {input_shape[-1]} "
                "features: the residual connection needs the same width"
            )
        self.mixer_norm.build(input_shape)
        if self.conv is not None:
            self.conv.build(input_shape)
        self.recurrent.build(input_shape)
        self.mlp_norm.build(input_shape)
        self.mlp_gate.build(input_shape)
        self.mlp_up.build(input_shape)
        self.mlp_down.build(input_shape[:-1] + (self.mlp_gate.units,))

    def _branch(self, outputs, training):
        if self.branch_dropout is None:
            return outputs
        return self.branch_dropout(outputs, training=training)

    def _mlp(self, inputs):
        normed = self.mlp_norm(inputs)
        return self.mlp_down(self.mlp_gate(normed) * self.mlp_up(normed))

    def _split_states(self, states):
        count = len(self.state_sizes) - (1 if self.conv is not None else 0)
        recurrent_states = list(states[:count])
        window = states[count] if self.conv is not None else None
        return recurrent_states, window

    def call(self, inputs, initial_state=None, training=False):
        recurrent_states, window = (
            (None, None) if initial_state is None else self._split_states(initial_state)
        )
        mixed = self.mixer_norm(inputs)
        final_states = []
        if self.conv is not None:
            mixed, window = self.conv(mixed, initial_state=window)
        mixed, *recurrent_final = self.recurrent(mixed, initial_state=recurrent_states, training=training)
        final_states.extend(recurrent_final)
        if self.conv is not None:
            final_states.append(window)
        hidden = inputs + self._branch(mixed, training)
        return hidden + self._branch(self._mlp(hidden), training), final_states

    def step(self, inputs, states):
        """One time step on the block's weights: `inputs` `(batch, units)` and the flat states →
        `(outputs (batch, units), new states)`."""
        recurrent_states, window = self._split_states(states)
        mixed = self.mixer_norm(inputs)
        new_states = []
        if self.conv is not None:
            mixed, window = self.conv.step(mixed, window)
        mixed, recurrent_new = cell_step(self.recurrent.cell, mixed, recurrent_states)
        new_states.extend(recurrent_new)
        if self.conv is not None:
            new_states.append(window)
        hidden = inputs + mixed
        return hidden + self._mlp(hidden), new_states

    def get_initial_state(self, batch_size):
        """Zero states for `batch_size` sequences, `state_sizes`' order."""
        states = list(self.recurrent.cell.get_initial_state(batch_size=batch_size))
        if self.conv is not None:
            states.append(self.conv.get_initial_state(batch_size))
        return states

    def reset_state(self):
        """Forgets the carried states (stateful blocks)."""
        self.recurrent.reset_state()
        if self.conv is not None:
            self.conv.reset_state()

    @property
    def implementation_used(self):
        return self.recurrent.implementation_used

    def compute_output_shape(self, inputs_shape, initial_state_shape=None):
        return tuple(inputs_shape), [(inputs_shape[0], size) for size in self.state_sizes]

    def get_config(self):
        return {
            **super().get_config(),
            "cell_type": self.cell_type,
            "units": self.units,
            "conv_width": self.conv_width,
            "mlp_expansion": self.mlp_expansion,
            "dropout": self.dropout,
            "stateful": self.stateful,
            "implementation": self.implementation,
            "recurrent_layer_kwargs": self.recurrent_layer_kwargs,
        }
