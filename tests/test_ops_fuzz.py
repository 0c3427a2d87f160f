"""Drives the fused recurrent kernels with random malformed arguments in a child process: every call must
raise tf.errors.InvalidArgumentError and the process must survive (no crash, no abort).

Run alone as a script (`python tests/test_ops_fuzz.py CASES SEED`) it is the fuzz driver, which
is also what the AddressSanitizer build runs (see BUILD.md).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

OPS = (
    "simple_rnn",
    "simple_rnn_grad",
    "lstm",
    "lstm_grad",
    "gru",
    "gru_grad",
    "linear_recurrence",
    "linear_recurrence_grad",
    "gated_linear_recurrence",
    "gated_linear_recurrence_grad",
    "slstm",
    "slstm_grad",
)
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
# The gradient ops that can sum their weight gradients themselves.
_SEQUENCE_GRADIENTS = ("simple_rnn_grad", "lstm_grad", "gru_grad")


def _op_name(op):
    """The library's function: "lstm" -> zoo_lstm_sequence, "lstm_grad" -> zoo_lstm_sequence_grad,
    "linear_recurrence_grad" -> zoo_linear_recurrence_grad."""
    base = op.removesuffix("_grad")
    suffix = op[len(base) :]
    recurrence = base in ("linear_recurrence", "gated_linear_recurrence")
    return f"zoo_{base}{suffix}" if recurrence else f"zoo_{base}_sequence{suffix}"


def _valid_arguments(op, rng):
    """A random well-formed argument set for `op`."""
    batch, time, features, units = (int(v) for v in rng.integers(0, 5, size=4))
    lengths = rng.integers(0, time + 1, size=batch).astype(np.int32)
    zeros = lambda *shape: np.zeros(shape, np.float32)  # noqa: E731
    if op == "linear_recurrence":
        return dict(
            a=zeros(batch, time, units),
            b=zeros(batch, time, units),
            initial_h=zeros(batch, units),
            lengths=lengths,
        )
    if op == "linear_recurrence_grad":
        return dict(
            a=zeros(batch, time, units),
            initial_h=zeros(batch, units),
            lengths=lengths,
            outputs=zeros(batch, time, units),
            d_outputs=zeros(batch, time, units),
            d_final_h=zeros(batch, units),
        )
    if op.startswith("gated"):
        # The RG-LRU's form (run_fuzz sets cell="rg_lru"), the one whose log_base has entries.
        arguments = dict(
            projected=zeros(batch, time, 3 * units),
            log_base=zeros(units),
            initial_h=zeros(batch, units),
            lengths=lengths,
        )
        if op.endswith("_grad"):
            arguments.update(
                outputs=zeros(batch, time, units),
                d_outputs=zeros(batch, time, units),
                d_final_h=zeros(batch, units),
            )
        return arguments
    if op.startswith("slstm"):
        # Heads of at least one unit: with none, any number of heads is a valid (empty) call.
        heads, size = int(rng.integers(0, 4)), int(rng.integers(1, 4))
        units = heads * size
        arguments = dict(recurrent_kernel=zeros(heads, size, 4 * size), lengths=lengths)
        if op == "slstm":
            arguments["projected"] = zeros(batch, time, 4 * units)
            arguments.update({f"initial_{state}": zeros(batch, units) for state in "hcnm"})
        else:
            arguments.update(pre=zeros(batch, time, 4 * units), previous=zeros(batch, time, 4 * units))
            arguments["d_outputs"] = zeros(batch, time, units)
            arguments.update({f"d_final_{state}": zeros(batch, units) for state in "hcnm"})
        return arguments
    gates = GATES[op.removesuffix("_grad")]
    arguments = dict(
        inputs=zeros(batch, time, features),
        kernel=zeros(features, gates * units),
        recurrent_kernel=zeros(units, gates * units),
        lengths=lengths,
    )
    if op == "lstm":
        arguments.update(initial_h=zeros(batch, units), initial_c=zeros(batch, units), bias=zeros(4 * units))
    elif op == "gru":
        arguments.update(initial_h=zeros(batch, units), bias=zeros(2, 3 * units))
    elif op == "simple_rnn":
        arguments.update(initial_h=zeros(batch, units), bias=zeros(units))
    elif op == "simple_rnn_grad":
        arguments.update(
            states=zeros(time, batch, units),
            d_outputs=zeros(batch, time, units),
            d_final_h=zeros(batch, units),
            step_inputs=zeros(time, batch, features + units),
        )
    else:
        saved = 4 * units
        # The forward op keeps its saved activations time-major.
        arguments.update(
            gates=zeros(time, batch, saved),
            d_outputs=zeros(batch, time, units),
            d_final_h=zeros(batch, units),
        )
        if op == "lstm_grad":
            arguments.update(
                c_prev=zeros(time, batch, units),
                d_final_c=zeros(batch, units),
                step_inputs=zeros(time, batch, features + units),
            )
        else:
            arguments.update(h_prev=zeros(time, batch, units))
    return arguments


def _malform(op, arguments, rng):
    """Breaks one argument so that the call is invalid whatever the sizes drawn."""
    name = sorted(arguments)[rng.integers(len(arguments))]
    value = arguments[name]
    kind = rng.integers(3)
    if name == "lengths" and kind == 0 and value.size:
        time = next(
            arguments[name] for name in ("inputs", "a", "projected", "pre") if name in arguments
        ).shape[1]
        value = value.copy()
        value[rng.integers(value.size)] = rng.choice([-1, -(2**31), time + 1, 2**31 - 1])
    elif kind == 1 or (name in ("inputs", "projected") and not op.endswith("grad")):
        # Change the rank. (The time axis of inputs or projected alone is free in the forward ops.)
        if value.ndim and rng.integers(2):
            value = np.zeros(value.shape[:-1], value.dtype)
        else:
            value = value[..., None]
    else:
        shape = list(value.shape)
        if not shape:
            value = value[None]
        else:
            axis = rng.integers(len(shape))
            shape[axis] += int(rng.integers(1, 4))
            value = np.zeros(shape, value.dtype)
    arguments[name] = value
    return name


def run_fuzz(cases, seed):
    import tensorflow as tf

    from ops import _library

    library = _library.load()
    functions = {op: getattr(library, _op_name(op)) for op in OPS}
    rng = np.random.default_rng(seed)
    for case in range(cases):
        op = OPS[rng.integers(len(OPS))]
        arguments = _valid_arguments(op, rng)
        broken = _malform(op, arguments, rng)
        attributes = dict(reverse=bool(rng.integers(2)), zero_output_for_mask=bool(rng.integers(2)))
        if op.startswith("gated"):
            attributes["cell"] = "rg_lru"
        if op in _SEQUENCE_GRADIENTS:
            attributes["sum_weight_gradients"] = bool(rng.integers(2))
        try:
            functions[op](**arguments, **attributes)
        except tf.errors.InvalidArgumentError:
            continue
        raise AssertionError(
            f"case {case}: {op} accepted a malformed {broken}: "
            f"{ {k: np.shape(v) for k, v in arguments.items()} }"
        )
    print(f"fuzz: {cases} malformed calls, all rejected")


@pytest.mark.skipif(
    not __import__("ops._library", fromlist=["_"]).is_available(), reason="op library not built"
)
def test_malformed_arguments_raise_and_process_survives():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "300", "11"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "300 malformed calls, all rejected" in result.stdout


if __name__ == "__main__":
    run_fuzz(int(sys.argv[1]), int(sys.argv[2]))
