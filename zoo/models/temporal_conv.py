"""A short causal depthwise convolution over time (Griffin/Hawk's "Conv1D" before the RG-LRU) that
streams: one step at a time from the window of its last inputs."""

import keras
from keras import initializers, ops

from zoo.layers import CarriedState

_SERIALIZATION_PACKAGE = "zoo"


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class TemporalConv(keras.layers.Layer):
    """Causal depthwise convolution over time (De et al., 2024, Sec. 2.4, the temporal Conv1D of the
    recurrent block, width 4): each feature is a weighted sum of its own last `width` values,

        y_t = b + Σ_{k=0}^{width−1} w_k ⊙ x_{t−width+1+k},

    with x_s = 0 before the sequence (or the carried window). Written as `width` shifted products
    rather than a convolution op, so that every export format takes it and one step needs only the
    window of the previous `width − 1` inputs, flattened `(batch, (width − 1) * features)`.

    Args:
        width: Positive integer, how many time steps each output sees (the current one included).
        use_bias: Whether to add a bias.
        kernel_initializer, bias_initializer: Initializers of the `[width, features]` kernel and the
            `[features]` bias; the kernel's default is recurrentgemma's (a normal of variance
            0.01 / width).
        stateful: Carry the window from one batch to the next (as a stateful recurrent layer carries
            its state); `reset_state()` forgets it.

    Call arguments:
        inputs: `(batch, time, features)` float tensor.
        initial_state: Optional window `(batch, (width − 1) * features)`; zeros by default.

    Returns:
        `(outputs, window)`: `(batch, time, features)` and the window after the last step.

    Example:

    >>> conv = TemporalConv(4)
    >>> outputs, window = conv(np.zeros((2, 5, 8), "float32"))
    >>> outputs.shape, window.shape
    ((2, 5, 8), (2, 24))
    """

    def __init__(
        self,
        width,
        use_bias=True,
        kernel_initializer=None,
        bias_initializer="zeros",
        stateful=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"`width` must be a positive integer; got {width!r}")
        self.width = width
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(
            kernel_initializer
            or initializers.VarianceScaling(scale=0.01, mode="fan_in", distribution="untruncated_normal")
        )
        self.bias_initializer = initializers.get(bias_initializer)
        self.stateful = bool(stateful)
        self.carried_window = None

    def build(self, input_shape):
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"TemporalConv needs a known feature size; got {input_shape}")
        self.features = int(features)
        self.kernel = self.add_weight(
            shape=(self.width, self.features), name="kernel", initializer=self.kernel_initializer
        )
        self.bias = (
            self.add_weight(shape=(self.features,), name="bias", initializer=self.bias_initializer)
            if self.use_bias
            else None
        )
        if self.stateful and self.window_size:
            self.carried_window = CarriedState(self.window_size, self.variable_dtype, f"{self.name}_window")

    @property
    def window_size(self):
        """Size of the flattened window state per row."""
        return (self.width - 1) * self.features

    def get_initial_state(self, batch_size):
        return ops.zeros((batch_size, self.window_size), dtype=self.compute_dtype)

    def _combine(self, padded, steps):
        """Σ_k w_k ⊙ padded[:, k : k + steps] (+ b) over a window-padded `(batch, width−1+steps, f)`."""
        kernel = ops.cast(self.kernel, padded.dtype)
        outputs = padded[:, :steps] * kernel[0]
        for offset in range(1, self.width):
            outputs = outputs + padded[:, offset : offset + steps] * kernel[offset]
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, padded.dtype)
        return outputs

    def call(self, inputs, initial_state=None):
        if inputs.shape.rank != 3:
            raise ValueError(f"TemporalConv expects (batch, time, features); got shape {inputs.shape}")
        batch_size, steps = ops.shape(inputs)[0], ops.shape(inputs)[1]
        if initial_state is None:
            initial_state = (
                self.carried_window.read(batch_size, self.name)
                if self.carried_window is not None
                else self.get_initial_state(batch_size)
            )
        window = ops.reshape(
            ops.cast(initial_state, inputs.dtype), (batch_size, self.width - 1, self.features)
        )
        padded = ops.concatenate([window, inputs], axis=1)
        outputs = self._combine(padded, steps)
        new_window = ops.reshape(padded[:, steps:], (batch_size, self.window_size))
        if self.carried_window is not None:
            self.carried_window.assign(new_window)
        return outputs, new_window

    def step(self, inputs, window):
        """One time step: `inputs` `(batch, features)` and the window → `(outputs, new window)`."""
        batch_size = ops.shape(inputs)[0]
        padded = ops.concatenate(
            [ops.reshape(window, (batch_size, self.width - 1, self.features)), inputs[:, None, :]], axis=1
        )
        return self._combine(padded, 1)[:, 0], ops.reshape(padded[:, 1:], (batch_size, self.window_size))

    def reset_state(self):
        """Forgets the carried window (stateful layers): the next batch starts from zeros."""
        if self.carried_window is not None:
            self.carried_window.reset()

    def compute_output_shape(self, inputs_shape, initial_state_shape=None):
        return tuple(inputs_shape), (inputs_shape[0], (self.width - 1) * inputs_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "width": self.width,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "stateful": self.stateful,
        }
