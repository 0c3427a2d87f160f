"""Two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy from TF_CONFIG) against one
process with the same global batches.

One scenario (a module fixture, to start as few processes as possible), checked by the tests below:
1. A 2-worker cluster first switches off each of zoo.compat's multi-worker workarounds in turn and
   records how Keras fails; then trains the stateful LSTM language model (each worker carrying its
   own rows' state); then the masked GRU tagger whose last batch holds one example (1 and 0 rows on
   the workers), checkpointing every epoch, and pauses after epoch 2.
   Meanwhile one process trains the same two models.
2. Worker 1 is killed with SIGKILL; worker 0 must exit with the peer-failure message.
3. The cluster is started again and resumes the tagger after epoch 2.

The recipes (`recipe_runs`): the language model (sequential and random batching) and the tagger,
each trained by one process, by `--strategy mirrored --cpu-devices 2` and by a 2-worker cluster
(`--strategy multi-worker`), with odd global batches (uneven splits over the replicas) and the
default clipping, end alike. `killed_recipe`: a worker of the language model's cluster is killed
after a checkpoint; its peer stops, and the cluster started again with `--resume` finishes the run.

Each process runs `distributed_job.py` or `distributed_recipes.py` under a timeout and is killed by
its PID if it outlives it.
"""

import json
import os
import signal
import time

import conllu_slices
import distributed_runs
import pytest

pytestmark = pytest.mark.slow
EPOCHS = {"lm": 3, "tagger": 4}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multi_worker")
    checkpoints = folder / "checkpoints"
    cluster = {
        "mode": "cluster",
        "models": ["lm", "tagger"],
        "epochs": EPOCHS,
        "checkpoint": str(checkpoints),
        "output": str(folder / "cluster"),
    }
    first = {**cluster, "probe_keras": True, "pause_after_epoch": 2, "go_file": str(folder / "go")}
    single = {
        "mode": "single",
        "models": ["lm", "tagger"],
        "epochs": EPOCHS,
        "output": str(folder / "single"),
    }
    workers = distributed_runs.start_cluster(first, folder / "first")
    one_process = distributed_runs.start(single, folder / "single.log")
    first_logs = [folder / "first-0.log", folder / "first-1.log"]
    with distributed_runs.killed_at_exit([*workers, one_process]):
        deadline = time.monotonic() + distributed_runs.TIMEOUT
        while not all("paused after epoch 2" in log.read_text(errors="replace") for log in first_logs):
            for process, log in zip(workers, first_logs):
                assert process.poll() is None, f"{log.name} ended early:\n{distributed_runs.tail(log)}"
            assert time.monotonic() < deadline, "the workers never reached the end of epoch 2"
            time.sleep(0.5)
        first_results = [distributed_runs.results(cluster["output"], rank) for rank in (0, 1)]
        checkpoint_at_kill = json.loads((checkpoints / "state.json").read_text())["epoch"]
        os.kill(workers[1].pid, signal.SIGKILL)
        workers[1].wait()
        (folder / "go").touch()
        # Bounded: distributed_job.py's peer timeout is 10 s; a hang would outlast this.
        peer_status = distributed_runs.wait(workers[0], first_logs[0], timeout=300)
        peer_log = distributed_runs.tail(first_logs[0])
        status = distributed_runs.wait(one_process, folder / "single.log")
        assert status == 0, distributed_runs.tail(folder / "single.log")
    files_after_kill = sorted(path.name for path in checkpoints.iterdir())

    resumed_config = {**cluster, "models": ["tagger"]}
    workers = distributed_runs.start_cluster(resumed_config, folder / "resumed")
    resumed_logs = [folder / "resumed-0.log", folder / "resumed-1.log"]
    with distributed_runs.killed_at_exit(workers):
        for process, log in zip(workers, resumed_logs):
            status = distributed_runs.wait(process, log)
            assert status == 0, f"{log.name}: exit status {status}\n{distributed_runs.tail(log)}"
    return {
        "single": distributed_runs.results(single["output"]),
        "first": first_results,
        "checkpoint_at_kill": checkpoint_at_kill,
        "files_after_kill": files_after_kill,
        "peer_status": peer_status,
        "peer_log": peer_log,
        "resumed": [distributed_runs.results(cluster["output"], rank) for rank in (0, 1)],
        "resumed_logs": [log.read_text(errors="replace") for log in resumed_logs],
        "final_state": json.loads((checkpoints / "state.json").read_text()),
    }


