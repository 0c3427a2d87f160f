"""Train a recurrent language model and generate text: `python -m recipes.language_model`.

Defaults: character level on The Time Machine (the course's cleaning of the whole text, as D2L 1.0
does it: a line break is a space between words), a 3-layer LSTM (256 units, a 64-d embedding, dropout
0.4 between layers and before the output, 0.1 in runs of 10 epochs or fewer), sequential batching
(32 rows of 64 steps; the state is carried from batch to batch, so the model reads long context),
Adam 4e-3 with gradient clipping and a cosine decay, 40 epochs; the saved model keeps the epoch of
lowest validation perplexity (`--no-keep-best`: the last). `--pretrain-data FILE...` trains on other
texts first (`--pretrain-epochs`, in a run of its own in `pretraining/`), then on the book. The last
10% of the text is the validation set and is never trained on. Each epoch prints the Keras progress
bar, training and validation perplexity, tokens/s and a greedy continuation of `--prefix` ("time
traveller" for the book, the first words of other text).

`--reverse` trains a backward character model: the whole text (and `--pretrain-data`) reversed, so
the model reads right to left, as `recipes.tagging --char-lm FORWARD_RUN BACKWARD_RUN` needs beside a
forward run on the same text. Its vocabulary is the forward reading's (the same ids as a forward run
on that text); its samples and `saved_model/` write the text that comes before the prompt, shown in
reading order; `metrics.json` records `"reverse": true`.

Text of one's own (`--data FILE`) is read as written (`--text faithful`: every character of any
script, case, punctuation and line breaks; words split as `zoo.text.WordTokenizer("faithful")`
splits them), The Time Machine the course's way (`--text course`: Latin letters, lowercased),
whichever file it is read from; the run says which at its start. Without `--epochs` the run's length
follows the corpus: epochs of about `TOKEN_BUDGET` training tokens in all (20 to 25 minutes of the
default model on 2 CPU cores; at most 40, the book's), and on text other than the book early stopping
after `CORPUS_PATIENCE` epochs without a lower validation perplexity. The run prints its epochs and
their expected duration first.

The run's folder (`--output-dir`, default `runs/language_model-<time>`) ends with `model.keras`,
`metrics.json`, `curves.png`, `checkpoints/` (resume with `--resume DIR`), TensorBoard `logs/`, the
tokenizer files, `saved_model/` (`zoo.models.TextGenerator`), which plain TensorFlow loads without
this library, and `model.tflite` for LiteRT (`--quantize dynamic`: `model_int8.tflite` too):

    lm = tf.saved_model.load("runs/.../saved_model")   # BPE models: `import tensorflow_text` first
    lm.generate(tf.constant(["time traveller"]))                       # greedy, 100 tokens
    lm.generate(tf.constant(["time traveller"]), num_tokens=50, temperature=0.8, seed=1)
    lm.signatures["generate"](prefix=tf.constant(["time traveller"]))["text"]

Both have a `step` signature for streaming (`zoo.export.streaming`; the README's "Deploy"): token
ids `[batch, 1]` and the states `state_0`, `state_1`, ... in, `logits` and the new states out (LiteRT:
batch 1, the ids of `vocab.txt` or `bpe.model`). `model.tflite`'s `serving_default` scores a whole
sequence.

Examples:

    python -m recipes.language_model                                # the default run
    python -m recipes.language_model --data my_book.txt --tokenizer word --epochs 20
    python -m recipes.language_model --data stories_ru.txt          # any script, as written
    python -m recipes.language_model --cell gru --layers 1 --units 32 --embedding-dim 0 --dropout 0 \\
        --batch-size 1024 --num-steps 32 --optimizer sgd --learning-rate 4 --lr-schedule constant \\
        --batching overlapping --epochs 4                           # D2L 1.0's GRU
    python -m recipes.language_model --batching random --patience 5   # independent windows, early stop
    python -m recipes.language_model --pretrain-data other_book.txt reviews.txt   # other text first
    python -m recipes.language_model --data reviews.txt --reverse   # a backward character model
"""

import argparse
import copy
import hashlib
import pathlib

import keras
import numpy as np
import tensorflow as tf

import zoo
from recipes import flags, run_files, training
from recipes.recipe import RecipeError, entry_point
from zoo import text as zoo_text
from zoo.metrics import Perplexity
from zoo.models.language_model import (
    BIDIRECTIONAL_GENERATION_ERROR,
    BLOCKS,
    CLASSIC_CELLS,
    LanguageModel,
    TextGenerator,
)

