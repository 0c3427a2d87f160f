"""What the modern recurrent layers share: the cell base, the layer base with its path selector, and
the whole-sequence scans their parallel paths are built from.

The layers run their cells step by step (`"loop"`, Keras's `tf.while_loop` as in `zoo.layers`), in
a parallel form over the whole sequence (`"parallel"`), or in a fused C++ CPU kernel (`"fused"`,
`ops`): one large input product in TensorFlow, then `ops.gated_linear_recurrence` for the
element-wise recurrences (`LinearScanLayer`) or `ops.slstm_sequence`. `"auto"` takes the parallel
form on a GPU and, on CPU, the fused kernel where the layer has one and the ops are loaded, else
whichever trains faster there (`benchmarks/recurrent_layers.py`): the parallel form for mLSTM, the
loop for the others. Padded steps
follow `zoo.layers`'s rule on every path: the state is carried unchanged and the output repeats the
previous valid output (zeros before the first), or is zero with `zero_output_for_mask=True`. The
parallel forms handle any mask; the fused kernel takes right-padded masks and `"auto"` runs the
loop for others, as `zoo.layers` does.
"""

import keras
import tensorflow as tf
from keras import initializers, ops

# Reads weights in their stored dtype (float32 under a mixed policy) as `zoo.layers` does for its
# fused path; keras is pinned to 3.15 (setup.py).
from keras.src.backend import AutocastScope

import ops as zoo_ops
from zoo.cells import _validate_step_input
from zoo.export.portable import is_tracing_for_export
from zoo.layers import RecurrentLayer

_SERIALIZATION_PACKAGE = "zoo"
IMPLEMENTATIONS = ("auto", "loop", "parallel", "fused")
# The dtype the parallel forms compute a layer's compute dtype in: half precision in float32 (its
# exponentials and cumulative sums need the range), the results cast back.
_PARALLEL_DTYPES = {"float16": "float32", "bfloat16": "float32", "float32": "float32", "float64": "float64"}
# Stands for log(0) where a padded step must contribute nothing: finite, so no gradient meets inf - inf.
LOG_ZERO = -1e30


class ScanCell(keras.layers.Layer):
    """Base of the modern cells: `units`, one input projection `kernel` [input_dim, width] and `bias`
    [width], zero initial states, input validation and config. Subclasses set `state_size` and
    implement `projection_width`, `call` and (for extra weights) `build`.

    Args:
        units: Positive integer, dimensionality of the output.
        use_bias: Whether the input projection has a bias.
        kernel_initializer, bias_initializer: Initializers of the projection.
        kernel_regularizer, bias_regularizer: Regularizers of the projection.
        kernel_constraint, bias_constraint: Constraints of the projection.
    """

    def __init__(
        self,
        units,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"`units` must be a positive integer; got {units!r}")
        super().__init__(**kwargs)
        self.units = units
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.state_size = units
        self.output_size = units

    def projection_width(self):
        """Columns of the input projection."""
        raise NotImplementedError

    def make_bias_initializer(self):
        return self.bias_initializer

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"{self.__class__.__name__} needs a known feature size; got {input_shape}")
        self.input_dim = input_dim
        self.kernel = self.add_weight(
            shape=(input_dim, self.projection_width()),
            name="kernel",
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                shape=(self.projection_width(),),
                name="bias",
                initializer=self.make_bias_initializer(),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def project(self, inputs):
        """x W + b for one step `(batch, features)` or a whole sequence `(batch, time, features)`.

        A sequence is projected as one `(batch * time, features)` matrix with `bias_add`, which
        TensorFlow runs as a single fused product, and whose bias gradient is one reduction.
        """
        sequence = len(inputs.shape) == 3
        rows = tf.reshape(inputs, [-1, tf.shape(inputs)[-1]]) if sequence else inputs
        projected = tf.matmul(rows, ops.cast(self.kernel, inputs.dtype))
        if self.use_bias:
            projected = tf.nn.bias_add(projected, ops.cast(self.bias, inputs.dtype))
        if sequence:
            projected = tf.reshape(
                projected, tf.concat([tf.shape(inputs)[:-1], [self.projection_width()]], axis=0)
            )
            projected.set_shape([*inputs.shape[:-1], self.projection_width()])
        return projected

    def validated(self, inputs, states):
        """The step's input (validated) and its states as a list."""
        _validate_step_input(self, inputs, getattr(self, "input_dim", None))
        return inputs, list(states) if isinstance(states, (list, tuple)) else [states]

    def get_initial_state(self, batch_size=None):
        sizes = self.state_size if isinstance(self.state_size, (list, tuple)) else [self.state_size]
        return [ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in sizes]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
            "bias_constraint": keras.constraints.serialize(self.bias_constraint),
        }


