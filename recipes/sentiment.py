"""Sentiment analysis (many-to-one): a bidirectional RNN classifies a review as positive or negative.

`python -m recipes.sentiment` trains `zoo.models.SequenceClassifier` on the IMDb subset
(`$ZOO_DATA_DIR/imdb_subset/train.tsv`), on any TSV/CSV (`--data FILE --text-column ... --label-column
...`), or on TFDS `imdb_reviews` (`--tfds`, needs a network the first time).

A fixed share of the examples (`--test-fraction`, 20%, drawn with `--split-seed`, independent of the
training `--seed`) is held out and never trained on; its accuracy is the figure the run reports. A
validation split is carved from the rest for the per-epoch validation and early stopping, which keeps
the epoch of the best validation accuracy.

The defaults train `--ensemble 5` models (seeds `--seed` to `--seed + 4`), each a 1-layer BiLSTM 32
over 64-dim word embeddings with mean and max pooling plus the mean embedding, dropout 0.6 and
patience 3, and average their class probabilities (`zoo.models.AveragedEnsemble`): held-out accuracy
0.825 / 0.810 / 0.820 for `--seed` 0 / 1 / 2 (mean 0.818) on the IMDb subset's 200 held-out reviews,
from scratch, in 61-70 s of training on 2 shared CPU cores (`benchmarks/sentiment_quality.py --seeds
0 1 2`). One such model alone (`--ensemble 1`) scores 0.755-0.815 (mean 0.781 over seeds 0-4): 200
test reviews and 680 training reviews leave a single model's accuracy to its seed. Before the
ensemble, 32-dim embeddings, dropout 0.5, refitting on training and validation for the chosen epoch
count, 100-dim embeddings, GRU, BPE, mean-only or max-only pooling, min-freq 1 or 5, whole-word
dropout 0.3 and a lower learning rate each measured 0.71-0.79 (mean of 3 seeds).

The run's `saved_model/` has a `classify` signature: a batch of raw strings in, class probabilities and
label names out. It runs in plain TensorFlow (`tf.saved_model.load`), without this project; with
`--tokenizer bpe` the loading process must `import tensorflow_text` first (it registers the
sentencepiece op).
"""

import argparse
import csv
import os
import pathlib
import time

import numpy as np
import tensorflow as tf

from recipes import common
from zoo import text as zoo_text
from zoo.models.classifier import POOLING_MODES, SequenceClassifier

DATA_ENV = "ZOO_DATA_DIR"
DEFAULT_DATA = pathlib.Path("imdb_subset") / "train.tsv"
DELIMITERS = {"tab": "\t", "comma": ","}
# IMDb reviews carry HTML line breaks; they are markup, not words.
_LINE_BREAK_TAG = r"<br\s*/?>"


def clean_text(text):
    """In-graph cleaning of raw review text: undecodable UTF-8 bytes become U+FFFD, `<br />` a space."""
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
    return tf.strings.regex_replace(text, _LINE_BREAK_TAG, " ")


class CleaningTokenizer(tf.Module):
    """`clean_text`, then a zoo tokenizer (`WordTokenizer` → tokens, `BPETokenizer` → piece ids)."""

    def __init__(self, tokenizer):
        super().__init__(name="cleaning_tokenizer")
        self.tokenizer = tokenizer

    def tokenize(self, text):
        return self.tokenizer.tokenize(clean_text(text))

    def id_of(self, name):
        """The id of a special piece (BPE); `classification_batches` checks that `<pad>` is 0."""
        return self.tokenizer.id_of(name)


