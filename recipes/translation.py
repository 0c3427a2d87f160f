"""English → French translation with the course's RNN encoder-decoder (many-to-many, unaligned).

    python -m recipes.translation                       # $ZOO_DATA_DIR/fra-eng/fra.txt
    python -m recipes.translation --data fra.txt --attention --epochs 10

Data: tab-separated sentence pairs (`English<TAB>French`, extra columns ignored), preprocessed as the
course does (`zoo.text.preprocess_nmt`) and split on spaces. A fixed 5% of the English sentences
(`--split-seed`), with all their translations, is held out as the test set and never trained on;
another 5% validates each epoch. (A sentence has up to a dozen translations in fra.txt: a split of
pairs would train on half of the test sentences, with another translation.) Word vocabularies
(`--min-freq`) come from the training pairs only. Test BLEU is corpus BLEU against all of a
sentence's translations, and, for comparison, against each pair's one reference.

Defaults: the course's 2-layer GRU (embedding and hidden 256, dropout 0.2, batch 128, 10 tokens per
sequence, Adam 0.005, clipping 1), label smoothing 0.1 (`--label-smoothing`), the learning rate
decayed by a cosine over the 10 epochs, beam search of 8 with GNMT's length penalty 1.0 for the
test figures and the export (`--beam-size 0`: greedy); that beam and penalty scored best on the
validation split of a trained model (`benchmarks/translation_decoding.py`). Decoding never writes
`<unk>`, `<bos>` or `<pad>`.
With `--attention`, 10 epochs in under 18 minutes on a 2-core CPU: test corpus BLEU 0.372 against all
references (0.299 against one per pair), and the course's four test sentences exactly; without
attention 0.342 (0.276) and three of four (`benchmarks/translation_quality.py`).

The run's folder gets, besides what `recipes.common` writes (config.json, checkpoints/, logs/,
metrics.json, curves.png, model.keras): `source_vocab.txt`, `target_vocab.txt`, and `saved_model/`
whose `translate` signature maps English string(s) (any shape) to French string(s) of the same shape:

    loaded = tf.saved_model.load("runs/translation-.../saved_model")    # plain TensorFlow, no zoo
    loaded.translate(tf.constant(["go .", "i lost ."]))["translation"]

The French output is the course's tokens joined by spaces (`"je suis chez moi ."`). Input of any kind
is accepted: text is lowercased and split as in training, undecodable UTF-8 bytes become U+FFFD,
unknown words `<unk>`, and only the first `--max-length - 1` tokens are read.
"""

import argparse
import functools
import os
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from recipes import common
from zoo.metrics import bleu, corpus_bleu
from zoo.models.seq2seq import Seq2Seq, sequence_loss
from zoo.text import BOS, EOS, PAD, SEQUENCE_RESERVED, Vocab, read_sentence_pairs, seq2seq_batches

DEFAULT_DATA = pathlib.Path("fra-eng") / "fra.txt"
# The course's test sentences and their references (D2L 1.0, section 10.7).
COURSE_SENTENCES = (
    ("go .", "va !"),
    ("i lost .", "j'ai perdu ."),
    ("he's calm .", "il est calme ."),
    ("i'm home .", "je suis chez moi ."),
)
_EVALUATION_BATCH = 256


def course_tokens(text):
    """`zoo.text.preprocess_nmt` followed by `str.split()`, in the graph.

    Args:
        text: `tf.string` `[batch]`, any bytes: invalid UTF-8 sequences become U+FFFD.

    Returns:
        `tf.string` ragged `[batch, None]` tokens.
    """
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace")
    # Every character str.split() splits on (Unicode separators, U+202F and U+00A0 among them).
    text = tf.strings.regex_replace(text, r"[\s\x{0b}\x{1c}-\x{1f}\x{85}\p{Z}]", " ")
    text = tf.strings.lower(text, encoding="utf-8")
    # preprocess_nmt puts a space before punctuation that lacks one; tokens come out the same when
    # every mark gets one, since splitting merges runs of spaces.
    text = tf.strings.regex_replace(text, "([,.!?])", r" \1")
    return tf.strings.split(text)


