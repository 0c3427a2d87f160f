"""Sequence layers: drop-in replacements for `keras.layers.SimpleRNN/GRU/LSTM` with fast-path dispatch.

Each layer is an instance of Keras's layer of the same name (so Keras's wrappers and third-party tools
that look for `keras.layers.LSTM` treat it as one), runs as a `keras.layers.RNN` over a cell from
`zoo.cells`, with Keras's constructor arguments, weight names and config, and chooses how to run the
whole sequence when it is traced:

- `"cudnn"`: on a GPU, Keras's own cuDNN kernels (`CudnnRNNV3`).
- `"fused"`: on CPU, the zoo's fused C++ sequence kernels from `ops` (one op for the whole sequence,
  forward and backward), in float32 or float64; half-precision layers (mixed precision) run the
  float32 op on their float32 weights and get their results cast back to the compute dtype.
- `"loop"`: the cell in Keras's `tf.while_loop`; always correct, the fallback.

`implementation="auto"` picks the fastest that applies; naming one forces it and raises a
`ValueError` that says why when it cannot apply. `layer.implementation_used` tells what the last
trace chose.

Padded steps (mask False), on every path: the state is carried unchanged and the output repeats the
previous step's output (zeros before the first valid step), as Keras's CPU loop does; with
`zero_output_for_mask=True` the output there is zero. (Keras's cuDNN path writes zeros on padded
steps instead; we post-process it to the rule above.) Masks must be right-padded for the fused and
cuDNN kernels; other masks run the loop.

SavedModel export traces only portable ops (the loop), so an exported model runs in plain TensorFlow
on any device: `model.export()` (Keras's `ExportArchive`), `tf.saved_model.save` and
`zoo.export.portable_graph()` are detected (`zoo.export.is_tracing_for_export`).
"""

import inspect

import keras
import tensorflow as tf
from keras import ops

import ops as zoo_ops
from zoo import cells, compat
from zoo.export.portable import (
    current_sequence_override,
    is_tracing_for_export,
    portable_graph,  # noqa: F401  (its first home: zoo.layers.portable_graph)
)

_SERIALIZATION_PACKAGE = "zoo"
IMPLEMENTATIONS = ("auto", "cudnn", "fused", "loop")
# The dtype the fused ops compute a layer's compute dtype in: half precision (mixed_float16,
# mixed_bfloat16 or a float16 layer) in float32, where the op is both faster than a half-precision
# cell loop on CPU and more accurate; the results are cast back.
_FUSED_DTYPES = {"float16": "float32", "bfloat16": "float32", "float32": "float32", "float64": "float64"}


def _is_gpu_available():
    return bool(tf.config.list_logical_devices("GPU"))


def _outside_replicas_of_several():
    """Whether this runs in the cross-replica context of a strategy with several replicas (e.g. a
    call on the whole global batch inside `strategy.scope()`, not inside `strategy.run`)."""
    return (
        tf.distribute.has_strategy()
        and tf.distribute.in_cross_replica_context()
        and tf.distribute.get_strategy().num_replicas_in_sync > 1
    )


