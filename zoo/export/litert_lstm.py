"""Traces `zoo.layers.LSTM` as the function LiteRT's converter replaces by its fused LSTM kernel.

The converter (`CheckFusableKerasLstm`, TensorFlow's MLIR converter) turns a `tf.function` whose
`api_implements` attribute starts with `"lstm_"` into one `UNIDIRECTIONAL_SEQUENCE_LSTM` op when:
its arguments are `(inputs, init_h, init_c, kernel, recurrent_kernel, bias)` with a static batch size,
it returns five outputs (last output, outputs, h, c, runtime) of which only the first two are used,
no mask is passed, and the function survives into the converter's input (a SavedModel keeps it; a
frozen concrete function has it inlined). Keras 2's LSTM was traced that way; Keras 3's is not.

Two properties of the fused op shape what is traced around it:

- It holds its states in variable tensors and writes the final states back into them. Fed from a
  constant, the state would carry over from one `invoke()` to the next; so each layer's initial
  states are computed from its input (`initial + 0 * tanh(x_0)`, distinct per state so that no two
  stateful operands share a value), and the interpreter recomputes them on every invocation.
- It knows no mask. Masks are read as right padding (valid steps first, the zoo's batching): the
  op runs over the padded sequence (a backward layer over each sequence reversed within its length,
  `REVERSE_SEQUENCE`), and the outputs at padded steps and the final h are rewritten to Keras's
  rule from the outputs at the valid steps. The final c of a masked sequence cannot be recovered
  this way; the fused op does not return c anyway, so a model that uses c is rejected (see
  `zoo.export.tflite`).
"""

import contextlib
import uuid

import keras
import tensorflow as tf

from zoo import layers as zoo_layers
from zoo.export import portable

API_PREFIX = "lstm_"


def lstm_blockers(layer):
    """Why LiteRT's fused LSTM op cannot compute `layer` (a `zoo.layers.LSTM`); empty if it can."""
    cell = layer.cell
    blockers = []
    if type(cell) is not zoo_layers.LSTM.cell_class:
        blockers.append(f"its cell is a {type(cell).__name__}, not a plain LSTMCell")
    if cell.activation is not keras.activations.tanh:
        blockers.append("the fused op's activation is tanh")
    if cell.recurrent_activation is not keras.activations.sigmoid:
        blockers.append("the fused op's gates are sigmoids")
    return blockers


def _fusable_lstm(go_backwards=False):
    """A new `tf.function` the converter fuses: its own `api_implements` name, so that each
    traced layer becomes its own op. Its body (a loop over the LSTM equations) is what TensorFlow
    runs; the converter replaces it."""

    @tf.function(
        experimental_attributes={
            "api_implements": f"{API_PREFIX}{uuid.uuid4()}",
            "time_major": False,
            "go_backwards": go_backwards,
        },
        autograph=False,
    )
    def lstm(inputs, init_h, init_c, kernel, recurrent_kernel, bias):
        projected = tf.einsum("btd,dg->btg", inputs, kernel) + bias
        time = tf.shape(inputs)[1]

        def step(t, h, c, outputs):
            gates = projected[:, t] + tf.matmul(h, recurrent_kernel)
            input_gate, forget_gate, candidate, output_gate = tf.split(gates, 4, axis=1)
            c = tf.sigmoid(forget_gate) * c + tf.sigmoid(input_gate) * tf.tanh(candidate)
            h = tf.sigmoid(output_gate) * tf.tanh(c)
            return t + 1, h, c, outputs.write(t, h)

        _, h, c, outputs = tf.while_loop(
            lambda t, *_: t < time,
            step,
            (tf.constant(0), init_h, init_c, tf.TensorArray(inputs.dtype, size=time)),
        )
        outputs = tf.transpose(outputs.stack(), [1, 0, 2])
        return outputs[:, -1], outputs, h, c, tf.constant(0.0)

    return lstm


class FusedLSTMTrace:
    """The `zoo.export.sequence_override` that traces every `zoo.layers.LSTM` for fusion.

    `traced` lists the names of the layers it traced, in order.
    """

    def __init__(self):
        self.traced = []

    def __call__(self, layer, sequences, initial_state, mask):
        if not isinstance(layer, zoo_layers.LSTM):
            return None
        index = len(self.traced)
        self.traced.append(layer.name)
        cell = layer.cell
        dtype = sequences.dtype
        kernel = tf.convert_to_tensor(cell.kernel)
        recurrent_kernel = tf.convert_to_tensor(cell.recurrent_kernel)
        bias = tf.convert_to_tensor(cell.bias) if cell.use_bias else tf.zeros([4 * cell.units], dtype)
        init_h, init_c = initial_state
        # Zero, but computed from the input on each invocation (see the module docstring).
        zero = 0.0 * tf.tanh(sequences[:, 0, :1])
        init_h = init_h + zero * float(2 * index + 1)
        init_c = init_c + zero * float(2 * index + 2)

        lengths = None
        if mask is not None:
            lengths = tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)
        inputs = sequences
        if layer.go_backwards:
            if lengths is None:
                inputs = tf.reverse(sequences, axis=[1])
            else:
                inputs = tf.reverse_sequence(sequences, lengths, seq_axis=1, batch_axis=0)
        _, outputs, _, final_c, _ = _fusable_lstm()(inputs, init_h, init_c, kernel, recurrent_kernel, bias)

        if lengths is None:
            last = outputs[:, -1]
            return last, outputs, [last, final_c]
        time = tf.shape(outputs)[1]
        valid = tf.sequence_mask(lengths, time)[:, :, None]
        has_steps = (lengths > 0)[:, None]
        if layer.go_backwards:
            # Valid outputs back in reversed order, padded steps first (zeros: no step yet).
            in_place = tf.where(valid, tf.reverse_sequence(outputs, lengths, seq_axis=1, batch_axis=0), 0.0)
            final_h = in_place[:, 0]
            outputs = tf.reverse(in_place, axis=[1])
        else:
            # Zeros for a row without valid steps: its outputs are all padding.
            final_h = tf.where(has_steps, tf.gather(outputs, tf.maximum(lengths - 1, 0), batch_dims=1), 0.0)
            padding = 0.0 if layer.zero_output_for_mask else final_h[:, None, :]
            outputs = tf.where(valid, outputs, padding)
        final_h = tf.where(has_steps, final_h, initial_state[0])
        return outputs[:, -1], outputs, [final_h, final_c]


@contextlib.contextmanager
def fused_lstm_graph():
    """Within this context, traced `zoo.layers.LSTM` layers become LiteRT-fusable functions and the
    other recurrent layers trace their portable loop. Yields the `FusedLSTMTrace`."""
    trace = FusedLSTMTrace()
    with portable.portable_graph(), portable.sequence_override(trace):
        yield trace
