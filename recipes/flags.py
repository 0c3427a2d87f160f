"""The command line of the recipes: the flags they share, the argparse types of their values, and
how a command line is read (defaults that depend on other flags, `--resume`, rules between flags).

Every recipe's config block is a `build_parser()`: `add_shared_flags` with the recipe's defaults, then
its own flags. Flags are validated in one way, by argparse while the command line is read, so every
bad flag ends with the usage line, `error: <message>` and exit status 2: the value of one flag by its
`type=` (`positive_int`, `fraction`, ...), a rule between flags by the recipe's `check(args)`, which
raises `FlagError`:

>>> def check(args):
...     if args.attention and args.cell != "gru":
...         raise FlagError("--attention needs --cell gru")
>>> args = parse_args(build_parser(), argv, check=check)
"""

import argparse
import codecs
import contextlib
import json
import os
import pathlib

from recipes.recipe import RecipeError
from zoo.models.language_model import CELL_TYPES
from zoo.text.data_errors import DataFormatError

DATA_ENV = "ZOO_DATA_DIR"
STRATEGIES = ("default", "mirrored", "multi-worker")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
LR_SCHEDULES = ("constant", "cosine")
QUANTIZATIONS = ("none", "dynamic")
# Flags that name where a run lives rather than how it trains: a resumed run keeps its own.
_RUN_LOCATION_FLAGS = ("resume", "output_dir")
# Rounds of `derived_defaults`: one per flag whose default depends on another flag's default.
_DERIVED_DEFAULT_ROUNDS = 4


class FlagError(Exception):
    """A rule between flags is broken; `parse_args` reports it as argparse reports a bad flag."""


# --- Types of flag values -------------------------------------------------------------------


def int_at_least(minimum):
    """The argparse type of an integer >= `minimum`."""

    def integer(text):
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text}")
        return value

    return integer


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def positive_float(text):
    """The argparse type of a number > 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def fraction(text):
    """The argparse type of a share in [0, 1): a dropout rate, a label smoothing, an optional split."""
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text}")
    return value


def positive_fraction(text):
    """The argparse type of a share in (0, 1): a held-out split that must not be empty."""
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {text}")
    return value


def encoding_name(text):
    """The argparse type of a text encoding Python knows (`utf-8`, `cp1252`, ...)."""
    try:
        codecs.lookup(text)
    except LookupError:
        raise argparse.ArgumentTypeError(
            f"unknown encoding {text!r} (e.g. utf-8, cp1252, latin-1, utf-16)"
        ) from None
    return text


# --- The shared flags -----------------------------------------------------------------------


def add_shared_flags(
    parser,
    *,
    recipe,
    epochs,
    batch_size,
    learning_rate,
    optimizer="adam",
    clip_norm=1.0,
    log_every=50,
    seed=0,
    lr_schedule="constant",
    learning_rate_help=None,
):
    """Adds the flags every recipe shares, with the recipe's own defaults.

    Args:
        parser: an `argparse.ArgumentParser`.
        recipe: the recipe's name; the default output folder is `runs/<recipe>-<timestamp>`.
        epochs, batch_size, learning_rate, optimizer, clip_norm, log_every, seed, lr_schedule:
            defaults of the flags of the same names. `batch_size` is the global batch size (all replicas).
        learning_rate_help: the help of `--learning-rate` (a recipe whose default depends on other
            flags says so here).

    Returns:
        The parser, for chaining.
    """
    parser.set_defaults(recipe=recipe)
    group = parser.add_argument_group("training (shared by all recipes)")
    group.add_argument(
        "--data", type=pathlib.Path, default=None, help="a local data file or folder, instead of the default"
    )
    group.add_argument(
        "--encoding",
        type=encoding_name,
        default="utf-8",
        help="the encoding of the data files (e.g. cp1252, latin-1, utf-16)",
    )
    group.add_argument("--epochs", type=positive_int, default=epochs)
    group.add_argument(
        "--batch-size", type=positive_int, default=batch_size, help="global batch size, split across replicas"
    )
    group.add_argument("--learning-rate", type=positive_float, default=learning_rate, help=learning_rate_help)
    group.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default=lr_schedule,
        help="cosine: decay the learning rate per epoch towards 0 over --epochs",
    )
    group.add_argument("--optimizer", choices=OPTIMIZERS, default=optimizer)
    group.add_argument(
        "--clip-norm",
        type=float,
        default=clip_norm,
        help="clip the global norm of all gradients to this (0: no clipping)",
    )
    group.add_argument("--seed", type=int, default=seed)
    group.add_argument(
        "--output-dir",
        type=pathlib.Path,
        default=None,
        help=f"where the run's files go (default: runs/{recipe}-<timestamp>)",
    )
    group.add_argument(
        "--resume",
        type=pathlib.Path,
        default=None,
        metavar="DIR",
        help="continue the run in DIR from its last finished epoch, with its flags "
        "(flags given again here override them)",
    )
    group.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="default",
        help="tf.distribute strategy: mirrored uses all GPUs, or the logical CPUs "
        "of --cpu-devices; multi-worker reads TF_CONFIG",
    )
    group.add_argument(
        "--cpu-devices",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="split the CPU into N logical devices (for --strategy mirrored without GPUs)",
    )
    group.add_argument(
        "--log-every",
        type=non_negative_int,
        default=log_every,
        metavar="STEPS",
        help="write training scalars to TensorBoard every STEPS batches (0: once per epoch)",
    )
    return parser


def add_cell_flag(group):
    """`--cell`: the recurrent layer of the recipe's stack, one of `zoo.models.language_model.CELL_TYPES`."""
    group.add_argument(
        "--cell",
        choices=CELL_TYPES,
        default="lstm",
        help="the recurrent layer: classic (rnn, gru, lstm) or modern (mingru, minlstm, rglru, slstm, mlstm)",
    )