class Translator(tf.Module):
    """Raw text in, translated text out: the course's preprocessing, the vocabularies and a trained
    `Seq2Seq`, in one graph (the module the recipe exports as a SavedModel).

    Args:
        model: a built `Seq2Seq`.
        source_vocab, target_vocab: the `zoo.text.Vocab`s it was trained with (`SEQUENCE_RESERVED`).
        max_source_length: source tokens read, `<eos>` included (longer input is cut).
        max_output_length: the most target tokens generated, `<eos>` included.
        beam_size: None for greedy decoding, else the beam size.
        length_penalty: GNMT's alpha for beam search.

    Call `translate(text)`: `tf.string` of any shape → `{"translation": tf.string of that shape}`.
    """

    def __init__(
        self,
        model,
        source_vocab,
        target_vocab,
        max_source_length,
        max_output_length,
        beam_size=None,
        length_penalty=0.0,
    ):
        super().__init__(name="translator")
        if max_source_length < 1 or max_output_length < 1:
            raise ValueError("max_source_length and max_output_length must be >= 1")
        self.model = model
        self.source_vocab = source_vocab
        self.target_vocab = target_vocab
        self.max_source_length = max_source_length
        self.max_output_length = max_output_length
        self.beam_size = beam_size
        self.length_penalty = length_penalty
        self.source_eos = source_vocab.id_of(EOS)
        self.target_eos = target_vocab.id_of(EOS)

    @tf.function(input_signature=[tf.TensorSpec(None, tf.string, name="text")])
    def translate(self, text):
        flat = tf.reshape(text, [-1])
        # Keras's RNN loop (in the exported encoder) cannot stack the outputs of an empty batch.
        translation = tf.cond(tf.size(flat) > 0, lambda: self._translate_batch(flat), lambda: flat)
        return {"translation": tf.reshape(translation, tf.shape(text))}

    def _translate_batch(self, text):
        tokens = course_tokens(text)[:, : self.max_source_length - 1]
        eos = tf.RaggedTensor.from_tensor(tf.fill([tf.shape(text)[0], 1], self.source_eos))
        source_ids = tf.concat([self.source_vocab.to_ids(tokens), eos], axis=1).to_tensor(self.model.pad_id)
        token_ids, lengths = self.model.translate(
            source_ids, self.max_output_length, beam_size=self.beam_size, length_penalty=self.length_penalty
        )
        generated = tf.RaggedTensor.from_tensor(token_ids, lengths=lengths)
        words = tf.ragged.boolean_mask(generated, tf.not_equal(generated, self.target_eos))
        return tf.strings.reduce_join(self.target_vocab.to_tokens(words), axis=-1, separator=" ")

    def __call__(self, sentences):
        """Translates a list of Python strings in batches; returns a list of strings."""
        results = []
        for start in range(0, len(sentences), _EVALUATION_BATCH):
            batch = tf.constant(list(sentences[start : start + _EVALUATION_BATCH]), tf.string)
            results.extend(text.decode("utf-8") for text in self.translate(batch)["translation"].numpy())
        return results


class TimeBudget(keras.callbacks.Callback):
    """Stops training after the epoch at which another epoch as long as the slowest so far would
    overrun `minutes` since training started (0: no limit). The first epoch also traces the
    model's functions, so once a later epoch is timed, the slowest of the later ones is the
    estimate.

    Args:
        minutes: the budget; 0 means no limit.
        clock: a function that returns seconds (`time.perf_counter`; tests pass a fake one).
    """

    def __init__(self, minutes, clock=time.perf_counter):
        super().__init__()
        self.seconds = minutes * 60
        self.clock = clock
        self.started = self.epoch_started = None
        self.durations = []

    def on_train_begin(self, logs=None):
        self.started = self.clock()
        self.durations = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_started = self.clock()

    def on_epoch_end(self, epoch, logs=None):
        now = self.clock()
        self.durations.append(now - self.epoch_started)
        next_epoch = max(self.durations[1:] or self.durations)
        if self.seconds and now - self.started + next_epoch > self.seconds:
            print(f"stopping after epoch {epoch + 1}: another would overrun the time budget", flush=True)
            self.model.stop_training = True


