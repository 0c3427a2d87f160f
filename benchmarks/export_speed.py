"""Deployment: streaming latency, file sizes and int8 accuracy of `zoo.export` in one run.

1. A language model of the LM recipe's default shape (char-level, embedding 64, 3 LSTM layers of
   256, dropout 0.4) trained on the first 90% of The Time Machine for `--train-minutes`, or the
   model of an LM recipe run on the book (`--lm-run DIR`: its `model.keras` and `vocab.txt`), then:
   - per-token latency of its streaming step at batch 1 (one token and the states in, logits and
     states out), fed `--tokens` tokens, median of `--repeats` runs: LiteRT float32 and int8
     (`zoo.export.tflite(..., streaming_step=True)`, the `step` signature, `--litert-threads`), the
     SavedModel `step` signature (`tf.saved_model.load` in this process), and Keras
     (`streaming_step` eagerly, and in a `tf.function`);
   - the sizes of the files;
   - validation perplexity on the last 10% (windows of `--window` characters, each from zero states),
     in Keras and in LiteRT float32 and int8 (the whole-sequence signature, fused LSTM ops).
2. A `SequenceClassifier` (word tokens, embedding 64, 1 bidirectional LSTM layer of 64, mean
   pooling) trained for `--classifier-epochs` on 80% of the IMDb subset; accuracy on the other 20%
   (never trained on) in Keras and in LiteRT float32 and int8, one review at a time (batch 1).

Goal (issue 25): the LiteRT step is the fastest; int8 costs at most 0.01 accuracy and 2% perplexity.
`--markdown` prints the tables as Markdown.

    ZOO_DATA_DIR=../shared/data python benchmarks/export_speed.py [--train-minutes 4]
    python -m recipes.language_model --epochs 10 --output-dir runs/lm && \
        ZOO_DATA_DIR=../shared/data python benchmarks/export_speed.py --lm-run runs/lm --markdown
"""

import argparse
import math
import os
import pathlib
import statistics
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import zoo  # noqa: E402
import zoo.export  # noqa: E402
from zoo import text as zoo_text  # noqa: E402
from zoo.export import streaming  # noqa: E402


class TimeLimit(keras.callbacks.Callback):
    def __init__(self, seconds):
        super().__init__()
        self.deadline = time.monotonic() + seconds

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() > self.deadline:
            self.model.stop_training = True


def print_table(args, title, header, rows):
    """Prints `rows` (lists of cells, as `header`) under `title`: aligned text, or Markdown."""
    print()
    if args.markdown:
        print(f"**{title}**\n")
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
        return
    print(title + ":")
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    for row in [header, *rows]:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)))


def directory_size(path):
    return sum(file.stat().st_size for file in pathlib.Path(path).rglob("*") if file.is_file())


def windows(ids, length):
    count = (len(ids) - 1) // length
    return [ids[i * length : i * length + length + 1] for i in range(count)]


