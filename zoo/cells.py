"""Recurrent cells written from the course's equations, usable in `keras.layers.RNN`.

Weights use Keras's names, shapes and gate order (`kernel` [input_dim, gates*units],
`recurrent_kernel` [units, gates*units], `bias`), so a Keras cell's weights load into ours and back.
Gate order: GRU z, r, h; LSTM i, f, c, o.
"""

import keras
from keras import activations, constraints, initializers, ops, regularizers

from zoo import compat

_SERIALIZATION_PACKAGE = "zoo"


def _validate_step_input(cell, inputs, expected_dim):
    if inputs.shape.rank is not None and len(inputs.shape) != 2:
        raise ValueError(
            f"{cell.__class__.__name__} '{cell.name}' expects one time step of shape "
            f"(batch, features); got shape {tuple(inputs.shape)}"
        )
    if inputs.shape[-1] is not None and expected_dim is not None and inputs.shape[-1] != expected_dim:
        raise ValueError(
            f"{cell.__class__.__name__} '{cell.name}' was built for {expected_dim} input features; "
            f"got {inputs.shape[-1]}"
        )


# Keras's RNN layer pre-computes dropout masks for cells that mix in `DropoutRNNCell`, so that one
# mask is used for every time step of a batch even inside a `tf.while_loop`.
class RecurrentCell(keras.layers.Layer, compat.DropoutRNNCell):
    """Base of the zoo's cells: arguments, weights and config shared by every gated cell.

    Subclasses set `gates` (how many blocks of `units` the kernels hold) and implement `call`.

    Args:
        units: Positive integer, dimensionality of the hidden state.
        activation: Activation of the candidate state (and LSTM output). Default `tanh`.
        recurrent_activation: Activation of the gates. Default `sigmoid`.
        use_bias: Whether the cell has a bias vector.
        kernel_initializer, recurrent_initializer, bias_initializer: Initializers of the weights.
        kernel_regularizer, recurrent_regularizer, bias_regularizer: Regularizers of the weights.
        kernel_constraint, recurrent_constraint, bias_constraint: Constraints of the weights.
        dropout: Fraction of the inputs dropped (one mask per sequence, as in Keras).
        recurrent_dropout: Fraction of the previous hidden state dropped (one mask per sequence).
        seed: Random seed for the dropout masks.
    """

    gates = 1

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"`units` must be a positive integer; got {units!r}")
        for name, rate in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1); got {rate!r}")
        # Keras's legacy `implementation` (1 or 2) changes nothing numerically; accept and ignore it.
        kwargs.pop("implementation", None)
        super().__init__(**kwargs)
        self.units = units
        self.activation = activations.get(activation)
        self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed=seed)
        self.state_size = units
        self.output_size = units

    def bias_shape(self):
        return (self.gates * self.units,)

    def make_bias_initializer(self):
        return self.bias_initializer

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"{self.__class__.__name__} needs a known feature size; got {input_shape}")
        self.input_dim = input_dim
        self.kernel = self.add_weight(
            shape=(input_dim, self.gates * self.units),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.gates * self.units),
            name="recurrent_kernel",
            initializer=self.recurrent_initializer,
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                shape=self.bias_shape(),
                name="bias",
                initializer=self.make_bias_initializer(),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None

    def dropped_inputs(self, inputs, training):
        _validate_step_input(self, inputs, getattr(self, "input_dim", None))
        if training and self.dropout > 0.0:
            return inputs * self.get_dropout_mask(inputs)
        return inputs

    def dropped_state(self, h_tm1, training):
        if training and self.recurrent_dropout > 0.0:
            return h_tm1 * self.get_recurrent_dropout_mask(h_tm1)
        return h_tm1

    def get_initial_state(self, batch_size=None):
        sizes = self.state_size if isinstance(self.state_size, (list, tuple)) else [self.state_size]
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in sizes]

    def get_config(self):
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "recurrent_activation": activations.serialize(self.recurrent_activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        return {**super().get_config(), **config}


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class SimpleRNNCell(RecurrentCell):
    """The course's RNN cell: H_t = φ(X_t W_xh + H_{t-1} W_hh + b_h).

    Args:
        units: Dimensionality of the hidden state.
        activation: φ, default `tanh`.
        (The other arguments are those of `RecurrentCell`; `recurrent_activation` is unused.)

    Call arguments:
        inputs: A 2D tensor `(batch, features)`.
        states: `[h_{t-1}]`, a list with one `(batch, units)` tensor.
        training: Whether dropout applies.

    Returns:
        `(h_t, [h_t])`.

    Example:

    >>> layer = keras.layers.RNN(zoo.cells.SimpleRNNCell(4), return_sequences=True)
    >>> layer(np.zeros((2, 3, 5), "float32")).shape
    (2, 3, 4)
    """

    gates = 1

    def __init__(self, units, activation="tanh", **kwargs):
        kwargs.pop("recurrent_activation", None)
        super().__init__(units, activation=activation, **kwargs)

    def call(self, inputs, states, training=False):
        h_tm1 = states[0] if isinstance(states, (list, tuple)) else states
        x = self.dropped_inputs(inputs, training)
        h = ops.matmul(x, self.kernel) + ops.matmul(
            self.dropped_state(h_tm1, training), self.recurrent_kernel
        )
        if self.use_bias:
            h = h + self.bias
        h = self.activation(h)
        return h, [h] if isinstance(states, (list, tuple)) else h

    def get_config(self):
        config = super().get_config()
        config.pop("recurrent_activation")
        return config


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class GRUCell(RecurrentCell):
    """The course's GRU cell, in both of Keras's conventions for the reset gate.

    R_t = σ(X_t W_xr + H_{t-1} W_hr + b_r), Z_t = σ(X_t W_xz + H_{t-1} W_hz + b_z),
    H̃_t = tanh(X_t W_xh + (R_t ⊙ H_{t-1}) W_hh + b_h)   (`reset_after=False`, the course's form)
    H̃_t = tanh(X_t W_xh + b_xh + R_t ⊙ (H_{t-1} W_hh + b_hh))   (`reset_after=True`, Keras's and cuDNN's)
    H_t = Z_t ⊙ H_{t-1} + (1 − Z_t) ⊙ H̃_t.

    Args:
        units: Dimensionality of the hidden state.
        reset_after: Apply the reset gate after the recurrent matmul (Keras's default, cuDNN-compatible;
            the bias then has shape `(2, 3 * units)`: input bias and recurrent bias).
        (The other arguments are those of `RecurrentCell`.)

    Call arguments:
        inputs: A 2D tensor `(batch, features)`.
        states: `[h_{t-1}]`.
        training: Whether dropout applies.

    Returns:
        `(h_t, [h_t])`.

    Example:

    >>> layer = keras.layers.RNN(zoo.cells.GRUCell(4, reset_after=False))
    >>> layer(np.zeros((2, 3, 5), "float32")).shape
    (2, 4)
    """

    gates = 3

    def __init__(self, units, reset_after=True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = reset_after

    def bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def call(self, inputs, states, training=False):
        h_tm1 = states[0] if isinstance(states, (list, tuple)) else states
        x = self.dropped_inputs(inputs, training)
        h_rec = self.dropped_state(h_tm1, training)
        units = self.units
        if self.use_bias and self.reset_after:
            input_bias, recurrent_bias = self.bias[0], self.bias[1]
        else:
            input_bias, recurrent_bias = self.bias, None

        x_proj = ops.matmul(x, self.kernel)
        if input_bias is not None:
            x_proj = x_proj + input_bias
        x_z, x_r, x_h = ops.split(x_proj, 3, axis=-1)

        if self.reset_after:
            h_proj = ops.matmul(h_rec, self.recurrent_kernel)
            if recurrent_bias is not None:
                h_proj = h_proj + recurrent_bias
            h_z, h_r, h_h = ops.split(h_proj, 3, axis=-1)
            z = self.recurrent_activation(x_z + h_z)
            r = self.recurrent_activation(x_r + h_r)
            candidate = self.activation(x_h + r * h_h)
        else:
            h_zr = ops.matmul(h_rec, self.recurrent_kernel[:, : 2 * units])
            h_z, h_r = ops.split(h_zr, 2, axis=-1)
            z = self.recurrent_activation(x_z + h_z)
            r = self.recurrent_activation(x_r + h_r)
            candidate = self.activation(x_h + ops.matmul(r * h_rec, self.recurrent_kernel[:, 2 * units :]))

        h = z * h_tm1 + (1.0 - z) * candidate
        return h, [h] if isinstance(states, (list, tuple)) else h

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class LSTMCell(RecurrentCell):
    """The course's LSTM cell.

    I_t, F_t, O_t = σ(X_t W_x* + H_{t-1} W_h* + b_*), C̃_t = tanh(X_t W_xc + H_{t-1} W_hc + b_c),
    C_t = F_t ⊙ C_{t-1} + I_t ⊙ C̃_t, H_t = O_t ⊙ tanh(C_t). Gate order in the kernels: i, f, c, o.

    Args:
        units: Dimensionality of the hidden and cell states.
        unit_forget_bias: Initialise the forget-gate bias to 1 (Jozefowicz et al., 2015), as Keras does.
        (The other arguments are those of `RecurrentCell`.)

    Call arguments:
        inputs: A 2D tensor `(batch, features)`.
        states: `[h_{t-1}, c_{t-1}]`.
        training: Whether dropout applies.

    Returns:
        `(h_t, [h_t, c_t])`.

    Example:

    >>> layer = keras.layers.RNN(zoo.cells.LSTMCell(4), return_state=True)
    >>> output, h, c = layer(np.zeros((2, 3, 5), "float32"))
    """

    gates = 4

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = unit_forget_bias
        self.state_size = [units, units]

    def make_bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        base, units = self.bias_initializer, self.units

        def forget_bias_one(_, *args, **kwargs):
            return ops.concatenate(
                [base((units,), *args, **kwargs), ops.ones((units,)), base((2 * units,), *args, **kwargs)]
            )

        return forget_bias_one

    def gate_preactivations(self, x, h_rec):
        """X_t W_x + H_{t-1} W_h + b for the four gates, as one (batch, 4*units) tensor."""
        z = ops.matmul(x, self.kernel) + ops.matmul(h_rec, self.recurrent_kernel)
        if self.use_bias:
            z = z + self.bias
        return z

    def call(self, inputs, states, training=False):
        h_tm1, c_tm1 = states
        x = self.dropped_inputs(inputs, training)
        z_i, z_f, z_c, z_o = ops.split(
            self.gate_preactivations(x, self.dropped_state(h_tm1, training)), 4, axis=-1
        )
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        c = f * c_tm1 + i * self.activation(z_c)
        o = self.recurrent_activation(z_o)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class PeepholeLSTMCell(LSTMCell):
    """LSTM with peephole connections (Gers & Schmidhuber, 2000), as TensorFlow Addons had it.

    The gates also see the cell state: I_t = σ(... + w_i ⊙ C_{t-1}), F_t = σ(... + w_f ⊙ C_{t-1}),
    O_t = σ(... + w_o ⊙ C_t), with diagonal peephole weights `input_gate_peephole_weights`,
    `forget_gate_peephole_weights` and `output_gate_peephole_weights` of shape (units,).

    Args:
        units: Dimensionality of the hidden and cell states.
        peephole_initializer: Initializer of the peephole weights (default glorot_uniform, as in TFA).
        (The other arguments are those of `LSTMCell`.)

    Example:

    >>> layer = keras.layers.RNN(zoo.cells.PeepholeLSTMCell(4))
    >>> layer(np.zeros((2, 3, 5), "float32")).shape
    (2, 4)
    """

    def __init__(self, units, peephole_initializer="glorot_uniform", **kwargs):
        super().__init__(units, **kwargs)
        self.peephole_initializer = initializers.get(peephole_initializer)

    def build(self, input_shape):
        super().build(input_shape)
        (
            self.input_gate_peephole_weights,
            self.forget_gate_peephole_weights,
            self.output_gate_peephole_weights,
        ) = (
            self.add_weight(
                shape=(self.units,),
                name=f"{gate}_gate_peephole_weights",
                initializer=self.peephole_initializer,
            )
            for gate in ("input", "forget", "output")
        )

    def call(self, inputs, states, training=False):
        h_tm1, c_tm1 = states
        x = self.dropped_inputs(inputs, training)
        z_i, z_f, z_c, z_o = ops.split(
            self.gate_preactivations(x, self.dropped_state(h_tm1, training)), 4, axis=-1
        )
        i = self.recurrent_activation(z_i + self.input_gate_peephole_weights * c_tm1)
        f = self.recurrent_activation(z_f + self.forget_gate_peephole_weights * c_tm1)
        c = f * c_tm1 + i * self.activation(z_c)
        o = self.recurrent_activation(z_o + self.output_gate_peephole_weights * c)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self):
        return {
            **super().get_config(),
            "peephole_initializer": initializers.serialize(self.peephole_initializer),
        }


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class LayerNormLSTMCell(LSTMCell):
    """LSTM with layer normalisation (Ba et al., 2016), as TensorFlow Addons had it.

    The input and recurrent projections of the gates are normalised separately, and so is the
    cell state before the output non-linearity:
    Z_t = LN_x(X_t W_x) + LN_h(H_{t-1} W_h) + b, C_t = F_t ⊙ C_{t-1} + I_t ⊙ tanh(Z_c),
    H_t = O_t ⊙ tanh(LN_c(C_t)).

    Args:
        units: Dimensionality of the hidden and cell states.
        norm_epsilon: Epsilon of the layer normalisations.
        norm_gamma_initializer, norm_beta_initializer: Initializers of their scale and offset.
        (The other arguments are those of `LSTMCell`.)

    Example:

    >>> layer = keras.layers.RNN(zoo.cells.LayerNormLSTMCell(4))
    >>> layer(np.zeros((2, 3, 5), "float32")).shape
    (2, 4)
    """

    def __init__(
        self, units, norm_epsilon=1e-3, norm_gamma_initializer="ones", norm_beta_initializer="zeros", **kwargs
    ):
        super().__init__(units, **kwargs)
        self.norm_epsilon = norm_epsilon
        self.norm_gamma_initializer = initializers.get(norm_gamma_initializer)
        self.norm_beta_initializer = initializers.get(norm_beta_initializer)
        self.kernel_norm, self.recurrent_norm, self.state_norm = (
            keras.layers.LayerNormalization(
                epsilon=norm_epsilon,
                gamma_initializer=self.norm_gamma_initializer,
                beta_initializer=self.norm_beta_initializer,
                dtype=self.dtype_policy,
                name=name,
            )
            for name in ("kernel_norm", "recurrent_norm", "state_norm")
        )

    def build(self, input_shape):
        super().build(input_shape)
        self.kernel_norm.build((None, 4 * self.units))
        self.recurrent_norm.build((None, 4 * self.units))
        self.state_norm.build((None, self.units))

    def call(self, inputs, states, training=False):
        h_tm1, c_tm1 = states
        x = self.dropped_inputs(inputs, training)
        z = self.kernel_norm(ops.matmul(x, self.kernel)) + self.recurrent_norm(
            ops.matmul(self.dropped_state(h_tm1, training), self.recurrent_kernel)
        )
        if self.use_bias:
            z = z + self.bias
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        c = f * c_tm1 + i * self.activation(z_c)
        o = self.recurrent_activation(z_o)
        h = o * self.activation(self.state_norm(c))
        return h, [h, c]

    def get_config(self):
        return {
            **super().get_config(),
            "norm_epsilon": self.norm_epsilon,
            "norm_gamma_initializer": initializers.serialize(self.norm_gamma_initializer),
            "norm_beta_initializer": initializers.serialize(self.norm_beta_initializer),
        }
