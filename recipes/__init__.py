"""Runnable training scripts, one per task: `python -m recipes.<task>`.

- `language_model`: a character (or word, BPE) language model of The Time Machine; generates text.
- `sentiment`: IMDb reviews classified by averaged bidirectional RNNs.
- `tagging`: part-of-speech tags (UD English EWT) or named entities (WNUT-17).
- `translation`: English → French with the course's encoder-decoder, with or without attention.

Each is one page: a config block (its flags and their defaults), data, model, training, evaluation,
export; and one contract, `main(argv=None) -> recipes.recipe.Run`. What they share: `flags` (the
command line), `training` (strategy, fit loop, checkpoints and resume), `run_files` (the files of a
run) and `recipe` (the contract and its errors).
"""
