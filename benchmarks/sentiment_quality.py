"""Sentiment quality: held-out accuracy of `recipes.sentiment` on the IMDb subset (target >= 0.80).

The IMDb subset has 1,000 reviews; 20% are held out (fixed split seed) and never trained on, 15% of the
rest is the validation split for early stopping, so the model trains on 680 reviews, from scratch (no
pretrained embeddings). Each seed is one full run of the recipe with its defaults; the figures come
from the run's `metrics.json`.

The baseline a user would try first runs on the same split in the same run: TF-IDF (word 1- and
2-grams, sublinear tf) and logistic regression, trained on the recipe's training and validation
reviews (scikit-learn, an optional benchmark dependency: `pip install scikit-learn`; `--no-baseline`
skips it).

Usage (from the repository root):
    ZOO_DATA_DIR=../shared/data PYTHONPATH=. python benchmarks/sentiment_quality.py [--seeds 0 1 2] \
        [--out-root runs/bench-sentiment] [--no-baseline] [-- more recipe flags]
"""

import argparse
import pathlib
import shutil
import statistics
import time

import tensorflow as tf

from recipes import flags, sentiment
from zoo import text as zoo_text


def tfidf_baseline(recipe_flags):
    """Held-out accuracy and seconds of TF-IDF + logistic regression on the recipe's split."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise SystemExit(
            "the baseline needs scikit-learn (pip install scikit-learn), or pass --no-baseline"
        ) from None
    args = flags.parse_args(sentiment.build_parser(), recipe_flags)
    examples = sentiment.load_data(args)
    texts = [text.decode("utf-8") for text in zoo_text.clean_markup(tf.constant(examples.texts)).numpy()]
    seen = [*examples.train, *examples.validation]
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    features = vectorizer.fit_transform([texts[i] for i in seen])
    classifier = LogisticRegression(max_iter=1000).fit(features, [examples.class_ids[i] for i in seen])
    predicted = classifier.predict(vectorizer.transform([texts[i] for i in examples.test]))
    accuracy = sum(int(p == examples.class_ids[i]) for p, i in zip(predicted, examples.test)) / len(
        examples.test
    )
    return accuracy, len(examples.test), time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out-root", type=pathlib.Path, default=pathlib.Path("runs/bench-sentiment"))
    parser.add_argument("--no-baseline", action="store_true", help="skip TF-IDF + logistic regression")
    parser.add_argument("extra", nargs="*", help="more recipe flags, after --")
    args = parser.parse_args()
    baseline = None
    if not args.no_baseline:
        baseline, examples, seconds = tfidf_baseline(args.extra)
        print(
            f"RESULT TF-IDF + logistic regression: held-out accuracy {baseline:.4f} on {examples} reviews, "
            f"{seconds:.1f} s",
            flush=True,
        )
    accuracies = []
    for seed in args.seeds:
        output_dir = args.out_root / f"seed-{seed}"
        shutil.rmtree(output_dir, ignore_errors=True)
        final = sentiment.main(["--seed", str(seed), "--output-dir", str(output_dir), *args.extra]).final
        accuracies.append(final["test_accuracy"])
        versus = (
            "" if baseline is None else f" ({final['test_accuracy'] - baseline:+.4f} against the baseline)"
        )
        print(
            f"RESULT seed {seed}: held-out accuracy {final['test_accuracy']:.4f}{versus} on "
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
