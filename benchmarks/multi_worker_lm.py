"""Training speed of a character LSTM language model on 1 process and on a cluster of workers on
127.0.0.1 (`MultiWorkerMirroredStrategy` from `TF_CONFIG`), with the same global batches.

The model is the language model recipe's stateful form (sequential batches, the state carried from
batch to batch) on The Time Machine, cleaned as D2L does. Prints, for the single process and the
cluster, tokens/s (the median over the epochs after the first, which traces) and each epoch's
training loss, then the largest loss gap between the two. Workers on one machine share its cores, so
this measures the cost of the collectives, not a speed-up.

    python benchmarks/multi_worker_lm.py [--workers 2] [--epochs 4] [--units 128] [--batch-size 64]

`--data` defaults to `$ZOO_DATA_DIR/timemachine/timemachine.txt`.
"""

import argparse
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_data = (
        pathlib.Path(os.environ.get("ZOO_DATA_DIR", "../shared/data")) / "timemachine/timemachine.txt"
    )
    parser.add_argument("--data", type=pathlib.Path, default=default_data)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch size")
    parser.add_argument("--num-steps", type=int, default=35)
    parser.add_argument("--tokens", type=int, default=60000, help="characters of the book to train on")
    parser.add_argument("--worker-output", type=pathlib.Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def train(args):
    """One process of a run (a worker when TF_CONFIG is set): writes its epochs' figures."""
    import keras
    import numpy as np
    import tensorflow as tf

    import zoo

    strategy = zoo.distribute.strategy_from_env()
    text = zoo.text.CharTokenizer().tokenize(args.data.read_text())
    vocab = zoo.text.Vocab([text])
    ids = np.asarray(vocab.to_ids(text), np.int32)[: args.tokens]
    count = ((len(ids) - args.num_steps) // args.batch_size) // args.num_steps

    def batches():
        dataset = zoo.text.sequential_partition_batches(ids, args.batch_size, args.num_steps, seed=0)
        return dataset.take(count).apply(tf.data.experimental.assert_cardinality(count))

    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = zoo.LanguageModel(len(vocab), "lstm", units=args.units, embedding_dim=32, stateful=True)
        model.compile(
            keras.optimizers.Adam(0.005, global_clipnorm=1.0),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    seconds = []

    class Timing(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.model.reset_state()
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)

    history = model.fit(
        zoo.distribute.distribute_batches(strategy, batches),
        epochs=args.epochs,
        callbacks=[Timing()],
        verbose=0,
    )
    tokens = count * args.batch_size * args.num_steps
    figures = {"tokens_per_epoch": tokens, "seconds": seconds, "losses": history.history["loss"]}
    if zoo.distribute.is_chief(strategy):
        args.worker_output.write_text(json.dumps(figures))


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def run(args, workers, output):
    """Runs `workers` processes (1: no TF_CONFIG) and returns the chief's figures."""
    command = [sys.executable, __file__, *sys.argv[1:], "--worker-output", str(output)]
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ports = free_ports(workers)
    processes = []
    try:
        for index in range(workers):
            if workers > 1:
                cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
                env["TF_CONFIG"] = json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": index}}
                )
            processes.append(subprocess.Popen(command, env=dict(env)))
        for process in processes:
            if process.wait() != 0:
                raise SystemExit(f"a worker failed with status {process.returncode}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return json.loads(output.read_text())


def report(name, figures):
    rates = [figures["tokens_per_epoch"] / seconds for seconds in figures["seconds"][1:]]
    losses = " ".join(f"{loss:.4f}" for loss in figures["losses"])
    print(
        f"{name}: {statistics.median(rates):,.0f} tokens/s (median of {len(rates)} epochs); losses {losses}"
    )


def main():
    args = parse_args()
    if args.worker_output is not None:
        return train(args)
    with tempfile.TemporaryDirectory() as folder:
        single = run(args, 1, pathlib.Path(folder) / "single.json")
        cluster = run(args, args.workers, pathlib.Path(folder) / "cluster.json")
    report("1 process", single)
    report(f"{args.workers} workers", cluster)
    gap = max(abs(a - b) / abs(b) for a, b in zip(cluster["losses"], single["losses"]))
    print(f"largest relative gap between the per-epoch losses: {gap:.2g}")


if __name__ == "__main__":
    main()