@pytest.mark.parametrize("rank", [0, 1])
def test_two_workers_train_the_language_model_as_one_process(scenario, rank):
    worker = scenario["first"][rank]["lm"]
    distributed_runs.assert_same_training(worker, scenario["single"]["lm"])
    assert worker["implementation_used"] == "['fused']"


def test_keras_alone_still_fails_across_workers(scenario):
    """Fails when Keras fixes a multi-worker problem: the zoo.compat replacement may then go."""
    probe = scenario["first"][0]["probe"]
    build, reduce = probe["_maybe_symbolic_build"], probe["reduce_per_replica"]
    assert build is not None and "PerReplica" in build and "unsupported type" in build, (
        f"Keras's own _maybe_symbolic_build now builds across workers: zoo.compat's replacement may be "
        f"unneeded ({build})"
    )
    assert reduce is not None and "Invalid reduction dimension 0 for input with 0 dimensions" in reduce, (
        f"Keras's own reduce_per_replica now reduces scalar logs across workers: zoo.compat's replacement "
        f"may be unneeded ({reduce})"
    )


def test_killed_worker_stops_its_peer_with_a_clear_message(scenario):
    assert scenario["checkpoint_at_kill"] == 2
    assert scenario["peer_status"] == 3, scenario["peer_log"]
    assert "error: worker 0 of 2 workers: peer worker 1 died or stopped responding" in scenario["peer_log"]
    assert "Restart every worker with the same TF_CONFIG to resume" in scenario["peer_log"]


def test_only_the_chief_writes_the_checkpoint_folder(scenario):
    assert scenario["files_after_kill"] == ["epoch-0002.weights.h5", "state.json"]


@pytest.mark.parametrize("rank", [0, 1])
def test_restarted_cluster_resumes_after_the_last_finished_epoch(scenario, rank):
    """The tagger resumed after epoch 2 ends where one uninterrupted process ends."""
    assert "starting at epoch 2" in scenario["resumed_logs"][rank]
    resumed, reference = scenario["resumed"][rank]["tagger"], scenario["single"]["tagger"]
    assert resumed["initial_epoch"] == 2
    distributed_runs.assert_same_training(
        resumed, {"losses": reference["losses"][2:], "weights": reference["weights"]}
    )
    state = scenario["final_state"]
    assert state["epoch"] == 4 and [entry["epoch"] for entry in state["history"]] == [1, 2, 3, 4]
    losses = [entry["loss"] for entry in state["history"]]
    distributed_runs.assert_same_training(
        {"losses": losses, "weights": []}, {"losses": reference["losses"], "weights": []}
    )


# --- The recipes -------------------------------------------------------------------------------

LM_FLAGS = ["--layers", "1", "--units", "16", "--embedding-dim", "8", "--dropout", "0"]
LM_FLAGS += ["--epochs", "2", "--batch-size", "15", "--num-steps", "16", "--sample-tokens", "4"]
TAGGER_FLAGS = ["--output", "softmax", "--ensemble", "1", "--dropout", "0", "--epochs", "2"]
TAGGER_FLAGS += ["--batch-size", "15", "--embedding-dim", "8", "--units", "8", "--num-layers", "1"]
TAGGER_FLAGS += ["--char-embedding-dim", "4", "--char-filters", "4"]
RECIPE_RUNS = ("lm-sequential", "lm-random", "tagger")
KILLED_RUN_EPOCHS = 4


@pytest.fixture(scope="module")
def recipe_runs(tmp_path_factory, data_file):
    folder = tmp_path_factory.mktemp("recipes")
    book = folder / "book.txt"
    book.write_text(data_file("timemachine/timemachine.txt").read_text()[:6_000])
    ud = "ud_english_ewt/en_ewt-ud-{}.conllu"
    train = conllu_slices.first_sentences(data_file(ud.format("train.subset")), folder / "train.conllu", 61)
    dev = conllu_slices.first_sentences(data_file(ud.format("dev")), folder / "dev.conllu", 20, train)
    runs = {
        "lm-sequential": ["language_model", "--data", str(book), "--batching", "sequential", *LM_FLAGS],
        "lm-random": ["language_model", "--data", str(book), "--batching", "random", *LM_FLAGS],
        # The default word dropout stays on: its draws must not depend on the process or thread order.
        "tagger": ["tagging", "--data", str(train), "--dev", str(dev), *TAGGER_FLAGS],
    }
    script = distributed_runs.RECIPES
    one_machine = {"runs": runs, "strategies": ["default", "mirrored"], "output": str(folder)}
    cluster = {"runs": runs, "strategies": ["multi-worker"], "output": str(folder)}
    processes = [distributed_runs.start(one_machine, folder / "one-machine.log", script=script)]
    processes += distributed_runs.start_cluster(cluster, folder / "cluster", script=script)
    logs = [folder / "one-machine.log", folder / "cluster-0.log", folder / "cluster-1.log"]
    with distributed_runs.killed_at_exit(processes):
        for process, log in zip(processes, logs):
            status = distributed_runs.wait(process, log)
            assert status == 0, f"{log.name}: exit status {status}\n{distributed_runs.tail(log)}"
    return {
        "folder": folder,
        "results": {
            (name, strategy): distributed_runs.recipe_results(folder / f"{name}-{strategy}")
            for name in RECIPE_RUNS
            for strategy in ("default", "mirrored", "multi-worker")
        },
        "worker_log": logs[2].read_text(errors="replace"),
    }