class TextClassifierExport(tf.Module):
    """What `saved_model/` holds: tokenizer, vocabulary, model and label names behind `classify`.

    Args:
        model: a trained `SequenceClassifier`.
        tokenizer: a `CleaningTokenizer`.
        vocab: the token `Vocab`, or `None` when the tokenizer yields ids (BPE).
        label_names: the class names, in class-id order.
        max_length: longer texts are cut to their first `max_length` tokens.
    """

    def __init__(self, model, tokenizer, vocab, label_names, max_length):
        super().__init__(name="text_classifier")
        self.model = model
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.label_names = tf.constant(label_names, tf.string)
        self.max_length = max_length

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def classify(self, texts):
        """Raw strings [batch] → `probabilities` [batch, classes] and the most likely `label` [batch]."""
        tokens = self.tokenizer.tokenize(texts)
        ids = tokens if self.vocab is None else self.vocab.to_ids(tokens)
        ids = tf.cast(ids[:, : self.max_length], tf.int32).to_tensor(0)
        # An empty text has no token: one padding step keeps the time axis non-empty.
        ids = tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])
        probabilities = self.model(ids, training=False)
        label = tf.gather(self.label_names, tf.argmax(probabilities, axis=-1))
        return {"probabilities": probabilities, "label": label}


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m recipes.sentiment", description=__doc__.split("\n")[0])
    common.add_common_arguments(parser, recipe="sentiment", epochs=15, batch_size=32, learning_rate=2e-3)
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
    data.add_argument("--test-fraction", type=_fraction, default=0.2, help="held out, never trained on")
    data.add_argument(
        "--validation-fraction",
        type=_fraction,
        default=0.15,
        help="share of the remaining examples used for validation and early stopping",
    )
    data.add_argument("--split-seed", type=int, default=0, help="seed of the held-out and validation split")
    data.add_argument("--tokenizer", choices=("word", "bpe"), default="word")
    data.add_argument("--min-freq", type=int, default=2, help="word vocabulary: drop rarer words")
    data.add_argument("--bpe-vocab-size", type=int, default=2000)
    data.add_argument("--max-length", type=int, default=400, help="cut texts to this many tokens")
    model = parser.add_argument_group("model")
    model.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    model.add_argument("--embedding-dim", type=int, default=64)
    model.add_argument("--units", type=int, default=32)
    model.add_argument("--num-layers", type=int, default=1)
    model.add_argument("--pooling", choices=POOLING_MODES, default="mean_max")
    model.add_argument(
        "--pool-embeddings",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add mean-pooled embeddings to the encoding",
    )
    model.add_argument("--dropout", type=float, default=0.6)
    model.add_argument(
        "--word-dropout",
        type=float,
        default=0.0,
        help="training: zero this share of the tokens' whole embeddings",
    )
    model.add_argument(
        "--ensemble",
        type=common.positive_int,
        default=5,
        metavar="N",
        help="train N models (seeds --seed to --seed + N - 1) and average their probabilities",
    )
    model.add_argument(
        "--patience",
        type=int,
        default=3,
        help="stop after this many epochs without a better validation accuracy (0: never)",
    )
    return parser


def _fraction(text):
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {text}")
    return value


def load_examples(args):
    """`(texts, label_names_per_example)` from `--tfds`, `--data` or the default IMDb subset."""
    if args.tfds:
        try:
            dataset = zoo_text.load_tfds("imdb_reviews", split=args.tfds_split)
        except Exception as error:  # download or preparation failures have many types
            raise common.RecipeError(f"--tfds: could not load imdb_reviews ({error})") from error
        texts, labels = [], []
        for text, label in dataset.as_numpy_iterator():
            texts.append(text.decode("utf-8", errors="replace"))
            labels.append(str(int(label)))
        if not texts:
            raise common.RecipeError(f"--tfds: split {args.tfds_split!r} of imdb_reviews is empty")
        return texts, labels
    path = args.data
    if path is None:
        if not os.environ.get(DATA_ENV):
            raise common.RecipeError(f"no data: pass --data FILE, --tfds, or set {DATA_ENV}")
        path = pathlib.Path(os.environ[DATA_ENV]) / DEFAULT_DATA
    if path.is_dir():
        raise common.RecipeError(f"--data {path} is a folder; pass the TSV/CSV file")
    delimiter = DELIMITERS[args.delimiter or ("comma" if path.suffix.lower() == ".csv" else "tab")]
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    try:
        texts, labels = zoo_text.read_delimited(path, args.text_column, args.label_column, delimiter, quoting)
    except (OSError, ValueError) as error:
        raise common.RecipeError(str(error)) from error
    return texts, labels


