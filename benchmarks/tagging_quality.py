"""Tagging quality: UD English EWT dev UPOS accuracy and WNUT-17 dev entity F1, softmax vs CRF output.

Each configuration is one full run of `recipes.tagging` (its defaults: 2-layer BiLSTM 100 + character CNN,
word dropout 0.15, early stopping on a validation split of the training file); the figures come from the run's
`metrics.json`. Targets: UPOS accuracy >= 0.92, WNUT-17 entity F1 >= 0.30. For BIO tags the kept epoch
is the one of the best validation entity F1; `--corpus wnut17` also defaults to `--word-shape`,
`--entity-weight 5` and, with its default softmax output, to 5 taggers trained with UD EWT's UPOS as an
auxiliary task (see `recipes.tagging`). The CRF's gain is measured against one softmax tagger without the
auxiliary task (`wnut17:softmax-single`), like for like. `--char-lm FORWARD_RUN BACKWARD_RUN` runs each
configuration a second time with those contextual string embeddings (`recipes.tagging --char-lm`) and
prints what they add. `--feature-crf` also trains, on each configuration's training sentences, a
linear-chain CRF on hand-made features (the word, its affixes and shape, its neighbours' words and
shapes; sklearn-crfsuite, an optional benchmark dependency), the classic baseline that tells what the
recurrent taggers add.

Usage (from the repository root):
    ZOO_DATA_DIR=../shared/data PYTHONPATH=. python benchmarks/tagging_quality.py \
        [--runs ud-ewt:crf ud-ewt:softmax wnut17:crf wnut17:softmax-single wnut17:softmax] \
        [--out-root runs/bench-tagging] [--char-lm runs/lm_forward runs/lm_backward [--char-lm-layers all]]
        [--feature-crf]
        [-- more recipe flags]
"""

import argparse
import itertools
import json
import pathlib
import shutil
import time

from recipes import flags as recipe_flags
from recipes import tagging
from zoo.metrics import tagging_scores

TARGETS = {"ud-ewt": ("dev_token_accuracy", 0.92), "wnut17": ("dev_entity_f1", 0.30)}
RUNS = {
    "ud-ewt:crf": ["--corpus", "ud-ewt", "--output", "crf"],
    "ud-ewt:softmax": ["--corpus", "ud-ewt", "--output", "softmax"],
    "wnut17:crf": ["--corpus", "wnut17", "--output", "crf"],
    "wnut17:softmax-single": [
        "--corpus",
        "wnut17",
        "--output",
        "softmax",
        "--auxiliary",
        "none",
        "--ensemble",
        "1",
    ],
    "wnut17:softmax": ["--corpus", "wnut17"],
}
# The softmax run each CRF is compared with: one model, no auxiliary task, as the CRF.
CRF_BASELINES = {"ud-ewt:crf": "ud-ewt:softmax", "wnut17:crf": "wnut17:softmax-single"}


def run(name, label, out_root, extra):
    output_dir = out_root / label.replace(":", "-").replace("+", "-")
    shutil.rmtree(output_dir, ignore_errors=True)
    final = tagging.main([*RUNS[name], "--output-dir", str(output_dir), *extra]).final
    return {key: final[key] for key in final if key.startswith("dev_") or key in ("epochs", "train_seconds")}


def shape(word):
    """The word's shape, each run of alike characters once: "Paris" -> "Xx", "G-20" -> "X-d"."""

    def kind(char):
        return "X" if char.isupper() else "x" if char.islower() else "d" if char.isdigit() else char

    return "".join(key for key, _ in itertools.groupby(map(kind, word)))


