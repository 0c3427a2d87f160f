"""Tagging quality: UD English EWT dev UPOS accuracy and WNUT-17 dev entity F1, softmax vs CRF output.

Each configuration is one full run of `recipes.tagging` (its defaults: 2-layer BiLSTM 100 + character CNN,
word dropout 0.15, early stopping on a validation split of the training file); the figures come from the run's
`metrics.json`. Targets: UPOS accuracy >= 0.92, WNUT-17 entity F1 >= 0.30. For BIO tags the kept epoch
is the one of the best validation entity F1; `--corpus wnut17` also defaults to `--word-shape`,
`--entity-weight 5` and, with its default softmax output, to 5 taggers trained with UD EWT's UPOS as an
auxiliary task (see `recipes.tagging`). The CRF's gain is measured against one softmax tagger without the
auxiliary task (`wnut17:softmax-single`), like for like.

Usage (from the repository root):
    ZOO_DATA_DIR=../shared/data PYTHONPATH=. python benchmarks/tagging_quality.py \
        [--runs ud-ewt:crf ud-ewt:softmax wnut17:crf wnut17:softmax-single wnut17:softmax] \
        [--out-root runs/bench-tagging] [-- more recipe flags]
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


def run(name, out_root, extra):
    output_dir = out_root / name.replace(":", "-")
    shutil.rmtree(output_dir, ignore_errors=True)
    final = tagging.main([*RUNS[name], "--output-dir", str(output_dir), *extra]).final
    return {key: final[key] for key in final if key.startswith("dev_") or key in ("epochs", "train_seconds")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", choices=sorted(RUNS), default=list(RUNS))
    parser.add_argument("--out-root", type=pathlib.Path, default=pathlib.Path("runs/bench-tagging"))
    parser.add_argument("extra", nargs="*", help="more recipe flags, after --")
    args = parser.parse_args()
    results = {}
    for name in args.runs:
        results[name] = run(name, args.out_root, args.extra)
        key, target = TARGETS[name.split(":")[0]]
        print(
            f"RESULT {name}: {key} {results[name][key]:.4f} (target {target}), "
            f"{results[name]['epochs']} epochs, {results[name]['train_seconds']:.0f} s",
            flush=True,
        )
    for crf, softmax in CRF_BASELINES.items():
        if crf in results and softmax in results:
            key = TARGETS[crf.split(":")[0]][0]
            gain = results[crf][key] - results[softmax][key]
            print(f"RESULT {crf}: CRF gain over {softmax} in {key}: {gain:+.4f}", flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