@pytest.mark.parametrize("strategy", ["mirrored", "multi-worker"])
@pytest.mark.parametrize("name", RECIPE_RUNS)
def test_recipe_trains_as_one_process(recipe_runs, name, strategy):
    results = recipe_runs["results"]
    distributed_runs.assert_same_training(results[name, strategy], results[name, "default"])


def test_only_the_chief_writes_the_recipes_output_folder(recipe_runs):
    for name in RECIPE_RUNS:
        run_dir = recipe_runs["folder"] / f"{name}-multi-worker"
        assert json.loads((run_dir / "config.json").read_text())["output_dir"] == str(run_dir)
        assert (run_dir / "model.keras").is_file() and (run_dir / "saved_model").is_dir()
        assert f"finished {name} with --strategy multi-worker" in recipe_runs["worker_log"]


@pytest.fixture(scope="module")
def killed_recipe(tmp_path_factory, data_file):
    folder = tmp_path_factory.mktemp("killed")
    book = folder / "book.txt"
    book.write_text(data_file("timemachine/timemachine.txt").read_text()[:6_000])
    flags = ["language_model", "--data", str(book), *LM_FLAGS, "--epochs", str(KILLED_RUN_EPOCHS)]
    config = {"runs": {"lm": flags}, "strategies": ["multi-worker"], "output": str(folder)}
    run_dir = folder / "lm-multi-worker"
    state = run_dir / "checkpoints" / "state.json"
    script = distributed_runs.RECIPES
    workers = distributed_runs.start_cluster(config, folder / "first", script=script)
    logs = [folder / "first-0.log", folder / "first-1.log"]
    with distributed_runs.killed_at_exit(workers):
        deadline = time.monotonic() + distributed_runs.TIMEOUT
        while not state.exists():
            for process, log in zip(workers, logs):
                assert process.poll() is None, f"{log.name} ended early:\n{distributed_runs.tail(log)}"
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.05)
        os.kill(workers[1].pid, signal.SIGKILL)
        workers[1].wait()
        peer_status = distributed_runs.wait(workers[0], logs[0], timeout=300)
    epoch_at_kill = json.loads(state.read_text())["epoch"]
    workers = distributed_runs.start_cluster({**config, "resume": True}, folder / "resumed", script=script)
    resumed_logs = [folder / "resumed-0.log", folder / "resumed-1.log"]
    with distributed_runs.killed_at_exit(workers):
        statuses = [distributed_runs.wait(process, log) for process, log in zip(workers, resumed_logs)]
    return {
        "peer_status": peer_status,
        "peer_log": distributed_runs.tail(logs[0]),
        "epoch_at_kill": epoch_at_kill,
        "statuses": statuses,
        "resumed_logs": [log.read_text(errors="replace") for log in resumed_logs],
        "resumed_tails": [distributed_runs.tail(log) for log in resumed_logs],
        "metrics": json.loads((run_dir / "metrics.json").read_text()),
    }


def test_recipe_worker_killed_stops_its_peer(killed_recipe):
    assert killed_recipe["peer_status"] == 3, killed_recipe["peer_log"]
    assert "peer worker 1 died or stopped responding" in killed_recipe["peer_log"]


def test_recipe_cluster_resumes_after_the_last_finished_epoch(killed_recipe):
    assert killed_recipe["statuses"] == [0, 0], killed_recipe["resumed_tails"]
    epoch = killed_recipe["epoch_at_kill"]
    assert 1 <= epoch < KILLED_RUN_EPOCHS
    for log in killed_recipe["resumed_logs"]:
        assert f"after epoch {epoch} of {KILLED_RUN_EPOCHS}" in log
    metrics = killed_recipe["metrics"]
    assert [entry["epoch"] for entry in metrics["epochs"]] == list(range(1, KILLED_RUN_EPOCHS + 1))
    assert metrics["final"]["epochs"] == KILLED_RUN_EPOCHS
