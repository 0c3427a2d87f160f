"""Language-model quality: the char-level Time Machine (the recipe and the course's settings), and
the recipe's default run on text of one's own, read as written.

Parts (choose with `--parts`, default all; each prints its figures as it ends, and `summary.json` in
`--runs` gathers them):
1. The default recipe (`python -m recipes.language_model`): validation perplexity and wall time.
2. D2L 1.0: batch 1024, 32 steps, hidden 32, one-hot inputs, SGD, clip 1; RNN lr 1 for 100 epochs,
   GRU and LSTM lr 4 for 50 epochs, validation perplexity of the last epoch, two ways: (a) on D2L's
   own data (the windows starting at offsets 0..9,999 train, 10 updates an epoch, the next 5,000
   validate); (b) through the recipe (`--batching overlapping`: every window of the 90% split,
   validation on the last 10%) for about D2L's number of updates.
3. D2L 0.17: batch 32, 35 steps, a GRU of 256, one-hot, SGD lr 1, clip 1, sequential partitioning,
   on D2L 0.17's corpus (each line cleaned, the lines run together, the first 10,000 characters; no
   validation set): the epoch at which the training perplexity reaches 1.3, within a time cap
   (`--cap-minutes`).
4. A bidirectional model (1 layer of 128, 3 epochs): its validation perplexity (it reads the token it
   predicts) and its refusal to generate (a ValueError).
5. Training tokens/s of the default recipe's model beside the same model built from Keras's own
   `keras.layers.LSTM` on the same batches (median over `--speed-epochs` epochs).
6. The default recipe with `--pretrain-data`: other English text from `$ZOO_DATA_DIR` (the IMDb
   reviews, the English side of fra-eng, the UD EWT sentences, encoded with the book's vocabulary)
   for `--pretrain-epochs`, then the book.
7. Faithful text that is not the book: the recipe's default run (no flags but `--data`: faithful
   characters, the run length it chooses from the corpus size, early stopping) on the first
   `--corpus-bytes` (default 1,115,394, tinyshakespeare's size) of `$ZOO_DATA_DIR`'s unlabeled IMDb
   reviews, cut at a review's end, with their `<br />` tags as the line breaks they stand for:
   validation loss in nats per character on the last 10%, wall and CPU minutes of the run.

    ZOO_DATA_DIR=../shared/data python benchmarks/lm_quality.py --parts 2 3 4 5 6
    nice -n 19 python benchmarks/lm_quality.py --parts 7

`--data` (default `$ZOO_DATA_DIR/timemachine/timemachine.txt`) is the book; runs go to `--runs`.
The validation set is always the last 10% of the text.
"""

import argparse
import json
import math
import os
import pathlib
import statistics
import sys
import time

import keras
import numpy as np
import tensorflow as tf

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from recipes import language_model as recipe  # noqa: E402
from zoo import text as zoo_text  # noqa: E402
from zoo.callbacks import ResetStateEachEpoch, count_units  # noqa: E402
from zoo.metrics import Perplexity  # noqa: E402
from zoo.models.language_model import LanguageModel  # noqa: E402

VALIDATION_FRACTION = 0.1  # the recipe's: the last 10% of the text


def run_recipe(args, name, flags, data=None):
    """`(run, minutes)`: `recipes.language_model` on `data` (default: the book) with `flags`, in
    `--runs/name`."""
    start = time.perf_counter()
    run = recipe.main(["--data", str(data or args.data), "--output-dir", str(args.runs / name), *flags])
    return run, (time.perf_counter() - start) / 60


def book_ids(args):
    """`(ids, vocab)`: the book's characters, cleaned as one string (D2L 1.0's cleaning, the recipe's)."""
    chars = zoo_text.CharTokenizer().tokenize(zoo_text.read_text(args.data))
    vocab = zoo_text.Vocab(chars)
    return np.asarray(vocab.to_ids(chars), np.int32), vocab


def compile_course_sgd(model, learning_rate):
    """The course's training: SGD with gradient clipping at norm 1, perplexity as the metric."""
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, global_clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[Perplexity()],
    )


def part_default(args):
    run, minutes = run_recipe(args, "default", [])
    return {
        "val_perplexity": run.final["val_perplexity"],
        "epochs": run.final["epochs"],
        "minutes": minutes,
        "sample": run.final.get("sample"),
    }