class CarriedState(tf.Module):
    """One state a stateful layer carries from batch to batch (an entry of `layer.states`).

    Under a `tf.distribute` strategy each replica keeps its own copy (a variable synchronised on
    read) holding the state of its own rows of the batch, so sequential batches split over
    replicas carry every row's state as one device does. The copy takes the batch size of the
    replica's batches: after `reset()` it holds zero rows, and the next batch starts from zeros.
    A batch of another size than the carried state is an error. Calls outside the replicas of a
    strategy with several (e.g. on a whole global batch to build the model) start from zeros and
    leave the carried states alone: those rows belong to no replica.

    A `tf.Module`, so that a SavedModel of a stateful model reaches its variables; Keras does not
    count them among the layer's weights (as it does not count its own states).

    Args:
        size: the state's size per row.
        dtype: its dtype.
        name: the variable's name.
    """

    def __init__(self, size, dtype, name):
        super().__init__()
        self.size = size
        self.dtype = tf.as_dtype(dtype)
        per_replica = dict(
            trainable=False,
            synchronization=tf.VariableSynchronization.ON_READ,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        with tf.init_scope():  # the layer may be built while a function is traced
            self.variable = tf.Variable(self._zeros(0), shape=[None, size], name=name, **per_replica)
            # The rows the state holds, kept apart: Grappler infers a read's shape from the values
            # assigned to the variable in the same graph, so a test on tf.shape(read) would be folded.
            self.rows = tf.Variable(0, dtype=tf.int32, name=f"{name}_rows", **per_replica)

    def read(self, batch_size, layer_name):
        """The state for a batch of `batch_size` rows: the carried one, or zeros after a reset."""
        zeros = self._zeros(batch_size)
        if _outside_replicas_of_several():
            return zeros
        rows = tf.convert_to_tensor(self.rows)
        carried = tf.convert_to_tensor(self.variable)
        tf.debugging.assert_equal(
            tf.logical_or(tf.equal(rows, 0), tf.equal(rows, tf.cast(batch_size, tf.int32))),
            True,
            message=f"stateful layer '{layer_name}' carries the state of a batch of another size than "
            "this one: give every batch the same size (per replica), or call reset_state() between",
        )
        return tf.cond(tf.equal(rows, 0), lambda: zeros, lambda: tf.identity(carried))

    def assign(self, value):
        """Keeps `value` for the next batch (Keras's `RNN.call` calls this after each batch)."""
        if not _outside_replicas_of_several():
            self.variable.assign(value)
            self.rows.assign(tf.shape(value, out_type=tf.int32)[0])

    def reset(self):
        self.variable.assign(self._zeros(0))
        self.rows.assign(0)

    def _zeros(self, rows):
        return tf.zeros(tf.stack([rows, self.size]), self.dtype)


class RecurrentLayer(keras.layers.RNN):
    """Base of `SimpleRNN`, `GRU` and `LSTM`: builds the cell from the layer's arguments, validates
    inputs and dispatches to a fast path. Subclasses set `cell_class` and `cell_name`, may implement
    `fused_sequence` and `cudnn_sequence`, and also derive from Keras's layer of the same name, whose
    methods this class's replace (it calls `keras.layers.RNN`'s own).
    """

    cell_class = None
    cell_name = None

    def __init__(
        self,
        units,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        implementation="auto",
        activity_regularizer=None,
        **kwargs,
    ):
        if isinstance(implementation, int) and not isinstance(implementation, bool):
            # Keras's legacy integers (0, 1, 2: older Keras saved them in configs) select
            # equivalent ways to write the same maths.
            implementation = "auto"
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"`implementation` must be one of {IMPLEMENTATIONS}; got {implementation!r}")
        if self.cudnn_sequence is not None:
            # Only the layers with a cuDNN kernel take `use_cudnn`, as in Keras (whose wrappers
            # look for the attribute).
            use_cudnn = kwargs.pop("use_cudnn", "auto")
            if use_cudnn not in ("auto", True, False):
                raise ValueError(f"`use_cudnn` must be 'auto', True or False; got {use_cudnn!r}")
            if use_cudnn is True and implementation not in ("auto", "cudnn"):
                raise ValueError(f"use_cudnn=True contradicts implementation={implementation!r}")
            if use_cudnn is True:
                implementation = "cudnn"
        cell_kwargs = {
            name: kwargs.pop(name) for name in list(kwargs) if name in _cell_argument_names(self.cell_class)
        }
        cell = self.cell_class(
            units,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name=self.cell_name,
            **cell_kwargs,
        )
        # Keras's own layer (a base class, for isinstance) would build a Keras cell: go to the RNN.
        keras.layers.RNN.__init__(
            self,
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.implementation = implementation
        if self.cudnn_sequence is not None:
            self._use_cudnn = use_cudnn
        self.implementation_used = None

    # ------------------------------------------------------------------ validation
    def _validate_call_inputs(self, sequences, mask):
        shape = sequences.shape
        if shape.rank != 3:
            raise ValueError(
                f"{self.__class__.__name__} '{self.name}' expects inputs of shape (batch, time, features); "
                f"got shape {tuple(shape)}"
            )
        if not sequences.dtype.is_floating:
            raise TypeError(
                f"{self.__class__.__name__} '{self.name}' expects numeric inputs; got dtype "
                f"{sequences.dtype.name}"
            )
        if shape[1] == 0:
            raise ValueError(f"{self.__class__.__name__} '{self.name}' got a sequence of zero time steps")
        built_dim = getattr(self.cell, "input_dim", None)
        if self.built and built_dim is not None and shape[2] is not None and shape[2] != built_dim:
            raise ValueError(
                f"{self.__class__.__name__} '{self.name}' was built for {built_dim} features per step; "
                f"got {shape[2]}"
            )
        if mask is not None:
            mask_shape = tuple(mask.shape)
            if len(mask_shape) != 2 or any(
                m is not None and s is not None and m != s for m, s in zip(mask_shape, tuple(shape[:2]))
            ):
                raise ValueError(
                    f"{self.__class__.__name__} '{self.name}': the mask must have shape (batch, time) = "
                    f"{tuple(shape[:2])}; got {mask_shape}"
                )

    def call(self, sequences, initial_state=None, mask=None, training=False):
        sequences = ops.convert_to_tensor(sequences)
        if sequences.dtype.is_integer or sequences.dtype.is_bool:
            # Values, as Keras's layers take them (its ops cast them).
            sequences = ops.cast(sequences, self.compute_dtype)
        if mask is not None:
            mask = ops.convert_to_tensor(mask)
            if mask.dtype != "bool":
                raise TypeError(
                    f"{self.__class__.__name__} '{self.name}': the mask must be bool; got {mask.dtype}"
                )
        self._validate_call_inputs(sequences, mask)
        if self.stateful and initial_state is None:
            batch_size = ops.shape(sequences)[0]
            initial_state = [state.read(batch_size, self.name) for state in self.states]
        return keras.layers.RNN.call(
            self, sequences, initial_state=initial_state, mask=mask, training=training
        )

    # ------------------------------------------------------------------ carried state
    def build(self, sequences_shape, initial_state_shape=None):
        if self.stateful and self.states is None:
            # Keras's build needs a static batch size for its states; ours take each replica's.
            self.states = [
                CarriedState(size, self.variable_dtype, name=f"{self.name}_state_{index}")
                for index, size in enumerate(tf.nest.flatten(self.cell.state_size))
            ]
        keras.layers.RNN.build(self, sequences_shape, initial_state_shape)

    def reset_state(self):
        """Forgets the carried states: the next batch starts from zeros (each replica's copy)."""
        for state in self.states or ():
            state.reset()

    # ------------------------------------------------------------------ dispatch
    def kernel_blockers(self):
        """Reasons why neither fused nor cuDNN kernels can run this configuration (empty if they can)."""
        cell = self.cell
        blockers = []
        if type(cell) is not self.cell_class:
            blockers.append(f"the cell is a {type(cell).__name__}, not a plain {self.cell_class.__name__}")
        if cell.activation is not keras.activations.tanh:
            blockers.append("activation is not tanh")
        if getattr(cell, "recurrent_activation", keras.activations.sigmoid) is not keras.activations.sigmoid:
            blockers.append("recurrent_activation is not sigmoid")
        if cell.recurrent_dropout:
            blockers.append("recurrent_dropout is set")
        if self.unroll:
            blockers.append("unroll=True")
        return blockers

    def fused_blockers(self):
        blockers = self.kernel_blockers()
        if self.fused_sequence is None:
            blockers.append(f"the ops package has no fused kernel for {self.__class__.__name__}")
        if self.compute_dtype not in _FUSED_DTYPES:
            blockers.append(f"the fused kernels run no {self.compute_dtype} layers")
        if not zoo_ops.is_available():
            blockers.append(f"the custom ops are unavailable ({zoo_ops.load_error()})")
        return blockers

    def cudnn_blockers(self):
        if self.cudnn_sequence is None:
            return [f"cuDNN has no kernel for {self.__class__.__name__}"]
        blockers = self.kernel_blockers()
        if not self.cell.use_bias:
            blockers.append("use_bias=False")
        if self._use_cudnn is False:
            blockers.append("use_cudnn=False")
        if not _is_gpu_available():
            blockers.append("no GPU is visible")
        return blockers

    def choose_implementation(self):
        """The path this layer takes if traced now, and why the faster ones do not apply."""
        requested = self.implementation
        if is_tracing_for_export():
            if requested not in ("auto", "loop"):
                # An exported graph must run in plain TensorFlow on any device.
                return "loop", [f"{requested} kernels are not portable into a SavedModel"]
            return "loop", ["tracing for export"]
        reasons = []
        for path, blockers in (("cudnn", self.cudnn_blockers), ("fused", self.fused_blockers)):
            if requested in ("auto", path):
                why_not = blockers()
                if not why_not:
                    return path, reasons
                if requested == path:
                    raise ValueError(
                        f"{self.__class__.__name__} '{self.name}': implementation={path!r} cannot run: "
                        + "; ".join(why_not)
                    )
                reasons.append(f"{path}: " + "; ".join(why_not))
        return "loop", reasons

    fused_sequence = None
    cudnn_sequence = None

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        run_sequence = current_sequence_override()
        if run_sequence is not None:
            result = run_sequence(self, sequences, initial_state, mask)
            if result is not None:
                self.implementation_used = "export"
                return result
        path, _ = self.choose_implementation()
        self.implementation_used = path
        if path == "loop":
            return keras.layers.RNN.inner_loop(self, sequences, initial_state, mask=mask, training=training)
        return self.fast_path_sequence(path, sequences, initial_state, mask, training)

    def fast_path_sequence(self, path, sequences, initial_state, mask, training):
        """Runs `path` (a kernel: "fused" or "cudnn") over the sequence; returns what Keras's
        `RNN.inner_loop` returns: `(last_output, outputs, final_states)`."""
        if training and getattr(self.cell, "dropout", 0):
            # One input dropout mask per sequence, as the cell applies it at every step.
            step_mask = ops.expand_dims(self.cell.get_dropout_mask(sequences[:, 0, :]), axis=1)
            sequences = sequences * step_mask
        if path == "fused":
            keep_for_gradient = _gradient_may_be_taken(training)

            def kernel_call(lengths):
                return self._fused_in_kernel_dtype(sequences, initial_state, lengths, keep_for_gradient)
        else:

            def kernel_call(lengths):
                return self.cudnn_sequence(sequences, initial_state, lengths, mask)

        def run_kernel(lengths):
            outputs, states = kernel_call(lengths)
            return outputs[:, -1], outputs, states

        if mask is None:
            batch, time = ops.shape(sequences)[0], ops.shape(sequences)[1]
            return run_kernel(tf.fill([batch], tf.cast(time, tf.int32)))

        lengths, right_padded = zoo_ops.mask_to_lengths(mask)
        if path == "cudnn":
            # cuDNN rejects fully masked rows; the loop handles them.
            right_padded = tf.logical_and(right_padded, tf.reduce_all(lengths > 0))
        if self.implementation == path:
            tf.debugging.assert_equal(
                right_padded,
                True,
                message=f"{self.__class__.__name__} '{self.name}': implementation={path!r} needs "
                "right-padded masks; use implementation='auto' or 'loop' for other masks",
            )
            return run_kernel(lengths)
        self.implementation_used = f"{path} (loop for masks that are not right-padded)"

        def loop():
            last, outputs, states = keras.layers.RNN.inner_loop(
                self, sequences, initial_state, mask=mask, training=training
            )
            if not self.return_sequences:
                outputs = ops.expand_dims(last, axis=1)
            return last, outputs, list(states)

        def kernel():
            last, outputs, states = run_kernel(lengths)
            if not self.return_sequences:
                outputs = ops.expand_dims(last, axis=1)
            return last, outputs, list(states)

        return tf.cond(right_padded, kernel, loop)

    def _fused_in_kernel_dtype(self, sequences, initial_state, lengths, keep_for_gradient):
        """`fused_sequence` in the dtype the ops compute this layer's compute dtype in, with its
        results in the compute dtype (what the loop path returns)."""
        kernel_dtype = _FUSED_DTYPES[self.compute_dtype]
        # The weights as stored (float32 under a mixed policy), not cast to the compute dtype.
        with compat.autocast_disabled():
            outputs, states = self.fused_sequence(
                ops.cast(sequences, kernel_dtype),
                [ops.cast(s, kernel_dtype) for s in initial_state],
                lengths,
                keep_for_gradient,
            )
        return ops.cast(outputs, self.compute_dtype), [ops.cast(s, self.compute_dtype) for s in states]

    def apply_padding_rule(self, outputs, lengths):
        """Rewrites a kernel's outputs at padded steps to the loop's rule (see the module docstring).

        cuDNN writes zeros there; with right padding, the loop's output at a padded step is the last
        valid output in forward order, and zero in reverse order (padding is processed first).
        """
        time = ops.shape(outputs)[1]
        valid = tf.sequence_mask(lengths, time)
        if self.go_backwards:
            valid = tf.reverse(valid, axis=[1])
        if self.zero_output_for_mask or self.go_backwards:
            return tf.where(valid[:, :, None], outputs, tf.zeros_like(outputs))
        last_valid = tf.gather(outputs, tf.maximum(lengths - 1, 0), axis=1, batch_dims=1)
        return tf.where(valid[:, :, None], outputs, last_valid[:, None, :])

    # ------------------------------------------------------------------ config
    def get_config(self):
        config = keras.layers.RNN.get_config(self)
        cell_config = config.pop("cell")["config"]
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        config = {**config, **cell_config, "implementation": self.implementation}
        if self.cudnn_sequence is not None:
            config["use_cudnn"] = self._use_cudnn
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _cell_argument_names(cell_class):
    names = set()
    for klass in cell_class.__mro__:
        if klass is keras.layers.Layer:
            break
        if "__init__" in vars(klass):
            names.update(inspect.signature(klass.__init__).parameters)
    return names - {"self", "units", "kwargs"}


def _cell_property(name):
    return property(lambda self: getattr(self.cell, name), doc=f"The cell's `{name}`.")


for _name in (
    "units",
    "activation",
    "recurrent_activation",
    "use_bias",
    "kernel_initializer",
    "recurrent_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "recurrent_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "recurrent_constraint",
    "bias_constraint",
    "dropout",
    "recurrent_dropout",
    "seed",
):
    setattr(RecurrentLayer, _name, _cell_property(_name))


def _gradient_may_be_taken(training):
    """Whether a fused op keeps what its gradient reads: in training, and wherever a GradientTape
    may be recording (a custom loop that calls the model without `training=True`). In predict,
    evaluate or plain inference it keeps nothing, which saves memory and time; a gradient taken
    there after all is still right (the op's gradient runs the forward again)."""
    if tf.is_tensor(training) or training:
        return True
    return compat.gradient_tape_may_record()


def _weights(cell, dtype):
    """The cell's kernel, recurrent kernel and bias (None without one) as tensors of `dtype`."""
    bias = ops.cast(cell.bias, dtype) if cell.use_bias else None
    return ops.cast(cell.kernel, dtype), ops.cast(cell.recurrent_kernel, dtype), bias


class CudnnRecurrentLayer(RecurrentLayer):
    """Base of `GRU` and `LSTM`, which have cuDNN kernels and so, as in Keras, `use_cudnn`."""

    @property
    def use_cudnn(self):
        """The `use_cudnn` argument, or False where this layer takes no cuDNN path (a fused or loop
        path is forced, or the trace is for export): Keras's `Bidirectional` reads it to run cuDNN
        itself."""
        if self.implementation in ("fused", "loop") or is_tracing_for_export():
            return False
        return self._use_cudnn

    @use_cudnn.setter
    def use_cudnn(self, value):
        self._use_cudnn = value


_LAYER_ARGS_DOC = """
    Args:
        units: Positive integer, dimensionality of the output space.
        activation, recurrent_activation, use_bias, *_initializer, *_regularizer, *_constraint,
            dropout, recurrent_dropout, seed: as in the Keras layer of the same name.
        return_sequences: Return the whole output sequence, or only the last output.
        return_state: Also return the final states.
        go_backwards: Process the sequence backwards (outputs in processing order, as Keras).
        stateful: Carry the final states of batch i over as the initial states of batch i+1
            (under a `tf.distribute` strategy, each replica its own rows': see `CarriedState`).
        unroll: Unroll the loop (forces the loop path).
        zero_output_for_mask: Output zeros at padded steps instead of repeating the last output.
        implementation: `"auto"` (fastest that applies), `"cudnn"`, `"fused"` or `"loop"`; a named
            path that cannot apply raises a `ValueError` saying why. Keras's legacy integers (0, 1,
            2) mean `"auto"`.
        use_cudnn: GRU and LSTM only, as in Keras: `"auto"`, `True` (same as
            implementation="cudnn") or `False`.

    Call arguments:
        sequences: A 3D tensor `(batch, time, features)`; integer or boolean values are cast to
            the layer's compute dtype, as Keras's layers take them.
        initial_state: List of initial state tensors (optional, zeros by default).
        mask: Boolean tensor `(batch, time)`, True at valid steps (optional).
        training: Whether dropout applies.
"""


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class SimpleRNN(RecurrentLayer, keras.layers.SimpleRNN):
    __doc__ = (
        """Fully connected RNN, H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h); drop-in for Keras's SimpleRNN.
"""
        + _LAYER_ARGS_DOC
        + """
    Example:

    >>> layer = zoo.layers.SimpleRNN(8, return_sequences=True)
    >>> layer(np.zeros((2, 5, 3), "float32")).shape
    (2, 5, 8)
    """
    )

    cell_class = cells.SimpleRNNCell
    cell_name = "simple_rnn_cell"

    def fused_sequence(self, sequences, initial_state, lengths, keep_for_gradient):
        kernel, recurrent_kernel, bias = _weights(self.cell, sequences.dtype)
        outputs, final_h = zoo_ops.simple_rnn_sequence(
            sequences,
            initial_state[0],
            kernel,
            recurrent_kernel,
            bias,
            lengths,
            reverse=self.go_backwards,
            zero_output_for_mask=self.zero_output_for_mask,
            keep_for_gradient=keep_for_gradient,
        )
        return outputs, [final_h]


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class GRU(CudnnRecurrentLayer, keras.layers.GRU):
    __doc__ = (
        """Gated Recurrent Unit (Cho et al., 2014); drop-in for `keras.layers.GRU`.

    `reset_after=True` (default, as Keras) applies the reset gate after the recurrent matmul, which
    cuDNN requires; `reset_after=False` is the course's form.
"""
        + _LAYER_ARGS_DOC
        + """
    Example:

    >>> layer = zoo.layers.GRU(8, return_state=True)
    >>> output, state = layer(np.zeros((2, 5, 3), "float32"))
    >>> layer.implementation_used
    'fused'
    """
    )

    cell_class = cells.GRUCell
    cell_name = "gru_cell"

    def cudnn_blockers(self):
        blockers = super().cudnn_blockers()
        if not self.cell.reset_after:
            blockers.append("cuDNN's GRU needs reset_after=True")
        return blockers

    def fused_sequence(self, sequences, initial_state, lengths, keep_for_gradient):
        kernel, recurrent_kernel, bias = _weights(self.cell, sequences.dtype)
        outputs, final_h = zoo_ops.gru_sequence(
            sequences,
            initial_state[0],
            kernel,
            recurrent_kernel,
            bias,
            lengths,
            reset_after=self.cell.reset_after,
            reverse=self.go_backwards,
            zero_output_for_mask=self.zero_output_for_mask,
            keep_for_gradient=keep_for_gradient,
        )
        return outputs, [final_h]

    def cudnn_sequence(self, sequences, initial_state, lengths, mask):
        cell = self.cell
        _, outputs, states = compat.cudnn_gru(
            sequences,
            initial_state[0],
            mask,
            kernel=cell.kernel,
            recurrent_kernel=cell.recurrent_kernel,
            bias=cell.bias,
            activation=cell.activation,
            recurrent_activation=cell.recurrent_activation,
            return_sequences=True,
            go_backwards=self.go_backwards,
            reset_after=cell.reset_after,
        )
        return self.apply_padding_rule(outputs, lengths), list(states)


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class LSTM(CudnnRecurrentLayer, keras.layers.LSTM):
    __doc__ = (
        """Long Short-Term Memory (Hochreiter & Schmidhuber, 1997); drop-in for `keras.layers.LSTM`.

    Extra argument: `unit_forget_bias` (forget-gate bias initialised to 1), as in Keras.
"""
        + _LAYER_ARGS_DOC
        + """
    Example:

    >>> model = keras.Sequential([
    ...     keras.layers.Embedding(28, 32),
    ...     zoo.layers.LSTM(64, return_sequences=True),
    ...     keras.layers.Dense(28),
    ... ])
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    """
    )

    cell_class = cells.LSTMCell
    cell_name = "lstm_cell"

    def fused_sequence(self, sequences, initial_state, lengths, keep_for_gradient):
        kernel, recurrent_kernel, bias = _weights(self.cell, sequences.dtype)
        outputs, final_h, final_c = zoo_ops.lstm_sequence(
            sequences,
            initial_state[0],
            initial_state[1],
            kernel,
            recurrent_kernel,
            bias,
            lengths,
            reverse=self.go_backwards,
            zero_output_for_mask=self.zero_output_for_mask,
            keep_for_gradient=keep_for_gradient,
        )
        return outputs, [final_h, final_c]

    def cudnn_sequence(self, sequences, initial_state, lengths, mask):
        cell = self.cell
        _, outputs, states = compat.cudnn_lstm(
            sequences,
            initial_state[0],
            initial_state[1],
            mask,
            kernel=cell.kernel,
            recurrent_kernel=cell.recurrent_kernel,
            bias=cell.bias,
            activation=cell.activation,
            recurrent_activation=cell.recurrent_activation,
            return_sequences=True,
            go_backwards=self.go_backwards,
        )
        return self.apply_padding_rule(outputs, lengths), list(states)


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class Bidirectional(keras.layers.Bidirectional):
    """Bidirectional wrapper: `keras.layers.Bidirectional` with its `stateful` + `return_state` crash fixed.

    Keras 3.15 fails in `compute_mask` when the wrapped layer has `stateful=True` and
    `return_state=True` (it multiplies a generator); this computes the masks of every output.
    Everything else (merge modes, masks, initial states split in halves) is Keras's.

    Args:
        layer: The forward recurrent layer (e.g. `zoo.layers.LSTM`); a backward copy is made.
        merge_mode: `"concat"`, `"sum"`, `"ave"`, `"mul"` or None (a list of both outputs).
        backward_layer: Optional explicit backward layer.

    Example:

    >>> layer = zoo.layers.Bidirectional(zoo.layers.GRU(8, return_sequences=True))
    >>> layer(np.zeros((2, 5, 3), "float32")).shape
    (2, 5, 16)

    A bidirectional model sees the future, so it cannot generate text step by step.
    """

    def compute_mask(self, _, mask):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if self.return_sequences:
            output_mask = [mask, mask] if self.merge_mode is None else mask
        else:
            output_mask = [None, None] if self.merge_mode is None else None
        if not self.return_state:
            return output_mask
        state_masks = [None] * (2 * len(self.forward_layer.state_size))
        if self.merge_mode is None:
            return output_mask + state_masks
        return [output_mask] + state_masks


_RECURRENT_LAYERS = {"rnn": SimpleRNN, "gru": GRU, "lstm": LSTM}


@keras.saving.register_keras_serializable(package=_SERIALIZATION_PACKAGE)
class StackedRNN(keras.layers.Layer):
    """A deep RNN: `num_layers` recurrent layers, layer l reading the outputs of layer l-1.

    Like PyTorch's `num_layers`/`dropout`: dropout is applied between layers (not after the last),
    and the final states of every layer are returned.

    Args:
        cell_type: `"rnn"`, `"gru"` or `"lstm"`.
        units: Hidden size of each layer (per direction).
        num_layers: Number of stacked layers.
        dropout: Dropout rate between layers.
        bidirectional: Wrap each layer in `zoo.layers.Bidirectional`.
        merge_mode: The bidirectional merge mode (not None).
        return_sequences: Return the top layer's whole output sequence (default) or its last output.
        return_state: Also return the final states of every layer, flattened in layer order
            (LSTM: h_1, c_1, h_2, c_2, ...; bidirectional: forward states then backward states per layer).
        stateful: Carry all layers' states across batches.
        **layer_kwargs: Other arguments of the recurrent layers (e.g. `implementation`,
            `recurrent_dropout`, `reset_after`).

    Call arguments:
        sequences: `(batch, time, features)` float tensor.
        initial_state: Optional flat list of initial states in the order of the returned states.
        mask: Optional `(batch, time)` bool mask.
        training: Whether dropout applies.

    Example:

    >>> stack = zoo.layers.StackedRNN("lstm", 32, num_layers=2, dropout=0.2, return_state=True)
    >>> output, h1, c1, h2, c2 = stack(np.zeros((4, 7, 3), "float32"))
    >>> output.shape
    (4, 7, 32)
    """

    def __init__(
        self,
        cell_type,
        units,
        num_layers=2,
        dropout=0.0,
        bidirectional=False,
        merge_mode="concat",
        return_sequences=True,
        return_state=False,
        stateful=False,
        **layer_kwargs,
    ):
        name = layer_kwargs.pop("name", None)
        base_kwargs = {key: layer_kwargs.pop(key) for key in ("dtype", "trainable") if key in layer_kwargs}
        super().__init__(name=name, **base_kwargs)
        if cell_type not in _RECURRENT_LAYERS:
            raise ValueError(f"`cell_type` must be one of {sorted(_RECURRENT_LAYERS)}; got {cell_type!r}")
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"`num_layers` must be a positive integer; got {num_layers!r}")
        if bidirectional and merge_mode is None:
            raise ValueError("StackedRNN needs a merge_mode to feed one layer's outputs to the next")
        self.cell_type = cell_type
        self.units = units
        self.num_layers = num_layers
        self.dropout = dropout
        self.bidirectional = bidirectional
        self.merge_mode = merge_mode
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.stateful = stateful
        self.layer_kwargs = layer_kwargs
        self.supports_masking = True
        layer_class = _RECURRENT_LAYERS[cell_type]
        self.rnn_layers = []
        for index in range(num_layers):
            layer = layer_class(
                units,
                return_sequences=return_sequences or index < num_layers - 1,
                return_state=True,
                stateful=stateful,
                name=f"{cell_type}_{index}",
                **base_kwargs,
                **layer_kwargs,
            )
            if bidirectional:
                layer = Bidirectional(layer, merge_mode=merge_mode, name=f"bidirectional_{index}")
            self.rnn_layers.append(layer)
        self.between_layers = (
            [keras.layers.Dropout(dropout) for _ in range(num_layers - 1)] if dropout else []
        )
        # Each layer's final states, in order: the cell's own (2 for an LSTM, 4 for an sLSTM, ...),
        # forward then backward when bidirectional.
        first = self.rnn_layers[0].forward_layer if bidirectional else self.rnn_layers[0]
        self.state_sizes = list(tf.nest.flatten(first.cell.state_size)) * (2 if bidirectional else 1)
        self.states_per_layer = len(self.state_sizes)

    def build(self, sequences_shape, initial_state_shape=None):
        shape = tuple(sequences_shape)
        for layer in self.rnn_layers:
            layer.build(shape)
            shape = tuple(layer.compute_output_shape(shape)[0])

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if initial_state is not None and len(initial_state) != self.num_layers * self.states_per_layer:
            raise ValueError(
                f"StackedRNN '{self.name}' expects {self.num_layers * self.states_per_layer} initial states "
                f"({self.states_per_layer} per layer); got {len(initial_state)}"
            )
        layers = list(self.layer_by_layer(sequences, initial_state, mask, training))
        outputs = layers[-1][0]
        final_states = [state for _, states in layers for state in states]
        if self.return_state:
            return [outputs] + final_states
        return outputs

    def layer_by_layer(self, sequences, initial_state=None, mask=None, training=False):
        """Yields each layer's `(outputs, final states)`, the lowest first; the next layer reads
        the outputs after the dropout between layers."""
        outputs = sequences
        for index, layer in enumerate(self.rnn_layers):
            layer_state = None
            if initial_state is not None:
                start = index * self.states_per_layer
                layer_state = list(initial_state[start : start + self.states_per_layer])
            outputs, *states = layer(outputs, initial_state=layer_state, mask=mask, training=training)
            yield outputs, states
            if index < len(self.between_layers):
                outputs = self.between_layers[index](outputs, training=training)

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, time = sequences_shape[0], sequences_shape[1]
        width = self.units * (2 if self.bidirectional and self.merge_mode == "concat" else 1)
        output_shape = (batch, time, width) if self.return_sequences else (batch, width)
        if not self.return_state:
            return output_shape
        return [output_shape] + [(batch, size) for size in self.state_sizes] * self.num_layers

    def compute_mask(self, _, mask):
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * (self.num_layers * self.states_per_layer)
        return output_mask

    def reset_state(self):
        for layer in self.rnn_layers:
            layer.reset_state()

    @property
    def implementation_used(self):
        """The path each layer took on its last trace."""
        return [
            (layer.forward_layer if self.bidirectional else layer).implementation_used
            for layer in self.rnn_layers
        ]

    def get_config(self):
        return {
            **super().get_config(),
            "cell_type": self.cell_type,
            "units": self.units,
            "num_layers": self.num_layers,
            "dropout": self.dropout,
            "bidirectional": self.bidirectional,
            "merge_mode": self.merge_mode,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "stateful": self.stateful,
            **self.layer_kwargs,
        }


# The modern recurrent layers (zoo.recurrent builds on RecurrentLayer above).
from zoo.recurrent import MLSTM, RGLRU, SLSTM, MinGRU, MinLSTM  # noqa: E402

_RECURRENT_LAYERS.update(mingru=MinGRU, minlstm=MinLSTM, rglru=RGLRU, slstm=SLSTM, mlstm=MLSTM)
