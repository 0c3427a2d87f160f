"""English → French translation with the course's RNN encoder-decoder (many-to-many, unaligned).

    python -m recipes.translation                       # $ZOO_DATA_DIR/fra-eng/fra.txt
    python -m recipes.translation --data fra.txt --attention --epochs 10

Data: tab-separated sentence pairs (`English<TAB>French`, extra columns ignored), preprocessed as the
course does (`zoo.text.preprocess_nmt`) and split on spaces. A fixed 5% of the English sentences
(`--split-seed`), with all their translations, is held out as the test set and never trained on;
another 5% validates each epoch (`zoo.text.split_by_source`). Word vocabularies (`--min-freq`) come
from the training pairs only. Test BLEU is corpus BLEU against all of a sentence's translations, and,
for comparison, against each pair's one reference (`zoo.models.score_translations`).

Defaults: the course's 2-layer GRU (embedding and hidden 256, dropout 0.2, batch 128, 10 tokens per
sequence, Adam 0.005, clipping 1), label smoothing 0.1 (`--label-smoothing`), the learning rate
decayed by a cosine over the 10 epochs, beam search of 8 with GNMT's length penalty 1.0 for the
test figures and the export (`--beam-size 0`: greedy; `benchmarks/translation_decoding.py` chooses
them on the validation split). Decoding never writes `<unk>`, `<bos>` or `<pad>`.

The run's folder gets, besides what every recipe writes (config.json, checkpoints/, logs/,
metrics.json, curves.png, model.keras): `source_vocab.txt`, `target_vocab.txt`, and `saved_model/`
(`zoo.models.Translator`) whose `translate` signature maps English string(s) (any shape) to French
string(s) of the same shape:

    loaded = tf.saved_model.load("runs/translation-.../saved_model")    # plain TensorFlow, no zoo
    loaded.translate(tf.constant(["go .", "i lost ."]))["translation"]

The French output is the course's tokens joined by spaces (`"je suis chez moi ."`). Input of any kind
is accepted: text is lowercased and split as in training, undecodable UTF-8 bytes become U+FFFD,
unknown words `<unk>`, and only the first `--max-length - 1` tokens are read.
"""

import argparse
import functools
import pathlib
import typing

import tensorflow as tf

import zoo
from recipes import flags, run_files, training
from recipes.flags import FlagError
from recipes.recipe import RecipeError, entry_point
from zoo.metrics import bleu
from zoo.models import Seq2Seq, Translator, score_translations, sequence_loss
from zoo.text import BOS, EOS, PAD, SEQUENCE_RESERVED, Vocab, read_sentence_pairs, seq2seq_batches

# --- Config ---------------------------------------------------------------------------------

DEFAULT_DATA = pathlib.Path("fra-eng") / "fra.txt"
# The course's test sentences and their references (D2L 1.0, section 10.7).
COURSE_SENTENCES = (
    ("go .", "va !"),
    ("i lost .", "j'ai perdu ."),
    ("he's calm .", "il est calme ."),
    ("i'm home .", "je suis chez moi ."),
)


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m recipes.translation", description=__doc__.split("\n")[0])
    flags.add_shared_flags(
        parser,
        recipe="translation",
        epochs=10,
        batch_size=128,
        learning_rate=0.005,
        clip_norm=1.0,
        lr_schedule="cosine",
    )
    group = parser.add_argument_group("translation")
    group.add_argument(
        "--max-pairs", type=flags.positive_int, default=None, help="read only the first pairs of the file"
    )
    group.add_argument(
        "--max-length",
        type=flags.int_at_least(2),
        default=10,
        help="tokens per sequence, <eos>/<bos> included (the course's num_steps)",
    )
    group.add_argument("--min-freq", type=flags.positive_int, default=2, help="rarer words map to <unk>")
    group.add_argument("--embedding-dim", type=flags.positive_int, default=256)
    group.add_argument("--units", type=flags.positive_int, default=256)
    group.add_argument("--num-layers", type=flags.positive_int, default=2)
    group.add_argument("--dropout", type=flags.fraction, default=0.2)
    group.add_argument(
        "--label-smoothing",
        type=flags.fraction,
        default=0.1,
        help="share of each target token's probability spread over the vocabulary",
    )
    group.add_argument("--cell", choices=("gru", "lstm"), default="gru")
    group.add_argument("--attention", action="store_true", help="additive (Bahdanau) attention decoder")
    group.add_argument("--test-fraction", type=flags.positive_fraction, default=0.05)
    group.add_argument("--val-fraction", type=flags.fraction, default=0.05)
    group.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation/test split")
    group.add_argument("--beam-size", type=flags.non_negative_int, default=8, help="0: greedy decoding")
    group.add_argument(
        "--length-penalty",
        type=float,
        default=1.0,
        help="GNMT's alpha: beam hypotheses are ranked by log-probability / ((5 + length) / 6)^alpha "
        "(greedy decoding has no use for it)",
    )
    group.add_argument("--max-output-length", type=flags.positive_int, default=20)
    group.add_argument(
        "--time-budget",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="stop after the last epoch that fits in this many minutes of training (0: none)",
    )
    return parser


def check(args):
    if args.attention and args.cell != "gru":
        raise FlagError("--attention needs --cell gru (the attention decoder is a GRU stack)")
    if args.test_fraction + args.val_fraction >= 1:
        raise FlagError(
            f"--test-fraction {args.test_fraction} and --val-fraction {args.val_fraction} leave no pairs "
            "to train on"
        )


