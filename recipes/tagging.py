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
layer, batches of the two tasks mixed at random. UD EWT's part-of-speech tags teach a named-entity
tagger of tweets what proper nouns look like, from 3,142 more sentences than its own 3,055; the export
holds the main tagger only. `--corpus wnut17` defaults to `--output softmax --auxiliary ud-ewt
--ensemble 5` (`--output crf`: one CRF tagger, no auxiliary task).

Dev figures of the defaults (seed 0, `benchmarks/tagging_quality.py`): UD EWT UPOS 0.922 (CRF);
WNUT-17 entity F1 0.351 (5 softmax taggers with the UD EWT auxiliary task, 10 minutes; seeds 5-9:
0.360; one of them
alone: 0.323, seeds 1 and 2: 0.318, 0.281; one without the auxiliary task 0.271, a CRF 0.260).

The run's `saved_model/` has a `tag` signature: sentences (tokens separated by whitespace, as in the
training data) in, their `tokens` and `tags` out (padded with ""). It runs in plain TensorFlow.
"""

import argparse
import os
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from recipes import common
from zoo import crf as zoo_crf
from zoo import metrics as zoo_metrics
from zoo import text as zoo_text
from zoo.models.multitask_tagger import AUXILIARY_OUTPUT, MAIN_OUTPUT, MultiTaskTagger
from zoo.models.tagger import build_tagger

DATA_ENV = "ZOO_DATA_DIR"
CORPORA = {
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


# A word's shape, spelled as one extra leading "character" the character CNN reads beside the word's own
# characters: case and form tell names from other words where the lowercased word embedding cannot, and
# they carry over to words never seen in training. The first pattern a token fully matches names its shape.
WORD_SHAPES = (
    ("<shape:url>", r"(?i)(https?://|www\.).*"),
    ("<shape:handle>", r"[@#].+"),
    ("<shape:caps>", r"\p{Lu}[\p{Lu}\d]*\p{Lu}[\p{Lu}\d]*"),
    ("<shape:capitalized>", r"\p{Lu}.*"),
    ("<shape:lower>", r"\p{Ll}.*"),
    ("<shape:number>", r"\d.*"),
)
OTHER_SHAPE = "<shape:other>"
SHAPE_TOKENS = tuple(name for name, _ in WORD_SHAPES) + (OTHER_SHAPE,)


def word_shapes(tokens):
    """The shape token (one of `SHAPE_TOKENS`) of each token of a string tensor, same shape."""
    tokens = tf.convert_to_tensor(tokens, tf.string)
    shapes = tf.fill(tf.shape(tokens), OTHER_SHAPE)
    for name, pattern in reversed(WORD_SHAPES):
        shapes = tf.where(tf.strings.regex_full_match(tokens, pattern), name, shapes)
    return shapes


class TokenEncoder(tf.Module):
    """Tokens → the tagger's inputs, in-graph: word ids (lowercased lookup) and character ids.

    Args:
        word_vocab: word → id, `<pad>` = 0.
        char_vocab: character → id, `<pad>` = 0; `None`: no character inputs. With `word_shape`, it must
            hold `SHAPE_TOKENS`.
        lowercase: look words up lowercased (the characters keep their case).
        max_chars: characters kept per word (its first ones).
        word_shape: put each word's shape token (`word_shapes`) before its characters.
    """

    def __init__(self, word_vocab, char_vocab, lowercase, max_chars, word_shape=False):
        super().__init__(name="token_encoder")
        if word_shape and (
            char_vocab is None or any(token not in char_vocab.token_to_idx for token in SHAPE_TOKENS)
        ):
            raise ValueError("word_shape needs a character vocabulary that holds SHAPE_TOKENS")
        self.word_vocab = word_vocab
        self.char_vocab = char_vocab
        self.lowercase = lowercase
        self.max_chars = max_chars
        self.word_shape = word_shape

    def words_of(self, tokens):
        return tf.strings.lower(tokens) if self.lowercase else tokens

    def chars_of(self, tokens):
        """Ragged tokens [batch, (time)] → their characters [batch, (time), (chars)], cut to `max_chars`,
        after the word's shape token with `word_shape`."""
        chars = tf.strings.unicode_split(tokens.flat_values, "UTF-8", errors="replace")[:, : self.max_chars]
        if self.word_shape:
            shapes = tf.RaggedTensor.from_tensor(word_shapes(tokens.flat_values)[:, None])
            chars = tf.concat([shapes, chars], axis=1)
        return tokens.with_flat_values(chars)

    def __call__(self, tokens):
        """Ragged tokens [batch, (time)] → `(inputs, mask [batch, time])`, padded to one step at least.

        `inputs` is word ids [batch, time], or `(word_ids, char_ids [batch, time, chars])`.
        """
        word_ids = _at_least_one(self.word_vocab.to_ids(self.words_of(tokens)).to_tensor(0), rank=2)
        mask = tf.not_equal(word_ids, 0)
        if self.char_vocab is None:
            return word_ids, mask
        char_ids = _at_least_one(self.char_vocab.to_ids(self.chars_of(tokens)).to_tensor(0), rank=3)
        # Both must span the same time steps, whatever padding each needed.
        char_ids = char_ids[:, : tf.shape(word_ids)[1]]
        return (word_ids, char_ids), mask