def check_heads(cell, units, num_heads):
    """Validates `num_heads` (it must divide `units`) and returns the head size."""
    if not isinstance(num_heads, int) or isinstance(num_heads, bool) or num_heads <= 0:
        raise ValueError(f"`num_heads` must be a positive integer; got {num_heads!r}")
    if units % num_heads:
        raise ValueError(f"{cell}: `units` ({units}) must be divisible by `num_heads` ({num_heads})")
    return units // num_heads


def linspace_initializer(start, stop):
    """An initializer spreading a vector's entries evenly over [start, stop] (xLSTM's gate biases)."""

    def initializer(shape, dtype=None):
        return ops.cast(ops.linspace(start, stop, shape[-1]), dtype or "float32")

    return initializer


class ScanRecurrentLayer(RecurrentLayer):
    """Base of the modern sequence layers: `zoo.layers.RecurrentLayer`'s call surface (validation,
    stateful carried states, masks, config) with the paths `"loop"`, `"parallel"` and `"fused"`.

    Subclasses set `cell_class` and `cell_name`, implement `parallel_sequence` or set
    `no_parallel_form` to the reason they have none, and may implement `fused_sequence`
    (`zoo.layers.RecurrentLayer`'s signature) where a C++ kernel runs them.
    """

    no_parallel_form = None
    # Whether `"auto"` takes the parallel form on CPU too (measured by benchmarks/recurrent_layers.py).
    parallel_trains_faster_on_cpu = False

    def __init__(self, units, implementation="auto", **kwargs):
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"`implementation` must be one of {IMPLEMENTATIONS}; got {implementation!r}")
        kwargs.pop("use_cudnn", None)
        super().__init__(units, implementation="auto", **kwargs)
        self.implementation = implementation

    def plain_cell_blockers(self):
        """Reasons why no whole-sequence path (parallel or fused) can run this configuration."""
        blockers = []
        if type(self.cell) is not self.cell_class:
            blockers.append(
                f"the cell is a {type(self.cell).__name__}, not a plain {self.cell_class.__name__}"
            )
        if self.unroll:
            blockers.append("unroll=True")
        return blockers

    def parallel_blockers(self):
        """Reasons why the parallel form cannot run this configuration (empty if it can)."""
        blockers = [self.no_parallel_form] if self.no_parallel_form else []
        return blockers + self.plain_cell_blockers()

    def fused_blockers(self):
        """Reasons why the fused C++ kernel cannot run this configuration (empty if it can)."""
        blockers = []
        if self.fused_sequence is None:
            blockers.append(f"the ops package has no fused kernel for {self.__class__.__name__}")
        blockers += self.plain_cell_blockers()
        if self.compute_dtype not in _PARALLEL_DTYPES:
            blockers.append(f"the fused kernels run no {self.compute_dtype} layers")
        if not zoo_ops.is_available():
            blockers.append(f"the custom ops are unavailable ({zoo_ops.load_error()})")
        return blockers

    def choose_implementation(self):
        """The path this layer takes if traced now, and why the faster ones do not apply."""
        requested = self.implementation
        if is_tracing_for_export():
            if requested in ("parallel", "fused"):
                return "loop", [f"the {requested} form is not traced into exports"]
            return "loop", ["tracing for export"]
        if requested == "loop":
            return "loop", []
        if requested in ("parallel", "fused"):
            why_not = self.parallel_blockers() if requested == "parallel" else self.fused_blockers()
            if why_not:
                raise ValueError(
                    f"{self.__class__.__name__} '{self.name}': implementation={requested!r} cannot run: "
                    + "; ".join(why_not)
                )
            return requested, []
        on_gpu = bool(tf.config.list_logical_devices("GPU"))
        why_not = self.parallel_blockers()
        if on_gpu and not why_not:
            return "parallel", []
        reasons = []
        if not on_gpu:
            fused_why_not = self.fused_blockers()
            if not fused_why_not:
                return "fused", []
            reasons.append("fused: " + "; ".join(fused_why_not))
        if not (why_not or self.parallel_trains_faster_on_cpu or on_gpu):
            # The scans' large element-wise ops lose to the loop's small steps on CPU in training.
            why_not = ["on CPU the loop is faster (benchmarks/recurrent_layers.py)"]
        if why_not:
            return "loop", reasons + ["parallel: " + "; ".join(why_not)]
        return "parallel", reasons

    fused_sequence = None

    def fast_path_sequence(self, path, sequences, initial_state, mask, training):
        """Runs the fused kernel (through `zoo.layers.RecurrentLayer`: masks to lengths, the loop
        for masks that are not right-padded) or the parallel form over the sequence."""
        if path == "fused":
            return super().fast_path_sequence(path, sequences, initial_state, mask, training)
        if self.go_backwards:
            sequences = tf.reverse(sequences, axis=[1])
            mask = None if mask is None else tf.reverse(mask, axis=[1])
        dtype = _PARALLEL_DTYPES[self.compute_dtype]
        with AutocastScope(None):
            outputs, states = self.parallel_sequence(
                ops.cast(sequences, dtype), [ops.cast(state, dtype) for state in initial_state], mask
            )
        outputs = ops.cast(padding_rule(outputs, mask, self.zero_output_for_mask), self.compute_dtype)
        return outputs[:, -1], outputs, [ops.cast(state, self.compute_dtype) for state in states]

    def parallel_sequence(self, sequences, initial_state, mask):
        """The whole sequence at once, in processing order.

        Args:
            sequences: `(batch, time, features)` in the compute dtype of the parallel form.
            initial_state: The initial states, in that dtype.
            mask: `(batch, time)` bool or None; padded steps carry the state unchanged.

        Returns:
            `(outputs, final_states)`: the output each step would give if valid (padded steps are
            rewritten by the caller) and the states after the last step.
        """
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config.pop("use_cudnn", None)
        return config


