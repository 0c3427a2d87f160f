"""Chooses the beam size and length penalty of translation on the validation split, not the test.

Loads a finished `recipes.translation` run (its `model.keras` and vocabularies), recomputes the
run's split from its `config.json`, and scores corpus BLEU (all references of a sentence, and one
per pair) on the validation sentences for every beam size and length penalty asked; with `--test`
it scores the test sentences too, to report the chosen setting's test figure.

    ZOO_DATA_DIR=/work/shared/data python benchmarks/translation_decoding.py RUN_DIR \\
        --beams 4 8 12 --penalties 0 1 --test
"""

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

from zoo.models import Translator, score_translations  # noqa: E402
from zoo.text import SEQUENCE_RESERVED, Vocab, read_sentence_pairs, split_by_source  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=pathlib.Path, help="the output directory of a recipes.translation run")
    parser.add_argument("--beams", type=int, nargs="+", default=[4, 8, 12])
    parser.add_argument("--penalties", type=float, nargs="+", default=[0.0, 1.0])
    parser.add_argument("--test", action="store_true", help="score the test split as well")
    args = parser.parse_args()

    config = json.loads((args.run / "config.json").read_text())
    sources, targets = read_sentence_pairs(config["data"], max_pairs=config["max_pairs"])
    _, validation, test = split_by_source(
        sources, config["test_fraction"], config["validation_fraction"], config["split_seed"]
    )
    model = keras.models.load_model(args.run / "model.keras")
    source_vocab = Vocab.load(args.run / "source_vocab.txt", SEQUENCE_RESERVED)
    target_vocab = Vocab.load(args.run / "target_vocab.txt", SEQUENCE_RESERVED)
    splits = {"validation": validation, **({"test": test} if args.test else {})}

    print(f"{'split':10s} {'beam':>4s} {'alpha':>5s} {'BLEU, all refs':>14s} {'one ref':>8s}")
    for name, indices in splits.items():
        split_sources = [sources[i] for i in indices]
        split_targets = [targets[i] for i in indices]
        for beam in args.beams:
            for penalty in args.penalties:
                translator = Translator(
                    model,
                    source_vocab,
                    target_vocab,
                    config["max_length"],
                    config["max_output_length"],
                    beam_size=beam,
                    length_penalty=penalty,
                )
                scores, _ = score_translations(translator, split_sources, split_targets)
                print(
                    f"{name:10s} {beam:4d} {penalty:5.2f} {scores['corpus_bleu']:14.4f} "
                    f"{scores['corpus_bleu_single_reference']:8.4f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
