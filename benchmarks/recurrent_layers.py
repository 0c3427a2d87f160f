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

`--lm-budget-minutes M` measures the other half instead: the Time Machine validation perplexity the
language-model recipe (`recipes.language_model`, its defaults) reaches with each layer in M minutes of
CPU time (`lm_budget_table`), printed as a Markdown table for the README.

    nice -n 19 python benchmarks/recurrent_layers.py --lm-budget-minutes 4 [--layers ...] [--lm-reference]
        [-- more recipe flags, e.g. --dropout 0.1]

The recipe chooses its dropout from the run's length (0.4 over 10 epochs, 0.1 for fewer): a budget
that buys many short epochs gets the long run's dropout unless `--dropout` is passed after `--`.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
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
        lambda i, u: (i + 1) * (4 * u + 2 * HEADS) + u,
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


# --- Perplexity within a CPU-time budget: the language-model recipe with each layer ---------------

# The classic cells run the recipe's plain stack (its defaults: 3 layers); the modern ones residual
# blocks (their default), fewer and wider, at the same weight count.
RESIDUAL_BLOCKS = 2
CLASSIC_CELLS = ("rnn", "gru", "lstm")
# Training steps timed to estimate one epoch's CPU time, after the steps that trace.
TIMED_STEPS = 8


def lm_recipe_args(cell, units, epochs=None, extra=()):
    """The recipe's command line for `cell` at `units` with the `extra` flags: its defaults otherwise."""
    argv = ["--cell", cell, "--units", str(units), *extra]
    if cell not in CLASSIC_CELLS:
        argv += ["--layers", str(RESIDUAL_BLOCKS)]
    if epochs is not None:
        argv += ["--epochs", str(epochs)]
    return argv


def lm_weight_count(argv):
    from recipes import flags
    from recipes import language_model as recipe

    # Dropout has no weights; the recipe sets its default from the run's length, which main computes.
    args = flags.parse_args(recipe.build_parser(), [*argv, "--dropout", "0"], check=recipe.check)
    model = recipe.build_model(args, len(lm_vocabulary()))
    model.build((None, None))
    return model.count_params()


def lm_vocabulary():
    from zoo import text as zoo_text

    return zoo_text.Vocab(zoo_text.CharTokenizer().tokenize(zoo_text.load_time_machine()))


def lm_matching_units(cell, target):
    """The width (a multiple of 8, so the heads divide it) whose model's weights are nearest `target`."""
    low, high = 1, 512  # in multiples of 8; the weight count grows with the width
    while high - low > 1:
        middle = (low + high) // 2
        if lm_weight_count(lm_recipe_args(cell, 8 * middle)) < target:
            low = middle
        else:
            high = middle
    counts = {8 * k: lm_weight_count(lm_recipe_args(cell, 8 * k)) for k in (low, high)}
    return min(counts, key=lambda units: abs(counts[units] - target))


