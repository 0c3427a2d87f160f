"""Training speed of the eight recurrent layers on CPU: SimpleRNN, GRU, LSTM and the modern ones
(minGRU, minLSTM, RG-LRU, sLSTM, mLSTM), each at about the parameter count of the LSTM, on every
path it has.

Each line: median milliseconds per training step (forward, backward, SGD update) of
Embedding -> recurrent layer -> Dense over a batch of token ids, the tokens per second that makes,
and the speed-up over the same layer's loop. The classic layers run their loop and their fused C++
kernel; the modern ones their loop, their parallel form (sLSTM has none) and their fused C++
kernel (mLSTM has none). Widths are chosen so that every recurrent layer holds about
as many weights as an LSTM of `--lstm-units`.

    nice -n 19 python benchmarks/recurrent_layers.py [--batch 32] [--steps 256] [--lstm-units 128]
        [--repeats 5] [--layers lstm mingru ...]
"""

import argparse
import os
import sys
from datetime import date

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from rnn_speed import cpu_description, median_ms, train_step_function  # noqa: E402

import zoo.layers  # noqa: E402

VOCABULARY = 28
EMBEDDING = 64
HEADS = 4
# name: (layer class, extra arguments, weights as a function of input size i and width u, paths).
LAYERS = {
    "rnn": (zoo.layers.SimpleRNN, {}, lambda i, u: i * u + u * u + u, ("loop", "fused")),
    "gru": (zoo.layers.GRU, {}, lambda i, u: 3 * (i * u + u * u) + 6 * u, ("loop", "fused")),
    "lstm": (zoo.layers.LSTM, {}, lambda i, u: 4 * (i * u + u * u + u), ("loop", "fused")),
    "mingru": (zoo.layers.MinGRU, {}, lambda i, u: 2 * (i + 1) * u, ("loop", "parallel", "fused")),
    "minlstm": (zoo.layers.MinLSTM, {}, lambda i, u: 3 * (i + 1) * u, ("loop", "parallel", "fused")),
    "rglru": (zoo.layers.RGLRU, {}, lambda i, u: 3 * (i + 1) * u + u, ("loop", "parallel", "fused")),
    "slstm": (
        zoo.layers.SLSTM,
        {"num_heads": HEADS},
        lambda i, u: 4 * (i + 1) * u + 4 * u * u // HEADS,
        ("loop", "fused"),
    ),
    "mlstm": (
        zoo.layers.MLSTM,
        {"num_heads": HEADS},
        lambda i, u: (i + 1) * (4 * u + 2 * HEADS),
        ("loop", "parallel"),
    ),
}


def matching_width(kind, target):
    """The width (a multiple of the head count) whose weight count is nearest `target`."""
    count = LAYERS[kind][2]
    return min(range(HEADS, 4096, HEADS), key=lambda units: abs(count(EMBEDDING, units) - target))


def build_model(kind, units, implementation, steps):
    cls, extra, _, _ = LAYERS[kind]
    return keras.Sequential(
        [
            keras.Input((steps,), dtype="int32"),
            keras.layers.Embedding(VOCABULARY, EMBEDDING),
            cls(units, return_sequences=True, implementation=implementation, **extra),
            keras.layers.Dense(VOCABULARY),
        ]
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--lstm-units", type=int, default=128, help="the width that sets the weight count")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds of each case")
    parser.add_argument("--layers", nargs="+", default=list(LAYERS), choices=list(LAYERS))
    args = parser.parse_args()

    target = LAYERS["lstm"][2](EMBEDDING, args.lstm_units)
    rng = np.random.default_rng(0)
    x = rng.integers(0, VOCABULARY, (args.batch, args.steps)).astype("int32")
    y = rng.integers(0, VOCABULARY, (args.batch, args.steps)).astype("int32")
    tokens = args.batch * args.steps
    print(
        f"{cpu_description()}; {date.today()}; batch {args.batch}, {args.steps} steps, embedding {EMBEDDING}"
    )
    print()
    print("| layer | width | weights | path | ms per training step (median) | tokens/s | vs loop |")
    print("|---|---|---|---|---|---|---|")
    for kind in args.layers:
        units = matching_width(kind, target)
        paths = LAYERS[kind][3]
        models = {path: build_model(kind, units, path, args.steps) for path in paths}
        for model in models.values():
            model.set_weights(models[paths[0]].get_weights())
        weights = models[paths[0]].layers[1].count_params()
        steps = {path: train_step_function(model, clipnorm=None) for path, model in models.items()}
        milliseconds = median_ms(steps, [x, y], args.repeats)
        for path in paths:
            used = models[path].layers[1].implementation_used
            speed_up = milliseconds["loop"] / milliseconds[path]
            print(
                f"| {LAYERS[kind][0].__name__} | {units} | {weights} | {used} | {milliseconds[path]:.0f} | "
                f"{tokens / milliseconds[path] * 1000:.0f} | {speed_up:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
