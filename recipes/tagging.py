"""Sequence tagging (many-to-many, aligned): part-of-speech tags or named entities, one tag per word.

`python -m recipes.tagging` trains a bidirectional LSTM tagger (`zoo.models.SequenceTagger`, with
character-CNN word features) with a softmax or a CRF output (`--output`) on

- `--corpus ud-ewt` (default): UD English EWT, CoNLL-U, UPOS tags; train on
  `$ZOO_DATA_DIR/ud_english_ewt/en_ewt-ud-train.subset.conllu`, evaluate on `en_ewt-ud-dev.conllu`;
- `--corpus wnut17`: WNUT-17 named entities, `token<TAB>BIO-tag`; `wnut17/wnut17train.conll` and
  `emerging.dev.conll`;
- or your own files: `--data TRAIN --dev DEV --format conllu|conll`.

A validation split (`--validation-fraction` of the training sentences) drives the per-epoch
validation and early stopping, which keeps the best epoch: by validation entity F1 for BIO tags (most
tokens are `O`, so token accuracy says little about entities), by token accuracy otherwise. The dev
file is only evaluated at the end: token accuracy, and for BIO tags entity-level precision, recall and
F1 (exact spans, as conlleval). `--word-shape` (the default for `--corpus wnut17`) gives the character
CNN each word's shape (capitalised, all caps, handle, URL, number) as an extra leading character.
`--entity-weight` (5 for `--corpus wnut17`) weighs entities up in training, for recall where they are rare.
With `--output softmax`, `--ensemble N` trains N taggers from different seeds and averages their tag
probabilities (`zoo.models.AveragedEnsemble`), and `--auxiliary CORPUS|FILE` trains a
`zoo.models.MultiTaskTagger`: the same encoder also learns that file's tags through a second output
layer, batches of the two tasks mixed at random (UD EWT's part-of-speech tags teach a named-entity
tagger of tweets what proper nouns look like); the export holds the main tagger only. `--corpus
wnut17` defaults to `--output softmax --auxiliary ud-ewt --ensemble 5` (`--output crf`: one CRF
tagger, no auxiliary task).

The run's `saved_model/` has a `tag` signature (`zoo.models.TextTagger`): sentences (tokens separated
by whitespace, as in the training data) in, their `tokens` and `tags` out (padded with ""). It runs
in plain TensorFlow. `model.tflite` is the tagger for LiteRT (`--quantize dynamic`:
`model_int8.tflite` too): ids in (`token_ids`, int32 `[1, length]`, of `word_vocab.txt`; with
`--chars`, `word_ids` and `char_ids` `[1, length, characters]` of `char_vocab.txt`, as
`zoo.text.TokenEncoder` makes them), the tag ids of `tags.txt` (`--output crf`) or their probabilities
out.
"""

import argparse
import pathlib
import typing

import keras
import numpy as np

import zoo
from recipes import flags, run_files, training
from recipes.flags import FlagError
from recipes.recipe import RecipeError, entry_point
from zoo import text as zoo_text
from zoo.metrics import is_bio, tagging_scores
from zoo.models.multitask_tagger import AUXILIARY_OUTPUT, MAIN_OUTPUT, MultiTaskTagger, multitask_batches
from zoo.models.tagger import build_tagger

# --- Config ---------------------------------------------------------------------------------