def lm_epoch_cpu_seconds(argv):
    """One epoch's CPU seconds (training and validation) of the recipe with `argv`, estimated in this
    process from `TIMED_STEPS` training steps after tracing (validation steps count a third of one)."""
    import keras

    from recipes import flags, training
    from recipes import language_model as recipe

    args = flags.parse_args(recipe.build_parser(), argv, check=recipe.check)
    text = recipe.read_corpus(args)
    book = recipe.is_the_book(args, text)
    recipe.choose_text_defaults(args, text, book)
    ids, _, vocab = recipe.tokenize(args, text)
    recipe.choose_run_length(args, len(ids) - round(len(ids) * recipe.VALIDATION_FRACTION), len(vocab), book)
    train, validation = recipe.batches(args, ids)
    model = recipe.build_model(args, len(vocab))
    model(next(iter(train))[0])  # built before compile, as the recipe builds it
    model.compile(
        optimizer=training.make_optimizer(args.optimizer, args.learning_rate, args.clip_norm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(train.take(2), epochs=1, verbose=0)
    started = time.process_time()
    model.fit(train.take(TIMED_STEPS), epochs=1, verbose=0)
    per_step = (time.process_time() - started) / TIMED_STEPS
    train_steps, validation_steps = int(train.cardinality()), int(validation.cardinality())
    return per_step * (train_steps + validation_steps / 3)


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def lm_run(argv, output_dir):
    """Runs the recipe with `argv` in a child process; its final figures and the CPU seconds it used."""
    before = children_cpu_seconds()
    result = subprocess.run(
        [sys.executable, "-m", "recipes.language_model", *argv, "--output-dir", str(output_dir)],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise RuntimeError(f"recipe {argv} failed:\n{result.stderr[-3000:]}")
    final = json.loads((output_dir / "metrics.json").read_text())["final"]
    return final, children_cpu_seconds() - before


def lm_budget_table(layers, minutes, reference, extra):
    """Prints the Markdown table of the perplexity each layer reaches in `minutes` of CPU time."""
    import pathlib

    target = lm_weight_count(lm_recipe_args("lstm", 256))
    flags = " ".join(extra)
    command = f"--lm-budget-minutes {minutes:g}" + (f" -- {flags}" if flags else "")
    print(
        f"`python benchmarks/recurrent_layers.py {command}`, "
        f"{date.today()}, {cpu_description()}: `recipes.language_model` (The Time Machine, characters, "
        f"its defaults{', and ' + flags if flags else ''}) with each layer at about the LSTM recipe's "
        f"{target:,} weights (the LSTM recipe's whole run: its defaults only). Epochs: "
        f"{minutes:g} CPU minutes over one epoch's CPU time measured beforehand, for the cosine "
        "schedule to end in the budget. CPU minutes: the whole run as measured (start-up, tracing, "
        "samples and export included). Perplexity: the best epoch's, on the last 10% of the book."
    )
    print()
    print("| layer | block | width | weights | epochs | CPU minutes | validation perplexity | best epoch |")
    print("|---|---|---|---|---|---|---|---|")
    runs = [(cell, lm_matching_units(cell, target), None) for cell in layers]
    if reference:
        runs.append(("lstm", 256, "recipe"))
    with tempfile.TemporaryDirectory() as folder:
        for index, (cell, units, epochs) in enumerate(runs):
            if epochs is None:
                epoch_seconds = lm_epoch_cpu_seconds(lm_recipe_args(cell, units, 1, extra))
                epochs = max(1, int(minutes * 60 / epoch_seconds))
                argv = lm_recipe_args(cell, units, epochs, extra)
                label = LAYERS[cell][0].__name__
            else:
                argv = lm_recipe_args(cell, units)
                label = "LSTM, the recipe's whole run"
            final, cpu_seconds = lm_run(argv, pathlib.Path(folder) / f"run_{index}")
            block = "plain" if cell in CLASSIC_CELLS else "residual"
            print(
                f"| {label} | {block} | {units} | {lm_weight_count(argv):,} | {final['epochs']} | "
                f"{cpu_seconds / 60:.1f} | {final['val_perplexity']:.2f} | {final.get('best_epoch', '')} |",
                flush=True,
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--lstm-units", type=int, default=128, help="the width that sets the weight count")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds of each case")
    parser.add_argument("--layers", nargs="+", default=list(LAYERS), choices=list(LAYERS))
    parser.add_argument(
        "--lm-budget-minutes",
        type=float,
        default=0,
        help="instead of the speed table: the LM recipe's validation perplexity in this CPU-time budget",
    )
    parser.add_argument(
        "--lm-reference",
        action="store_true",
        help="with --lm-budget-minutes: also the LSTM recipe's whole run",
    )
    parser.add_argument("extra", nargs="*", help="with --lm-budget-minutes: more recipe flags, after --")
    args = parser.parse_args()
    if args.lm_budget_minutes:
        lm_budget_table(args.layers, args.lm_budget_minutes, args.lm_reference, args.extra)
        return

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