# --- Config ---------------------------------------------------------------------------------

TOKENIZERS = ("char", "word", "bpe")
# The cells with heads (xLSTM's block-diagonal recurrences and matrix memories).
MULTI_HEAD_CELLS = ("slstm", "mlstm")
VALIDATION_FRACTION = 0.1
BOOK_PREFIX = "time traveller"
# Without --epochs: epochs that train on about this many tokens (20-25 minutes of the default model at
# DEFAULT_MODEL_TOKENS_PER_SEC), between 1 and MAX_EPOCHS (the book's 40 epochs are ~6.2M tokens).
TOKEN_BUDGET = 10_000_000
MAX_EPOCHS = 40
# Training tokens/s of the default model on 2 AVX2 CPU cores, validation and samples included: the
# scale of the expected duration.
DEFAULT_MODEL_TOKENS_PER_SEC = 7_200
# Without --patience, on text other than the book: early stopping on validation perplexity.
CORPUS_PATIENCE = 3
# Without --dropout: the book's 0.4 for runs that read their text more than FEW_EPOCHS times
# (small texts overfit), less for runs on larger text, which a few epochs barely fit.
MANY_EPOCHS_DROPOUT, FEW_EPOCHS_DROPOUT, FEW_EPOCHS = 0.4, 0.1, 10
PREFIX_WORDS, PREFIX_CHARS = 3, 20
REVERSED_SAMPLE = " (--reverse: generated right to left, the text before the prompt)"


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m recipes.language_model",
        description="Train an RNN/GRU/LSTM language model (char, word or BPE tokens) and generate text.",
    )
    flags.add_shared_flags(
        parser,
        recipe="language_model",
        epochs=None,
        batch_size=32,
        learning_rate=4e-3,
        clip_norm=1.0,
        lr_schedule="cosine",
    )
    flags.add_export_flags(parser)
    model = parser.add_argument_group("model")
    flags.add_cell_flag(model)
    model.add_argument(
        "--block",
        choices=BLOCKS,
        default=None,
        help="plain: recurrent layers stacked (the classic cells' default); residual: pre-norm blocks of "
        "the recurrent layer and a gated MLP with residual connections (the modern cells' default)",
    )
    model.add_argument(
        "--conv-width",
        type=flags.non_negative_int,
        default=None,
        help="residual blocks: the causal convolution before the recurrent layer (default: 4 for rglru, "
        "as Hawk's, 0 for the others)",
    )
    model.add_argument(
        "--heads", type=flags.positive_int, default=4, help="heads of slstm and mlstm (must divide --units)"
    )
    model.add_argument("--layers", type=flags.positive_int, default=3, help="stacked recurrent layers")
    model.add_argument("--units", type=flags.positive_int, default=256, help="hidden units per layer")
    model.add_argument(
        "--embedding-dim",
        type=flags.non_negative_int,
        default=64,
        help="learned embedding size (0: one-hot inputs, as the course starts)",
    )
    model.add_argument(
        "--dropout",
        type=flags.fraction,
        default=None,
        help=f"dropout between layers and before the output layer (default: {MANY_EPOCHS_DROPOUT:g}, "
        f"the book's, for runs of more than {FEW_EPOCHS} epochs, {FEW_EPOCHS_DROPOUT:g} for shorter ones)",
    )
    model.add_argument(
        "--bidirectional",
        action="store_true",
        help="bidirectional layers: scores text (and looks ahead), cannot generate",
    )
    model.add_argument(
        "--implementation",
        choices=("auto", "fused", "loop"),
        default="auto",
        help="how the recurrent layers run (auto: the fastest that applies)",
    )
    data = parser.add_argument_group("data")
    data.add_argument("--tokenizer", choices=TOKENIZERS, default="char")
    data.add_argument(
        "--text",
        choices=zoo_text.TEXT_MODES,
        default=None,
        help="char and word tokens: course: the course's cleaning (Latin letters, lowercased); "
        "faithful: the text as written, in any script (default: course for The Time Machine, "
        "faithful for other text)",
    )
    data.add_argument(
        "--reverse",
        action="store_true",
        help="char tokens: train on the text reversed (the model reads right to left: the backward "
        "model of recipes.tagging --char-lm); samples show the text before the prompt",
    )
    data.add_argument("--bpe-vocab-size", type=flags.positive_int, default=1000)
    data.add_argument("--num-steps", type=flags.positive_int, default=64, help="tokens per training window")
    data.add_argument(
        "--pretrain-data",
        type=pathlib.Path,
        nargs="+",
        metavar="FILE",
        help="other texts to train on first (--pretrain-epochs, constant learning "
        "rate), in --data's tokens and vocabulary (tokens it lacks are unknown); "
        "then training goes on with --data",
    )
    data.add_argument(
        "--pretrain-epochs", type=flags.positive_int, default=4, help="epochs over --pretrain-data"
    )
    data.add_argument(
        "--batching",
        choices=tuple(zoo_text.BATCHING_SCHEMES),
        default="sequential",
        help="random: independent windows, state reset each batch; sequential: "
        "contiguous rows, state carried across batches and reset each epoch; "
        "overlapping: a window at every offset, shuffled (D2L 1.0's data; "
        "num-steps times the batches of random; validation as random)",
    )
    training_group = parser.add_argument_group("schedule and samples")
    training_group.add_argument(
        "--keep-best",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="end with the weights of the epoch of lowest validation perplexity "
        "(model.keras, saved_model/ and the final figures); epochs before a "
        "--resume are not considered",
    )
    training_group.add_argument(
        "--patience",
        type=flags.non_negative_int,
        default=None,
        help="stop after this many epochs without a lower validation perplexity (0: run all the "
        f"epochs; default: 0 on The Time Machine, {CORPUS_PATIENCE} on other text)",
    )
    training_group.add_argument(
        "--prefix",
        default=None,
        help=f"prompt of the samples (default: {BOOK_PREFIX!r} for The Time Machine, the first "
        "words of other text)",
    )
    training_group.add_argument(
        "--sample-tokens", type=flags.positive_int, default=50, help="tokens in each sample"
    )
    return parser


