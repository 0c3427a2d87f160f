"""Sentiment analysis (many-to-one): a bidirectional RNN classifies a review as positive or negative.

`python -m recipes.sentiment` trains `zoo.models.SequenceClassifier` on the IMDb subset
(`$ZOO_DATA_DIR/imdb_subset/train.tsv`), on your own labelled texts (`--data FILE|FOLDER`), or on
TFDS `imdb_reviews` (`--tfds`, needs a network the first time). Your data may be TSV or CSV with a
header, JSON Lines, or a folder per class (`keras.utils.text_dataset_from_directory`'s layout), told
from the file (`--format` to say it); the text and label columns are found by their names (text,
review, sentence, ...; label, sentiment, class, ...) or named by `--text-column` and `--label-column`.
Labels are class names or numbers, two classes or more (`zoo.text.read_labelled_texts`).

A fixed share of the examples (`--test-fraction`, drawn with `--split-seed`, independent of the
training `--seed`) is held out and never trained on; its accuracy is the figure the run reports. A
validation split is carved from the rest for the per-epoch validation and early stopping, which keeps
the epoch of the best validation accuracy. `--test FILE` and `--dev FILE` are those sets instead.

The defaults train `--ensemble 5` models (seeds `--seed` to `--seed + 4`), each a 1-layer BiLSTM over
word embeddings with mean and max pooling plus the mean embedding, and average their class
probabilities (`zoo.models.AveragedEnsemble`); `--ensemble 1` trains one.

Transfer from unlabelled text (ULMFiT, Howard & Ruder 2018): `--pretrain-data FILE...` (one text per
line) first trains a language model of the classifier's shape on those texts and the training
reviews, its state carried from batch to batch (`--pretrain-batching`), in
`<output-dir>/pretrained_lm` (checkpointed, resumable with `--resume`, its vocabulary beside it).
Then it fine-tunes a classifier that starts from the language model's embedding and recurrent stack,
with ULMFiT's batch-normalized head, discriminative learning rates, a slanted triangular schedule
peaking at `--learning-rate` and gradual unfreezing (`zoo.fine_tuning`). `--pretrained-lm RUN_DIR`
reuses such a folder instead.

The run's `saved_model/` has a `classify` signature (`zoo.models.TextClassifier`): a batch of raw
strings in, class probabilities and label names out. It runs in plain TensorFlow
(`tf.saved_model.load`), without this project; with `--tokenizer bpe` the loading process must
`import tensorflow_text` first (it registers the sentencepiece op). `model.tflite` is the model for
LiteRT (`--quantize dynamic`: `model_int8.tflite` too): `token_ids` (int32 `[1, length]`, the ids of
`vocab.txt` or `bpe.model`) in, the class probabilities out.
"""

import argparse
import copy
import pathlib
import typing

import keras
import numpy as np
import tensorflow as tf

import zoo
from recipes import flags, run_files, training
from recipes.recipe import RecipeError, entry_point
from zoo import fine_tuning
from zoo import text as zoo_text
from zoo.models import LanguageModel
from zoo.models.classifier import POOLING_MODES, SequenceClassifier

# --- Config ---------------------------------------------------------------------------------

