"""Training speed of the language model recipe on 1 process and on a cluster of workers on 127.0.0.1
(`--strategy multi-worker`, `TF_CONFIG`), with the same global batches.

Each run is `python -m recipes.language_model` (its `main()`) with the recipe's default batching
(sequential: the state carried from batch to batch) and clipping, on the first `--tokens`
characters of The Time Machine, a 1-layer LSTM without dropout (so that the runs can agree to float
rounding). Prints, for the single process and the cluster, tokens/s (the median over the epochs
after the first, which traces; from the chief's `metrics.json`) and each epoch's training loss, then
the largest relative gap between the two runs' losses. Workers on one machine share its cores, so
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

REPO = pathlib.Path(__file__).resolve().parents[1]


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
    return parser.parse_args(argv)


def recipe_flags(args, text_file, output_dir):
    return [
        *("--data", str(text_file), "--output-dir", str(output_dir)),
        *("--epochs", str(args.epochs), "--batch-size", str(args.batch_size)),
        *("--num-steps", str(args.num_steps), "--units", str(args.units)),
        *("--layers", "1", "--embedding-dim", "32", "--dropout", "0", "--sample-tokens", "10"),
    ]


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def run(flags, workers, output_dir):
    """Runs the recipe on `workers` processes (1: no TF_CONFIG, the default strategy) and returns the
    chief's per-epoch entries of `metrics.json`."""
    strategy = "multi-worker" if workers > 1 else "default"
    command = [sys.executable, "-m", "recipes.language_model", *flags, "--strategy", strategy]
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
            output = None if index == 0 else subprocess.DEVNULL  # the chief's progress is enough
            processes.append(subprocess.Popen(command, cwd=REPO, env=dict(env), stdout=output, stderr=output))
        for process in processes:
            if process.wait() != 0:
                raise SystemExit(f"process {process.pid} failed with status {process.returncode}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return json.loads((output_dir / "metrics.json").read_text())["epochs"]


def report(name, epochs):
    rates = [entry["tokens_per_sec"] for entry in epochs[1:]]
    losses = " ".join(f"{entry['loss']:.4f}" for entry in epochs)
    print(
        f"{name}: {statistics.median(rates):,.0f} tokens/s (median of {len(rates)} epochs); losses {losses}"
    )


def main():
    args = parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = pathlib.Path(folder)
        text_file = folder / "book.txt"
        text_file.write_text(args.data.read_text()[: args.tokens])
        single = run(recipe_flags(args, text_file, folder / "single"), 1, folder / "single")
        cluster = run(recipe_flags(args, text_file, folder / "cluster"), args.workers, folder / "cluster")
    report("1 process", single)
    report(f"{args.workers} workers", cluster)
    gap = max(abs(a["loss"] - b["loss"]) / abs(b["loss"]) for a, b in zip(cluster, single))
    print(f"largest relative gap between the per-epoch losses: {gap:.2g}")


if __name__ == "__main__":
    main()
