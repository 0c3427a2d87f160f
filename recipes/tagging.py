"""Sequence tagging (many-to-many, aligned): part-of-speech tags or named entities, one tag per word.

`python -m recipes.tagging` trains a bidirectional LSTM tagger (`zoo.models.SequenceTagger`, with
character-CNN word features) with a softmax or a CRF output (`--output`) on

- `--corpus ud-ewt` (default): UD English EWT, CoNLL-U, UPOS tags; train on
  `$ZOO_DATA_DIR/ud_english_ewt/en_ewt-ud-train.subset.conllu`, evaluate on `en_ewt-ud-dev.conllu`;
- `--corpus wnut17`: WNUT-17 named entities, `token<TAB>BIO-tag`; `wnut17/wnut17train.conll` and
  `emerging.dev.conll`;
- or your own files, `--data TRAIN [--dev DEV]`: CoNLL (`token<TAB>tag`, or more columns, or columns
  split on spaces, the tag last) or CoNLL-U (`--tag-column upos|xpos`), told from the file
  (`--format` to say it; `zoo.text.read_tagged_sentences`). Without `--dev`, `--dev-fraction` of
  `--data` is held out as the dev set; a file of yours is never paired with a corpus's.

A validation split (`--validation-fraction` of the training sentences) drives the per-epoch
validation and early stopping, which keeps the best epoch: by validation entity F1 for BIO and BIOES
tags (most tokens are `O`, so token accuracy says little about entities), by token accuracy otherwise.
The dev set is only evaluated at the end: token accuracy, and for BIO and BIOES tags entity-level
precision, recall and F1 (exact spans, as conlleval). A tag the training data lacks stops the run
with the dev file's line. `--word-shape` (the default for `--corpus wnut17`) gives the character
CNN each word's shape (capitalised, all caps, handle, URL, number) as an extra leading character.
`--entity-weight` (5 for `--corpus wnut17`) weighs entities up in training, for recall where they are rare.
With `--output softmax`, `--ensemble N` trains N taggers from different seeds and averages their tag
probabilities (`zoo.models.AveragedEnsemble`), and `--auxiliary CORPUS|FILE` trains a
`zoo.models.MultiTaskTagger`: the same encoder also learns that file's tags through a second output
layer, batches of the two tasks mixed at random (UD EWT's part-of-speech tags teach a named-entity
tagger of tweets what proper nouns look like); the export holds the main tagger only. `--corpus
wnut17` defaults to `--output softmax --auxiliary ud-ewt --ensemble 5` (`--output crf`: one CRF
tagger, no auxiliary task).

`--char-lm FORWARD_RUN BACKWARD_RUN` adds contextual string embeddings (Akbik et al., 2018; Flair's;
`zoo.models.ContextualStringEmbeddings`, frozen) beside the word and character features: two run
folders of `recipes.language_model` character models of text as written (`--text faithful`), the
second trained with `--reverse` on the same text (so that both share `vocab.txt`); `--char-lm-data
FILE` trains both first, in `<output-dir>/char_lm/` (with `--resume`, resumed or reused). The embeddings of
every sentence are computed once, before training (the models are frozen). `--char-lm-layers all`
reads every layer of both models, not only the top one (Flair's). Such a run writes no
`model.tflite`.

The run's `saved_model/` has a `tag` signature (`zoo.models.TextTagger`): sentences (tokens separated
by whitespace, as in the training data) in, their `tokens` and `tags` out (padded with ""). It runs
in plain TensorFlow. `model.tflite` is the tagger for LiteRT (`--quantize dynamic`:
`model_int8.tflite` too): ids in (`token_ids`, int32 `[1, length]`, of `word_vocab.txt`; with
`--chars`, `word_ids` and `char_ids` `[1, length, characters]` of `char_vocab.txt`, as
`zoo.text.TokenEncoder` makes them), the tag ids of `tags.txt` (`--output crf`) or their probabilities
out.
"""

import argparse
import json
import pathlib
import typing

import keras