DEFAULT_DATA = pathlib.Path("imdb_subset") / "train.tsv"
# Flags whose default depends on whether the classifier starts from a language model: fine-tuning
# peaks higher (the schedule starts 32x lower and the lower layers learn 2.6x slower per group) and
# needs less dropout than training from scratch (the pretrained encoder has fewer free parameters).
SCRATCH_DEFAULTS = {"learning_rate": 2e-3, "dropout": 0.6, "pooling": "mean_max"}
TRANSFER_DEFAULTS = {"learning_rate": 1e-2, "dropout": 0.5, "pooling": "last_max_mean"}


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m recipes.sentiment", description=__doc__.split("\n")[0])
    flags.add_shared_flags(
        parser,
        recipe="sentiment",
        epochs=15,
        batch_size=32,
        learning_rate=None,
        learning_rate_help=f"default: {SCRATCH_DEFAULTS['learning_rate']:g}; from a language model, the peak "
        f"of the slanted triangular schedule, {TRANSFER_DEFAULTS['learning_rate']:g}",
    )
    flags.add_export_flags(parser)
    data = parser.add_argument_group("data")
    data.add_argument("--tfds", action="store_true", help="train on TFDS imdb_reviews instead of a file")
    data.add_argument("--tfds-split", default="train", help="the TFDS split to read (e.g. 'train[:10%%]')")
    data.add_argument(
        "--format",
        choices=zoo_text.LABELLED_TEXT_FORMATS,
        default=None,
        help="of --data, --dev and --test (default: told from the file: a folder, a first line "
        "starting with '{', holding a tab, or a comma)",
    )
    data.add_argument(
        "--text-column",
        default=None,
        metavar="NAME",
        help=f"header name (JSON key) of the text (default: the first of {', '.join(zoo_text.TEXT_COLUMNS)})",
    )
    data.add_argument(
        "--label-column",
        default=None,
        metavar="NAME",
        help=f"header name (JSON key) of the label (default: the first of "
        f"{', '.join(zoo_text.LABEL_COLUMNS)})",
    )
    data.add_argument(
        "--dev",
        type=pathlib.Path,
        default=None,
        metavar="FILE|FOLDER",
        help="the validation examples (default: --validation-fraction of --data)",
    )
    data.add_argument(
        "--test",
        type=pathlib.Path,
        default=None,
        metavar="FILE|FOLDER",
        help="the held-out examples, never trained on (default: --test-fraction of --data)",
    )
    data.add_argument(
        "--test-fraction",
        type=flags.positive_fraction,
        default=0.2,
        help="without --test: the share of --data held out, never trained on",
    )
    data.add_argument(
        "--validation-fraction",
        type=flags.positive_fraction,
        default=0.15,
        help="without --dev: the share of the rest of --data used for validation and early stopping",
    )
    data.add_argument("--split-seed", type=int, default=0, help="seed of the held-out and validation split")
    data.add_argument("--tokenizer", choices=("word", "bpe"), default="word")
    data.add_argument(
        "--min-freq", type=flags.positive_int, default=2, help="word vocabulary: drop rarer words"
    )
    data.add_argument("--bpe-vocab-size", type=flags.positive_int, default=2000)
    data.add_argument(
        "--max-length", type=flags.positive_int, default=400, help="cut texts to this many tokens"
    )
    model = parser.add_argument_group("model")
    flags.add_cell_flag(model)
    model.add_argument("--embedding-dim", type=flags.positive_int, default=64)
    model.add_argument("--units", type=flags.positive_int, default=32)
    model.add_argument("--num-layers", type=flags.positive_int, default=1)
    model.add_argument(
        "--pooling",
        choices=POOLING_MODES,
        default=None,
        help=f"default: {SCRATCH_DEFAULTS['pooling']}; from a language model, ULMFiT's "
        f"{TRANSFER_DEFAULTS['pooling']}",
    )
    model.add_argument(
        "--pool-embeddings",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add mean-pooled embeddings to the encoding",
    )
    model.add_argument(
        "--dropout",
        type=flags.fraction,
        default=None,
        help=f"default: {SCRATCH_DEFAULTS['dropout']}; from a language model, {TRANSFER_DEFAULTS['dropout']}",
    )
    model.add_argument(
        "--word-dropout",
        type=flags.fraction,
        default=0.0,
        help="training: zero this share of the tokens' whole embeddings",
    )
    model.add_argument(
        "--ensemble",
        type=flags.positive_int,
        default=5,
        metavar="N",
        help="train N models (seeds --seed to --seed + N - 1) and average their probabilities",
    )
    model.add_argument(
        "--patience",
        type=flags.non_negative_int,
        default=3,
        help="stop after this many epochs without a better validation accuracy (0: never)",
    )
    transfer = parser.add_argument_group("transfer from a language model")
    transfer.add_argument(
        "--pretrain-data",
        type=pathlib.Path,
        nargs="+",
        default=None,
        metavar="FILE",
        help="unlabelled texts, one per line, to pretrain a language model on first",
    )
    transfer.add_argument("--pretrain-epochs", type=flags.positive_int, default=1)
    transfer.add_argument("--pretrain-batch-size", type=flags.positive_int, default=64)
    transfer.add_argument("--pretrain-num-steps", type=flags.positive_int, default=70)
    transfer.add_argument(
        "--pretrain-batching",
        choices=("sequential", "random"),
        default="sequential",
        help="sequential: each row continues the last batch's and the state carries over (ULMFiT's "
        "BPTT, so the model learns to read texts longer than --pretrain-num-steps); random: "
        "independent windows from a fresh state",
    )
    transfer.add_argument("--pretrain-learning-rate", type=flags.positive_float, default=1e-3)
    transfer.add_argument("--pretrain-dropout", type=flags.fraction, default=0.1)
    transfer.add_argument(
        "--pretrained-lm",
        type=pathlib.Path,
        default=None,
        metavar="RUN_DIR",
        help="a pretrained_lm folder of an earlier run (model.keras and vocab.txt or bpe.model) to "
        "start from, instead of --pretrain-data",
    )
    return parser


