"""Text pipeline speed, one run: BPE training, in-graph BPE tokenization, LM batches.

Usage (from the repository root): ZOO_DATA_DIR=../shared/data PYTHONPATH=. python benchmarks/text_speed.py
"""

import os
import pathlib
import time

import tensorflow as tf

from zoo.text import (
    BPETokenizer,
    CharTokenizer,
    Vocab,
    load_time_machine,
    random_sampling_batches,
    read_lines,
    sequential_partition_batches,
)

DATA = pathlib.Path(
    os.environ.get("ZOO_DATA_DIR", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data")
)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main():
    lines = [line for line in read_lines(DATA / "fra-eng" / "fra.txt") if line.strip()]
    megabytes = sum(len(line.encode()) + 1 for line in lines) / 1e6
    print(f"load average before the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"corpus: fra.txt, {len(lines)} lines, {megabytes:.2f} MB")

    tokenizer, seconds = timed(lambda: BPETokenizer.train(lines, vocab_size=8000))
    print(f"BPE training, 8000 pieces: {seconds:.2f} s (target <= 2 s)")

    _, seconds = timed(lambda: [tokenizer.python_tokenize(line) for line in lines])
    print(f"sentencepiece in Python, one line per call: {megabytes / seconds:.1f} MB/s")
    _, seconds = timed(lambda: tokenizer.python_tokenize(lines))
    print(f"sentencepiece in Python, all lines in one call: {megabytes / seconds:.1f} MB/s")

    def through_tf_data():
        dataset = (
            tf.data.Dataset.from_tensor_slices(lines)
            .batch(1024)
            .map(tokenizer.tokenize, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE)
        )
        return sum(int(ids.flat_values.shape[0]) for ids in dataset)

    through_tf_data()  # warm-up: traces the map function
    pieces, seconds = timed(through_tf_data)
    print(
        f"in-graph BPE in tf.data (batches of 1024 lines): {megabytes / seconds:.1f} MB/s, {pieces} pieces "
        "(target >= 3 MB/s)"
    )

    text_lines = load_time_machine(DATA / "timemachine" / "timemachine.txt").split("\n")
    chars = [c for line in CharTokenizer().tokenize(text_lines) for c in line]
    ids = Vocab(chars).to_ids(tf.constant(chars)).numpy()
    for name, scheme in (
        ("random sampling", random_sampling_batches),
        ("sequential", sequential_partition_batches),
    ):
        dataset = scheme(ids, 32, 35, seed=0)
        for _ in dataset.take(1):
            pass
        count, seconds = timed(lambda dataset=dataset: sum(1 for _ in dataset))
        print(
            f"LM batches ({name}, B=32, T=35): {count} batches in {seconds:.3f} s = {count / seconds:.0f} "
            f"batches/s ({1000 * seconds / count:.3f} ms/batch)"
        )


if __name__ == "__main__":
    main()