import zoo
from recipes import flags, run_files, training
from recipes.flags import FlagError
from recipes.recipe import RecipeError, entry_point
from zoo import text as zoo_text
from zoo.metrics import entity_scheme, tagging_scores
from zoo.models.multitask_tagger import AUXILIARY_OUTPUT, MAIN_OUTPUT, MultiTaskTagger, multitask_batches
from zoo.models.string_embeddings import LAYER_CHOICES as STRING_EMBEDDING_LAYERS
from zoo.models.string_embeddings import ContextualStringEmbeddings
from zoo.models.tagger import build_tagger

# --- Config ---------------------------------------------------------------------------------

CORPORA = {  # name: (training file, dev file) under $ZOO_DATA_DIR
    "ud-ewt": ("ud_english_ewt/en_ewt-ud-train.subset.conllu", "ud_english_ewt/en_ewt-ud-dev.conllu"),
    "wnut17": ("wnut17/wnut17train.conll", "wnut17/emerging.dev.conll"),
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
        help=f"default files under ${flags.DATA_ENV}, read when --data is not given, and defaults of "
        "other flags (wnut17: --word-shape --entity-weight 5)",
    )
    data.add_argument(
        "--dev",
        type=pathlib.Path,
        default=None,
        metavar="FILE",
        help="the evaluation file (default: the corpus's, or with --data, --dev-fraction of it)",
    )
    data.add_argument(
        "--format",
        choices=zoo_text.TAGGING_FORMATS,
        default=None,
        help="of --data and --dev: conll (token<TAB>tag, or columns split on spaces, the tag last) or "
        "conllu (CoNLL-U, --tag-column) (default: told from the file)",
    )
    data.add_argument(
        "--tag-column", choices=tuple(zoo_text.CONLLU_TAG_COLUMNS), default="upos", help="CoNLL-U tag column"
    )
    data.add_argument(
        "--dev-fraction",
        type=flags.positive_fraction,
        default=0.1,
        help="--data without --dev: the share of its sentences held out as the dev set, never trained on",
    )
    data.add_argument(
        "--validation-fraction",
        type=flags.positive_fraction,
        default=0.1,
        help="the share of the training sentences used for validation and early stopping",
    )
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
        help="entity (BIO, BIOES) tags, training: weight of the entity tokens (softmax) or of the "
        "sentences holding an entity (CRF), relative to 1",
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
        f"({', '.join(sorted(CORPORA))}: its training file) or file (CoNLL or CoNLL-U, told from the "
        f"file), through a second output layer (softmax output; '{NO_AUXILIARY}': no auxiliary task)",
    )
    data.add_argument(
        "--auxiliary-weight",
        type=flags.positive_float,
        default=1.0,
        help="the auxiliary task's loss weight, relative to the main task's",
    )
    model = parser.add_argument_group("model")
    model.add_argument("--output", choices=("crf", "softmax"), default="crf")
    flags.add_cell_flag(model)
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
        "--char-lm",
        nargs=2,
        type=pathlib.Path,
        metavar=("FORWARD_RUN", "BACKWARD_RUN"),
        default=None,
        help="contextual string embeddings (Flair's, frozen) beside the word and character features: "
        "the run folders of a recipes.language_model character model and of one trained with "
        "--reverse on the same text",
    )
    model.add_argument(
        "--char-lm-layers",
        choices=STRING_EMBEDDING_LAYERS,
        default="top",
        help="with --char-lm: each language model's top layer (Flair's) or all its layers concatenated",
    )
    model.add_argument(
        "--char-lm-data",
        type=pathlib.Path,
        default=None,
        metavar="FILE",
        help="train the two --char-lm models first, on this text with recipes.language_model's "
        "defaults, in <output-dir>/char_lm/forward and backward (a resumed run resumes or reuses them; "
        "a later run reuses them through --char-lm)",
    )
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
        "and BIOES tags, token accuracy otherwise) and keep the best epoch (0: never stop)",
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
    if args.char_lm and args.char_lm_data:
        raise FlagError("--char-lm reuses two language models, --char-lm-data trains them: pass one")
    if (args.char_lm or args.char_lm_data) and args.quantize != "none":
        raise FlagError("--quantize is for model.tflite, which a --char-lm run does not write")


# --- Data -----------------------------------------------------------------------------------


class Tagged(typing.NamedTuple):
    """Sentences (lists of tokens) and their tags (lists of tags, aligned)."""

    sentences: list
    tags: list