D2L_10 = [
    "--layers",
    "1",
    "--units",
    "32",
    "--embedding-dim",
    "0",
    "--dropout",
    "0",
    "--batch-size",
    "1024",
    "--num-steps",
    "32",
    "--optimizer",
    "sgd",
    "--clip-norm",
    "1",
    "--lr-schedule",
    "constant",
]


# D2L 1.0 trains on its first 10,000 overlapping windows: 10 updates of 1024 an epoch. Our 90%
# split cut into overlapping windows gives 149, so `--batching overlapping` runs the epochs that
# make about D2L's number of updates.
D2L_10_UPDATES_PER_EPOCH = 10
OVERLAPPING_UPDATES_PER_EPOCH = 149
D2L_10_SETTINGS = (("rnn", 1.0, 100), ("gru", 4.0, 50), ("lstm", 4.0, 50))


def d2l_10_data(ids, num_steps=32, num_train=10000, num_val=5000, batch_size=1024):
    """D2L 1.0's own split: the windows starting at 0..9,999 train, the next 5,000 validate."""
    windows = np.stack([ids[start : start + num_steps + 1] for start in range(num_train + num_val)])
    inputs, targets = windows[:, :-1], windows[:, 1:]
    train = (
        tf.data.Dataset.from_tensor_slices((inputs[:num_train], targets[:num_train]))
        .shuffle(num_train, seed=0)
        .batch(batch_size)
    )
    validation = tf.data.Dataset.from_tensor_slices((inputs[num_train:], targets[num_train:])).batch(
        batch_size
    )
    return train, validation


def part_d2l_10(args):
    results = {}
    ids, vocab = book_ids(args)
    train, validation = d2l_10_data(ids)
    for cell, learning_rate, epochs in D2L_10_SETTINGS:
        keras.utils.set_random_seed(0)
        model = LanguageModel(len(vocab), cell, 32, embedding_dim=None)
        compile_course_sgd(model, learning_rate)
        start = time.perf_counter()
        history = model.fit(train, validation_data=validation, epochs=epochs, verbose=0)
        results[f"{cell} D2L data"] = {
            "val_perplexity": history.history["val_perplexity"][-1],
            "epochs": epochs,
            "minutes": (time.perf_counter() - start) / 60,
        }
        print(f"D2L 1.0 {cell} on D2L's split: {results[f'{cell} D2L data']}", flush=True)
    for cell, learning_rate, epochs in D2L_10_SETTINGS:
        run_epochs = math.ceil(epochs * D2L_10_UPDATES_PER_EPOCH / OVERLAPPING_UPDATES_PER_EPOCH)
        run, minutes = run_recipe(
            args,
            f"d2l10-{cell}-overlapping",
            [
                *D2L_10,
                "--cell",
                cell,
                "--learning-rate",
                str(learning_rate),
                "--epochs",
                str(run_epochs),
                "--batching",
                "overlapping",
                "--no-keep-best",
            ],
        )
        results[f"{cell} overlapping"] = {
            "val_perplexity": run.final["val_perplexity"],
            "epochs": run_epochs,
            "minutes": minutes,
        }
        print(f"D2L 1.0 {cell} overlapping: {results[f'{cell} overlapping']}", flush=True)
    return results


class StopAt(keras.callbacks.Callback):
    """Stops at a training perplexity target or a time cap; remembers the epoch it got there."""

    def __init__(self, target, cap_seconds):
        super().__init__()
        self.target, self.cap_seconds = target, cap_seconds
        self.start, self.reached_at = time.perf_counter(), None

    def on_epoch_end(self, epoch, logs=None):
        if logs["perplexity"] <= self.target and self.reached_at is None:
            self.reached_at = epoch + 1
            self.model.stop_training = True
        if time.perf_counter() - self.start > self.cap_seconds:
            self.model.stop_training = True


D2L_017_MAX_TOKENS = 10000