CORPORA = {  # name: (format, training file, dev file) under $ZOO_DATA_DIR
    "ud-ewt": (
        "conllu",
        "ud_english_ewt/en_ewt-ud-train.subset.conllu",
        "ud_english_ewt/en_ewt-ud-dev.conllu",
    ),
    "wnut17": ("conll", "wnut17/wnut17train.conll", "wnut17/emerging.dev.conll"),
}
# Flag defaults of one corpus that differ from the shared ones (flags given on the command line win).
CORPUS_DEFAULTS = {
    "wnut17": {"word_shape": True, "entity_weight": 5.0, "output": "softmax"},
}
# More defaults of one corpus, for its softmax output only (a CRF takes neither).
CORPUS_SOFTMAX_DEFAULTS = {
    "wnut17": {"auxiliary": "ud-ewt", "ensemble": 5},
}
NO_AUXILIARY = "none"


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m recipes.tagging", description=__doc__.split("\n")[0])
    flags.add_shared_flags(
        parser, recipe="tagging", epochs=30, batch_size=32, learning_rate=2e-3, clip_norm=5.0
    )
    flags.add_export_flags(parser)
    data = parser.add_argument_group("data")
    data.add_argument(
        "--corpus",
        choices=sorted(CORPORA),
        default="ud-ewt",
        help=f"default files under ${flags.DATA_ENV} (--data/--dev/--format override them) and "
        "defaults of other flags (wnut17: --word-shape --entity-weight 5)",
    )
    data.add_argument("--dev", type=pathlib.Path, default=None, help="the evaluation file")
    data.add_argument(
        "--format",
        choices=("conllu", "conll"),
        default=None,
        help="conllu: CoNLL-U (UPOS/XPOS column); conll: token<TAB>tag",
    )
    data.add_argument("--tag-column", choices=("upos", "xpos"), default="upos", help="CoNLL-U tag column")
    data.add_argument("--validation-fraction", type=flags.positive_fraction, default=0.1)
    data.add_argument("--split-seed", type=int, default=0)
    data.add_argument("--min-freq", type=flags.positive_int, default=2, help="rarer words map to <unk>")
    data.add_argument(
        "--word-dropout",
        type=flags.fraction,
        default=0.15,
        help="training: replace this share of word ids by <unk>",
    )
    data.add_argument(
        "--entity-weight",
        type=flags.positive_float,
        default=1.0,
        help="BIO tags, training: weight of the entity tokens (softmax) or of the sentences holding "
        "an entity (CRF), relative to 1",
    )
    data.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=True)
    data.add_argument("--max-chars", type=flags.positive_int, default=20)
    data.add_argument(
        "--word-shape",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="give the character CNN each word's shape (case, handle, URL, number) as an extra "
        "leading character",
    )
    data.add_argument(
        "--max-tokens", type=flags.positive_int, default=1000, help="the export cuts longer sentences"
    )
    data.add_argument(
        "--auxiliary",
        default=NO_AUXILIARY,
        metavar="CORPUS|FILE",
        help=f"multi-task training: also train the encoder on the tags of this corpus "
        f"({', '.join(sorted(CORPORA))}: its training file) or file (CoNLL-U if it ends in "
        f".conllu, else CoNLL), through a second output layer (softmax output; "
        f"'{NO_AUXILIARY}': no auxiliary task)",
    )
    data.add_argument(
        "--auxiliary-weight",
        type=flags.positive_float,
        default=1.0,
        help="the auxiliary task's loss weight, relative to the main task's",
    )
    model = parser.add_argument_group("model")
    model.add_argument("--output", choices=("crf", "softmax"), default="crf")
    model.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    model.add_argument("--embedding-dim", type=flags.positive_int, default=100)
    model.add_argument("--units", type=flags.positive_int, default=100)
    model.add_argument("--num-layers", type=flags.positive_int, default=2)
    model.add_argument(
        "--chars", action=argparse.BooleanOptionalAction, default=True, help="character-CNN word features"
    )
    model.add_argument("--char-embedding-dim", type=flags.positive_int, default=25)
    model.add_argument("--char-filters", type=flags.positive_int, default=50)
    model.add_argument("--dropout", type=flags.fraction, default=0.5)
    model.add_argument(
        "--ensemble",
        type=flags.positive_int,
        default=1,
        metavar="N",
        help="softmax output: train N models (seeds --seed to --seed + N - 1) and average "
        "their tag probabilities",
    )
    model.add_argument(
        "--patience",
        type=flags.non_negative_int,
        default=5,
        help="stop after this many epochs without a better validation figure (entity F1 for BIO "
        "tags, token accuracy otherwise) and keep the best epoch (0: never stop)",
    )
    return parser