def token_features(sentence, position):
    """The classic CRF features of a token: its word (lowercased), affixes, shape and case, and
    its neighbours' words and shapes."""
    word = sentence[position]
    features = {
        "bias": 1.0,
        "word": word.lower(),
        "prefix3": word[:3].lower(),
        "suffix3": word[-3:].lower(),
        "suffix2": word[-2:].lower(),
        "shape": shape(word),
        "is_title": word.istitle(),
        "is_upper": word.isupper(),
        "is_digit": word.isdigit(),
        "starts_with_symbol": word[:1] in "@#",
    }
    for offset in (-2, -1, 1, 2):
        if 0 <= position + offset < len(sentence):
            neighbour = sentence[position + offset]
            features[f"{offset}:word"] = neighbour.lower()
            features[f"{offset}:shape"] = shape(neighbour)
        else:
            features[f"{offset}:outside"] = True
    return features


def sentence_features(sentences):
    return [[token_features(sentence, i) for i in range(len(sentence))] for sentence in sentences]


def feature_crf(name, extra):
    """A feature CRF trained on the training sentences of `name`'s recipe run (its own split) and
    scored on the same dev sentences with the recipe's scorer."""
    import sklearn_crfsuite  # optional: only this baseline needs it

    args = recipe_flags.parse_args(
        tagging.build_parser(),
        [*RUNS[name], "--auxiliary", "none", *extra],
        derived_defaults=tagging.corpus_defaults,
        check=tagging.check,
    )
    train, _, dev, _, tag_vocab = tagging.read_data(args)
    start = time.perf_counter()
    crf = sklearn_crfsuite.CRF(algorithm="lbfgs", c1=0.1, c2=0.1, max_iterations=200)
    crf.fit(sentence_features(train.sentences), train.tags)
    seconds = time.perf_counter() - start
    predicted = crf.predict(sentence_features(dev.sentences))
    figures = tagging_scores(dev.tags, predicted, tag_vocab.idx_to_token)
    return {**{f"dev_{key}": value for key, value in figures.items()}, "train_seconds": seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=list(RUNS))
    parser.add_argument("--out-root", type=pathlib.Path, default=pathlib.Path("runs/bench-tagging"))
    parser.add_argument(
        "--char-lm",
        nargs=2,
        type=pathlib.Path,
        metavar=("FORWARD_RUN", "BACKWARD_RUN"),
        help="also run each configuration with these language-model runs' string embeddings",
    )
    parser.add_argument(
        "--char-lm-layers",
        choices=tagging.STRING_EMBEDDING_LAYERS,
        default="top",
        help="the string embeddings' --char-lm-layers",
    )
    parser.add_argument(
        "--feature-crf", action="store_true", help="also the feature CRF baseline (needs sklearn-crfsuite)"
    )
    parser.add_argument("extra", nargs="*", help="more recipe flags, after --")
    args = parser.parse_args()
    results = {}
    for name in args.runs:
        key, target = TARGETS[name.split(":")[0]]
        if args.feature_crf:
            label = f"{name}:feature-crf"
            results[label] = feature_crf(name, args.extra)
            print(
                f"RESULT {label}: {key} {results[label][key]:.4f}, {results[label]['train_seconds']:.0f} s",
                flush=True,
            )
        variants = {name: []}
        if args.char_lm:
            variants[f"{name}+char-lm"] = [
                "--char-lm",
                *map(str, args.char_lm),
                "--char-lm-layers",
                args.char_lm_layers,
            ]
        for label, flags in variants.items():
            results[label] = run(name, label, args.out_root, [*flags, *args.extra])
            print(
                f"RESULT {label}: {key} {results[label][key]:.4f} (target {target}), "
                f"{results[label]['epochs']} epochs, {results[label]['train_seconds']:.0f} s",
                flush=True,
            )
        if args.char_lm:
            gain = results[f"{name}+char-lm"][key] - results[name][key]
            print(f"RESULT {name}: string embeddings' gain in {key}: {gain:+.4f}", flush=True)
    for crf, softmax in CRF_BASELINES.items():
        if crf in results and softmax in results:
            key = TARGETS[crf.split(":")[0]][0]
            gain = results[crf][key] - results[softmax][key]
            print(f"RESULT {crf}: CRF gain over {softmax} in {key}: {gain:+.4f}", flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