def check(args):
    if args.pretrain_data and args.pretrained_lm:
        raise flags.FlagError("--pretrain-data trains a language model, --pretrained-lm reuses one: pass one")
    defaults = TRANSFER_DEFAULTS if args.pretrain_data or args.pretrained_lm else SCRATCH_DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


# --- Data -----------------------------------------------------------------------------------


class Examples(typing.NamedTuple):
    """Texts, their class ids, the class names, and the indices of the three parts."""

    texts: list
    class_ids: list
    label_names: list
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def load_examples(args):
    """`(texts, labels)` of `--tfds`, `--data` or the default IMDb subset."""
    if args.tfds:
        try:
            dataset = zoo_text.load_tfds("imdb_reviews", split=args.tfds_split)
        except Exception as error:  # download or preparation failures have many types
            raise RecipeError(f"--tfds: could not load imdb_reviews ({error})") from error
        texts, labels = [], []
        for text, label in dataset.as_numpy_iterator():
            texts.append(text.decode("utf-8", errors="replace"))
            labels.append(str(int(label)))
        if not texts:
            raise RecipeError(f"--tfds: split {args.tfds_split!r} of imdb_reviews is empty")
        return texts, labels
    if args.data is None:
        return read_examples(args, None, flags.data_set_file(DEFAULT_DATA, "pass --data FILE or --tfds"))
    return read_examples(args, "--data", args.data)


def read_examples(args, flag, path, known_labels=None):
    """`(texts, labels)` of a file (or folder) of labelled texts, in `--format` or the format it is
    in, with the labels of `known_labels` only (None: any)."""
    format = args.format
    with flags.reading(flag, path):
        format = format or zoo_text.labelled_text_format(path, args.encoding)
        if format == "folders" and (args.text_column or args.label_column):
            raise RecipeError(
                f"{flag} {path} is a folder per class, which has no columns: leave out --text-column "
                "and --label-column"
            )
        texts, labels = zoo_text.read_labelled_texts(
            path, format, args.text_column, args.label_column, args.encoding, known_labels
        )
    print(f"{flag or 'data'} {path}: {format}, {len(texts)} examples", flush=True)
    return texts, labels