def corpus_defaults(args):
    """The defaults `--corpus` sets (`CORPUS_DEFAULTS`, and with a softmax output
    `CORPUS_SOFTMAX_DEFAULTS`)."""
    defaults = dict(CORPUS_DEFAULTS.get(args.corpus, {}))
    if args.output == "softmax":
        defaults.update(CORPUS_SOFTMAX_DEFAULTS.get(args.corpus, {}))
    return defaults


def check(args):
    if args.ensemble > 1 and args.output != "softmax":
        raise FlagError(
            "--ensemble averages tag probabilities: it needs --output softmax "
            "(a CRF decodes whole tag sequences)"
        )
    if args.auxiliary != NO_AUXILIARY and args.output != "softmax":
        raise FlagError(
            f"--auxiliary needs --output softmax (pass --auxiliary {NO_AUXILIARY} to train a CRF)"
        )
    if args.word_shape and not args.chars:
        raise FlagError("--word-shape feeds the character CNN: it needs --chars")


# --- Data -----------------------------------------------------------------------------------


class Tagged(typing.NamedTuple):
    """Sentences (lists of tokens) and their tags (lists of tags, aligned)."""

    sentences: list
    tags: list


def format_of(path):
    return "conllu" if path.suffix == ".conllu" else "conll"


def resolve_files(args):
    """`(format, train path, dev path)` from the flags and `--corpus` defaults."""
    corpus_format, train_name, dev_name = CORPORA[args.corpus]
    train = args.data or flags.data_set_file(train_name, "pass --data FILE")
    dev = args.dev or flags.data_set_file(dev_name, "pass --dev FILE")
    file_format = args.format or (corpus_format if args.data is None else format_of(train))
    return file_format, train, dev


def resolve_auxiliary(args):
    """`(format, path)` of the `--auxiliary` training file, or None."""
    if args.auxiliary == NO_AUXILIARY:
        return None
    if args.auxiliary in CORPORA:
        corpus_format, train_name, _ = CORPORA[args.auxiliary]
        return corpus_format, flags.data_set_file(
            train_name,
            f"pass --auxiliary FILE or --auxiliary {NO_AUXILIARY} (--auxiliary {args.auxiliary} "
            f"reads ${flags.DATA_ENV}/{train_name})",
        )
    path = pathlib.Path(args.auxiliary)
    return format_of(path), path


def read_tagged(path, file_format, tag_column):
    try:
        if file_format == "conllu":
            return Tagged(*zoo_text.read_conllu(path, tag_column))
        return Tagged(*zoo_text.read_conll(path))
    except (OSError, ValueError) as error:
        raise RecipeError(str(error)) from error


def read_data(args):
    """`(train, validation, dev, auxiliary, tag_vocab)`: the training file split into training and
    validation sentences, the dev file, the `--auxiliary` sentences (none without one) and the tags."""
    file_format, train_path, dev_path = resolve_files(args)
    labelled = read_tagged(train_path, file_format, args.tag_column)
    train, validation = split_validation(labelled, args.validation_fraction, args.split_seed)
    dev = read_tagged(dev_path, file_format, args.tag_column)
    print(
        f"{file_format} {train_path}: {len(train.sentences)} training and {len(validation.sentences)} "
        f"validation sentences; dev {dev_path}: {len(dev.sentences)} sentences",
        flush=True,
    )
    auxiliary = Tagged([], [])
    auxiliary_file = resolve_auxiliary(args)
    if auxiliary_file:
        auxiliary_format, auxiliary_path = auxiliary_file
        auxiliary = read_tagged(auxiliary_path, auxiliary_format, args.tag_column)
        print(
            f"auxiliary task: {auxiliary_format} {auxiliary_path}, {len(auxiliary.sentences)} sentences",
            flush=True,
        )
    # The tag set is the task's label inventory: a tag only the dev file has still gets an id.
    tag_vocab = tag_vocabulary(labelled.tags + dev.tags)
    if args.entity_weight != 1.0 and not is_bio(tag_vocab.idx_to_token):
        raise RecipeError("--entity-weight needs BIO tags (entities and O)")
    return train, validation, dev, auxiliary, tag_vocab


