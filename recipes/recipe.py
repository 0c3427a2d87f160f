"""The contract every recipe keeps: `main(argv=None) -> Run`, and `RecipeError` for what a user can fix.

A recipe is a module run as `python -m recipes.<task>`; its `main` reads the command line (`argv`,
or `sys.argv[1:]` when None), trains, exports, and returns a `Run`:

>>> from recipes import sentiment
>>> run = sentiment.main(["--data", "reviews.tsv", "--epochs", "3"])
>>> run.final["test_accuracy"], run.output_dir, run.model

Wrapped by `entry_point`, a `RecipeError` (a missing file, data too small to split, a failed
download) ends the program with one line, `error: <message>`, and exit status 2, as argparse ends
on a bad flag.
"""

import dataclasses
import functools
import pathlib
import sys

import keras


class RecipeError(Exception):
    """A problem the user can fix (missing file, unreadable data, failed download): `entry_point`
    prints its message as one line, without a traceback, and exits with status 2."""


@dataclasses.dataclass
class Run:
    """What a recipe's `main` returns: the finished run.

    Attributes:
        output_dir: the run's folder (`config.json`, `metrics.json`, `model.keras`, `saved_model/`, ...).
        model: the trained model (for an ensemble, the `zoo.models.AveragedEnsemble`).
        history: `{name: [value per epoch]}` of the epochs in `metrics.json` (loss, validation
            figures, throughput; for an ensemble, every member's epochs, with a `member` column).
        final: the final figures, as `metrics.json`'s `final` holds them (epochs, the last epoch's
            figures and what the recipe measured after training, e.g. `test_accuracy`).
    """

    output_dir: pathlib.Path
    model: keras.Model
    history: dict
    final: dict


def entry_point(main):
    """Wraps a recipe's `main(argv=None)` so that a `RecipeError` ends the program with one line on
    stderr (`error: <message>`) and exit status 2, the status argparse uses for bad flags."""

    @functools.wraps(main)
    def run(argv=None):
        try:
            return main(argv)
        except RecipeError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)

    return run