def check(args):
    """The rules between the flags."""
    if args.tokenizer == "bpe" and args.text is not None:
        raise flags.FlagError("--text is for char and word tokens: BPE pieces keep the text as written")
    block = args.block or ("plain" if args.cell in CLASSIC_CELLS else "residual")
    if block == "residual" and args.bidirectional:
        raise flags.FlagError("--bidirectional needs --block plain: residual blocks are unidirectional")
    if block == "plain" and args.conv_width:
        raise flags.FlagError("--conv-width is the convolution of residual blocks: add --block residual")
    if args.reverse and args.tokenizer != "char":
        raise flags.FlagError("--reverse reverses the text character by character: use --tokenizer char")
    if args.reverse and args.bidirectional:
        raise flags.FlagError("--reverse trains a backward model; --bidirectional reads both ways already")
    if args.cell in MULTI_HEAD_CELLS and args.units % args.heads:
        raise flags.FlagError(f"--cell {args.cell}: --heads {args.heads} must divide --units {args.units}")


# --- Data ------------------------------------------------------------------------------------


def read_corpus(args):
    """The text of `--data`, or The Time Machine (the copy the zoo ships)."""
    if args.data is not None:
        with flags.reading("--data", args.data):
            return zoo_text.read_text(args.data, args.encoding)
    return zoo_text.load_time_machine()


def is_the_book(args, text):
    """Whether the corpus is The Time Machine: the copy the zoo ships, or `--data` with its SHA-1."""
    return args.data is None or hashlib.sha1(text.encode("utf-8")).hexdigest() == zoo_text.TIME_MACHINE_SHA1


def choose_text_defaults(args, text, book):
    """Sets `--text` (char and word tokens) and `--prefix` when not given: the course's for the
    book, the text as written and its first words for other text; prints how the text is read."""
    if args.tokenizer == "bpe":
        print("text: as written (BPE pieces of the raw lines)", flush=True)
    else:
        args.text = args.text or ("course" if book else "faithful")
        how = {
            "course": "the course's cleaning: Latin letters, lowercased, a space between words",
            "faithful": "as written: every character, case and punctuation kept",
        }[args.text]
        print(
            f"text: {args.text} ({how}; --text {'faithful' if args.text == 'course' else 'course'} "
            "for the other)",
            flush=True,
        )
    if args.prefix is None:
        args.prefix = BOOK_PREFIX if book else corpus_prefix(text)


def corpus_prefix(text):
    """The samples' prompt for a text: the first words of its first line that is not blank, at most
    `PREFIX_WORDS` words in `PREFIX_CHARS` characters (a first word that is longer, as a line of
    Chinese, is cut)."""
    words = next(line for line in text.split("\n") if line.strip()).split()
    prefix = words[0][:PREFIX_CHARS]
    for word in words[1:PREFIX_WORDS]:
        if len(prefix) + 1 + len(word) > PREFIX_CHARS:
            break
        prefix += " " + word
    return prefix