def _at_least_one(ids, rank):
    """Pads every axis after the batch axis to length 1 at least (an empty sentence still has a step)."""
    shape = tf.shape(ids)
    return tf.pad(ids, [[0, 0]] + [[0, tf.maximum(1 - shape[axis], 0)] for axis in range(1, rank)])


class TaggerExport(tf.Module):
    """What `saved_model/` holds: the encoder, tag names and model behind `tag`.

    Args:
        model: a trained `SequenceTagger` (softmax) or `CRFTagger`.
        encoder: the `TokenEncoder` it was trained with.
        tag_vocab: tag → id.
        max_tokens: longer sentences are cut to their first `max_tokens` tokens.
    """

    def __init__(self, model, encoder, tag_vocab, max_tokens):
        super().__init__(name="tagger")
        self.model = model
        self.encoder = encoder
        self.tag_vocab = tag_vocab
        self.max_tokens = max_tokens

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def tag(self, sentences):
        """Sentences [batch] → `tokens` and `tags` [batch, time] (strings, "" after each sentence's end)."""
        sentences = tf.strings.unicode_transcode(sentences, "UTF-8", "UTF-8", errors="replace")
        tokens = tf.strings.split(sentences)[:, : self.max_tokens]
        inputs, mask = self.encoder(tokens)
        tags = tf.where(mask, self.tag_vocab.to_tokens(predict_tag_ids(self.model, inputs)), "")
        return {"tokens": tokens.to_tensor("", shape=tf.shape(mask, out_type=tf.int64)), "tags": tags}


def predict_tag_ids(model, inputs):
    """Tag ids [batch, time]: the CRF's Viterbi path, or each word's most probable tag (of the main
    tags, for a `MultiTaskTagger`)."""
    if isinstance(model, MultiTaskTagger):
        model = model.tagger
    outputs = model(inputs, training=False)
    if isinstance(model, zoo_crf.CRFTagger):
        return outputs
    return tf.argmax(outputs, axis=-1, output_type=tf.int32)


