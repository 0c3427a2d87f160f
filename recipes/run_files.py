"""The files a run leaves in its output folder, and the `Run` a recipe returns from them.

- `config.json`: the flags (`write_config`), read again by `--resume`.
- `metrics.json`: `{"config", "epochs", "final"}`: the flags, one entry per epoch, and the final
  figures (`write_metrics` after training, `finish_run` adds what the recipe measured after it).
- `curves.png`: a panel per metric, training and validation by epoch (`plot_curves`).

`checkpoints/` and `model.keras` are written by `recipes.training`, `logs/` by TensorBoard,
`model.tflite` (and `model_int8.tflite`) by `write_litert`, and `saved_model/` and the tokenizer and
vocabulary files by the recipe.
"""

import json
import math
import numbers
import os
import pathlib

import zoo.export
from recipes.flags import to_json
from recipes.recipe import Run


def output_path(args, name):
    """`args.output_dir / name`: where the run's file or folder `name` goes."""
    return pathlib.Path(args.output_dir) / name


def write_config(args):
    """Writes the flags to `config.json`."""
    write_json(output_path(args, "config.json"), to_json(args))


def write_metrics(args, epochs, final):
    """Writes `metrics.json`: the flags, the per-epoch entries and the final figures."""
    write_json(output_path(args, "metrics.json"), {"config": to_json(args), "epochs": epochs, "final": final})


def last_epoch_figures(epochs):
    """The final figures of one training: the number of epochs and the last epoch's figures."""
    last = {key: value for key, value in epochs[-1].items() if key != "epoch"} if epochs else {}
    return {"epochs": len(epochs), **last}


def finish_run(args, model, **figures):
    """Adds what the recipe measured after training to the `final` figures of `metrics.json`, and
    returns the `Run`.

    Args:
        args: the run's flags.
        model: the trained model.
        **figures: numbers (test accuracy, BLEU; NumPy and TensorFlow scalars too) and JSON values
            (sample translations: strings, lists, dicts).
    """
    path = output_path(args, "metrics.json")
    metrics = json.loads(path.read_text())
    metrics["final"].update({key: json_value(value) for key, value in figures.items()})
    write_json(path, metrics)
    return Run(
        output_dir=pathlib.Path(args.output_dir),
        model=model,
        history=by_name(metrics["epochs"]),
        final=metrics["final"],
    )


def write_litert(args, model, **options):
    """Writes `model.tflite` (`zoo.export.tflite(model, path, **options)`: ids in, the vocabulary
    files beside it) and, with `--quantize dynamic`, `model_int8.tflite` (int8 weights).

    Returns:
        The sizes written, `{"litert_bytes": ..., "litert_int8_bytes": ...}`, for `finish_run`.
    """
    files = {"litert_bytes": ("model.tflite", None)}
    if args.quantize == "dynamic":
        files["litert_int8_bytes"] = ("model_int8.tflite", "dynamic")
    sizes = {}
    for key, (name, quantize) in files.items():
        path = zoo.export.tflite(model, output_path(args, name), quantize=quantize, **options)
        sizes[key] = os.path.getsize(path)
        print(f"saved {path} ({sizes[key] / 1e6:.2f} MB)", flush=True)
    return sizes


def plot_curves(path, epochs):
    """Saves a PNG with one panel per metric, its training and validation values by epoch (one pair of
    lines per member for an ensemble's entries, which name their `member`)."""
    # The object API with the Agg canvas: no pyplot, no global backend state, no display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    values_by_name = by_name(epochs)
    names = [name for name in values_by_name if not name.startswith("val_") and name != "member"]
    names += [
        name[4:] for name in values_by_name if name.startswith("val_") and name[4:] not in values_by_name
    ]
    runs = {}
    for entry in epochs:
        runs.setdefault(entry.get("member"), []).append(entry)
    figure = Figure(figsize=(4.5 * max(len(names), 1), 3.5), layout="constrained")
    FigureCanvasAgg(figure)
    for index, name in enumerate(names):
        axes = figure.add_subplot(1, len(names), index + 1)
        for member, entries in runs.items():
            epoch_numbers = [entry["epoch"] for entry in entries]
            values = by_name(entries)
            for key, label in ((name, "train"), (f"val_{name}", "validation")):
                if key in values:
                    suffix = "" if member is None else f" (member {member})"
                    axes.plot(epoch_numbers, values[key], marker="o", label=label + suffix)
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend()
    figure.savefig(path)


def by_name(epochs):
    """`{name: [value per epoch]}` of per-epoch entries, None where an epoch lacks the name."""
    names = dict.fromkeys(key for entry in epochs for key in entry if key != "epoch")
    return {name: [entry.get(name) for entry in epochs] for name in names}


def json_number(value):
    """A plain float for JSON, which has no NaN or infinity: they become None."""
    value = float(value)
    return value if math.isfinite(value) else None


def json_value(value):
    """Strings, lists, dicts, booleans and None as they are; integers (NumPy's too) as ints; other
    numbers (TensorFlow scalars too) as `json_number` floats."""
    if isinstance(value, (str, list, dict, bool, type(None))):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    return json_number(value)


def write_json(path, value):
    """Writes JSON atomically: a reader, or a run killed mid-write, sees the old file or the new."""
    path = pathlib.Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(temporary, path)