class LinearScanLayer(ScanRecurrentLayer):
    """Base of the layers whose recurrence is element-wise and linear, h_t = a_t ⊙ h_{t−1} + b_t with
    a_t and b_t from x_t alone (minGRU, minLSTM, RG-LRU). Their cells provide
    `coefficients(projected)`, (a_t, b_t) from the projected input of a step or a sequence, for the
    loop and the parallel form. The fused path forms the whole sequence's projection in one product
    and runs the rest in one C++ kernel (`ops.gated_linear_recurrence`, forward and gradient), which
    forms the same coefficients (`fused_cell`'s) in its pass over the projection.
    """

    # The cell's name in `ops.gated_linear_recurrence`.
    fused_cell = None

    def fused_cell_arguments(self, dtype):
        """The kernel's arguments that come from the cell's own weights and constants: `log_base`
        (the RG-LRU's log σ(Λ); no entries for the other cells), and the RG-LRU's gate exponent."""
        return {"log_base": tf.zeros([0], dtype)}

    def fused_sequence(self, sequences, initial_state, lengths, keep_for_gradient):
        # The kernel keeps only its outputs for its gradient: nothing to leave out in inference.
        del keep_for_gradient
        outputs, final_h = zoo_ops.gated_linear_recurrence(
            self.cell.project(sequences),
            initial_h=initial_state[0],
            lengths=lengths,
            cell=self.fused_cell,
            **self.fused_cell_arguments(sequences.dtype),
            reverse=self.go_backwards,
            zero_output_for_mask=self.zero_output_for_mask,
        )
        return outputs, [final_h]


