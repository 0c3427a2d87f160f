"""Times the fused SimpleRNN/LSTM/GRU ops against Keras's own layers (and PyTorch's nn.LSTM when
installed).

Each line: median milliseconds per training step (forward, backward, SGD update) or per forward
pass of Embedding -> recurrent layer -> Dense, for Keras's `keras.layers.SimpleRNN`/`LSTM`/`GRU`
(the while-loop over the cell that Keras runs on CPU) and for `zoo.layers.SimpleRNN`/`LSTM`/`GRU`
with `implementation="fused"` (the C++ ops `ops.simple_rnn_sequence` / `ops.lstm_sequence` /
`ops.gru_sequence`), with the
speed-up and the fraction of this machine's large-matmul GFLOP/s that the recurrent layer's
arithmetic reaches in the fused step time.

The last column is the highest speed-up any recurrent layer could reach here: Keras's time over
a lower bound of the step, which is the same model without its recurrent layer (timed in the same
run: embedding, output layer, loss, update) plus the recurrent layer's arithmetic at the large-matmul
rate.

    python benchmarks/rnn_speed.py [--repeats 30] [--min-seconds 3] [--kinds lstm gru rnn]
        [--clipnorm 1.0] [--dtype-policy mixed_bfloat16] [--markdown]

`--markdown` prints the table in Markdown, headed by the machine it ran on (CPU model, cores,
AVX-512 and AMX, whether the fused products used AMX tiles) and the date: the table BUILD.md
holds.
"""

import argparse
import math
import os
import statistics
import sys
import time
from datetime import date

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import ops  # noqa: E402
import zoo.layers  # noqa: E402

VOCABULARY = 28
LAYER_NAMES = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
MAX_ROUNDS = 2000


def build_models(kind, units, steps):
    """Keras's own layer and zoo.layers' fused path in the same model, with the same weights, and
    the model without a recurrent layer ("rest")."""
    keras_class = getattr(keras.layers, LAYER_NAMES[kind])
    zoo_class = getattr(zoo.layers, LAYER_NAMES[kind])
    recurrent = {
        "keras": keras_class(units, return_sequences=True),
        "fused": zoo_class(units, return_sequences=True, implementation="fused"),
    }
    models = {
        name: keras.Sequential(
            [
                keras.Input((steps,), dtype="int32"),
                keras.layers.Embedding(VOCABULARY, 32),
                layer,
                keras.layers.Dense(VOCABULARY),
            ]
        )
        for name, layer in recurrent.items()
    }
    models["fused"].set_weights(models["keras"].get_weights())
    models["rest"] = keras.Sequential(
        [
            keras.Input((steps,), dtype="int32"),
            keras.layers.Embedding(VOCABULARY, 32),
            keras.layers.Dense(VOCABULARY),
        ]
    )
    return models


def train_step_function(model, clipnorm):
    optimizer = keras.optimizers.SGD(1.0, global_clipnorm=clipnorm or None)
    loss_function = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_function(y, model(x, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    return step


def predict_function(model):
    @tf.function
    def forward(x):
        return model(x, training=False)

    return forward


def _run(function, arguments):
    result = function(*arguments)
    tf.nest.map_structure(lambda t: t.numpy(), result)


def median_ms(functions, arguments, repeats, min_seconds=0.0):
    """Median milliseconds of each function, timed in alternation so that the load of a shared
    machine falls on all of them alike: at least `repeats` rounds, and more for fast functions,
    until the rounds take about `min_seconds` (a millisecond call's median moves with a few
    slow calls)."""
    for function in functions.values():
        for _ in range(3):
            _run(function, arguments)  # trace and warm up
    start = time.perf_counter()
    for function in functions.values():
        _run(function, arguments)
    round_seconds = time.perf_counter() - start
    rounds = max(repeats, min(MAX_ROUNDS, math.ceil(min_seconds / round_seconds)))
    times = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            _run(function, arguments)
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def matmul_gflops(repeats):
    a = tf.random.normal([2048, 2048])
    matmul = tf.function(lambda: tf.matmul(a, a))
    milliseconds = median_ms({"matmul": matmul}, [], repeats)["matmul"]
    return 2 * 2048**3 / (milliseconds / 1000) / 1e9


def recurrent_flops(kind, batch, steps, inputs, units, training):
    """Multiply-adds of the recurrent layer, doubled; training triples (forward + 2 backward)."""
    forward = 2 * batch * steps * (inputs + units) * GATES[kind] * units
    return forward * (3 if training else 1)


def torch_lstm_ms(batch, steps, units, repeats, clipnorm):
    import torch

    torch.set_num_threads(os.cpu_count())
    embedding = torch.nn.Embedding(VOCABULARY, 32)
    lstm = torch.nn.LSTM(32, units, batch_first=True)
    dense = torch.nn.Linear(units, VOCABULARY)
    parameters = [*embedding.parameters(), *lstm.parameters(), *dense.parameters()]
    optimizer = torch.optim.SGD(parameters, lr=1.0)
    x = torch.randint(0, VOCABULARY, (batch, steps))
    y = torch.randint(0, VOCABULARY, (batch, steps))

    def step():
        optimizer.zero_grad()
        logits = dense(lstm(embedding(x))[0])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCABULARY), y.reshape(-1))
        loss.backward()
        if clipnorm:
            torch.nn.utils.clip_grad_norm_(parameters, clipnorm)
        optimizer.step()
        return tf.constant(0.0)

    return median_ms({"torch": step}, [], repeats)["torch"]