def resolve_files(args):
    """`(training file, dev file or None)`: `--data` and `--dev`; without `--data`, the `--corpus`
    files (its dev file unless `--dev`). A `--data` file is never paired with a corpus's dev file."""
    if args.data is not None:
        return args.data, args.dev
    train_name, dev_name = CORPORA[args.corpus]
    train = flags.data_set_file(train_name, "pass --data FILE")
    return train, args.dev or flags.data_set_file(dev_name, "pass --dev FILE")


def resolve_auxiliary(args):
    """The `--auxiliary` training file, or None."""
    if args.auxiliary == NO_AUXILIARY:
        return None
    if args.auxiliary in CORPORA:
        train_name, _ = CORPORA[args.auxiliary]
        return flags.data_set_file(
            train_name,
            f"pass --auxiliary FILE or --auxiliary {NO_AUXILIARY} (--auxiliary {args.auxiliary} "
            f"reads ${flags.DATA_ENV}/{train_name})",
        )
    return pathlib.Path(args.auxiliary)


def read_tagged(args, flag, path, file_format=None, known_tags=None):
    """The `Tagged` sentences of a CoNLL or CoNLL-U file (`file_format`, or told from the file), with
    the tags of `known_tags` only (None: any); prints what was read."""
    with flags.reading(flag, path):
        file_format = file_format or zoo_text.tagging_format(path, args.encoding)
        data = Tagged(
            *zoo_text.read_tagged_sentences(path, file_format, args.tag_column, args.encoding, known_tags)
        )
    print(f"{flag or 'data'} {path}: {file_format}, {len(data.sentences)} sentences", flush=True)
    return data


def read_data(args):
    """`(train, validation, dev, auxiliary, tag_vocab)`: the training file split into training and
    validation sentences (and without a dev file, the dev sentences), the dev file, the `--auxiliary`
    sentences (none without one) and the tags of the training file."""
    train_path, dev_path = resolve_files(args)
    train_flag = "--data" if args.data is not None else None
    labelled = read_tagged(args, train_flag, train_path, args.format)
    fractions = [0.0 if dev_path else args.dev_fraction, args.validation_fraction]
    try:
        train, held_out_dev, validation = zoo_text.split_held_out(
            len(labelled.sentences), fractions, args.split_seed
        )
    except ValueError as error:
        raise RecipeError(
            f"{train_path}: {error}: pass a smaller --validation-fraction"
            + ("" if dev_path else " or --dev-fraction, or a --dev file")
        ) from None
    # The tag set is the training file's: a tag only a dev file has is a mistake the reader names.
    tag_vocab = tag_vocabulary(labelled.tags)
    if dev_path:
        dev = read_tagged(
            args, "--dev" if args.dev else None, dev_path, args.format, set(tag_vocab.idx_to_token)
        )
        dev_origin = "--dev" if args.dev else "the corpus's dev file"
    else:
        dev, dev_origin = part(labelled, held_out_dev), f"--dev-fraction {args.dev_fraction:g}"
    train, validation = part(labelled, train), part(labelled, validation)
    print(
        f"{len(train.sentences)} training, {len(validation.sentences)} validation (--validation-fraction "
        f"{args.validation_fraction:g}), {len(dev.sentences)} dev ({dev_origin}) sentences; split seed "
        f"{args.split_seed}",
        flush=True,
    )
    auxiliary = Tagged([], [])
    auxiliary_path = resolve_auxiliary(args)
    if auxiliary_path:
        auxiliary = read_tagged(args, "--auxiliary", auxiliary_path)
    scheme = entity_scheme(tag_vocab.idx_to_token)
    if args.entity_weight != 1.0 and scheme is None:
        raise RecipeError("--entity-weight needs entity tags (BIO or BIOES: B-TYPE, I-TYPE, ..., O)")
    return train, validation, dev, auxiliary, tag_vocab


def part(data, indices):
    """The `Tagged` sentences of `data` at `indices`."""
    return Tagged([data.sentences[i] for i in indices], [data.tags[i] for i in indices])


# More recipes.language_model flags for --char-lm-data's models (tests make them small).
CHAR_LM_FLAGS = ()