def tokenize(args, text):
    """`(ids, tokenizer, vocab)`: the corpus as one id stream (reversed with `--reverse`: the
    vocabulary stays the forward reading's, so both directions share it); vocab is None for BPE."""
    ids, tokenizer, vocab = tokenize_forward(args, text)
    return (ids[::-1].copy() if args.reverse else ids), tokenizer, vocab


def tokenize_forward(args, text):
    if args.tokenizer == "bpe":
        lines = text.split("\n")
        # Pieces are learnt on the training lines only, so validation text stays unseen.
        train_lines = lines[: int(len(lines) * (1 - VALIDATION_FRACTION))]
        try:
            tokenizer = zoo_text.BPETokenizer.train(["\n".join(train_lines)], args.bpe_vocab_size)
        except ValueError as error:
            raise RecipeError(f"--bpe-vocab-size {args.bpe_vocab_size}: {error}") from None
        ids = [piece for line in tokenizer.tokenize(lines) for piece in line]
        return np.asarray(ids, np.int32), tokenizer, None
    try:
        return zoo_text.language_model_corpus(text, args.tokenizer, args.text, VALIDATION_FRACTION)
    except zoo_text.DataFormatError as error:
        where = f"--data {args.data}" if args.data is not None else "The Time Machine"
        raise RecipeError(
            zoo_text.DataFormatError(
                where, error.problem, options=error.options, advice=error.advice
            ).command_line()
        ) from None


def choose_run_length(args, train_tokens, vocab_size, book):
    """Sets `--epochs` (when not given: about `TOKEN_BUDGET` training tokens, 1 to `MAX_EPOCHS`
    epochs), `--patience` (when not given: 0 for the book, `CORPUS_PATIENCE` for other text) and
    `--dropout` (when not given: `FEW_EPOCHS_DROPOUT` for at most `FEW_EPOCHS` epochs, else
    `MANY_EPOCHS_DROPOUT`), and prints them with the run's expected duration."""
    if args.epochs is None:
        args.epochs = min(MAX_EPOCHS, max(1, round(TOKEN_BUDGET / train_tokens)))
        why = (
            f"about {TOKEN_BUDGET / 1e6:g}M training tokens, at most {MAX_EPOCHS} epochs; --epochs to choose"
        )
    else:
        why = "--epochs"
    if args.patience is None:
        args.patience = 0 if book else CORPUS_PATIENCE
    dropout = ""
    if args.dropout is None:
        few = args.epochs <= FEW_EPOCHS
        args.dropout = FEW_EPOCHS_DROPOUT if few else MANY_EPOCHS_DROPOUT
        dropout = f"; dropout {args.dropout:g} ({'at most' if few else 'over'} {FEW_EPOCHS} epochs)"
    stop = f", or fewer: early stop after {args.patience} without a better one" if args.patience else ""
    minutes = args.epochs * train_tokens / expected_tokens_per_sec(args, vocab_size) / 60
    duration = f"about {minutes:.0f} minutes" if minutes >= 1 else "under a minute"
    print(
        f"run length: {args.epochs} epoch{'s' * (args.epochs > 1)} of {train_tokens:,} tokens ({why})"
        f"{stop}{dropout}; expected {duration} on 2 CPU cores (longer on a busy machine)",
        flush=True,
    )


def expected_tokens_per_sec(args, vocab_size):
    """Training tokens/s expected on 2 CPU cores: the default model's, scaled by the multiply-adds a
    token costs in this model (its recurrent layers and output layer) against the default's."""

    def cost(cell, units, layers, embedding_dim, bidirectional, vocab):
        gates = {"rnn": 1, "gru": 3}.get(cell, 4)
        directions = 2 if bidirectional else 1
        inputs = embedding_dim or vocab
        recurrent = 0
        for _ in range(layers):
            recurrent += directions * gates * units * (inputs + units)
            inputs = directions * units
        return recurrent + inputs * vocab

    default = cost("lstm", 256, 3, 64, False, 28)
    this = cost(args.cell, args.units, args.layers, args.embedding_dim, args.bidirectional, vocab_size)
    return DEFAULT_MODEL_TOKENS_PER_SEC * default / this


