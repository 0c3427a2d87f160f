"""zoo.distribute and zoo.compat on one process: TF_CONFIG validation, where workers write, how
batches are split over replicas, carried states, and MirroredStrategy over 2 logical CPUs against
one device (in a process of its own, which can split its CPU)."""

import json

import distributed_runs
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.distribute import Cluster, ClusterConfigError, parse_tf_config

TWO_WORKERS = {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}


def config(cluster=None, task=None, **extra):
    value = {"cluster": TWO_WORKERS if cluster is None else cluster, **extra}
    if task is not False:
        value["task"] = task or {"type": "worker", "index": 0}
    return json.dumps(value)


# --- TF_CONFIG -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (json.dumps({"task": {"type": "worker", "index": 0}}), "no 'cluster'"),
        (config(task=False), "no 'task'"),
        (config({"worker": ["127.0.0.1:2222"], "ps": ["127.0.0.1:2224"]}), r"jobs \['ps'\]"),
        (config({"worker": "127.0.0.1:2222"}), "non-empty list"),
        (config({"worker": []}), "non-empty list"),
        (config({"worker": ["127.0.0.1"]}), "must be 'host:port'"),
        (config({"worker": ["127.0.0.1:0"]}), "port in 1..65535"),
        (config({"worker": ["127.0.0.1:70000"]}), "port in 1..65535"),
        (config({"worker": ["127.0.0.1:http"]}), "port in 1..65535"),
        (config({"worker": [":2222"]}), "port in 1..65535"),
        (config({"worker": ["127.0.0.1:2222", "127.0.0.1:2222"]}), "both have the address"),
        (config({"chief": ["a:1", "b:1"], "worker": ["c:1"]}), "one chief"),
        (config(task={"type": "chief", "index": 0}), "task type 'chief' is not a job"),
        (config(task={"type": "worker", "index": 2}), r"index 2 is out of range.*indices 0\.\.1"),
        (config(task={"type": "worker", "index": -1}), "out of range"),
        (config(task={"type": "worker", "index": "0"}), "must be an integer"),
        (config(task={"type": "worker", "index": True}), "must be an integer"),
    ],
)
def test_malformed_tf_config_is_rejected_with_its_problem(text, message):
    with pytest.raises(ClusterConfigError, match=message):
        parse_tf_config(text)


def test_tf_config_names_the_chief_and_ranks():
    assert parse_tf_config("") is None and parse_tf_config("  ") is None
    workers = parse_tf_config(config(task={"type": "worker", "index": 1}))
    assert (workers.num_workers, workers.is_chief, workers.rank) == (2, False, 1)
    assert parse_tf_config(config()).is_chief  # worker 0 without a chief job
    with_chief = {"chief": ["10.0.0.1:5000"], "worker": ["10.0.0.2:5000", "10.0.0.3:5000"]}
    chief = parse_tf_config(config(with_chief, {"type": "chief", "index": 0}))
    worker0 = parse_tf_config(config(with_chief, {"type": "worker", "index": 0}))
    assert (chief.is_chief, chief.rank, worker0.is_chief, worker0.rank) == (True, 0, False, 1)


def test_strategy_from_env_reads_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert zoo.distribute.strategy_from_env() is tf.distribute.get_strategy()
    monkeypatch.setenv("TF_CONFIG", config(task={"type": "worker", "index": 5}))
    with pytest.raises(ClusterConfigError, match="out of range"):
        zoo.distribute.strategy_from_env()


# --- Where workers write ---------------------------------------------------------------------


def test_chief_writes_the_output_folder_and_other_workers_private_ones(tmp_path, monkeypatch):
    output = tmp_path / "run" / "checkpoints"
    assert zoo.distribute.worker_dir(output) == output and output.is_dir()  # one process: the chief
    worker1 = Cluster(jobs=TWO_WORKERS, task_type="worker", task_index=1)
    monkeypatch.setattr(zoo.distribute, "cluster_of", lambda strategy=None: worker1)
    private = zoo.distribute.worker_dir(output)
    assert private.is_dir() and tmp_path not in private.parents
    assert "zoo-worker-1-" in str(private) and private.parts[-2:] == ("run", "checkpoints")
    assert zoo.distribute.worker_dir(output) == private  # the same folder for the whole process
    assert zoo.distribute.worker_dir(tmp_path / "logs") == private.parent.parent / "logs"


def test_peer_failures_are_described_in_one_line():
    cluster = Cluster(jobs=TWO_WORKERS, task_type="worker", task_index=0)
    error = tf.errors.UnavailableError(
        None,
        None,
        "Collective ops is aborted by: Error reported from /job:worker/task:1: The following tasks "
        "are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1\nThe tasks have crashed.",
    )
    failure = zoo.distribute.describe_peer_failure(error, cluster)
    assert str(failure).startswith("worker 0 of 2 workers: peer worker 1 died or stopped responding")
    assert "\n" not in str(failure) and "resume" in str(failure)
    assert zoo.distribute.describe_peer_failure(ValueError("bad shape"), cluster) is None


# --- Input -----------------------------------------------------------------------------------


def batches_of(rows_per_batch, time=3):
    start = 0
    batches = []
    for rows in rows_per_batch:
        batches.append(np.arange(start, start + rows * time).reshape(rows, time))
        start += rows * time
    return tf.data.Dataset.from_generator(
        lambda: iter(batches), output_signature=tf.TensorSpec([None, time], tf.int64)
    )