def perplexity(logits_of, pieces):
    """exp(mean cross-entropy) over every target of `pieces`, each run from zero states."""
    total, count = 0.0, 0
    for piece in pieces:
        logits = np.asarray(logits_of(piece[None, :-1]), np.float64)[0]
        logits -= logits.max(axis=-1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        total -= log_probs[np.arange(len(piece) - 1), piece[1:]].sum()
        count += len(piece) - 1
    return math.exp(total / count)


def per_token_seconds(step, state_shapes, tokens, repeats):
    """Median over `repeats` runs of the seconds per token of `step(token_ids, states) -> (logits,
    states)`, fed `tokens` one at a time."""
    ids = np.random.default_rng(0).integers(1, 28, size=tokens).astype(np.int32)

    def run():
        states = [np.zeros(shape, np.float32) for shape in state_shapes]
        for token in ids:
            _, states = step(np.array([[token]], np.int32), states)

    run()  # warm up (tracing, allocation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) / tokens)
    return statistics.median(times)


def litert_step(path, threads):
    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    runner = interpreter.get_signature_runner(streaming.STEP_SIGNATURE)

    def step(token_ids, states):
        outputs = runner(
            token_ids=token_ids, **{streaming.state_name(i): state for i, state in enumerate(states)}
        )
        return outputs[streaming.LOGITS], [outputs[streaming.state_name(i)] for i in range(len(states))]

    return step


def saved_model_step(path):
    signature = tf.saved_model.load(str(path)).signatures[streaming.STEP_SIGNATURE]

    def step(token_ids, states):
        kwargs = {streaming.state_name(i): tf.constant(state) for i, state in enumerate(states)}
        outputs = signature(token_ids=tf.constant(token_ids), **kwargs)
        return outputs[streaming.LOGITS], [outputs[streaming.state_name(i)] for i in range(len(states))]

    return step


def litert_sequence(path):
    runner = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    (input_name,) = runner.get_input_details()
    return lambda ids: next(iter(runner(**{input_name: np.asarray(ids, np.int32)}).values()))


def trained_language_model(args):
    """`(model, validation ids)`: the `--lm-run` recipe's model, or one trained here for
    `--train-minutes`, and the last 10% of The Time Machine in its vocabulary."""
    text = zoo_text.read_text(args.data_dir / "timemachine" / "timemachine.txt")
    tokens = zoo_text.CharTokenizer().tokenize(text)
    if args.lm_run is not None:
        vocab = zoo_text.Vocab.load(args.lm_run / "vocab.txt")
        model = keras.models.load_model(args.lm_run / "model.keras")
        model = model.stateless_copy() if model.stateful else model
        print(f"LM of {args.lm_run}", flush=True)
    else:
        vocab = zoo_text.Vocab(tokens)
        model = zoo.models.LanguageModel(
            len(vocab), "lstm", units=256, num_layers=3, embedding_dim=64, dropout=0.4
        )
    train_ids, val_ids = zoo_text.split_stream(np.asarray(vocab.to_ids(tokens), np.int32), 0.1)
    if args.lm_run is None:
        model.compile(
            optimizer=keras.optimizers.Adam(2e-3, global_clipnorm=1.0),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        batches = zoo_text.random_sampling_batches(train_ids, 32, 64, seed=0)
        start = time.monotonic()
        model.fit(batches, epochs=1000, callbacks=[TimeLimit(args.train_minutes * 60)], verbose=2)
        print(f"LM trained {(time.monotonic() - start) / 60:.1f} minutes", flush=True)
    return model, val_ids


def language_model_part(args, out):
    model, val_ids = trained_language_model(args)
    paths = {"float": out / "lm.tflite", "int8": out / "lm_int8.tflite"}
    zoo.export.tflite(model, paths["float"], streaming_step=True)
    zoo.export.tflite(model, paths["int8"], streaming_step=True, quantize="dynamic")
    saved_model = out / "lm_saved_model"
    module = tf.Module()
    module.model = model
    zoo.export.saved_model(module, saved_model, {}, streaming_step=model)

    shapes = [(1,) + tuple(state.shape[1:]) for state in model.initial_state(1)]
    keras_function = streaming.step_function(model, batch_size=1)

    def keras_eager(token_ids, states):
        return model.streaming_step(token_ids, states)

    def keras_traced(token_ids, states):
        outputs = keras_function(token_ids, *states)
        return outputs[streaming.LOGITS], [outputs[streaming.state_name(i)] for i in range(len(states))]

    steps = {
        "LiteRT float32": litert_step(paths["float"], args.litert_threads),
        "LiteRT int8": litert_step(paths["int8"], args.litert_threads),
        "SavedModel": saved_model_step(saved_model),
        "Keras tf.function": keras_traced,
        "Keras eager": keras_eager,
    }
    latency = {
        name: per_token_seconds(step, shapes, args.tokens, args.repeats) for name, step in steps.items()
    }
    fastest = latency["LiteRT float32"]
    print_table(
        args,
        f"Per-token streaming step, batch 1 ({args.tokens} tokens, median of {args.repeats} runs)",
        ["path", "ms/token", "vs LiteRT float32"],
        [[name, f"{seconds * 1e3:.3f}", f"{seconds / fastest:.2f}x"] for name, seconds in latency.items()],
    )

    sizes = {
        "LiteRT float32 (sequence + step)": os.path.getsize(paths["float"]),
        "LiteRT int8 (sequence + step)": os.path.getsize(paths["int8"]),
        "SavedModel (generation step)": directory_size(saved_model),
    }
    float_size = sizes["LiteRT float32 (sequence + step)"]
    print_table(
        args,
        "File sizes",
        ["file", "MB", "vs LiteRT float32"],
        [[name, f"{size / 1e6:.2f}", f"{size / float_size:.2f}x"] for name, size in sizes.items()],
    )

    pieces = windows(val_ids, args.window)
    figures = {
        "Keras": perplexity(lambda ids: model(ids), pieces),
        "LiteRT float32": perplexity(litert_sequence(paths["float"]), pieces),
        "LiteRT int8": perplexity(litert_sequence(paths["int8"]), pieces),
    }
    print_table(
        args,
        f"Validation perplexity ({len(pieces)} windows of {args.window} characters from zero states)",
        ["model", "perplexity", "vs Keras"],
        [
            [name, f"{value:.4f}", f"{100 * (value / figures['Keras'] - 1):+.2f}%"]
            for name, value in figures.items()
        ],
    )


def classifier_part(args, out):
    texts, labels = zoo_text.read_imdb_tsv(args.data_dir / "imdb_subset" / "train.tsv")
    order = np.random.default_rng(0).permutation(len(texts))
    held_out = order[: len(texts) // 5]
    train = order[len(texts) // 5 :]
    tokenizer = zoo_text.WordTokenizer()
    tokenized = tokenizer.tokenize([texts[i].replace("<br />", " ") for i in range(len(texts))])
    vocab = zoo_text.Vocab(
        [token for i in train for token in tokenized[i]],
        min_freq=2,
        reserved_tokens=zoo_text.SEQUENCE_RESERVED,
    )
    encoded = [np.asarray(vocab.to_ids(tokenized[i][: args.max_length]), np.int32) for i in range(len(texts))]

    def padded(indices):
        width = max(len(encoded[i]) for i in indices)
        return np.stack([np.pad(encoded[i], (0, width - len(encoded[i]))) for i in indices])

    model = zoo.models.SequenceClassifier(
        len(vocab), 2, embedding_dim=64, units=64, num_layers=1, pooling="mean", dropout=0.3
    )
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(1)
    for epoch in range(args.classifier_epochs):
        shuffled = rng.permutation(train)
        for start in range(0, len(shuffled), 32):
            batch = shuffled[start : start + 32]
            model.train_on_batch(padded(batch), np.asarray([labels[i] for i in batch]))
        print(f"classifier epoch {epoch + 1} done", flush=True)

    paths = {"float": out / "classifier.tflite", "int8": out / "classifier_int8.tflite"}
    zoo.export.tflite(model, paths["float"])
    zoo.export.tflite(model, paths["int8"], quantize="dynamic")
    truth = np.asarray([labels[i] for i in held_out])

    def accuracy(predict):
        predictions = [int(np.argmax(predict(encoded[i][None, :]))) for i in held_out]
        return float(np.mean(np.asarray(predictions) == truth))

    figures = {
        "Keras": accuracy(lambda ids: model(ids)),
        "LiteRT float32": accuracy(litert_sequence(paths["float"])),
        "LiteRT int8": accuracy(litert_sequence(paths["int8"])),
    }
    sizes = {"Keras": None, "LiteRT float32": paths["float"], "LiteRT int8": paths["int8"]}
    print_table(
        args,
        f"Sentiment accuracy on {len(held_out)} held-out reviews (batch 1)",
        ["model", "accuracy", "vs Keras", "file MB"],
        [
            [
                name,
                f"{value:.4f}",
                f"{value - figures['Keras']:+.4f}",
                "" if sizes[name] is None else f"{os.path.getsize(sizes[name]) / 1e6:.2f}",
            ]
            for name, value in figures.items()
        ],
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-minutes", type=float, default=4.0)
    parser.add_argument(
        "--lm-run", type=pathlib.Path, default=None, metavar="DIR", help="an LM recipe run on the book"
    )
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--classifier-epochs", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=300, help="words kept per review")
    parser.add_argument("--window", type=int, default=64, help="characters per perplexity window")
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--litert-threads", type=int, default=1, help="LiteRT interpreter threads (one token at batch 1)"
    )
    parser.add_argument("--parts", nargs="+", choices=("lm", "classifier"), default=["lm", "classifier"])
    parser.add_argument("--output-dir", type=pathlib.Path, default=pathlib.Path("runs/export-speed"))
    args = parser.parse_args()
    data_dir = os.environ.get("ZOO_DATA_DIR")
    if not data_dir:
        parser.error("set ZOO_DATA_DIR to the shared data folder")
    args.data_dir = pathlib.Path(data_dir)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    if "lm" in args.parts:
        language_model_part(args, args.output_dir)
    if "classifier" in args.parts:
        classifier_part(args, args.output_dir)


if __name__ == "__main__":
    main()
