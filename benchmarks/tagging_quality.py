"""Tagging quality: UD English EWT dev UPOS accuracy and WNUT-17 dev entity F1, softmax vs CRF output.

Each configuration is one full run of `recipes.tagging` (its defaults: 2-layer BiLSTM 100 + character CNN,
word dropout 0.15, early stopping on a validation split of the training file); the figures come from the run's
`metrics.json`. Targets: UPOS accuracy >= 0.92, WNUT-17 entity F1 >= 0.30. For BIO tags the kept epoch
is the one of the best validation entity F1; `--corpus wnut17` also defaults to `--word-shape`,
`--entity-weight 5` and, with its default softmax output, to 5 taggers trained with UD EWT's UPOS as an
auxiliary task (see `recipes.tagging`). The CRF's gain is measured against one softmax tagger without the
auxiliary task (`wnut17:softmax-single`), like for like.

Measured (seed 0 unless named; 2-core CPU, quiet unless named):
- UD EWT dev UPOS, CRF: 0.922 in 554 s (load 5-7; the UD EWT path is unchanged since).
- WNUT-17 dev entity F1, the recipe's default (`wnut17:softmax`: 5 taggers with the auxiliary task):
  **0.351** (P 0.475, R 0.278) in 613 s; with seeds 5-9 (`-- --seed 5`): 0.360 (P 0.471, R 0.292) in
  615 s. One such tagger: 0.323 (P 0.378, R 0.281, 190 s); seeds 1 and 2:
  0.318 and 0.281.
- One softmax tagger without the auxiliary task (`wnut17:softmax-single`): 0.271 (P 0.351, R 0.220) in 78 s;
  the CRF (`wnut17:crf`): 0.260 (P 0.371, R 0.200) in 69 s: CRF gain over softmax -0.011 (the CRF can
  only weigh whole sentences, the softmax each entity token). Earlier, at load 5-7: CRF 0.230, softmax
  0.265; 5 softmax taggers without the auxiliary task: 0.261.
- What the auxiliary task changed, one tagger at seed 0 without and with it: spans found regardless of
  type, precision 0.536 -> 0.580 and recall 0.336 -> 0.431; capitalised dev entities found 173 -> 217
  of 630; persons right 159 -> 193 of 470, with false persons 196 -> 139.
- The dev set holds emerging entities (70% of its entity tokens are not in the training vocabulary),
  and its entity F1 moves by 0.03-0.05 from one epoch to the next.

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
        tagging.NO_AUXILIARY,
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
    tagging.main([*RUNS[name], "--output-dir", str(output_dir), *extra])
    final = json.loads((output_dir / "metrics.json").read_text())["final"]
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