def load_data(args):
    """The `Examples` of `--data` (or `--tfds`, or the default), `--dev` and `--test`: a part without
    a file of its own is a seeded random share of `--data`, never trained on."""
    texts, labels = load_examples(args)
    label_names, class_ids = label_vocabulary(labels)
    fractions = [0.0 if args.test else args.test_fraction, 0.0 if args.dev else args.validation_fraction]
    try:
        train, test, validation = zoo_text.split_held_out(len(texts), fractions, args.split_seed)
    except ValueError as error:
        raise RecipeError(
            f"{error}: pass a smaller --test-fraction or --validation-fraction, or --test and --dev files"
        ) from None
    parts = {"--dev": validation, "--test": test}
    origins = {
        "--dev": f"--validation-fraction {args.validation_fraction:g}",
        "--test": f"--test-fraction {args.test_fraction:g}",
    }
    class_of = {name: index for index, name in enumerate(label_names)}
    for flag, path in (("--dev", args.dev), ("--test", args.test)):
        if path is not None:
            part_texts, part_labels = read_examples(args, flag, path, known_labels=set(label_names))
            parts[flag] = np.arange(len(texts), len(texts) + len(part_texts))
            texts += part_texts
            class_ids += [class_of[label] for label in part_labels]
            origins[flag] = flag
    print(
        f"{len(label_names)} classes ({', '.join(label_names)}): {len(train)} train, "
        f"{len(parts['--dev'])} validation ({origins['--dev']}), {len(parts['--test'])} test "
        f"({origins['--test']}); split seed {args.split_seed}",
        flush=True,
    )
    return Examples(texts, class_ids, label_names, train, parts["--dev"], parts["--test"])


def label_vocabulary(labels):
    """Sorted distinct labels (numerically when they are all integers) and each example's class id."""
    names = sorted(set(labels), key=lambda name: (0, int(name), "") if _is_int(name) else (1, 0, name))
    if len(names) < 2:
        raise RecipeError(
            f"every example of the training data has the label {names[0]!r}: classification needs 2 "
            "classes or more (is --label-column the label?)"
        )
    index = {name: position for position, name in enumerate(names)}
    return names, [index[label] for label in labels]


def _is_int(text):
    try:
        int(text)
    except ValueError:
        return False
    return True


def build_tokenizer(args, train_texts):
    """`(CleaningTokenizer, vocab or None)` fitted on `train_texts` (never on held-out examples)."""
    cleaned = [text.decode("utf-8") for text in zoo_text.clean_markup(tf.constant(train_texts)).numpy()]
    if args.tokenizer == "bpe":
        try:
            bpe = zoo_text.BPETokenizer.train(cleaned, vocab_size=args.bpe_vocab_size)
        except ValueError as error:
            raise RecipeError(f"--bpe-vocab-size: {error}") from error
        return zoo_text.CleaningTokenizer(bpe), None
    words = zoo_text.WordTokenizer("course")
    vocab = zoo_text.Vocab(
        words.tokenize(cleaned), min_freq=args.min_freq, reserved_tokens=zoo_text.SEQUENCE_RESERVED
    )
    return zoo_text.CleaningTokenizer(words), vocab


def save_vocabulary(args, tokenizer, vocab):
    """`bpe.model` (BPE) or `vocab.txt` (words) in the run's output folder."""
    if vocab is None:
        tokenizer.tokenizer.save(run_files.output_path(args, "bpe.model"))
    else:
        vocab.save(run_files.output_path(args, "vocab.txt"))


# --- Transfer: a language model pretrained on unlabelled text -------------------------------

PRETRAINED_LM = "pretrained_lm"
PRETRAIN_VALIDATION_FRACTION = 0.05


def read_pretraining_texts(args):
    """The non-empty lines of the `--pretrain-data` files."""
    texts = []
    for path in args.pretrain_data:
        with flags.reading("--pretrain-data", path):
            texts += [line for line in zoo_text.read_lines(path, args.encoding) if line.strip()]
    if not texts:
        raise RecipeError("--pretrain-data: the files hold no text")
    return texts


def token_stream(tokenizer, vocab, texts, chunk=1000):
    """The texts' token ids end to end, each text closed by `<eos>`."""
    eos = tokenizer.id_of(zoo_text.EOS) if vocab is None else vocab.id_of(zoo_text.EOS)
    ids = []
    for start in range(0, len(texts), chunk):
        tokens = tokenizer.tokenize(tf.constant(texts[start : start + chunk]))
        for row in (tokens if vocab is None else vocab.to_ids(tokens)).to_list():
            ids += [*row, eos]
    return np.asarray(ids, np.int32)


