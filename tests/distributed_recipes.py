"""Runs recipes one after another in one process, for the distributed recipe tests in
`test_multi_worker.py`: as one device and with `--strategy mirrored` over 2 logical CPUs, or as one
worker of a `TF_CONFIG` cluster (`--strategy multi-worker`). Not a test itself.

    python tests/distributed_recipes.py '{"strategies": ["default", "mirrored"], "output": "/tmp/x",
        "runs": {"lm": ["language_model", "--data", "slice.txt", ...]}}'

Config keys:
    runs: `{name: [recipe module, flags...]}`; each run's output folder is
        `<output>/<name>-<strategy>`.
    strategies: `--strategy` values to run each recipe with, in order ("mirrored" adds
        `--cpu-devices 2`).
    output: the folder of the runs' folders.
    resume: continue each run in its folder (`--resume`) instead of starting it there.
"""

import importlib
import json
import pathlib
import sys

import zoo


def main(config):
    if "mirrored" in config["strategies"]:
        zoo.distribute.split_cpu(2)  # before any run: TensorFlow splits its devices once
    output = pathlib.Path(config["output"])
    for name, (recipe, *flags) in config["runs"].items():
        module = importlib.import_module(f"recipes.{recipe}")
        for strategy in config["strategies"]:
            devices = ["--cpu-devices", "2"] if strategy == "mirrored" else []
            run_dir = output / f"{name}-{strategy}"
            place = ["--resume" if config.get("resume") else "--output-dir", str(run_dir)]
            module.main([*flags, "--strategy", strategy, *devices, *place])
            print(f"finished {name} with --strategy {strategy}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    zoo.distribute.run_worker(main, json.loads(sys.argv[1]))