def label_vocabulary(labels):
    """Sorted distinct labels (numerically when they are all integers) and each example's class id."""
    names = sorted(set(labels), key=lambda name: (0, int(name), "") if _is_int(name) else (1, 0, name))
    if len(names) < 2:
        raise common.RecipeError(
            f"the data has {len(names)} distinct label(s); classification needs 2 or more"
        )
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
        raise common.RecipeError(f"{count} examples are too few to split into train, validation and test")
    test, rest = order[:test_size], order[test_size:]
    return rest[validation_size:], rest[:validation_size], test


def build_tokenizer(args, train_texts):
    """`(CleaningTokenizer, vocab or None)` fitted on `train_texts` (never on held-out examples)."""
    cleaned = [text.decode("utf-8") for text in clean_text(tf.constant(train_texts)).numpy()]
    if args.tokenizer == "bpe":
        try:
            bpe = zoo_text.BPETokenizer.train(cleaned, vocab_size=args.bpe_vocab_size)
        except ValueError as error:
            raise common.RecipeError(f"--bpe-vocab-size: {error}") from error
        return CleaningTokenizer(bpe), None
    words = zoo_text.WordTokenizer("course")
    tokens = words.tokenize(cleaned)
    vocab = zoo_text.Vocab(tokens, min_freq=args.min_freq, reserved_tokens=zoo_text.SEQUENCE_RESERVED)
    return CleaningTokenizer(words), vocab


@common.entry_point
def main(argv=None):
    args = common.parse_args(build_parser(), argv)
    strategy = common.setup(args)
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

    def subset(indices):
        return [texts[i] for i in indices], [class_ids[i] for i in indices]

    tokenizer, vocab = build_tokenizer(args, subset(train)[0])
    vocab_size = len(vocab) if vocab is not None else tokenizer.tokenizer.vocab_size
    print(f"{args.tokenizer} vocabulary: {vocab_size} ids", flush=True)

    def batches(indices, shuffle):
        part_texts, part_labels = subset(indices)
        return zoo_text.classification_batches(
            part_texts,
            part_labels,
            args.batch_size,
            vocab=vocab,
            tokenizer=tokenizer,
            max_length=args.max_length,
            shuffle_buffer=len(indices) if shuffle else None,
            seed=args.seed,
        )

    train_ds, val_ds, test_ds = batches(train, True), batches(validation, False), batches(test, False)

    def build_model():
        return SequenceClassifier(
            vocab_size,
            len(label_names),
            embedding_dim=args.embedding_dim,
            units=args.units,
            num_layers=args.num_layers,
            cell_type=args.cell,
            pooling=args.pooling,
            pool_embeddings=args.pool_embeddings,
            dropout=args.dropout,
            word_dropout=args.word_dropout,
        )

    callbacks = common.accuracy_early_stopping(args.patience)
    started = time.perf_counter()
    model, _ = common.run_ensemble_training(
        build_model,
        train_ds,
        val_ds,
        args,
        members=args.ensemble,
        strategy=strategy,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        callbacks=callbacks,
        units_per_epoch=common.count_units(train_ds, lambda ids, _: tf.math.count_nonzero(ids)),
    )
    train_seconds = time.perf_counter() - started

    test_loss, test_accuracy = model.evaluate(test_ds, verbose=0)
    print(
        f"held-out accuracy: {test_accuracy:.4f} on {len(test)} examples ({train_seconds:.0f} s training)",
        flush=True,
    )
    common.record_final(
        args,
        test_accuracy=test_accuracy,
        test_loss=test_loss,
        test_examples=len(test),
        train_seconds=train_seconds,
        vocab_size=vocab_size,
        label_names=label_names,
    )

    export = TextClassifierExport(model, tokenizer, vocab, label_names, args.max_length)
    common.export_saved_model(export, common.output_path(args, "saved_model"), {"classify": export.classify})
    print(f"saved {common.output_path(args, 'saved_model')}", flush=True)
    return {"test_accuracy": test_accuracy, "output_dir": args.output_dir}


if __name__ == "__main__":
    main()
