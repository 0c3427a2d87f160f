"""Translation quality of the plain encoder-decoder and of the attention decoder on fra-eng.

Trains `recipes.translation` twice in the course's setting (2-layer GRU, embedding 256, hidden 256,
dropout 0.2, batch 128, 10 tokens per sequence, Adam 0.005, gradient clipping 1) with label smoothing
0.1 and a cosine learning-rate decay over 10 epochs, once without and once with attention, each
within a time budget, then reports for each: the course's four test sentences (translation and the
course's BLEU, k=2), and corpus BLEU on the held-out test split (5% of the English sentences, with
all their translations, never trained on) against all of a sentence's translations and, for
comparison, against each pair's one reference, with greedy decoding and with beam search.

    ZOO_DATA_DIR=/work/shared/data python benchmarks/translation_quality.py --out runs/bench

The beam size and length penalty default to the recipe's (chosen on the validation split by
`benchmarks/translation_decoding.py`). The course's four test sentences are the ones the recipe
records in its `metrics.json`.

Every run's own files (metrics.json, curves.png, saved_model/, ...) stay in `--out`.
"""

import argparse
import json
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from recipes import translation  # noqa: E402
from zoo.metrics import bleu  # noqa: E402
from zoo.models import Translator, score_translations  # noqa: E402
from zoo.text import SEQUENCE_RESERVED, Vocab, read_sentence_pairs, split_by_source  # noqa: E402

DEFAULT_DATA = pathlib.Path("fra-eng") / "fra.txt"


def held_out_test(data, max_pairs, split_seed):
    """The recipe's test split, recomputed from the same file and seed."""
    sources, targets = read_sentence_pairs(data, max_pairs=max_pairs)
    _, _, test = split_by_source(sources, 0.05, 0.05, split_seed)
    return [sources[i] for i in test], [targets[i] for i in test]


def course_sentences(translator, greedy_rows):
    """The course's sentences of the recipe's `metrics.json`, translated again by `translator`."""
    translations = translator([row["source"] for row in greedy_rows])
    return [
        {**row, "translation": translation, "bleu": bleu(translation, row["reference"], k=2)}
        for row, translation in zip(greedy_rows, translations)
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="training time budget of each run")
    parser.add_argument(
        "--epochs", type=int, default=10, help="epochs per run: the cosine learning-rate decay spans them"
    )
    parser.add_argument("--max-pairs", type=int, default=None, help="use only the first pairs of fra.txt")
    parser.add_argument("--beam-size", type=int, default=8)
    parser.add_argument("--length-penalty", type=float, default=1.0)
    parser.add_argument("--models", nargs="+", choices=("plain", "attention"), default=["plain", "attention"])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("runs") / "translation_quality")
    parser.add_argument("--data", type=pathlib.Path, default=None)
    args = parser.parse_args()
    data = args.data or pathlib.Path(os.environ.get("ZOO_DATA_DIR", "")) / DEFAULT_DATA
    test_sources, test_targets = held_out_test(data, args.max_pairs, split_seed=0)

    report = {}
    for name in args.models:
        extra = ["--attention"] if name == "attention" else []
        run_dir = args.out / name
        argv = [
            "--data",
            str(data),
            "--output-dir",
            str(run_dir),
            "--epochs",
            str(args.epochs),
            "--time-budget",
            str(args.minutes),
            "--embedding-dim",
            "256",
            "--units",
            "256",
            "--num-layers",
            "2",
            "--dropout",
            "0.2",
            "--batch-size",
            "128",
            "--max-length",
            "10",
            "--learning-rate",
            "0.005",
            "--lr-schedule",
            "cosine",
            "--label-smoothing",
            "0.1",
            "--clip-norm",
            "1",
            "--min-freq",
            "2",
            "--beam-size",
            "0",  # the run's own figures are greedy; beam search is scored below
            *extra,
        ]
        if args.max_pairs:
            argv += ["--max-pairs", str(args.max_pairs)]
        started = time.perf_counter()
        run = translation.main(argv)
        seconds = time.perf_counter() - started
        metrics = run.final
        source_vocab = Vocab.load(run_dir / "source_vocab.txt", SEQUENCE_RESERVED)
        target_vocab = Vocab.load(run_dir / "target_vocab.txt", SEQUENCE_RESERVED)
        beam = Translator(
            run.model,
            source_vocab,
            target_vocab,
            10,
            20,
            beam_size=args.beam_size,
            length_penalty=args.length_penalty,
        )
        beam_scores, _ = score_translations(beam, test_sources, test_targets)
        beam_course = course_sentences(beam, metrics["course_sentences"])
        report[name] = {
            "epochs": metrics["epochs"],
            "seconds_total": seconds,
            "val_loss": metrics.get("val_loss"),
            "greedy": {
                "course_sentences": metrics["course_sentences"],
                "course_exact": metrics["course_exact"],
                "test_corpus_bleu": metrics["test_corpus_bleu"],
                "test_corpus_bleu_single_reference": metrics["test_corpus_bleu_single_reference"],
                "test_mean_sentence_bleu": metrics["test_mean_sentence_bleu"],
            },
            f"beam{args.beam_size}": {
                "course_sentences": beam_course,
                "course_exact": sum(row["translation"] == row["reference"] for row in beam_course),
                "test_corpus_bleu": beam_scores["corpus_bleu"],
                "test_corpus_bleu_single_reference": beam_scores["corpus_bleu_single_reference"],
                "test_mean_sentence_bleu": beam_scores["mean_sentence_bleu"],
            },
        }
        (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")

    print(f"\n=== fra-eng, {len(set(test_sources))} held-out sentences ({len(test_sources)} pairs) ===")
    for name, result in report.items():
        print(
            f"\n{name}: {result['epochs']} epochs, {result['seconds_total'] / 60:.1f} min, "
            f"val_loss {result['val_loss']:.3f}"
        )
        for decoding in ("greedy", f"beam{args.beam_size}"):
            scores = result[decoding]
            print(
                f"  {decoding}: test corpus BLEU {scores['test_corpus_bleu']:.3f} (one reference per pair: "
                f"{scores['test_corpus_bleu_single_reference']:.3f}), mean sentence BLEU "
                f"{scores['test_mean_sentence_bleu']:.3f}, course sentences exact "
                f"{int(scores['course_exact'])}/4"
            )
            for row in scores["course_sentences"]:
                print("   ", json.dumps(row, ensure_ascii=False))
    print(f"\nreport: {args.out / 'report.json'}")


if __name__ == "__main__":
    main()