def split_validation(data, fraction, seed):
    """`(train, validation)`: a seeded random `fraction` of the sentences for validation."""
    order = np.random.default_rng(seed).permutation(len(data.sentences))
    size = int(round(len(data.sentences) * fraction))
    if not 1 <= size < len(data.sentences):
        raise RecipeError(f"{len(data.sentences)} sentences are too few for --validation-fraction {fraction}")

    def part(indices):
        return Tagged([data.sentences[i] for i in indices], [data.tags[i] for i in indices])

    return part(order[size:]), part(order[:size])


def build_encoder(args, sentences):
    """The `TokenEncoder` of word (and character) vocabularies built from `sentences`."""
    words = [[word.lower() if args.lowercase else word for word in row] for row in sentences]
    word_vocab = zoo_text.Vocab(words, min_freq=args.min_freq, reserved_tokens=zoo_text.SEQUENCE_RESERVED)
    char_vocab = None
    if args.chars:
        char_vocab = zoo_text.Vocab(
            [list(word) for row in sentences for word in row],
            reserved_tokens=zoo_text.SEQUENCE_RESERVED + (zoo_text.SHAPE_TOKENS if args.word_shape else ()),
        )
    return zoo_text.TokenEncoder(word_vocab, char_vocab, args.lowercase, args.max_chars, args.word_shape)


def tag_vocabulary(tags):
    return zoo_text.Vocab(tags, reserved_tokens=(), unk_token=None)


def batches(args, encoder, data, tag_vocab, *, train, entity_weight=1.0):
    """`zoo.text.tagger_batches` of `data`: shuffled and with word dropout for training."""
    return zoo_text.tagger_batches(
        data.sentences,
        data.tags,
        encoder,
        tag_vocab,
        args.batch_size,
        shuffle=train,
        seed=args.seed,
        mask_weights=args.output == "softmax",
        word_dropout=args.word_dropout if train else 0.0,
        entity_weight=entity_weight,
    )


# --- Model ----------------------------------------------------------------------------------


def build_model(args, encoder, num_tags, auxiliary_tags=None):
    """A tagger (`build_tagger`), in a `MultiTaskTagger` with `auxiliary_tags`."""
    tagger = build_tagger(
        args.output,
        vocab_size=len(encoder.word_vocab),
        num_tags=num_tags,
        embedding_dim=args.embedding_dim,
        units=args.units,
        num_layers=args.num_layers,
        cell_type=args.cell,
        char_vocab_size=len(encoder.char_vocab) if encoder.char_vocab is not None else None,
        char_embedding_dim=args.char_embedding_dim,
        char_filters=args.char_filters,
        dropout=args.dropout,
    )
    return MultiTaskTagger(tagger, auxiliary_tags) if auxiliary_tags else tagger


def compile_arguments(args, multitask):
    """`loss`, `metrics` and `compile_kwargs` for `training.run_ensemble_training`: a softmax tagger
    learns from cross-entropy weighted by the mask, a CRF from its own loss."""
    if args.output == "crf":
        return {"loss": None, "metrics": ["accuracy"], "compile_kwargs": None}
    loss, weighted_metrics = "sparse_categorical_crossentropy", ["accuracy"]
    if multitask:
        loss, weighted_metrics = {MAIN_OUTPUT: loss, AUXILIARY_OUTPUT: loss}, {MAIN_OUTPUT: weighted_metrics}
    return {"loss": loss, "metrics": [], "compile_kwargs": {"weighted_metrics": weighted_metrics}}


# --- Training -------------------------------------------------------------------------------


