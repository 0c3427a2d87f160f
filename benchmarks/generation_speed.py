"""Batch-1 generation speed of an LSTM-256 character model, three ways, in one run.

1. zoo: `LanguageModel.generate_ids` inside `tf.function` (one graph: a `tf.while_loop` whose body
   runs the cell once on the layer weights).
2. Keras: `keras.layers.LSTMCell` + `Dense` in a `tf.function` `tf.while_loop` written by hand.
3. Python: a Python loop calling the model on one token per call, carrying the state.

Weights are random (speed does not depend on them). Reports the median of `--repeats` runs.

    python benchmarks/generation_speed.py [--tokens 2000] [--repeats 5]
"""

import argparse
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from zoo.models.language_model import LanguageModel

VOCAB, UNITS, EMBED = 28, 256, 64


def median_rate(run, tokens, repeats):
    run()  # trace / warm up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        rates.append(tokens / (time.perf_counter() - start))
    return statistics.median(rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--python-tokens", type=int, default=200, help="tokens for the slow Python loop")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)

    model = LanguageModel(VOCAB, "lstm", UNITS, embedding_dim=EMBED)
    model(np.zeros((1, 4), np.int32))
    prompt = tf.ragged.constant([[3, 4, 5]])
    zoo_generate = tf.function(lambda: model.generate_ids(prompt, args.tokens))
    zoo_rate = median_rate(zoo_generate, args.tokens, args.repeats)

    embedding = keras.layers.Embedding(VOCAB, EMBED)
    cell = keras.layers.LSTMCell(UNITS)
    head = keras.layers.Dense(VOCAB)
    cell.build((1, EMBED))
    head.build((1, UNITS))
    embedding.build((1,))

    @tf.function
    def keras_cell_loop():
        def body(step, token, h, c, out):
            output, (h, c) = cell(embedding(token), [h, c])
            token = tf.argmax(head(output), axis=-1, output_type=tf.int32)
            return step + 1, token, h, c, out.write(step, token)

        zeros = tf.zeros([1, UNITS])
        result = tf.while_loop(
            lambda step, *_: step < args.tokens,
            body,
            (0, tf.constant([5]), zeros, zeros, tf.TensorArray(tf.int32, args.tokens)),
        )
        return result[-1].stack()

    keras_rate = median_rate(keras_cell_loop, args.tokens, args.repeats)

    def python_loop():
        token = np.array([[5]], np.int32)
        states = model.initial_state(1)
        for _ in range(args.python_tokens):
            logits, states = model(token, initial_state=states, return_state=True)
            token = np.argmax(logits[:, -1].numpy(), axis=-1)[:, None].astype(np.int32)

    python_rate = median_rate(python_loop, args.python_tokens, max(args.repeats // 2, 1))

    print(f"batch-1 LSTM-{UNITS} generation, median of {args.repeats} runs ({args.tokens} tokens):")
    print(f"  zoo generate_ids in one graph : {zoo_rate:10,.0f} tokens/s")
    print(f"  Keras LSTMCell, tf.while_loop : {keras_rate:10,.0f} tokens/s")
    print(f"  Python loop, model per token  : {python_rate:10,.0f} tokens/s")


if __name__ == "__main__":
    main()