def batches(args, ids):
    """`(train, validation)` batches of the stream's head and tail, one epoch each, of known length."""
    try:
        train_ids, validation_ids = zoo_text.split_stream(ids, VALIDATION_FRACTION)
        train = zoo_text.language_model_batches(
            train_ids, args.batch_size, args.num_steps, args.batching, seed=args.seed
        )
        # Overlapping windows only multiply the training updates; validating on every offset would
        # weigh the same tokens num_steps times, so it validates as random sampling does.
        validation_scheme = "random" if args.batching == "overlapping" else args.batching
        validation_batch = args.batch_size
        if validation_scheme == "random":
            # Evaluation only: a smaller batch lets a short validation tail (D2L's batch of 1024)
            # still give full batches; the perplexity is over the same tokens either way.
            validation_batch = max(
                1, min(args.batch_size, (len(validation_ids) - args.num_steps) // args.num_steps)
            )
        validation = zoo_text.language_model_batches(
            validation_ids, validation_batch, args.num_steps, validation_scheme, seed=args.seed + 1
        )
    except ValueError as error:
        raise RecipeError(f"{error}: use a longer text or a smaller --batch-size / --num-steps") from None
    return train, validation


def pretraining_ids(args, tokenizer, vocab):
    """The `--pretrain-data` files as one id stream, tokenized and cleaned as `--data` is and
    mapped to its vocabulary."""
    ids = []
    for path in args.pretrain_data:
        with flags.reading("--pretrain-data", path):
            text = zoo_text.read_text(path, args.encoding)
        if vocab is None:
            ids += [piece for line in tokenizer.tokenize(text.split("\n")) for piece in line]
        else:
            ids += vocab.to_ids(tokenizer.tokenize(text))
    ids = np.asarray(ids, np.int32)
    return ids[::-1].copy() if args.reverse else ids


def save_tokenizer(args, tokenizer, vocab):
    if vocab is None:
        tokenizer.save(run_files.output_path(args, "bpe.model"))
    else:
        vocab.save(run_files.output_path(args, "vocab.txt"))


def count_tokens(inputs, targets):
    return tf.size(inputs, out_type=tf.int64)


# --- Model -----------------------------------------------------------------------------------


def build_model(args, vocab_size):
    return LanguageModel(
        vocab_size,
        cell_type=args.cell,
        units=args.units,
        num_layers=args.layers,
        embedding_dim=args.embedding_dim or None,
        dropout=args.dropout,
        bidirectional=args.bidirectional,
        stateful=args.batching == "sequential",
        implementation=args.implementation,
        recurrent_layer_kwargs={"num_heads": args.heads} if args.cell in MULTI_HEAD_CELLS else None,
        block=args.block,
        conv_width=args.conv_width,
    )


# --- Training --------------------------------------------------------------------------------


class SampleText:
    """The per-epoch sample: a greedy continuation of `--prefix` (a generator built once per model:
    pretraining and the book train different ones)."""

    def __init__(self, args, tokenizer, vocab):
        self.args = args
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.generator = None

    def __call__(self, model, epoch, logs):
        if model.bidirectional:
            return None
        if self.generator is None or self.generator.model is not model:
            self.generator = TextGenerator(
                model,
                self.tokenizer,
                self.vocab,
                max_tokens=max(self.args.sample_tokens, 100),
                default_tokens=self.args.sample_tokens,
                reverse=self.args.reverse,
            )
        text = self.generator(self.args.prefix, self.args.sample_tokens)
        return f"epoch {epoch} sample{REVERSED_SAMPLE * self.args.reverse}: {text!r}"


def pretrain(args, model_fn, ids, strategy, callbacks):
    """Trains a new model on the `--pretrain-data` stream `ids` for `--pretrain-epochs` at a
    constant learning rate, as a run of its own in `<output-dir>/pretraining` (checkpointed every
    epoch; a killed run resumes it, a finished one is loaded), and returns it."""
    run_args = copy.copy(args)
    run_args.output_dir = run_files.output_path(args, "pretraining")
    run_args.epochs, run_args.lr_schedule = args.pretrain_epochs, "constant"
    try:
        dataset = zoo_text.language_model_batches(
            ids, args.batch_size, args.num_steps, args.batching, args.seed
        )
    except ValueError as error:
        raise RecipeError(f"--pretrain-data: {error}") from None
    if training.finished_training(run_args.output_dir, run_args.epochs, strategy):
        print(f"pretraining: finished before, loading {run_args.output_dir / 'model.keras'}", flush=True)
        return training.load_trained(run_args.output_dir, model_fn, next(iter(dataset))[0], strategy)
    run_args.output_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"pretraining on {len(ids):,} tokens of --pretrain-data for {args.pretrain_epochs} epochs", flush=True
    )
    model, _ = training.run_training(
        model_fn,
        dataset,
        None,
        run_args,
        strategy=strategy,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[Perplexity()],
        callbacks=callbacks,
        units_per_epoch=zoo.callbacks.count_units(dataset, count_tokens),
    )
    return model