def pretrain(args, strategy, tokenizer, vocab, texts):
    """A `LanguageModel` of the classifier's embedding and recurrent shape, trained on `texts` as a
    run of its own in `<output-dir>/pretrained_lm` (checkpoints, `model.keras`, its vocabulary)."""
    lm_args = copy.copy(args)
    lm_args.output_dir = run_files.output_path(args, PRETRAINED_LM)
    lm_args.output_dir.mkdir(parents=True, exist_ok=True)
    lm_args.epochs, lm_args.learning_rate = args.pretrain_epochs, args.pretrain_learning_rate
    save_vocabulary(lm_args, tokenizer, vocab)
    ids = token_stream(tokenizer, vocab, texts)
    vocab_size = tokenizer.tokenizer.vocab_size if vocab is None else len(vocab)
    try:
        train_ids, validation_ids = zoo_text.split_stream(ids, PRETRAIN_VALIDATION_FRACTION)
        train_ds, validation_ds = (
            zoo_text.language_model_batches(
                part,
                args.pretrain_batch_size,
                args.pretrain_num_steps,
                args.pretrain_batching,
                seed=args.seed + offset,
            )
            for offset, part in enumerate((train_ids, validation_ids))
        )
    except ValueError as error:
        raise RecipeError(
            f"--pretrain-data: {error}: pass more text or a smaller --pretrain-batch-size or "
            "--pretrain-num-steps"
        ) from None
    print(f"pretraining a language model on {len(ids):,} tokens in {lm_args.output_dir}", flush=True)
    sequential = args.pretrain_batching == "sequential"
    model, _ = training.run_training(
        lambda: LanguageModel(
            vocab_size,
            cell_type=args.cell,
            units=args.units,
            num_layers=args.num_layers,
            embedding_dim=args.embedding_dim,
            dropout=args.pretrain_dropout,
            stateful=sequential,
        ),
        train_ds,
        validation_ds,
        lm_args,
        strategy=strategy,
        callbacks=[zoo.callbacks.ResetStateEachEpoch()] if sequential else (),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[zoo.metrics.Perplexity()],
        units_per_epoch=zoo.callbacks.count_units(train_ds, lambda inputs, _: tf.size(inputs, tf.int64)),
    )
    return model


def load_pretrained(path):
    """`(language model, tokenizer, vocab or None)` of a `pretrained_lm` folder."""
    model_path = path / "model.keras"
    if not model_path.is_file():
        raise RecipeError(
            f"--pretrained-lm {path}: no model.keras (the {PRETRAINED_LM} folder of a run with "
            "--pretrain-data)"
        )
    with flags.reading("--pretrained-lm", model_path):
        model = keras.models.load_model(model_path, compile=False)
    if not isinstance(model, LanguageModel):
        raise RecipeError(f"--pretrained-lm {model_path}: a {type(model).__name__}, not a LanguageModel")
    if (path / "bpe.model").is_file():
        return model, zoo_text.CleaningTokenizer(zoo_text.BPETokenizer.load(path / "bpe.model")), None
    if (path / "vocab.txt").is_file():
        with flags.reading("--pretrained-lm", path / "vocab.txt"):
            vocab = zoo_text.Vocab.load(path / "vocab.txt", reserved_tokens=zoo_text.SEQUENCE_RESERVED)
        return model, zoo_text.CleaningTokenizer(zoo_text.WordTokenizer("course")), vocab
    raise RecipeError(f"--pretrained-lm {path}: no vocab.txt or bpe.model beside model.keras")


def fine_tuning_optimizer(args, steps_per_epoch):
    """`model -> optimizer`: ULMFiT's Adam with per-layer rates and a slanted triangular schedule."""

    def optimizer(model):
        return fine_tuning.DiscriminativeAdam(
            fine_tuning.SlantedTriangular(
                args.learning_rate, total_steps=max(2, args.epochs * steps_per_epoch)
            ),
            learning_rate_factors=fine_tuning.discriminative_factors(fine_tuning.layer_groups(model)),
            beta_1=0.7,
            beta_2=0.99,
            global_clipnorm=args.clip_norm or None,
        )

    return optimizer