# --- Data -----------------------------------------------------------------------------------


def read_pairs(args):
    path = args.data or flags.data_set_file(DEFAULT_DATA, "pass --data FILE")
    try:
        return read_sentence_pairs(path, max_pairs=args.max_pairs)
    except (OSError, ValueError) as error:
        raise RecipeError(f"cannot read sentence pairs from {path}: {error}") from None


class Pairs(typing.NamedTuple):
    """Sentence pairs: source sentences and their translations, aligned."""

    sources: list
    targets: list


def split_pairs(args, sources, targets):
    """`(train, validation, test)` `Pairs`: a split by source sentence (`zoo.text.split_by_source`)."""
    try:
        parts = zoo.text.split_by_source(sources, args.test_fraction, args.val_fraction, args.split_seed)
    except ValueError as error:
        raise RecipeError(str(error)) from None
    return [Pairs([sources[i] for i in part], [targets[i] for i in part]) for part in parts]


def batches(args, pairs, source_vocab, target_vocab, shuffle):
    return seq2seq_batches(
        pairs.sources,
        pairs.targets,
        args.batch_size,
        source_vocab,
        target_vocab,
        max_length=args.max_length,
        shuffle_buffer=len(pairs.sources) if shuffle else None,
        seed=args.seed,
    )


# --- Model ----------------------------------------------------------------------------------


def build_model(args, source_vocab, target_vocab):
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


def make_translator(args, model, source_vocab, target_vocab):
    beam_size = args.beam_size or None
    return Translator(
        model,
        source_vocab,
        target_vocab,
        args.max_length,
        args.max_output_length,
        beam_size=beam_size,
        length_penalty=args.length_penalty if beam_size else 0.0,
    )


# --- Evaluation -----------------------------------------------------------------------------


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


# --- Main: data, model, train, evaluate, export ---------------------------------------------


@entry_point
def main(argv=None):
    args = flags.parse_args(build_parser(), argv, check=check)
    strategy = training.setup(args)

    train, validation, test = split_pairs(args, *read_pairs(args))
    source_vocab = Vocab([s.split() for s in train.sources], args.min_freq, SEQUENCE_RESERVED)
    target_vocab = Vocab([t.split() for t in train.targets], args.min_freq, SEQUENCE_RESERVED)
    source_vocab.save(run_files.output_path(args, "source_vocab.txt"))
    target_vocab.save(run_files.output_path(args, "target_vocab.txt"))
    print(
        f"{len(train.sources)} training, {len(validation.sources)} validation, {len(test.sources)} test "
        f"pairs; vocabularies: {len(source_vocab)} source, {len(target_vocab)} target words",
        flush=True,
    )
    train_ds = batches(args, train, source_vocab, target_vocab, shuffle=True)
    val_ds = (
        batches(args, validation, source_vocab, target_vocab, shuffle=False) if validation.sources else None
    )

    # One translator for every epoch's report, so its graph is traced once.
    epoch_translator = functools.cache(lambda model: make_translator(args, model, source_vocab, target_vocab))

    def show_course_sentences(model, epoch, logs):
        rows = course_sentences(epoch_translator(model))
        return f"epoch {epoch} translations:\n" + format_course_sentences(rows)

    model, _ = training.run_training(
        lambda: build_model(args, source_vocab, target_vocab),
        train_ds,
        val_ds,
        args,
        strategy=strategy,
        loss=sequence_loss(args.label_smoothing),
        callbacks=[
            zoo.callbacks.EpochEndHook(show_course_sentences),
            zoo.callbacks.TimeBudget(args.time_budget),
        ],
        units_per_epoch=zoo.callbacks.count_units(
            train_ds, lambda inputs, targets, mask: tf.reduce_sum(mask)
        ),
        unit="tokens",
        compile_kwargs={"weighted_metrics": ["accuracy"]},
    )

    translator = make_translator(args, model, source_vocab, target_vocab)
    test_scores, test_translations = score_translations(translator, *test)
    course = course_sentences(translator)
    print("course sentences:\n" + format_course_sentences(course))
    print(
        f"test ({len(set(test.sources))} held-out sentences, {len(test.sources)} pairs): corpus BLEU "
        f"{test_scores['corpus_bleu']:.3f} (one reference per pair: "
        f"{test_scores['corpus_bleu_single_reference']:.3f}), mean sentence BLEU "
        f"{test_scores['mean_sentence_bleu']:.3f}, exact {test_scores['exact']:.3f}",
        flush=True,
    )

    exported = make_translator(args, model, source_vocab, target_vocab)
    path = zoo.export.saved_model(
        exported, run_files.output_path(args, "saved_model"), {"translate": exported.translate}
    )
    print(f"saved {path}", flush=True)
    return run_files.finish_run(
        args,
        model,
        test_pairs=len(test.sources),
        test_sentences=len(set(test.sources)),
        test_corpus_bleu=test_scores["corpus_bleu"],
        test_corpus_bleu_single_reference=test_scores["corpus_bleu_single_reference"],
        test_mean_sentence_bleu=test_scores["mean_sentence_bleu"],
        test_exact_match=test_scores["exact"],
        course_sentences=course,
        course_exact=sum(row["translation"] == row["reference"] for row in course),
        test_samples=[
            {"source": s, "reference": r, "translation": t}
            for s, r, t in list(zip(*test, test_translations))[:20]
        ],
    )


if __name__ == "__main__":
    main()