def cpu_description():
    """The CPU model and the instruction sets that decide the fused kernels' path, from
    /proc/cpuinfo (Linux), with the number of cores."""
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown CPU":
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass

    def has(flag):
        return "yes" if flag in flags else "no"

    return (
        f"{model}, {os.cpu_count()} cores; AVX2 {has('avx2')}, AVX-512 {has('avx512f')}, "
        f"AMX {has('amx_tile')}"
    )


def markdown_table(rows, header, peak, tiles_on, args, torch_ms):
    """The results as a Markdown table, with the machine, the date and the settings above it."""
    if tiles_on:
        path = "AMX tiles on (the default; run with `ZOO_AMX=0` for the float32 path)"
    elif "AMX no" in cpu_description():
        path = "AMX tiles off: this CPU has no AMX, so the default and `ZOO_AMX=0` are the same float32 path"
    else:
        path = "AMX tiles off (`ZOO_AMX=0`, or Linux does not grant tile data): the float32 path"
    lines = [
        f"Machine: {cpu_description()}. Large `tf.matmul`: {peak:.0f} GFLOP/s. {path}.",
        "",
        f"`python benchmarks/rnn_speed.py --repeats {args.repeats} --markdown`, {date.today()}; "
        f"dtype policy {args.dtype_policy}, clipnorm {args.clipnorm:g}; median ms per step.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if torch_ms is not None:
        lines += ["", f"PyTorch `nn.LSTM` training step, B=32 T=35 H=256: {torch_ms:.2f} ms."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="fewest timed rounds of each case")
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=3.0,
        help="time each case for at least this long (more rounds of fast cases)",
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=sorted(GATES),
        default=sorted(GATES),
        help="recurrent layers to time (default: all)",
    )
    parser.add_argument(
        "--clipnorm",
        type=float,
        default=1.0,
        help="global gradient-norm clipping of the SGD steps, as the course trains (0: plain SGD)",
    )
    parser.add_argument(
        "--dtype-policy",
        choices=["float32", "mixed_bfloat16"],
        default="float32",
        help="Keras dtype policy of all the models (mixed_bfloat16: Keras's layers "
        "compute in bfloat16, the fused ops in float32)",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print a Markdown table headed by the machine and date"
    )
    args = parser.parse_args()
    keras.config.set_dtype_policy(args.dtype_policy)
    if not ops.is_available():
        sys.exit(f"the op library is not loaded: {ops.load_error()}")
    peak = matmul_gflops(args.repeats)
    tiles_on = ops.amx_tiles_enabled()
    header = ["case", "keras ms", "fused ms", "speed-up", "of peak", "rest ms", "ceiling"]
    if not args.markdown:
        tiles = "on" if tiles_on else "off (ZOO_AMX=0 or no AMX)"
        print(
            f"machine: {cpu_description()}, large tf.matmul {peak:.0f} GFLOP/s, "
            f"AMX tiles for the fused products: {tiles}, dtype policy {args.dtype_policy}"
        )
        print(f"{header[0]:44s} " + " ".join(f"{name:>9s}" for name in header[1:]))
    rows = []
    cases = [  # kind, mode, batch, steps, units
        ("lstm", "train", 32, 35, 256),
        ("gru", "train", 32, 35, 256),
        ("lstm", "train", 1024, 32, 32),
        ("gru", "train", 1024, 32, 32),
        ("lstm", "infer", 1, 35, 256),
        ("lstm", "infer", 32, 35, 256),
        ("gru", "infer", 1, 35, 256),
        ("gru", "infer", 32, 35, 256),
        ("rnn", "train", 32, 35, 256),
        ("rnn", "train", 1024, 32, 32),
        ("rnn", "infer", 1, 35, 256),
        ("rnn", "infer", 32, 35, 256),
    ]
    rng = np.random.default_rng(0)
    for kind, mode, batch, steps, units in cases:
        if kind not in args.kinds:
            continue
        models = build_models(kind, units, steps)
        x = tf.constant(rng.integers(0, VOCABULARY, (batch, steps)), tf.int32)
        y = tf.constant(rng.integers(0, VOCABULARY, (batch, steps)), tf.int32)
        if mode == "train":
            steps_by_name = {name: train_step_function(m, args.clipnorm) for name, m in models.items()}
            timings = median_ms(steps_by_name, [x, y], args.repeats, args.min_seconds)
        else:
            forwards = {name: predict_function(m) for name, m in models.items()}
            timings = median_ms(forwards, [x], args.repeats, args.min_seconds)
        flops = recurrent_flops(kind, batch, steps, 32, units, mode == "train")
        achieved = flops / (timings["fused"] / 1000) / 1e9
        bound_ms = timings["rest"] + flops / (peak * 1e9) * 1000
        row = [
            f"{LAYER_NAMES[kind]} {mode} B={batch} T={steps} H={units}",
            f"{timings['keras']:.2f}",
            f"{timings['fused']:.2f}",
            f"{timings['keras'] / timings['fused']:.2f}x",
            f"{achieved / peak:.0%}",
            f"{timings['rest']:.2f}",
            f"{timings['keras'] / bound_ms:.2f}x",
        ]
        rows.append(row)
        if not args.markdown:
            print(f"{row[0]:44s} " + " ".join(f"{value:>9s}" for value in row[1:]), flush=True)
    try:
        torch_ms = torch_lstm_ms(32, 35, 256, args.repeats, args.clipnorm)
    except ImportError:
        torch_ms = None
    if args.markdown:
        print(markdown_table(rows, header, peak, tiles_on, args, torch_ms))
    elif torch_ms is None:
        print("torch is not installed: no nn.LSTM timing")
    else:
        print(f"torch nn.LSTM train B=32 T=35 H=256: {torch_ms:.2f} ms")


if __name__ == "__main__":
    main()