# --- Model ----------------------------------------------------------------------------------


def build_model(args, vocab_size, num_classes):
    return SequenceClassifier(
        vocab_size,
        num_classes,
        embedding_dim=args.embedding_dim,
        units=args.units,
        num_layers=args.num_layers,
        cell_type=args.cell,
        pooling=args.pooling,
        pool_embeddings=args.pool_embeddings,
        dropout=args.dropout,
        word_dropout=args.word_dropout,
    )


# --- Main: data, model, train, evaluate, export ---------------------------------------------


@entry_point
def main(argv=None):
    args = flags.parse_args(build_parser(), argv, check=check)
    strategy = training.setup(args)

    texts, class_ids, label_names, train, validation, test = load_data(args)
    train_texts = [texts[i] for i in train]
    language_model = None
    if args.pretrained_lm:
        language_model, tokenizer, vocab = load_pretrained(args.pretrained_lm)
        args.tokenizer = "word" if vocab is not None else "bpe"
    elif args.pretrain_data:
        unlabelled = read_pretraining_texts(args)
        tokenizer, vocab = build_tokenizer(args, train_texts + unlabelled)
        language_model = pretrain(args, strategy, tokenizer, vocab, unlabelled + train_texts)
    else:
        tokenizer, vocab = build_tokenizer(args, train_texts)
    vocab_size = len(vocab) if vocab is not None else tokenizer.tokenizer.vocab_size
    print(f"{args.tokenizer} vocabulary: {vocab_size} ids", flush=True)

    def batches(indices, shuffle):
        return zoo_text.classification_batches(
            [texts[i] for i in indices],
            [class_ids[i] for i in indices],
            args.batch_size,
            vocab=vocab,
            tokenizer=tokenizer,
            max_length=args.max_length,
            shuffle_buffer=len(indices) if shuffle else None,
            seed=args.seed,
        )

    train_ds, val_ds, test_ds = batches(train, True), batches(validation, False), batches(test, False)

    early_stopping = []
    if args.patience:
        early_stopping.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", mode="max", patience=args.patience, restore_best_weights=True
            )
        )
    if language_model is None:
        model_fn, optimizer_fn, callbacks = lambda: build_model(args, vocab_size, len(label_names)), None, []
    else:

        def model_fn():
            return SequenceClassifier.from_language_model(
                language_model,
                len(label_names),
                pooling=args.pooling,
                dropout=args.dropout,
                word_dropout=args.word_dropout,
                pool_embeddings=args.pool_embeddings,
            )

        optimizer_fn = fine_tuning_optimizer(args, steps_per_epoch=sum(1 for _ in train_ds))
        callbacks = [fine_tuning.GradualUnfreezing()]
    model, _ = training.run_ensemble_training(
        model_fn,
        train_ds,
        val_ds,
        args,
        members=args.ensemble,
        strategy=strategy,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        callbacks=callbacks + early_stopping,
        optimizer_fn=optimizer_fn,
        units_per_epoch=zoo.callbacks.count_units(train_ds, lambda ids, _: tf.math.count_nonzero(ids)),
    )

    test_loss, test_accuracy = model.evaluate(
        zoo.distribute.distribute_batches(strategy, lambda: test_ds), verbose=0
    )
    print(f"held-out accuracy: {test_accuracy:.4f} on {len(test)} examples", flush=True)

    classifier = zoo.models.TextClassifier(model, tokenizer, vocab, label_names, args.max_length)
    path = zoo.export.saved_model(
        classifier, run_files.output_path(args, "saved_model"), {"classify": classifier.classify}
    )
    print(f"saved {path}", flush=True)
    save_vocabulary(args, tokenizer, vocab)
    litert_sizes = run_files.write_litert(args, model)
    return run_files.finish_run(
        args,
        model,
        **litert_sizes,
        test_accuracy=test_accuracy,
        test_loss=test_loss,
        test_examples=len(test),
        vocab_size=vocab_size,
        label_names=label_names,
    )


if __name__ == "__main__":
    main()