def add_export_flags(parser):
    """Adds `--quantize`, for the recipes that write `model.tflite` (`run_files.write_litert`)."""
    group = parser.add_argument_group("export")
    group.add_argument(
        "--quantize",
        choices=QUANTIZATIONS,
        default="none",
        help="dynamic: also write model_int8.tflite (int8 weights, float activations)",
    )
    return parser


# --- Reading the command line ---------------------------------------------------------------


def parse_args(parser, argv=None, *, derived_defaults=None, check=None):
    """Reads the command line.

    Args:
        parser: the recipe's parser (`add_shared_flags` and its own flags).
        argv: the arguments; None: `sys.argv[1:]`.
        derived_defaults: `args -> {flag: default}`: defaults that depend on other flags (e.g. a
            corpus's own), applied until they no longer change; flags given on the command line win.
        check: `args -> None`, raises `FlagError` when a rule between flags is broken.

    Returns:
        The `argparse.Namespace`. With `--resume DIR`, the flags saved in `DIR/config.json` are the
        defaults, so the rerun trains as the first run did unless a flag is given again, and
        `output_dir` is `DIR`.

    Raises:
        SystemExit: a bad flag (argparse's usage and message, status 2).
        RecipeError: `--resume DIR` where DIR holds no run (except on a worker of a cluster other
            than the chief, which may not see the chief's folder and keeps its command line's flags).
    """
    if derived_defaults is not None:
        for _ in range(_DERIVED_DEFAULT_ROUNDS):
            defaults = derived_defaults(parser.parse_known_args(argv)[0])
            if all(parser.get_default(name) == value for name, value in defaults.items()):
                break
            parser.set_defaults(**defaults)
    args = parser.parse_args(argv)
    if args.resume is not None:
        config_path = args.resume / "config.json"
        if config_path.is_file():
            saved = json.loads(config_path.read_text())
        elif _other_worker_of_a_cluster(args):
            saved = {}  # the chief's folder is not on this machine: the command line has the flags
        else:
            raise RecipeError(f"--resume {args.resume}: no run there ({config_path} is missing)")
        parser.set_defaults(
            **{
                key: _typed_default(parser, key, value)
                for key, value in saved.items()
                if key in vars(args) and key not in _RUN_LOCATION_FLAGS
            }
        )
        args = parser.parse_args(argv)
        args.output_dir = args.resume
    if check is not None:
        try:
            check(args)
        except FlagError as error:
            parser.error(str(error))
    return args


def _typed_default(parser, dest, value):
    """A saved flag value as a default: argparse converts a string default with the flag's type
    itself (saved paths become paths again), but not the items of a list (`nargs` flags)."""
    if not isinstance(value, list):
        return value
    convert = next((action.type for action in parser._actions if action.dest == dest), None)
    return [convert(item) if convert and isinstance(item, str) else item for item in value]


def _other_worker_of_a_cluster(args):
    """Whether this process is a worker of a `--strategy multi-worker` cluster other than its chief
    (which writes the run's folder)."""
    from zoo.distribute import ClusterConfigError, parse_tf_config

    try:
        cluster = parse_tf_config() if args.strategy == "multi-worker" else None
    except ClusterConfigError:
        return False  # the strategy reports it
    return cluster is not None and not cluster.is_chief


def data_set_file(relative, instead):
    """The default data file `$ZOO_DATA_DIR/relative`.

    Args:
        relative: the file's path inside the data folder.
        instead: what the user can pass instead (e.g. `"pass --data FILE"`), for the error.

    Raises:
        RecipeError: `$ZOO_DATA_DIR` is not set.
    """
    root = os.environ.get(DATA_ENV)
    if not root:
        raise RecipeError(f"{instead} or set {DATA_ENV} (the folder of the data sets)")
    return pathlib.Path(root) / relative


@contextlib.contextmanager
def reading(flag, path):
    """Reads a data file in the block: a file that does not read as its format
    (`zoo.text.DataFormatError`) or is missing becomes a `RecipeError` whose one line names the flag,
    the file, the line, what was found there and the flags that read it.

    Args:
        flag: the flag that named the file (`"--dev"`), or None for a default data file.
        path: the file.

    Example:
    >>> with reading("--dev", args.dev):
    ...     texts, labels = zoo.text.read_labelled_texts(args.dev, encoding=args.encoding)
    """
    prefix = f"{flag} " if flag else ""
    try:
        yield
    except DataFormatError as error:
        inside = pathlib.Path(error.path) != pathlib.Path(path)  # a file in a folder
        raise RecipeError(prefix + (f"{path}: " if inside and flag else "") + error.command_line()) from None
    except FileNotFoundError:
        found = "a folder, not a file" if pathlib.Path(path).is_dir() else "no such file or folder"
        raise RecipeError(f"{prefix}{path}: {found}") from None


def to_json(args):
    """The flags as a JSON object (paths as strings)."""

    def plain(value):
        if isinstance(value, pathlib.Path):
            return str(value)
        if isinstance(value, (list, tuple)):  # e.g. a flag that takes several files
            return [plain(item) for item in value]
        return value

    return {key: plain(value) for key, value in vars(args).items()}
