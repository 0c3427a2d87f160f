"""Tagging quality: UD English EWT dev UPOS accuracy and WNUT-17 dev entity F1, softmax vs CRF output.

Each configuration is one full run of `recipes.tagging` (its defaults: 2-layer BiLSTM 100 + character CNN,
word dropout 0.15, early stopping on a validation split of the training file); the figures come from the run's
`metrics.json`. Targets: UPOS accuracy >= 0.92, WNUT-17 entity F1 >= 0.30. For BIO tags the kept epoch
is the one of the best validation entity F1; `--corpus wnut17` also defaults to `--word-shape`,
`--entity-weight 5` and, with its default softmax output, to 5 taggers trained with UD EWT's UPOS as an
auxiliary task (see `recipes.tagging`). The CRF's gain is measured against one softmax tagger without the
auxiliary task (`wnut17:softmax-single`), like for like. `--char-lm FORWARD_RUN BACKWARD_RUN` runs each
configuration a second time with those contextual string embeddings (`recipes.tagging --char-lm`) and
prints what they add.

Usage (from the repository root):
    ZOO_DATA_DIR=../shared/data PYTHONPATH=. python benchmarks/tagging_quality.py \
        [--runs ud-ewt:crf ud-ewt:softmax wnut17:crf wnut17:softmax-single wnut17:softmax] \
        [--out-root runs/bench-tagging] [--char-lm runs/lm_forward runs/lm_backward] [-- more recipe flags]
"""

import argparse
import json
import pathlib
import shutil

from recipes import tagging

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
    parser.add_argument("extra", nargs="*", help="more recipe flags, after --")
    args = parser.parse_args()
    results = {}
    for name in args.runs:
        key, target = TARGETS[name.split(":")[0]]
        variants = {name: []}
        if args.char_lm:
            variants[f"{name}+char-lm"] = ["--char-lm", *map(str, args.char_lm)]
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