def padding_rule(outputs, mask, zero_output_for_mask):
    """Rewrites the outputs at padded steps as Keras's loop writes them: zero, or the last valid
    output before the step (zero before the first valid step). Any mask, not only right-padded."""
    if mask is None:
        return outputs
    zeros = tf.zeros_like(outputs)
    if zero_output_for_mask:
        return tf.where(mask[:, :, None], outputs, zeros)
    seen = tf.cumsum(tf.cast(mask, tf.int32), axis=1)
    # The valid positions of each row in increasing order, then the seen-th of them.
    valid_positions = tf.argsort(tf.cast(tf.logical_not(mask), tf.int32), axis=1, stable=True)
    last_valid = tf.gather(valid_positions, tf.maximum(seen - 1, 0), axis=1, batch_dims=1)
    carried = tf.gather(outputs, last_valid, axis=1, batch_dims=1)
    return tf.where((seen > 0)[:, :, None], carried, zeros)


def log_space_recurrence(log_a, log_b, initial, mask):
    """h_t = a_t h_{t-1} + b_t over axis 1 with a_t, b_t > 0 given as logarithms, by cumulative sums
    in log space (Heinsen, 2023; Feng et al., 2024, Sec. 3.1 and App. B):
    h_t = A_t h_0 + exp(log A_t + logcumsumexp_s(log b_s - log A_s)), A_t = a_1 ... a_t.
    `initial` (batch, units) may have any sign: it is added outside the logarithms. Padded steps
    (mask False) carry h unchanged (a = 1, b = 0)."""
    if mask is not None:
        valid = mask[:, :, None]
        log_a = tf.where(valid, log_a, tf.zeros_like(log_a))
        log_b = tf.where(valid, log_b, tf.fill(tf.shape(log_b), tf.constant(LOG_ZERO, log_b.dtype)))
    log_decay = tf.cumsum(log_a, axis=1)
    log_sum = tf.math.cumulative_logsumexp(log_b - log_decay, axis=1)
    return tf.exp(log_decay) * initial[:, None, :] + tf.exp(log_decay + log_sum)


def linear_recurrence(a, b, initial, mask):
    """h_t = a_t h_{t-1} + b_t over axis 1 by an associative scan (Hillis-Steele doubling: log2(T)
    rounds of the composition (a, b) then (a', b') = (a a', a' b + b')). Padded steps (mask False)
    carry h unchanged (a = 1, b = 0)."""
    if mask is not None:
        valid = mask[:, :, None]
        a = tf.where(valid, a, tf.ones_like(a))
        b = tf.where(valid, b, tf.zeros_like(b))
    b = tf.concat([b[:, :1] + a[:, :1] * initial[:, None, :], b[:, 1:]], axis=1)
    time = tf.shape(a)[1]

    def compose(offset, a, b):
        # Step t composes with the prefix ending at t - offset (identity before the start).
        shifted_a = tf.concat([tf.ones_like(a[:, :offset]), a[:, : time - offset]], axis=1)
        shifted_b = tf.concat([tf.zeros_like(b[:, :offset]), b[:, : time - offset]], axis=1)
        return 2 * offset, a * shifted_a, a * shifted_b + b

    _, _, h = tf.while_loop(lambda offset, a, b: offset < time, compose, (tf.constant(1), a, b))
    return h