def split_pairs(sources, test_fraction, val_fraction, seed):
    """Index arrays `(train, validation, test)` of a fixed random split of sentence pairs by their
    source sentence: all the translations of one English sentence fall in the same part, so no
    held-out sentence is ever trained on, and each has all its translations as references.

    Args:
        sources: the source sentences of the pairs.
        test_fraction, val_fraction: the shares of the distinct source sentences held out.
        seed: seed of the split.
    """
    if not 0 < test_fraction < 1 or not 0 <= val_fraction < 1 or test_fraction + val_fraction >= 1:
        raise common.RecipeError(
            f"--test-fraction {test_fraction} and --val-fraction {val_fraction} must be in (0, 1) and "
            "leave pairs to train on"
        )
    distinct, group = np.unique(np.asarray(sources, dtype=str), return_inverse=True)
    count = len(distinct)
    test_size = max(1, round(count * test_fraction))
    val_size = round(count * val_fraction)
    if count - test_size - val_size < 1:
        raise common.RecipeError(
            f"{count} distinct sentences are too few to split into train, validation and test"
        )
    part_of_group = np.zeros(count, np.int8)  # 0 train, 1 validation, 2 test
    order = np.random.default_rng(seed).permutation(count)
    part_of_group[order[:test_size]] = 2
    part_of_group[order[test_size : test_size + val_size]] = 1
    part = part_of_group[group]
    return tuple(np.flatnonzero(part == index) for index in (0, 1, 2))


def evaluate(translator, sources, references):
    """Scores the translations of the distinct `sources`, each against all its `references`.

    Args:
        translator: a `Translator`.
        sources, references: aligned lists of sentence pairs; a source may repeat, with another
            translation.

    Returns:
        `(scores, translations)`: a dict of figures, and the translation of each pair's source. The
        figures: `corpus_bleu`, corpus BLEU (up to 4-grams) of the distinct sources against all their
        references; `corpus_bleu_single_reference`, corpus BLEU of every pair against its one
        reference (a sentence with several translations counts once per pair); `mean_sentence_bleu`,
        the mean over pairs of the course's sentence BLEU (k=2, as the course scores its test
        sentences); `exact`, the share of distinct sources translated exactly as one of their references.
    """
    references_of = {}
    for source, reference in zip(sources, references):
        references_of.setdefault(source, []).append(reference)
    distinct = list(references_of)
    translation_of = dict(zip(distinct, translator(distinct)))
    translations = [translation_of[source] for source in sources]
    return {
        "corpus_bleu": corpus_bleu(
            [translation_of[s] for s in distinct], [tuple(references_of[s]) for s in distinct]
        ),
        "corpus_bleu_single_reference": corpus_bleu(translations, references),
        "mean_sentence_bleu": float(np.mean([bleu(t, r, k=2) for t, r in zip(translations, references)])),
        "exact": float(np.mean([translation_of[s] in references_of[s] for s in distinct])),
    }, translations


def course_sentences(translator):
    """The course's four test sentences: a list of dicts (source, reference, translation, bleu)."""
    sources = [source for source, _ in COURSE_SENTENCES]
    return [
        {
            "source": source,
            "reference": reference,
            "translation": translation,
            "bleu": bleu(translation, reference, k=2),
        }
        for (source, reference), translation in zip(COURSE_SENTENCES, translator(sources))
    ]