def part_d2l_017(args):
    """Driven here, not through the recipe, to stop at the target or the cap."""
    # D2L 0.17's corpus: each line cleaned, the lines run together (the recipe cleans the whole text).
    lines = zoo_text.read_text(args.data).split("\n")
    chars = [char for line in zoo_text.CharTokenizer().tokenize(lines) for char in line]
    vocab = zoo_text.Vocab(chars)
    ids = np.asarray(vocab.to_ids(chars[:D2L_017_MAX_TOKENS]), np.int32)
    train = zoo_text.language_model_batches(ids, 32, 35, "sequential", seed=0)
    results = {}
    for cell in ("gru",):
        keras.utils.set_random_seed(0)
        model = LanguageModel(len(vocab), cell, 256, stateful=True)
        model(next(iter(train))[0])
        compile_course_sgd(model, 1.0)
        stop = StopAt(1.3, args.cap_minutes * 60)
        history = model.fit(train, epochs=500, verbose=0, callbacks=[ResetStateEachEpoch(), stop])
        perplexity = history.history["perplexity"]
        results[cell] = {
            "corpus_tokens": len(ids),
            "reached_1.3_at_epoch": stop.reached_at,
            "epochs_run": len(perplexity),
            "train_perplexity": perplexity[-1],
            "train_perplexity_by_epoch": {
                epoch: round(perplexity[epoch - 1], 3)
                for epoch in (1, 10, 25, 50, 100, 200, 300, 500)
                if epoch <= len(perplexity)
            },
            "minutes": (time.perf_counter() - stop.start) / 60,
        }
        print(f"D2L 0.17 {cell}: {results[cell]}", flush=True)
    return results


def part_bidirectional(args):
    run, minutes = run_recipe(
        args,
        "bidirectional",
        ["--bidirectional", "--batching", "random", "--layers", "1", "--units", "128", "--epochs", "3"],
    )
    try:
        run.model.generate_ids([[1, 2, 3]], 5)
        refusal = None
    except ValueError as error:
        refusal = str(error)
    return {"val_perplexity": run.final["val_perplexity"], "minutes": minutes, "refusal": refusal}


