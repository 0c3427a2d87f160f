"""Two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy from TF_CONFIG) against one
process with the same global batches: the same per-epoch losses and final weights; Keras's own
code still failing across workers without zoo.compat; a killed worker stopping its peer with a
clear message, and the restarted cluster resuming from the last finished epoch.

Each process runs `distributed_job.py` under a timeout and is killed by its PID if it outlives it.
"""

import json
import os
import signal
import time

import distributed_runs
import pytest

pytestmark = pytest.mark.slow


def test_two_workers_train_as_one_process(tmp_path):
    """The stateful LSTM language model (each worker carries its own rows' state) and the masked
    GRU tagger whose last batch holds one example (1 and 0 rows on the workers), with global-norm
    clipping; first, each of the two multi-worker workarounds is switched off and Keras must
    still fail as zoo.compat says."""
    cluster_config = {"mode": "cluster", "models": ["lm", "tagger"], "output": str(tmp_path / "cluster")}
    single_config = {"mode": "single", "models": ["lm", "tagger"], "output": str(tmp_path / "single")}
    workers = distributed_runs.start_cluster({**cluster_config, "probe_keras": True}, tmp_path / "worker")
    single = distributed_runs.start(single_config, tmp_path / "single.log")
    logs = [tmp_path / "worker-0.log", tmp_path / "worker-1.log", tmp_path / "single.log"]
    with distributed_runs.killed_at_exit([*workers, single]):
        for process, log in zip([*workers, single], logs):
            status = distributed_runs.wait(process, log)
            assert status == 0, f"{log.name}: exit status {status}\n{distributed_runs.tail(log)}"

    reference = distributed_runs.results(single_config["output"])
    for rank in (0, 1):
        worker = distributed_runs.results(cluster_config["output"], rank)
        for model in ("lm", "tagger"):
            distributed_runs.assert_same_training(worker[model], reference[model])
        assert worker["lm"]["implementation_used"] == "['fused']"

    probe = distributed_runs.results(cluster_config["output"])["probe"]
    assert probe["_maybe_symbolic_build"] is not None and "PerReplica" in probe["_maybe_symbolic_build"], (
        "Keras's own _maybe_symbolic_build now builds across workers: zoo.compat's replacement may be "
        f"unneeded ({probe['_maybe_symbolic_build']})"
    )
    assert probe["reduce_per_replica"] is not None and (
        "Invalid reduction dimension 0 for input with 0 dimensions" in probe["reduce_per_replica"]
    ), (
        "Keras's own reduce_per_replica now reduces scalar logs across workers: zoo.compat's "
        f"replacement may be unneeded ({probe['reduce_per_replica']})"
    )


def test_killed_worker_stops_its_peer_and_the_cluster_resumes(tmp_path):
    """Both workers pause after epoch 2 (checkpointed); worker 1 is killed with SIGKILL; worker 0
    must exit with the peer-failure message; the restarted cluster resumes at epoch 2 and ends
    where an uninterrupted single process ends."""
    checkpoints = tmp_path / "checkpoints"
    job = {
        "mode": "cluster",
        "models": ["tagger"],
        "epochs": 4,
        "checkpoint": str(checkpoints),
        "output": str(tmp_path / "cluster"),
    }
    paused = {**job, "pause_after_epoch": 2, "go_file": str(tmp_path / "go")}
    single_config = {"mode": "single", "models": ["tagger"], "epochs": 4, "output": str(tmp_path / "single")}
    workers = distributed_runs.start_cluster(paused, tmp_path / "first")
    single = distributed_runs.start(single_config, tmp_path / "single.log")
    first_logs = [tmp_path / "first-0.log", tmp_path / "first-1.log"]
    with distributed_runs.killed_at_exit([*workers, single]):
        deadline = time.monotonic() + distributed_runs.TIMEOUT
        while not all("paused after epoch 2" in log.read_text(errors="replace") for log in first_logs):
            assert all(process.poll() is None for process in workers), distributed_runs.tail(first_logs[0])
            assert time.monotonic() < deadline, "the workers never reached the end of epoch 2"
            time.sleep(0.5)
        assert json.loads((checkpoints / "state.json").read_text())["epoch"] == 2
        os.kill(workers[1].pid, signal.SIGKILL)
        workers[1].wait()
        (tmp_path / "go").touch()
        # Bounded: the peer timeout of distributed_job.py is 10 s; a hang would exceed this.
        status = distributed_runs.wait(workers[0], first_logs[0], timeout=300)
        log = distributed_runs.tail(first_logs[0])
        assert status == 3, f"exit status {status}\n{log}"
        assert "error: worker 0 of 2 workers: peer worker 1 died or stopped responding" in log
        assert "Restart every worker with the same TF_CONFIG to resume" in log
        assert distributed_runs.wait(single, tmp_path / "single.log") == 0

    # Only the chief wrote the checkpoint folder, which both workers' processes saw.
    assert sorted(path.name for path in checkpoints.iterdir()) == ["epoch-0002.weights.h5", "state.json"]
    workers = distributed_runs.start_cluster(job, tmp_path / "resumed")
    with distributed_runs.killed_at_exit(workers):
        for index, process in enumerate(workers):
            log = tmp_path / f"resumed-{index}.log"
            assert distributed_runs.wait(process, log) == 0, distributed_runs.tail(log)
            assert "starting at epoch 2" in log.read_text()
    reference = distributed_runs.results(single_config["output"])["tagger"]
    for rank in (0, 1):
        resumed = distributed_runs.results(job["output"], rank)["tagger"]
        assert resumed["initial_epoch"] == 2
        distributed_runs.assert_same_training(
            {"losses": resumed["losses"], "weights": resumed["weights"]},
            {"losses": reference["losses"][2:], "weights": reference["weights"]},
        )
    state = json.loads((checkpoints / "state.json").read_text())
    assert state["epoch"] == 4 and [entry["epoch"] for entry in state["history"]] == [1, 2, 3, 4]
