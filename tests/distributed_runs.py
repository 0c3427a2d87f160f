"""Runs `distributed_job.py` (or `distributed_recipes.py`) processes for the distributed tests: one
process, or a cluster of workers on 127.0.0.1 with free ports, each under a timeout and killed by its
PID if it outlives it."""

import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys

import numpy as np

JOB = pathlib.Path(__file__).with_name("distributed_job.py")
RECIPES = pathlib.Path(__file__).with_name("distributed_recipes.py")
REPO = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 900  # seconds a process may run; generous, as the machine may be busy


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(ports, index):
    return json.dumps(
        {
            "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
            "task": {"type": "worker", "index": index},
        }
    )


def start(config, log, tf_config_value=None, script=JOB):
    """Starts one process of `script` (in the repository's folder); its stdout and stderr go to `log`."""
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if tf_config_value is not None:
        env["TF_CONFIG"] = tf_config_value
    with open(log, "w") as output:
        return subprocess.Popen(
            [sys.executable, str(script), json.dumps(config)],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def start_cluster(config, log_prefix, workers=2, script=JOB):
    ports = free_ports(workers)
    return [
        start(config, f"{log_prefix}-{index}.log", tf_config(ports, index), script)
        for index in range(workers)
    ]


@contextlib.contextmanager
def killed_at_exit(processes):
    """Yields; then kills (SIGKILL, by PID) each of `processes` still running."""
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()


def wait(process, log, timeout=TIMEOUT):
    """Waits for `process` to end and returns its exit status; fails with its log if it does not
    end within `timeout` seconds."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"process {process.pid} still running after {timeout} s:\n{tail(log)}") from None


def tail(log, lines=40):
    text = pathlib.Path(log).read_text(errors="replace").splitlines()
    noise = ("WARNING: All log", "I0000", "E0000", "W0000", "To enable the following")
    return "\n".join(line for line in text if not line.startswith(noise))[-6000:] or "(empty)"


def run(config, log):
    """Runs one process to its end; returns its results (rank 0)."""
    process = start(config, log)
    with killed_at_exit([process]):
        status = wait(process, log)
    assert status == 0, f"exit status {status}:\n{tail(log)}"
    return results(config["output"])


def results(output, rank=0):
    return json.loads((pathlib.Path(output) / f"result-{rank}.json").read_text())


def assert_same_training(got, want, rtol=1e-5):
    """Per-epoch losses within `rtol` of each other, and each final weight tensor within `rtol`
    relative to its norm (`|got - want| <= rtol |want|`: Adam's normalised steps make single
    near-zero entries differ more, relatively, than the tensor does)."""
    np.testing.assert_allclose(got["losses"], want["losses"], rtol=rtol)
    assert len(got["weights"]) == len(want["weights"])
    for index, (got_weight, want_weight) in enumerate(zip(got["weights"], want["weights"])):
        got_weight, want_weight = np.array(got_weight), np.array(want_weight)
        assert got_weight.shape == want_weight.shape
        error = np.linalg.norm(got_weight - want_weight) / np.linalg.norm(want_weight)
        assert error <= rtol, f"weight {index} {want_weight.shape}: relative error {error:.3g} > {rtol}"


def largest_difference(got, want):
    """The largest relative difference of a per-epoch loss or a weight tensor (by its norm)."""
    losses = max(abs(a - b) / abs(b) for a, b in zip(got["losses"], want["losses"]))
    weights = max(
        float(np.linalg.norm(np.array(a) - np.array(b)) / np.linalg.norm(np.array(b)))
        for a, b in zip(got["weights"], want["weights"])
    )
    return max(losses, weights)


def recipe_results(run_dir):
    """A recipe run's per-epoch training and validation losses (`metrics.json`) and the model's
    variables in its last checkpoint."""
    import h5py

    run_dir = pathlib.Path(run_dir)
    epochs = json.loads((run_dir / "metrics.json").read_text())["epochs"]
    state = json.loads((run_dir / "checkpoints" / "state.json").read_text())
    weights = []

    def keep(name, item):
        if isinstance(item, h5py.Dataset) and not name.startswith("optimizer"):
            weights.append(item[()].tolist())

    with h5py.File(run_dir / "checkpoints" / state["weights"], "r") as file:
        file.visititems(keep)
    losses = [entry[key] for entry in epochs for key in ("loss", "val_loss") if key in entry]
    return {"losses": losses, "weights": weights}