def part_keras_speed(args):
    """Same batches, same shapes: the recipe's default model vs keras.layers.LSTM. The model and its
    batches come from a one-epoch run of the recipe with its defaults."""
    run, _ = run_recipe(args, "speed-reference", ["--epochs", "1"])
    flags = argparse.Namespace(**json.loads((run.output_dir / "config.json").read_text()))
    config = run.model.get_config()
    ids, vocab = book_ids(args)
    train_ids, _ = zoo_text.split_stream(ids, VALIDATION_FRACTION)
    train = zoo_text.language_model_batches(
        train_ids, flags.batch_size, flags.num_steps, flags.batching, seed=flags.seed
    )
    tokens = count_units(train, lambda x, y: tf.size(x, out_type=tf.int64))

    def keras_model():
        recurrent = [
            [keras.layers.LSTM(flags.units, return_sequences=True), keras.layers.Dropout(flags.dropout)]
            for _ in range(flags.layers)
        ]
        return keras.Sequential(
            [
                keras.layers.Embedding(len(vocab), flags.embedding_dim),
                *[layer for pair in recurrent for layer in pair],
                keras.layers.Dense(len(vocab)),
            ]
        )

    def zoo_model():
        return LanguageModel.from_config({**config, "stateful": False})

    results = {}
    for name, build in (("zoo LanguageModel", zoo_model), ("keras.layers.LSTM", keras_model)):
        model = build()
        model.compile(
            optimizer=keras.optimizers.Adam(flags.learning_rate, global_clipnorm=1.0),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        model.fit(train.take(3), verbose=0)  # trace
        rates = []
        for _ in range(args.speed_epochs):
            start = time.perf_counter()
            model.fit(train, verbose=0)
            rates.append(tokens / (time.perf_counter() - start))
        results[name] = {
            "tokens_per_sec_median": statistics.median(rates),
            "per_epoch": [round(rate) for rate in rates],
        }
        if isinstance(model, LanguageModel):
            results[name]["implementation"] = model.implementation_used
        print(f"{name}: {results[name]}", flush=True)
    return results


def other_english_lines(data_dir):
    """The English text of the other data sets in `data_dir`: the IMDb reviews, the English side of
    fra-eng and the UD EWT sentences."""
    reviews, _ = zoo_text.read_imdb_tsv(data_dir / "imdb_subset" / "train.tsv")
    lines = [review.replace("<br />", " ") for review in reviews]
    lines += zoo_text.read_sentence_pairs(data_dir / "fra-eng" / "fra.txt", preprocess=False)[0]
    for name in ("en_ewt-ud-train.subset.conllu", "en_ewt-ud-dev.conllu"):
        sentences, _ = zoo_text.read_conllu(data_dir / "ud_english_ewt" / name)
        lines += [" ".join(words) for words in sentences]
    return lines


def part_pretraining(args):
    """The default recipe with `--pretrain-data`: the other English text first, then the book."""
    other_text = args.runs / "other_english.txt"
    other_text.write_text("\n".join(other_english_lines(args.data.parents[1])) + "\n")
    run, minutes = run_recipe(
        args,
        "pretrained",
        ["--pretrain-data", str(other_text), "--pretrain-epochs", str(args.pretrain_epochs)],
    )
    return {
        "pretraining_tokens": run.final["pretraining_tokens"],
        "pretrain_epochs": args.pretrain_epochs,
        "val_perplexity": run.final["val_perplexity"],
        "best_epoch": run.final.get("best_epoch"),
        "minutes": minutes,
    }


def reviews_corpus(data_dir, size):
    """The first reviews of `imdb_unlabeled/reviews.txt` that fit in `size` UTF-8 bytes, one a line,
    each `<br />` the line break it stands for."""
    text = zoo_text.read_text(data_dir / "imdb_unlabeled" / "reviews.txt")
    lines, used = [], 0
    for review in text.split("\n"):
        line = review.replace("<br />", "\n") + "\n"
        used += len(line.encode("utf-8"))
        if used > size:
            break
        lines.append(line)
    return "".join(lines)


def part_faithful_corpus(args):
    """The recipe's default run on reviews read as written; nats per character = ln(perplexity)."""
    corpus = args.runs / "reviews.txt"
    corpus.write_text(reviews_corpus(args.data.parents[1], args.corpus_bytes), encoding="utf-8")
    cpu_start = time.process_time()
    run, minutes = run_recipe(args, "faithful-reviews", [], data=corpus)
    text = corpus.read_text(encoding="utf-8")
    return {
        "corpus": f"{corpus.stat().st_size:,} bytes of IMDb reviews, {len(set(text))} distinct characters",
        "val_nats_per_char": math.log(run.final["val_perplexity"]),
        "val_perplexity": run.final["val_perplexity"],
        "vocab_size": run.final["vocab_size"],
        "epochs": run.final["epochs"],
        "best_epoch": run.final.get("best_epoch"),
        "configured_epochs": json.loads((run.output_dir / "config.json").read_text())["epochs"],
        "minutes": minutes,
        "cpu_minutes": (time.process_time() - cpu_start) / 60,
        "sample": run.final.get("sample"),
    }


PARTS = {
    "1": part_default,
    "2": part_d2l_10,
    "3": part_d2l_017,
    "4": part_bidirectional,
    "5": part_keras_speed,
    "6": part_pretraining,
    "7": part_faithful_corpus,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_data = (
        pathlib.Path(os.environ.get("ZOO_DATA_DIR", "../shared/data")) / "timemachine/timemachine.txt"
    )
    parser.add_argument("--data", type=pathlib.Path, default=default_data)
    parser.add_argument("--runs", type=pathlib.Path, default=pathlib.Path("runs/lm_quality"))
    parser.add_argument("--parts", nargs="+", choices=sorted(PARTS), default=sorted(PARTS))
    parser.add_argument("--cap-minutes", type=float, default=15.0, help="time cap of part 3")
    parser.add_argument("--speed-epochs", type=int, default=3)
    parser.add_argument("--pretrain-epochs", type=int, default=4, help="part 6")
    parser.add_argument("--corpus-bytes", type=int, default=1_115_394, help="part 7")
    args = parser.parse_args()
    args.runs.mkdir(parents=True, exist_ok=True)
    summary = {}
    for part in args.parts:
        summary[part] = PARTS[part](args)
        print(f"== part {part} ({PARTS[part].__name__}): {json.dumps(summary[part])}", flush=True)
    (args.runs / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
