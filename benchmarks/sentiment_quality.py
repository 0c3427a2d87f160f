"""Sentiment quality: held-out accuracy of `recipes.sentiment` on the IMDb subset (target >= 0.80).

The IMDb subset has 1,000 reviews; 20% are held out (fixed split seed) and never trained on, 15% of the
rest is the validation split for early stopping, so the model trains on 680 reviews, from scratch (no
pretrained embeddings). Each seed is one full run of the recipe with its defaults; the figures come
from the run's `metrics.json`.

Usage (from the repository root):
    ZOO_DATA_DIR=../shared/data PYTHONPATH=. python benchmarks/sentiment_quality.py [--seeds 0 1 2] \
        [--out-root runs/bench-sentiment] [-- more recipe flags]
"""

import argparse
import pathlib
import shutil
import statistics

from recipes import sentiment


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out-root", type=pathlib.Path, default=pathlib.Path("runs/bench-sentiment"))
    parser.add_argument("extra", nargs="*", help="more recipe flags, after --")
    args = parser.parse_args()
    accuracies = []
    for seed in args.seeds:
        output_dir = args.out_root / f"seed-{seed}"
        shutil.rmtree(output_dir, ignore_errors=True)
        final = sentiment.main(["--seed", str(seed), "--output-dir", str(output_dir), *args.extra]).final
        accuracies.append(final["test_accuracy"])
        print(
            f"RESULT seed {seed}: held-out accuracy {final['test_accuracy']:.4f} on "
            f"{final['test_examples']:.0f} reviews, {final['epochs']} epochs, "
            f"{final['train_seconds']:.0f} s training",
            flush=True,
        )
    if len(accuracies) > 1:
        print(
            f"RESULT mean held-out accuracy {statistics.mean(accuracies):.4f}, median "
            f"{statistics.median(accuracies):.4f} (min {min(accuracies):.4f}, max {max(accuracies):.4f}) "
            f"over "
            f"{len(accuracies)} seeds",
            flush=True,
        )


if __name__ == "__main__":
    main()