def format_course_sentences(rows):
    return "\n".join(
        f"  {row['source']} => {row['translation']}  (bleu {row['bleu']:.3f}, reference: {row['reference']})"
        for row in rows
    )


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m recipes.translation", description=__doc__.split("\n")[0])
    common.add_common_arguments(
        parser,
        recipe="translation",
        epochs=10,
        batch_size=128,
        learning_rate=0.005,
        clip_norm=1.0,
        lr_schedule="cosine",
    )
    group = parser.add_argument_group("translation")
    group.add_argument("--max-pairs", type=int, default=None, help="read only the first pairs of the file")
    group.add_argument(
        "--max-length",
        type=int,
        default=10,
        help="tokens per sequence, <eos>/<bos> included (the course's num_steps)",
    )
    group.add_argument("--min-freq", type=int, default=2, help="rarer words map to <unk>")
    group.add_argument("--embedding-dim", type=int, default=256)
    group.add_argument("--units", type=int, default=256)
    group.add_argument("--num-layers", type=int, default=2)
    group.add_argument("--dropout", type=float, default=0.2)
    group.add_argument(
        "--label-smoothing",
        type=float,
        default=0.1,
        help="share of each target token's probability spread over the vocabulary",
    )
    group.add_argument("--cell", choices=("gru", "lstm"), default="gru")
    group.add_argument("--attention", action="store_true", help="additive (Bahdanau) attention decoder")
    group.add_argument("--test-fraction", type=float, default=0.05)
    group.add_argument("--val-fraction", type=float, default=0.05)
    group.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation/test split")
    group.add_argument("--beam-size", type=int, default=8, help="0: greedy decoding")
    group.add_argument(
        "--length-penalty",
        type=float,
        default=1.0,
        help="GNMT's alpha: beam hypotheses are ranked by log-probability / ((5 + length) / 6)^alpha "
        "(greedy decoding has no use for it)",
    )
    group.add_argument("--max-output-length", type=int, default=20)
    group.add_argument(
        "--time-budget",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="stop after the last epoch that fits in this many minutes of training (0: none)",
    )
    return parser


def _data_path(args):
    if args.data is not None:
        return args.data
    root = os.environ.get("ZOO_DATA_DIR")
    if not root:
        raise common.RecipeError(
            f"no data: pass --data FILE, or set ZOO_DATA_DIR to a folder with {DEFAULT_DATA}"
        )
    path = pathlib.Path(root) / DEFAULT_DATA
    if not path.is_file():
        raise common.RecipeError(f"{path} is missing: pass --data FILE")
    return path