def best_epoch_callbacks(patience, tag_names, validation, accuracy_monitor="val_accuracy"):
    """The callbacks that choose the epoch to keep: early stopping that restores the best epoch, on
    validation entity F1 for BIO tags, on validation token accuracy otherwise; `[]` when `patience` is 0.

    Args:
        patience: epochs without a better figure before training stops.
        tag_names: the tag inventory.
        validation: `(dataset, sentences, tags, tag_vocab)` of the validation split (for the F1).
        accuracy_monitor: the logged name of the validation token accuracy.
    """
    if not patience:
        return []
    if not is_bio(tag_names):
        return [
            keras.callbacks.EarlyStopping(
                monitor=accuracy_monitor, mode="max", patience=patience, restore_best_weights=True
            )
        ]
    return [
        zoo.callbacks.ValidationEntityF1(*validation),
        keras.callbacks.EarlyStopping(
            monitor="val_entity_f1", mode="max", patience=patience, restore_best_weights=True
        ),
    ]


# --- Main: data, model, train, evaluate, export ---------------------------------------------


@entry_point
def main(argv=None):
    args = flags.parse_args(build_parser(), argv, derived_defaults=corpus_defaults, check=check)
    strategy = training.setup(args)

    train, validation, dev, auxiliary, tag_vocab = read_data(args)
    multitask = args.auxiliary != NO_AUXILIARY
    # The auxiliary sentences train the words and characters too.
    encoder = build_encoder(args, train.sentences + auxiliary.sentences)
    print(
        f"{len(tag_vocab)} tags, {len(encoder.word_vocab)} words"
        + (f", {len(encoder.char_vocab)} characters" if encoder.char_vocab is not None else ""),
        flush=True,
    )
    train_ds = batches(args, encoder, train, tag_vocab, train=True, entity_weight=args.entity_weight)
    val_ds = batches(args, encoder, validation, tag_vocab, train=False)
    dev_ds = batches(args, encoder, dev, tag_vocab, train=False)
    auxiliary_tags = None
    if multitask:
        auxiliary_vocab = tag_vocabulary(auxiliary.tags)
        auxiliary_tags = len(auxiliary_vocab)
        auxiliary_ds = batches(args, encoder, auxiliary, auxiliary_vocab, train=True)
        train_ds = multitask_batches(train_ds, auxiliary_ds, args.auxiliary_weight, args.seed)
        val_ds = multitask_batches(val_ds)

    callbacks = best_epoch_callbacks(
        args.patience,
        tag_vocab.idx_to_token,
        (val_ds, validation.sentences, validation.tags, tag_vocab),
        accuracy_monitor=f"val_{MAIN_OUTPUT}_accuracy" if multitask else "val_accuracy",
    )
    model, _ = training.run_ensemble_training(
        lambda: build_model(args, encoder, len(tag_vocab), auxiliary_tags),
        train_ds,
        val_ds,
        args,
        members=args.ensemble,
        strategy=strategy,
        callbacks=callbacks,
        units_per_epoch=sum(len(row) for row in train.sentences + auxiliary.sentences),
        unit="tokens",
        inference_model=(lambda trained: trained.tagger) if multitask else None,
        **compile_arguments(args, multitask),
    )

    predicted = zoo.models.predict_tags(model, dev_ds, dev.sentences, tag_vocab)
    figures = tagging_scores(dev.tags, predicted, tag_vocab.idx_to_token)
    print("dev: " + ", ".join(f"{key} {value:.4f}" for key, value in figures.items()), flush=True)

    tagger = zoo.models.TextTagger(model, encoder, tag_vocab, args.max_tokens)
    path = zoo.export.saved_model(tagger, run_files.output_path(args, "saved_model"), {"tag": tagger.tag})
    print(f"saved {path}", flush=True)
    encoder.word_vocab.save(run_files.output_path(args, "word_vocab.txt"))
    if encoder.char_vocab is not None:
        encoder.char_vocab.save(run_files.output_path(args, "char_vocab.txt"))
    tag_vocab.save(run_files.output_path(args, "tags.txt"))
    litert_sizes = run_files.write_litert(args, model)
    return run_files.finish_run(
        args,
        model,
        **litert_sizes,
        **{f"dev_{key}": value for key, value in figures.items()},
        tag_names=tag_vocab.idx_to_token,
    )


if __name__ == "__main__":
    main()
