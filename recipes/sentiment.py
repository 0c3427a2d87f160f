"""Sentiment analysis (many-to-one): a bidirectional RNN classifies a review as positive or negative.

`python -m recipes.sentiment` trains `zoo.models.SequenceClassifier` on the IMDb subset
(`$ZOO_DATA_DIR/imdb_subset/train.tsv`), on any TSV/CSV (`--data FILE --text-column ... --label-column
...`), or on TFDS `imdb_reviews` (`--tfds`, needs a network the first time).

A fixed share of the examples (`--test-fraction`, drawn with `--split-seed`, independent of the
training `--seed`) is held out and never trained on; its accuracy is the figure the run reports. A
validation split is carved from the rest for the per-epoch validation and early stopping, which keeps
the epoch of the best validation accuracy.

The defaults train `--ensemble 5` models (seeds `--seed` to `--seed + 4`), each a 1-layer BiLSTM over
word embeddings with mean and max pooling plus the mean embedding, and average their class
probabilities (`zoo.models.AveragedEnsemble`); `--ensemble 1` trains one.

The run's `saved_model/` has a `classify` signature (`zoo.models.TextClassifier`): a batch of raw
strings in, class probabilities and label names out. It runs in plain TensorFlow
(`tf.saved_model.load`), without this project; with `--tokenizer bpe` the loading process must
`import tensorflow_text` first (it registers the sentencepiece op). `model.tflite` is the model for
LiteRT (`--quantize dynamic`: `model_int8.tflite` too): `token_ids` (int32 `[1, length]`, the ids of
`vocab.txt` or `bpe.model`) in, the class probabilities out.
"""

import argparse
import csv
import pathlib

import keras
import numpy as np
import tensorflow as tf

import zoo
from recipes import flags, run_files, training
from recipes.recipe import RecipeError, entry_point
from zoo import text as zoo_text
from zoo.models.classifier import POOLING_MODES, SequenceClassifier

# --- Config ---------------------------------------------------------------------------------

DEFAULT_DATA = pathlib.Path("imdb_subset") / "train.tsv"
DELIMITERS = {"tab": "\t", "comma": ","}


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m recipes.sentiment", description=__doc__.split("\n")[0])
    flags.add_shared_flags(parser, recipe="sentiment", epochs=15, batch_size=32, learning_rate=2e-3)
    flags.add_export_flags(parser)
    data = parser.add_argument_group("data")
    data.add_argument("--tfds", action="store_true", help="train on TFDS imdb_reviews instead of a file")
    data.add_argument("--tfds-split", default="train", help="the TFDS split to read (e.g. 'train[:10%%]')")
    data.add_argument("--text-column", default="text", help="header name of the text column (files)")
    data.add_argument("--label-column", default="label", help="header name of the label column (files)")
    data.add_argument(
        "--delimiter",
        choices=sorted(DELIMITERS),
        default=None,
        help="field separator (default: comma for .csv files, tab otherwise)",
    )
    data.add_argument(
        "--test-fraction", type=flags.positive_fraction, default=0.2, help="held out, never trained on"
    )
    data.add_argument(
        "--validation-fraction",
        type=flags.positive_fraction,
        default=0.15,
        help="share of the remaining examples used for validation and early stopping",
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
    model.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    model.add_argument("--embedding-dim", type=flags.positive_int, default=64)
    model.add_argument("--units", type=flags.positive_int, default=32)
    model.add_argument("--num-layers", type=flags.positive_int, default=1)
    model.add_argument("--pooling", choices=POOLING_MODES, default="mean_max")
    model.add_argument(
        "--pool-embeddings",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add mean-pooled embeddings to the encoding",
    )
    model.add_argument("--dropout", type=flags.fraction, default=0.6)
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
    return parser


# --- Data -----------------------------------------------------------------------------------


def load_examples(args):
    """`(texts, label_names_per_example)` from `--tfds`, `--data` or the default IMDb subset."""
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
    path = args.data or flags.data_set_file(DEFAULT_DATA, "pass --data FILE or --tfds")
    if path.is_dir():
        raise RecipeError(f"--data {path} is a folder; pass the TSV/CSV file")
    delimiter = DELIMITERS[args.delimiter or ("comma" if path.suffix.lower() == ".csv" else "tab")]
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    try:
        return zoo_text.read_delimited(path, args.text_column, args.label_column, delimiter, quoting)
    except (OSError, ValueError) as error:
        raise RecipeError(str(error)) from error


def label_vocabulary(labels):
    """Sorted distinct labels (numerically when they are all integers) and each example's class id."""
    names = sorted(set(labels), key=lambda name: (0, int(name), "") if _is_int(name) else (1, 0, name))
    if len(names) < 2:
        raise RecipeError(f"the data has {len(names)} distinct label(s); classification needs 2 or more")
    index = {name: position for position, name in enumerate(names)}
    return names, [index[label] for label in labels]


def _is_int(text):
    try:
        int(text)
    except ValueError:
        return False
    return True


def split_indices(count, test_fraction, validation_fraction, seed):
    """Disjoint `(train, validation, test)` index arrays from one seeded permutation."""
    order = np.random.default_rng(seed).permutation(count)
    test_size = int(round(count * test_fraction))
    validation_size = int(round((count - test_size) * validation_fraction))
    if min(test_size, validation_size, count - test_size - validation_size) < 1:
        raise RecipeError(f"{count} examples are too few to split into train, validation and test")
    test, rest = order[:test_size], order[test_size:]
    return rest[validation_size:], rest[:validation_size], test


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
    args = flags.parse_args(build_parser(), argv)
    strategy = training.setup(args)

    texts, labels = load_examples(args)
    label_names, class_ids = label_vocabulary(labels)
    train, validation, test = split_indices(
        len(texts), args.test_fraction, args.validation_fraction, args.split_seed
    )
    print(
        f"{len(texts)} examples, {len(label_names)} classes: {len(train)} train, "
        f"{len(validation)} validation, {len(test)} held out",
        flush=True,
    )
    tokenizer, vocab = build_tokenizer(args, [texts[i] for i in train])
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
    model, _ = training.run_ensemble_training(
        lambda: build_model(args, vocab_size, len(label_names)),
        train_ds,
        val_ds,
        args,
        members=args.ensemble,
        strategy=strategy,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        callbacks=early_stopping,
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
    if vocab is None:
        tokenizer.tokenizer.save(run_files.output_path(args, "bpe.model"))
    else:
        vocab.save(run_files.output_path(args, "vocab.txt"))
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