def train_char_language_models(args):
    """The `--char-lm` run folders that `--char-lm-data` asks for: `<output-dir>/char_lm/forward`
    and `backward`, each trained by `recipes.language_model` on that text as written, resumed from
    its checkpoints when interrupted, or reused when finished."""
    from recipes import language_model

    runs = []
    for name, direction in (("forward", []), ("backward", ["--reverse"])):
        run = run_files.output_path(args, "char_lm") / name
        if (run / "model.keras").is_file() and (run / "metrics.json").is_file():
            print(f"--char-lm-data: reusing the {name} language model in {run}", flush=True)
        elif (run / "config.json").is_file():
            print(f"--char-lm-data: resuming the {name} language model in {run}", flush=True)
            language_model.main(["--resume", str(run)])
        else:
            print(f"--char-lm-data: training the {name} language model in {run}", flush=True)
            text = ["--data", str(args.char_lm_data), "--tokenizer", "char", "--text", "faithful"]
            language_model.main([*text, *direction, *CHAR_LM_FLAGS, "--output-dir", str(run)])
        runs.append(run)
    return runs


def load_char_language_models(args):
    """`(forward model, backward model, their character vocabulary)` of the `--char-lm` runs,
    checked: character models of text as written, the second of the reversed text, one vocabulary."""
    loaded = []
    for run, reverse in zip(args.char_lm, (False, True)):
        paths = [run / name for name in ("config.json", "model.keras", "vocab.txt")]
        for path in paths:
            if not path.is_file():
                raise RecipeError(
                    f"--char-lm {run}: no {path.name} there (not a recipes.language_model run?)"
                )
        config = json.loads(paths[0].read_text())
        if config.get("tokenizer") != "char":
            raise RecipeError(
                f"--char-lm {run}: a --tokenizer {config.get('tokenizer')} run; string embeddings need "
                "character models (--tokenizer char)"
            )
        if config.get("text") != "faithful":
            raise RecipeError(
                f"--char-lm {run}: a --text {config.get('text')} run; the tagger reads text as written: "
                "train it with --text faithful"
            )
        if bool(config.get("reverse")) != reverse:
            raise RecipeError(
                f"--char-lm {run}: "
                + (
                    "the backward run must be trained with --reverse"
                    if reverse
                    else "the forward run is a --reverse run: give it second"
                )
            )
        loaded.append((keras.saving.load_model(paths[1], compile=False), zoo_text.Vocab.load(paths[2])))
    (forward, forward_vocab), (backward, backward_vocab) = loaded
    if forward_vocab.idx_to_token != backward_vocab.idx_to_token:
        raise RecipeError(
            "--char-lm: the two runs have different character vocabularies; train both on the same "
            "text (a --reverse run keeps the forward reading's vocabulary)"
        )
    return forward, backward, forward_vocab


def build_encoder(args, sentences, char_lm_vocab=None):
    """The `TokenEncoder` of word (and character) vocabularies built from `sentences` (and with
    `char_lm_vocab`, the inputs of the string embeddings)."""
    words = [[word.lower() if args.lowercase else word for word in row] for row in sentences]
    word_vocab = zoo_text.Vocab(words, min_freq=args.min_freq, reserved_tokens=zoo_text.SEQUENCE_RESERVED)
    char_vocab = None
    if args.chars:
        char_vocab = zoo_text.Vocab(
            [list(word) for row in sentences for word in row],
            reserved_tokens=zoo_text.SEQUENCE_RESERVED + (zoo_text.SHAPE_TOKENS if args.word_shape else ()),
        )
    return zoo_text.TokenEncoder(
        word_vocab,
        char_vocab,
        args.lowercase,
        args.max_chars,
        args.word_shape,
        string_embedding_vocab=char_lm_vocab,
    )


def tag_vocabulary(tags):
    return zoo_text.Vocab(tags, reserved_tokens=(), unk_token=None)


def batches(args, encoder, data, tag_vocab, *, train, entity_weight=1.0, string_embeddings=None):
    """`zoo.text.tagger_batches` of `data`: shuffled and with word dropout for training, with the
    frozen `string_embeddings` of each sentence computed once."""
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
        string_embeddings=string_embeddings,
    )


# --- Model ----------------------------------------------------------------------------------


def frozen_string_embeddings(args, char_lms):
    """The `ContextualStringEmbeddings` of `char_lms` (`load_char_language_models`), on copies of
    the models made here (in the strategy's scope when called there), without carried state."""
    forward, backward, vocab = char_lms
    return ContextualStringEmbeddings(
        forward.stateless_copy(), backward.stateless_copy(), vocab.idx_to_token, layers=args.char_lm_layers
    )