def first_column(dataset):
    return [element[:, 0].numpy().tolist() if element.shape[0] else [] for element in dataset]


def test_each_pipeline_keeps_its_replicas_rows_in_order():
    dataset = batches_of([4, 4, 3, 1])
    worker = [
        first_column(zoo.distribute.replica_rows(dataset, tf.distribute.InputContext(2, pipeline, 2)))
        for pipeline in (0, 1)
    ]
    assert worker[0] == [[0, 3], [12, 15], [24, 27], [33]]
    assert worker[1] == [[6, 9], [18, 21], [30], []]
    # One pipeline with two replicas: replica 0's rows, then replica 1's, for every batch.
    local = zoo.distribute.replica_rows(dataset, tf.distribute.InputContext(1, 0, 2))
    assert first_column(local) == [[0, 3], [6, 9], [12, 15], [18, 21], [24, 27], [30], [33], []]
    empty = list(zoo.distribute.replica_rows(dataset, tf.distribute.InputContext(2, 1, 2)))[-1]
    assert empty.shape == (0, 3)  # an empty slice keeps the batch's other dimensions


def test_replica_rows_of_nested_batches():
    dataset = tf.data.Dataset.from_tensors((tf.reshape(tf.range(6), [3, 2]), tf.range(3)))
    x, y = next(iter(zoo.distribute.replica_rows(dataset, tf.distribute.InputContext(2, 1, 2))))
    assert x.numpy().tolist() == [[4, 5]] and y.numpy().tolist() == [2]


def test_default_strategy_gets_the_global_batches_as_they_are():
    dataset = batches_of([2])
    assert zoo.distribute.distribute_batches(tf.distribute.get_strategy(), lambda: dataset) is dataset


# --- Carried state ---------------------------------------------------------------------------


def test_stateful_layer_rejects_a_batch_of_another_size_until_reset():
    layer = zoo.layers.GRU(3, stateful=True)
    layer(np.ones((2, 4, 5), "float32"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="carries the state of a batch of another size"):
        layer(np.ones((3, 4, 5), "float32"))
    layer.reset_state()
    assert layer(np.ones((3, 4, 5), "float32")).shape == (3, 3)


def test_stateful_layer_in_a_function_carries_its_state():
    layer = zoo.layers.LSTM(3, stateful=True, return_sequences=True)
    twin = zoo.layers.LSTM(3, return_sequences=True, return_state=True)
    x = np.random.default_rng(0).normal(size=(2, 4, 5)).astype("float32")
    layer(x)
    twin(x)
    twin.set_weights(layer.get_weights())
    layer.reset_state()
    step = tf.function(layer)
    step(x)
    _, h, c = twin(x)
    np.testing.assert_allclose(
        step(x).numpy(), twin(x, initial_state=[h, c])[0].numpy(), rtol=1e-5, atol=1e-6
    )


# --- zoo.compat ------------------------------------------------------------------------------


def test_distribution_fixes_are_installed_and_can_be_switched_off_by_name():
    from keras.src.backend.tensorflow import trainer

    assert zoo.compat.install_distribution_fixes() and zoo.compat.distribution_fixes_installed()
    replaced = trainer.reduce_per_replica
    with zoo.compat.keras_original("reduce_per_replica"):
        assert trainer.reduce_per_replica is not replaced
    assert trainer.reduce_per_replica is replaced
    with pytest.raises(ValueError, match="no installed replacement"):
        with zoo.compat.keras_original("fit"):
            pass


# --- MirroredStrategy over 2 logical CPUs against one device ---------------------------------

CLIPPING = ["_clip_gradients", "_all_reduce_sum_gradients"]
LOSS_WEIGHING = ["reduce_weighted_values", "unscale_loss_for_distribution"]


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    output = tmp_path_factory.mktemp("mirrored")
    job = {
        "mode": "mirrored",
        "models": ["lm", "tagger"],
        "output": str(output),
        "without": {"lm": {"clipping": CLIPPING}, "tagger": {"loss-weighing": LOSS_WEIGHING}},
    }
    return distributed_runs.run(job, output / "mirrored.log")


@pytest.mark.parametrize("model", ["lm", "tagger"])
def test_two_mirrored_replicas_train_as_one_device(mirrored, model):
    """The stateful LSTM language model on sequential batches, and the masked GRU tagger whose last
    batch holds one example (1 and 0 rows on the replicas), both with global-norm clipping."""
    distributed_runs.assert_same_training(mirrored[model], mirrored[f"{model}-reference"])
    if model == "lm":
        assert mirrored[model]["implementation_used"] == "['fused']"


@pytest.mark.parametrize("model, label", [("lm", "clipping"), ("tagger", "loss-weighing")])
def test_keras_alone_still_trains_another_model_on_two_replicas(mirrored, model, label):
    """Fails when Keras stops clipping per replica or weighing losses per replica: then the
    zoo.compat replacements switched off here may no longer be needed."""
    difference = distributed_runs.largest_difference(
        mirrored[f"{model}-without-{label}"], mirrored[f"{model}-reference"]
    )
    assert difference > 1e-3, (
        f"with Keras's own {label}, 2 replicas now train the {model} as one device does (largest "
        f"difference {difference:.2g}): check whether zoo.compat's replacements of "
        f"{', '.join(CLIPPING if label == 'clipping' else LOSS_WEIGHING)} are still needed"
    )