# --- Main: data, model, train, export --------------------------------------------------------


@entry_point
def main(argv=None):
    args = flags.parse_args(build_parser(), argv, check=check)
    strategy = training.setup(args)

    text = read_corpus(args)
    book = is_the_book(args, text)
    choose_text_defaults(args, text, book)
    ids, tokenizer, vocab = tokenize(args, text)
    vocab_size = tokenizer.vocab_size if vocab is None else len(vocab)
    train_ds, validation_ds = batches(args, ids)
    choose_run_length(args, len(ids) - round(len(ids) * VALIDATION_FRACTION), vocab_size, book)
    run_files.write_config(args)  # with the defaults chosen from the corpus, which --resume keeps
    save_tokenizer(args, tokenizer, vocab)
    print(
        ("text reversed (--reverse): the model reads right to left; " if args.reverse else "")
        + f"{len(ids):,} {args.tokenizer} tokens, vocabulary {vocab_size}; training on the first "
        f"{1 - VALIDATION_FRACTION:.0%}, validating on the last {VALIDATION_FRACTION:.0%}",
        flush=True,
    )

    callbacks = [zoo.callbacks.EpochEndHook(SampleText(args, tokenizer, vocab))]
    if args.batching == "sequential":
        callbacks.insert(0, zoo.callbacks.ResetStateEachEpoch())
    final = {}
    pretrained = None
    if args.pretrain_data:
        pretraining_stream = pretraining_ids(args, tokenizer, vocab)
        final["pretraining_tokens"] = len(pretraining_stream)
        pretrained = pretrain(
            args, lambda: build_model(args, vocab_size), pretraining_stream, strategy, callbacks
        )

    def build_book_model():
        model = build_model(args, vocab_size)
        if pretrained is not None:
            model(next(iter(train_ds))[0])
            model.set_weights(pretrained.get_weights())
        return model

    best_epoch = None
    if args.keep_best or args.patience:
        best_epoch = keras.callbacks.EarlyStopping(
            monitor="val_perplexity",
            mode="min",
            patience=args.patience or args.epochs,
            restore_best_weights=args.keep_best,
            verbose=1,
        )
        callbacks.append(best_epoch)
    model, history = training.run_training(
        build_book_model,
        train_ds,
        validation_ds,
        args,
        strategy=strategy,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[Perplexity()],
        callbacks=callbacks,
        units_per_epoch=zoo.callbacks.count_units(train_ds, count_tokens),
    )
    print(f"recurrent layers ran: {model.implementation_used}", flush=True)

    final.update(val_perplexity=history["val_perplexity"][-1], vocab_size=vocab_size, reverse=args.reverse)
    if args.keep_best and best_epoch.best_weights is not None:
        # Keras numbers the epochs of a resumed fit from the first one, as the history does.
        final["best_epoch"] = best_epoch.best_epoch + 1
        final["val_perplexity"] = history["val_perplexity"][best_epoch.best_epoch]
    # LiteRT has no stateful layers: the streaming step carries the states instead.
    final.update(
        run_files.write_litert(
            args,
            model.stateless_copy() if model.stateful else model,
            streaming_step=not args.bidirectional,
        )
    )
    if args.bidirectional:
        print(f"no sample and no saved_model/: {BIDIRECTIONAL_GENERATION_ERROR}", flush=True)
    else:
        generator = TextGenerator(model, tokenizer, vocab, reverse=args.reverse)
        final["sample"] = generator(args.prefix, args.sample_tokens)
        path = zoo.export.saved_model(
            generator,
            run_files.output_path(args, "saved_model"),
            {"generate": generator.serve},
            streaming_step=model,
        )
        print(
            f"saved {path} (generate and step signatures; "
            + ("load it after `import tensorflow_text`" if vocab is None else "plain TensorFlow")
            + ")",
            flush=True,
        )
    epoch = f" (epoch {final['best_epoch']}, the best)" if "best_epoch" in final else ""
    print(
        f"validation perplexity {final['val_perplexity']:.3f}{epoch}; run folder {args.output_dir}",
        flush=True,
    )
    return run_files.finish_run(args, model, **final)


if __name__ == "__main__":
    main()