def build_model(args, encoder, num_tags, auxiliary_tags=None, char_lms=None):
    """A tagger (`build_tagger`), in a `MultiTaskTagger` with `auxiliary_tags`, with string
    embeddings from `char_lms` (`load_char_language_models`)."""
    string_embeddings = None
    if char_lms is not None:
        string_embeddings = frozen_string_embeddings(args, char_lms)  # each member's own copies
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
        string_embeddings=string_embeddings,
    )
    model = MultiTaskTagger(tagger, auxiliary_tags) if auxiliary_tags else tagger
    if char_lms is not None:
        # On the encoder's inputs, not the first cached batch's: the default SavedModel signature
        # Keras traces for each model takes the shapes of its first build (a CRF's emissions too).
        for part in (getattr(tagger, "emission_model", tagger), model):
            if not part.built:  # (the model may be the tagger itself)
                part.build(encoder.input_shapes())
    return model


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
    validation entity F1 for entity (BIO, BIOES) tags, on validation token accuracy otherwise; `[]` when
    `patience` is 0.

    Args:
        patience: epochs without a better figure before training stops.
        tag_names: the tag inventory.
        validation: `(dataset, sentences, tags, tag_vocab)` of the validation split (for the F1).
        accuracy_monitor: the logged name of the validation token accuracy.
    """
    if not patience:
        return []
    if entity_scheme(tag_names) is None:
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
    if args.char_lm_data:
        args.char_lm = train_char_language_models(args)
    char_lms = load_char_language_models(args) if args.char_lm else None
    # The auxiliary sentences train the words and characters too.
    encoder = build_encoder(args, train.sentences + auxiliary.sentences, char_lms and char_lms[2])
    print(
        f"{len(tag_vocab)} tags ({entity_scheme(tag_vocab.idx_to_token) or 'not entities'}), "
        f"{len(encoder.word_vocab)} words"
        + (f", {len(encoder.char_vocab)} characters" if encoder.char_vocab is not None else "")
        + (f"; string embeddings from --char-lm {args.char_lm[0]} {args.char_lm[1]}" if char_lms else ""),
        flush=True,
    )
    cache = None
    if char_lms:
        cache = frozen_string_embeddings(args, char_lms)
        print("computing the string embeddings of every sentence once (frozen language models)", flush=True)
    train_ds = batches(
        args, encoder, train, tag_vocab, train=True, entity_weight=args.entity_weight, string_embeddings=cache
    )
    val_ds = batches(args, encoder, validation, tag_vocab, train=False, string_embeddings=cache)
    dev_ds = batches(args, encoder, dev, tag_vocab, train=False, string_embeddings=cache)
    auxiliary_tags = None
    if multitask:
        auxiliary_vocab = tag_vocabulary(auxiliary.tags)
        auxiliary_tags = len(auxiliary_vocab)
        auxiliary_ds = batches(args, encoder, auxiliary, auxiliary_vocab, train=True, string_embeddings=cache)
        train_ds = multitask_batches(train_ds, auxiliary_ds, args.auxiliary_weight, args.seed)
        val_ds = multitask_batches(val_ds)

    callbacks = best_epoch_callbacks(
        args.patience,
        tag_vocab.idx_to_token,
        (val_ds, validation.sentences, validation.tags, tag_vocab),
        accuracy_monitor=f"val_{MAIN_OUTPUT}_accuracy" if multitask else "val_accuracy",
    )
    model, _ = training.run_ensemble_training(
        lambda: build_model(args, encoder, len(tag_vocab), auxiliary_tags, char_lms),
        train_ds,
        val_ds,
        args,
        members=args.ensemble,
        strategy=strategy,
        callbacks=callbacks,
        units_per_epoch=sum(len(row) for row in train.sentences + auxiliary.sentences),
        unit="tokens",
        inference_model=(lambda trained: trained.tagger) if multitask else None,
        input_shapes=encoder.input_shapes() if char_lms else None,  # not the cached embeddings
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
    litert_sizes = {}
    if char_lms:
        print("no model.tflite: the LiteRT export does not take string embeddings", flush=True)
    else:
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