def tagging_dataset(
    sentences,
    tags,
    encoder,
    tag_vocab,
    batch_size,
    shuffle,
    seed,
    with_mask_weights,
    word_dropout=0.0,
    entity_weight=1.0,
):
    """Batches `(inputs, tag_ids[, mask])`, encoded by `encoder` batch by batch (the same code as the export).

    Args:
        with_mask_weights: yield the padding mask as sample weights (softmax training); the CRF reads
            the mask from the model instead.
        word_dropout: the chance that a word id is replaced by `<unk>` (training only): the `<unk>`
            embedding gets trained and the tagger learns to lean on characters and context, as it
            must for words it never saw.
        entity_weight: the training weight, relative to 1, of the tokens not tagged `O` (with
            `with_mask_weights`), or else of the whole sentences that hold such a token (a CRF weighs
            sequences): where entities are rare, it trades precision for recall.
    """
    unk_id = encoder.word_vocab.unk_id
    outside_id = tag_vocab.token_to_idx.get("O", -1)
    dataset = tf.data.Dataset.from_tensor_slices(
        (tf.ragged.constant(sentences, dtype=tf.string), tf.ragged.constant(tags, dtype=tf.string))
    )
    if shuffle:
        dataset = dataset.shuffle(len(sentences), seed=seed, reshuffle_each_iteration=True)

    def encode(tokens, token_tags):
        inputs, mask = encoder(tokens)
        if word_dropout:
            word_ids = inputs[0] if isinstance(inputs, tuple) else inputs
            dropped = tf.random.uniform(tf.shape(word_ids), seed=seed) < word_dropout
            word_ids = tf.where(dropped & mask, unk_id, word_ids)
            inputs = (word_ids, inputs[1]) if isinstance(inputs, tuple) else word_ids
        tag_ids = tag_vocab.to_ids(token_tags).to_tensor(0, shape=tf.shape(mask, out_type=tf.int64))
        entity = mask & tf.not_equal(tag_ids, outside_id)
        if with_mask_weights:
            return inputs, tag_ids, tf.where(entity, entity_weight, tf.cast(mask, tf.float32))
        if entity_weight != 1.0:
            return inputs, tag_ids, tf.where(tf.reduce_any(entity, axis=1), entity_weight, 1.0)
        return inputs, tag_ids

    return (
        dataset.ragged_batch(batch_size)
        .map(encode, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def multitask_batches(main, auxiliary=None, auxiliary_weight=1.0, seed=None):
    """Batches for a `MultiTaskTagger`: `(inputs, tag ids, weights)`, the last two dicts keyed by its
    outputs (`"tags"`, `"auxiliary"`).

    Each batch holds the sentences of one task, and the other output's tag ids and weights are zero for
    them. The two tasks' batches come in an order drawn again each epoch; the dataset knows its length
    (Keras averages an epoch's figures over it).

    Args:
        main: `tagging_dataset` batches of the main tags, with mask weights.
        auxiliary: the same for the auxiliary tags; None: only `main` (e.g. validation).
        auxiliary_weight: the auxiliary weights' factor, relative to the main ones.
        seed: the seed of the order.
    """

    def for_output(output, factor):
        other = AUXILIARY_OUTPUT if output == MAIN_OUTPUT else MAIN_OUTPUT

        def to_dicts(inputs, tag_ids, weights):
            return (
                inputs,
                {output: tag_ids, other: tf.zeros_like(tag_ids)},
                {output: weights * factor, other: tf.zeros_like(weights)},
            )

        return to_dicts

    main = main.map(for_output(MAIN_OUTPUT, 1.0))
    if auxiliary is None:
        return main
    auxiliary = auxiliary.map(for_output(AUXILIARY_OUTPUT, auxiliary_weight))
    counts = [int(part.cardinality()) for part in (main, auxiliary)]
    if min(counts) < 0:
        raise ValueError("multitask_batches needs datasets of known length")
    choices = tf.data.Dataset.from_tensor_slices(tf.repeat(tf.constant([0, 1], tf.int64), counts)).shuffle(
        sum(counts), seed=seed, reshuffle_each_iteration=True
    )
    mixed = tf.data.Dataset.choose_from_datasets([main, auxiliary], choices, stop_on_empty_dataset=True)
    return mixed.apply(tf.data.experimental.assert_cardinality(sum(counts)))


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m recipes.tagging", description=__doc__.split("\n")[0])
    common.add_common_arguments(
        parser, recipe="tagging", epochs=30, batch_size=32, learning_rate=2e-3, clip_norm=5.0
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--corpus",
        choices=sorted(CORPORA),
        default="ud-ewt",
        help=f"default files under ${DATA_ENV} (--data/--dev/--format override them) and "
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
    data.add_argument("--validation-fraction", type=float, default=0.1)
    data.add_argument("--split-seed", type=int, default=0)
    data.add_argument("--min-freq", type=int, default=2, help="rarer words map to <unk>")
    data.add_argument(
        "--word-dropout", type=float, default=0.15, help="training: replace this share of word ids by <unk>"
    )
    data.add_argument(
        "--entity-weight",
        type=float,
        default=1.0,
        help="BIO tags, training: weight of the entity tokens (softmax) or of the sentences holding "
        "an entity (CRF), relative to 1",
    )
    data.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=True)
    data.add_argument("--max-chars", type=int, default=20)
    data.add_argument(
        "--word-shape",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="give the character CNN each word's shape (case, handle, URL, number) as an extra "
        "leading character",
    )
    data.add_argument("--max-tokens", type=int, default=1000, help="the export cuts longer sentences")
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
        type=float,
        default=1.0,
        help="the auxiliary task's loss weight, relative to the main task's",
    )
    model = parser.add_argument_group("model")
    model.add_argument("--output", choices=("crf", "softmax"), default="crf")
    model.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    model.add_argument("--embedding-dim", type=int, default=100)
    model.add_argument("--units", type=int, default=100)
    model.add_argument("--num-layers", type=int, default=2)
    model.add_argument(
        "--chars", action=argparse.BooleanOptionalAction, default=True, help="character-CNN word features"
    )
    model.add_argument("--char-embedding-dim", type=int, default=25)
    model.add_argument("--char-filters", type=int, default=50)
    model.add_argument("--dropout", type=float, default=0.5)
    model.add_argument(
        "--ensemble",
        type=common.positive_int,
        default=1,
        metavar="N",
        help="softmax output: train N models (seeds --seed to --seed + N - 1) and average "
        "their tag probabilities",
    )
    model.add_argument(
        "--patience",
        type=int,
        default=5,
        help="stop after this many epochs without a better validation figure (entity F1 for BIO "
        "tags, token accuracy otherwise) and keep the best epoch (0: never stop)",
    )
    return parser


def data_set_file(name, instead):
    """`$ZOO_DATA_DIR/name`; unset, a `RecipeError` that names `instead` (what to pass otherwise)."""
    root = os.environ.get(DATA_ENV)
    if not root:
        raise common.RecipeError(f"{instead} or set {DATA_ENV} (the folder of the data sets)")
    return pathlib.Path(root) / name


def format_of(path):
    return "conllu" if path.suffix == ".conllu" else "conll"


def resolve_files(args):
    """`(format, train path, dev path)` from the flags and `--corpus` defaults."""
    corpus_format, train_name, dev_name = CORPORA[args.corpus]
    train = args.data if args.data is not None else data_set_file(train_name, "pass --data FILE")
    dev = args.dev if args.dev is not None else data_set_file(dev_name, "pass --dev FILE")
    file_format = args.format or (corpus_format if args.data is None else format_of(train))
    return file_format, train, dev


def resolve_auxiliary(args):
    """`(format, path)` of the `--auxiliary` training file, or None."""
    if args.auxiliary == NO_AUXILIARY:
        return None
    if args.auxiliary in CORPORA:
        corpus_format, train_name, _ = CORPORA[args.auxiliary]
        return corpus_format, data_set_file(
            train_name,
            f"pass --auxiliary FILE or --auxiliary {NO_AUXILIARY} (--auxiliary {args.auxiliary} "
            f"reads ${DATA_ENV}/{train_name})",
        )
    path = pathlib.Path(args.auxiliary)
    return format_of(path), path


def read_tagged(path, file_format, tag_column):
    try:
        if file_format == "conllu":
            return zoo_text.read_conllu(path, tag_column)
        return zoo_text.read_conll(path)
    except (OSError, ValueError) as error:
        raise common.RecipeError(str(error)) from error


def is_bio(tag_names):
    return all(tag == "O" or tag[:2] in ("B-", "I-") for tag in tag_names)


def evaluate(model, dataset, sentences, tags, tag_vocab):
    """Token accuracy (and entity P/R/F1 for BIO tags) of the model's tags on `dataset`'s sentences."""
    predicted = []
    for batch in dataset:
        inputs = batch[0]
        ids = predict_tag_ids(model, inputs).numpy()
        predicted.extend(row.tolist() for row in ids)
    predicted = [tag_vocab.to_tokens(row[: len(words)]) for row, words in zip(predicted, sentences)]
    figures = {"token_accuracy": zoo_metrics.token_accuracy(tags, predicted)}
    if is_bio(tag_vocab.idx_to_token):
        entities = zoo_metrics.entity_f1(tags, predicted)
        figures.update({f"entity_{key}": entities[key] for key in ("precision", "recall", "f1", "support")})
    return figures


class ValidationEntityF1(keras.callbacks.Callback):
    """Adds the validation split's entity F1 (exact spans, as conlleval) to each epoch's logs as
    `val_entity_f1`, for early stopping and the run's history.

    Token accuracy is a poor guide for named entities: most tokens are `O`, so a tagger that finds
    fewer entities can score a better accuracy. Place it before the callbacks that read the value.

    Args:
        dataset: the validation batches, in the order of `sentences`.
        sentences, tags: the validation sentences (lists of tokens) and their BIO tags.
        tag_vocab: tag → id.
    """

    def __init__(self, dataset, sentences, tags, tag_vocab):
        super().__init__()
        self.dataset = dataset
        self.sentences = sentences
        self.tags = tags
        self.tag_vocab = tag_vocab

    def on_epoch_end(self, epoch, logs=None):
        figures = evaluate(self.model, self.dataset, self.sentences, self.tags, self.tag_vocab)
        if logs is not None:
            logs["val_entity_f1"] = figures["entity_f1"]
        print(f"epoch {epoch + 1}: validation entity F1 {figures['entity_f1']:.4f}", flush=True)


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
        return common.accuracy_early_stopping(patience, accuracy_monitor)
    return [
        ValidationEntityF1(*validation),
        keras.callbacks.EarlyStopping(
            monitor="val_entity_f1", mode="max", patience=patience, restore_best_weights=True
        ),
    ]


def parse_args(argv=None):
    """The command line, with the defaults of `--corpus` (`CORPUS_DEFAULTS`, and with a softmax output
    `CORPUS_SOFTMAX_DEFAULTS`) for the flags not given."""
    parser = build_parser()
    corpus = parser.parse_known_args(argv)[0].corpus
    parser.set_defaults(**CORPUS_DEFAULTS.get(corpus, {}))
    if parser.parse_known_args(argv)[0].output == "softmax":
        parser.set_defaults(**CORPUS_SOFTMAX_DEFAULTS.get(corpus, {}))
    args = common.parse_args(parser, argv)
    if args.ensemble > 1 and args.output != "softmax":
        raise common.RecipeError(
            "--ensemble averages tag probabilities: it needs --output softmax (a CRF "
            "decodes whole tag sequences)"
        )
    if args.auxiliary != NO_AUXILIARY and args.output != "softmax":
        raise common.RecipeError(
            f"--auxiliary needs --output softmax (pass --auxiliary {NO_AUXILIARY} to train a CRF)"
        )
    return args


@common.entry_point
def main(argv=None):
    args = parse_args(argv)
    strategy = common.setup(args)
    file_format, train_path, dev_path = resolve_files(args)
    sentences, tags = read_tagged(train_path, file_format, args.tag_column)
    dev_sentences, dev_tags = read_tagged(dev_path, file_format, args.tag_column)
    order = np.random.default_rng(args.split_seed).permutation(len(sentences))
    validation_size = int(round(len(sentences) * args.validation_fraction))
    if not 1 <= validation_size < len(sentences):
        raise common.RecipeError(
            f"{len(sentences)} sentences are too few for --validation-fraction {args.validation_fraction}"
        )
    train = [int(i) for i in order[validation_size:]]
    validation = [int(i) for i in order[:validation_size]]
    print(
        f"{file_format} {train_path}: {len(train)} training and {len(validation)} validation sentences; "
        f"dev {dev_path}: {len(dev_sentences)} sentences",
        flush=True,
    )

    train_sentences = [sentences[i] for i in train]
    train_tags = [tags[i] for i in train]
    auxiliary = resolve_auxiliary(args)
    auxiliary_sentences, auxiliary_tags = [], []
    if auxiliary:
        auxiliary_sentences, auxiliary_tags = read_tagged(auxiliary[1], auxiliary[0], args.tag_column)
        print(
            f"auxiliary task: {auxiliary[0]} {auxiliary[1]}, {len(auxiliary_sentences)} sentences", flush=True
        )
    # The tag set is the task's label inventory: a tag only the dev file has still gets an id.
    tag_vocab = zoo_text.Vocab(tags + dev_tags, reserved_tokens=(), unk_token=None)
    # The auxiliary sentences train the words and characters too.
    text = train_sentences + auxiliary_sentences
    words = [[word.lower() if args.lowercase else word for word in row] for row in text]
    word_vocab = zoo_text.Vocab(words, min_freq=args.min_freq, reserved_tokens=zoo_text.SEQUENCE_RESERVED)
    char_vocab = None
    if args.chars:
        char_vocab = zoo_text.Vocab(
            [list(word) for row in text for word in row],
            reserved_tokens=zoo_text.SEQUENCE_RESERVED + (SHAPE_TOKENS if args.word_shape else ()),
        )
    elif args.word_shape:
        raise common.RecipeError("--word-shape feeds the character CNN: it needs --chars")
    encoder = TokenEncoder(word_vocab, char_vocab, args.lowercase, args.max_chars, args.word_shape)
    print(
        f"{len(tag_vocab)} tags, {len(word_vocab)} words"
        + (f", {len(char_vocab)} characters" if char_vocab is not None else ""),
        flush=True,
    )

    softmax = args.output == "softmax"

    def batches(part_sentences, part_tags, shuffle, word_dropout=0.0, entity_weight=1.0, vocab=tag_vocab):
        return tagging_dataset(
            part_sentences,
            part_tags,
            encoder,
            vocab,
            args.batch_size,
            shuffle,
            args.seed,
            with_mask_weights=softmax,
            word_dropout=word_dropout,
            entity_weight=entity_weight,
        )

    if args.entity_weight != 1.0 and not is_bio(tag_vocab.idx_to_token):
        raise common.RecipeError("--entity-weight needs BIO tags (entities and O)")
    train_ds = batches(train_sentences, train_tags, True, args.word_dropout, args.entity_weight)
    validation_sentences = [sentences[i] for i in validation]
    validation_tags = [tags[i] for i in validation]
    val_ds = batches(validation_sentences, validation_tags, False)
    dev_ds = batches(dev_sentences, dev_tags, False)
    loss = "sparse_categorical_crossentropy" if softmax else None
    weighted_metrics = ["accuracy"]
    if auxiliary:
        auxiliary_vocab = zoo_text.Vocab(auxiliary_tags, reserved_tokens=(), unk_token=None)
        auxiliary_ds = batches(
            auxiliary_sentences, auxiliary_tags, True, args.word_dropout, vocab=auxiliary_vocab
        )
        train_ds = multitask_batches(train_ds, auxiliary_ds, args.auxiliary_weight, args.seed)
        val_ds = multitask_batches(val_ds)
        loss = {MAIN_OUTPUT: loss, AUXILIARY_OUTPUT: loss}
        weighted_metrics = {MAIN_OUTPUT: weighted_metrics}

    def build_model():
        tagger = build_tagger(
            args.output,
            vocab_size=len(word_vocab),
            num_tags=len(tag_vocab),
            embedding_dim=args.embedding_dim,
            units=args.units,
            num_layers=args.num_layers,
            cell_type=args.cell,
            char_vocab_size=len(char_vocab) if char_vocab is not None else None,
            char_embedding_dim=args.char_embedding_dim,
            char_filters=args.char_filters,
            dropout=args.dropout,
        )
        return MultiTaskTagger(tagger, len(auxiliary_vocab)) if auxiliary else tagger

    callbacks = best_epoch_callbacks(
        args.patience,
        tag_vocab.idx_to_token,
        (val_ds, validation_sentences, validation_tags, tag_vocab),
        accuracy_monitor=f"val_{MAIN_OUTPUT}_accuracy" if auxiliary else "val_accuracy",
    )
    started = time.perf_counter()
    model, _ = common.run_ensemble_training(
        build_model,
        train_ds,
        val_ds,
        args,
        members=args.ensemble,
        strategy=strategy,
        loss=loss,
        metrics=[] if softmax else ["accuracy"],
        callbacks=callbacks,
        compile_kwargs={"weighted_metrics": weighted_metrics} if softmax else None,
        units_per_epoch=sum(len(row) for row in train_sentences + auxiliary_sentences),
        unit="tokens",
        inference_model=(lambda trained: trained.tagger) if auxiliary else None,
    )
    train_seconds = time.perf_counter() - started

    figures = evaluate(model, dev_ds, dev_sentences, dev_tags, tag_vocab)
    print(
        "dev: "
        + ", ".join(f"{key} {value:.4f}" for key, value in figures.items())
        + f" ({train_seconds:.0f} s "
        "training)",
        flush=True,
    )
    common.record_final(
        args,
        **{f"dev_{key}": value for key, value in figures.items()},
        train_seconds=train_seconds,
        tag_names=tag_vocab.idx_to_token,
    )

    export = TaggerExport(model, encoder, tag_vocab, args.max_tokens)
    common.export_saved_model(export, common.output_path(args, "saved_model"), {"tag": export.tag})
    print(f"saved {common.output_path(args, 'saved_model')}", flush=True)
    return {**figures, "output_dir": args.output_dir}


if __name__ == "__main__":
    main()