@common.entry_point
def main(argv=None):
    args = common.parse_args(build_parser(), argv)
    if args.max_length < 2:
        raise common.RecipeError(f"--max-length must be >= 2 (a token and <eos>), got {args.max_length}")
    if not 0.0 <= args.label_smoothing < 1.0:
        raise common.RecipeError(f"--label-smoothing must be in [0, 1), got {args.label_smoothing}")
    if args.attention and args.cell != "gru":
        raise common.RecipeError("--attention needs --cell gru (the attention decoder is a GRU stack)")
    strategy = common.setup(args)
    path = _data_path(args)
    try:
        sources, targets = read_sentence_pairs(path, max_pairs=args.max_pairs)
    except (OSError, ValueError) as error:
        raise common.RecipeError(f"cannot read sentence pairs from {path}: {error}") from None
    train, val, test = split_pairs(sources, args.test_fraction, args.val_fraction, args.split_seed)

    def pick(indices):
        return [sources[i] for i in indices], [targets[i] for i in indices]

    (train_sources, train_targets), (val_sources, val_targets), (test_sources, test_targets) = (
        pick(train),
        pick(val),
        pick(test),
    )
    source_vocab = Vocab([s.split() for s in train_sources], args.min_freq, SEQUENCE_RESERVED)
    target_vocab = Vocab([t.split() for t in train_targets], args.min_freq, SEQUENCE_RESERVED)
    source_vocab.save(common.output_path(args, "source_vocab.txt"))
    target_vocab.save(common.output_path(args, "target_vocab.txt"))
    print(
        f"{len(train)} training, {len(val)} validation, {len(test)} test pairs; vocabularies: "
        f"{len(source_vocab)} source, {len(target_vocab)} target words",
        flush=True,
    )

    def batches(split_sources, split_targets, shuffle):
        dataset = seq2seq_batches(
            split_sources,
            split_targets,
            args.batch_size,
            source_vocab,
            target_vocab,
            max_length=args.max_length,
            shuffle_buffer=len(split_sources) if shuffle else None,
            seed=args.seed,
        )
        if strategy.num_replicas_in_sync > 1:
            # Keras's fit under MirroredStrategy fails on a last batch that splits unevenly across
            # replicas (AddN of per-replica [8, T] and [7, T]): leave the partial batch out.
            dataset = dataset.filter(lambda inputs, targets, mask: tf.shape(targets)[0] == args.batch_size)
        return dataset

    train_ds = batches(train_sources, train_targets, shuffle=True)
    val_ds = batches(val_sources, val_targets, shuffle=False) if val_sources else None
    beam_size = args.beam_size or None

    def make_translator(model):
        return Translator(
            model,
            source_vocab,
            target_vocab,
            args.max_length,
            args.max_output_length,
            beam_size=beam_size,
            length_penalty=args.length_penalty if beam_size else 0.0,
        )

    def build_model():
        return Seq2Seq(
            len(source_vocab),
            len(target_vocab),
            embedding_dim=args.embedding_dim,
            units=args.units,
            num_layers=args.num_layers,
            dropout=args.dropout,
            cell_type=args.cell,
            attention=args.attention,
            bos_id=target_vocab.id_of(BOS),
            eos_id=target_vocab.id_of(EOS),
            pad_id=target_vocab.id_of(PAD),
            unk_id=target_vocab.unk_id,
        )

    # One translator for every epoch's report, so its graph is traced once.
    epoch_translator = functools.cache(make_translator)

    def show_course_sentences(model, epoch, logs):
        return f"epoch {epoch} translations:\n" + format_course_sentences(
            course_sentences(epoch_translator(model))
        )

    model, _ = common.run_training(
        build_model,
        train_ds,
        val_ds,
        args,
        strategy=strategy,
        loss=sequence_loss(args.label_smoothing),
        callbacks=[common.EpochEndHook(show_course_sentences), TimeBudget(args.time_budget)],
        units_per_epoch=common.count_units(train_ds, lambda inputs, targets, mask: tf.reduce_sum(mask)),
        unit="tokens",
        compile_kwargs={"weighted_metrics": ["accuracy"]},
    )

    translator = make_translator(model)
    test_scores, test_translations = evaluate(translator, test_sources, test_targets)
    course = course_sentences(translator)
    common.record_final(
        args,
        test_pairs=len(test_sources),
        test_sentences=len(set(test_sources)),
        test_corpus_bleu=test_scores["corpus_bleu"],
        test_corpus_bleu_single_reference=test_scores["corpus_bleu_single_reference"],
        test_mean_sentence_bleu=test_scores["mean_sentence_bleu"],
        test_exact_match=test_scores["exact"],
        course_sentences=course,
        course_exact=sum(row["translation"] == row["reference"] for row in course),
        test_samples=[
            {"source": s, "reference": r, "translation": t}
            for s, r, t in list(zip(test_sources, test_targets, test_translations))[:20]
        ],
    )
    exported = make_translator(model)
    common.export_saved_model(
        exported, common.output_path(args, "saved_model"), {"translate": exported.translate}
    )
    print("course sentences:\n" + format_course_sentences(course))
    print(
        f"test ({len(set(test_sources))} held-out sentences, {len(test_sources)} pairs): corpus BLEU "
        f"{test_scores['corpus_bleu']:.3f} (one reference per pair: "
        f"{test_scores['corpus_bleu_single_reference']:.3f}), mean sentence BLEU "
        f"{test_scores['mean_sentence_bleu']:.3f}, exact {test_scores['exact']:.3f}"
    )
    print(f"outputs in {args.output_dir}", flush=True)
    return model


if __name__ == "__main__":
    main()
