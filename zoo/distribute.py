"""Training on several devices and machines with `tf.distribute`, ending where one device ends.

The engine is TensorFlow's `MultiWorkerMirroredStrategy`, configured by the `TF_CONFIG` environment
variable that every worker gets (a cluster launcher sets it); on one machine `MirroredStrategy`
replicates over GPUs or logical CPU devices. Every worker runs the same program:

    strategy = zoo.distribute.strategy_from_env()       # one device when TF_CONFIG is unset
    with strategy.scope():
        model = keras.Sequential([..., zoo.layers.LSTM(256, return_sequences=True), ...])
        model.compile(keras.optimizers.Adam(1e-3, global_clipnorm=1.0), loss=...)
    train = zoo.distribute.distribute_batches(strategy, lambda: global_batches(seed=0))
    checkpoint = zoo.distribute.EpochCheckpoint(output_dir / "checkpoints", strategy)
    initial_epoch = checkpoint.restore(model)           # 0 on a fresh run
    model.fit(train, epochs=10, initial_epoch=initial_epoch, callbacks=[checkpoint])

With the zoo imported, `fit` under any strategy trains the model one device trains on the same
global batches (within float rounding), because `zoo.compat` fixes three things Keras 3.15 does
differently with several replicas: global-norm clipping clips the gradient summed over all
replicas; a loss is weighed by examples (or valid positions) over all replicas, so a final batch
that splits unevenly (1 example on 2 replicas) counts as on one device; and `fit` works across
workers at all. Stateful recurrent layers (`zoo.layers.*` with `stateful=True`, the language
model's sequential batches) carry each replica's own rows from batch to batch.

What each worker writes: the chief (task `chief`, or `worker` 0 without one) writes the real
output folder; every other worker writes to a private temporary folder of its own
(`worker_dir`), so two workers never write the same file even when the output folder is on a
shared filesystem. Every worker must still call the saving code (checkpoints, `model.save`):
saving reads variables that are synchronised across workers, which every worker takes part in.

A dead peer: the coordination service notices missing heartbeats within `peer_timeout` seconds and
fails every collective, so `fit` raises on the other workers instead of hanging; `run_worker`
turns that into a one-line message and a nonzero exit. Restart every worker with the same
`TF_CONFIG` and training continues from the last finished epoch (`EpochCheckpoint.restore`).
"""

import atexit
import dataclasses
import json
import os
import pathlib
import re
import shutil
import sys
import tempfile

import keras
import tensorflow as tf

from zoo import compat

TF_CONFIG = "TF_CONFIG"
# Jobs MultiWorkerMirroredStrategy trains with; a "chief" is a worker that also does the chief's writes.
_TRAINING_JOBS = ("chief", "worker")
# Default seconds: a peer that sends no heartbeat for this long is dead.
PEER_TIMEOUT = 30
# Default seconds one collective (a gradient all-reduce) may wait for its peers, the bound that
# holds when a peer hangs without dying. Generous: a worker may wait for a peer that traces a
# function or writes a checkpoint.
COLLECTIVE_TIMEOUT = 600
# Default seconds the workers wait for each other to join at start.
JOIN_TIMEOUT = 300

compat.install_distribution_fixes()


class ClusterConfigError(ValueError):
    """`TF_CONFIG` does not describe a cluster this worker can train in."""


class PeerFailure(RuntimeError):
    """A peer of this worker died or stopped responding, which ends training on every worker."""


# --- TF_CONFIG -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A validated `TF_CONFIG`: the training cluster and this worker's place in it.

    Attributes:
        jobs: `{"chief": [address], "worker": [address, ...]}` (only the jobs that are there).
        task_type: this worker's job, `"chief"` or `"worker"`.
        task_index: its index in that job.
    """

    jobs: dict
    task_type: str
    task_index: int

    @property
    def num_workers(self):
        return sum(len(addresses) for addresses in self.jobs.values())

    @property
    def is_chief(self):
        """The chief job's task, or worker 0 when there is no chief job."""
        return self.task_type == "chief" or ("chief" not in self.jobs and self.task_index == 0)

    @property
    def rank(self):
        """This worker's number in 0..num_workers-1, the chief first."""
        return self.task_index + (len(self.jobs.get("chief", ())) if self.task_type == "worker" else 0)

    @property
    def name(self):
        return f"{self.task_type} {self.task_index}"


def parse_tf_config(text=None):
    """Reads and validates `TF_CONFIG` (or `text`).

    Args:
        text: the JSON to read; None reads the `TF_CONFIG` environment variable.

    Returns:
        A `Cluster`, or None when there is no `TF_CONFIG` (one process).

    Raises:
        ClusterConfigError: naming what is wrong: not JSON, no `cluster` or `task`, a job other
            than `chief`/`worker`, more than one chief, an address that is not `host:port` with a
            port in 1..65535, an address used twice, a task type not in the cluster, an index out
            of range.

    Example: two workers on one machine (the second gets `"index": 1`):

        TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:12345", "127.0.0.1:12346"]},
                    "task": {"type": "worker", "index": 0}}'
    """
    if text is None:
        text = os.environ.get(TF_CONFIG, "")
    if not text.strip():
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ClusterConfigError(f"{TF_CONFIG} is not valid JSON ({error}): {text!r}") from None
    if not isinstance(config, dict):
        raise ClusterConfigError(f"{TF_CONFIG} must be a JSON object with 'cluster' and 'task'; got {text!r}")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise ClusterConfigError(f"{TF_CONFIG} has no 'cluster' object naming the workers' addresses")
    if not isinstance(task, dict):
        raise ClusterConfigError(
            f"{TF_CONFIG} has no 'task' object saying which worker this is, e.g. "
            '"task": {"type": "worker", "index": 0}'
        )
    other_jobs = sorted(set(cluster) - set(_TRAINING_JOBS))
    if other_jobs:
        raise ClusterConfigError(
            f"{TF_CONFIG} names jobs {other_jobs}: MultiWorkerMirroredStrategy trains with 'chief' and "
            "'worker' jobs only (no parameter servers or evaluators)"
        )
    jobs = {}
    seen = {}
    for job in _TRAINING_JOBS:
        if job not in cluster:
            continue
        addresses = cluster[job]
        if isinstance(addresses, str) or not isinstance(addresses, list) or not addresses:
            raise ClusterConfigError(
                f"{TF_CONFIG}: cluster job {job!r} must be a non-empty list of 'host:port'"
            )
        for index, address in enumerate(addresses):
            _check_address(address, f"{job} {index}")
            if address in seen:
                raise ClusterConfigError(
                    f"{TF_CONFIG}: {job} {index} and {seen[address]} both have the address {address!r}"
                )
            seen[address] = f"{job} {index}"
        jobs[job] = list(addresses)
    if len(jobs.get("chief", ())) > 1:
        raise ClusterConfigError(
            f"{TF_CONFIG}: there can be one chief; the cluster names {len(jobs['chief'])}"
        )
    task_type, task_index = task.get("type"), task.get("index")
    if task_type not in jobs:
        raise ClusterConfigError(
            f"{TF_CONFIG}: task type {task_type!r} is not a job of the cluster ({', '.join(jobs)})"
        )
    if isinstance(task_index, bool) or not isinstance(task_index, int):
        raise ClusterConfigError(f"{TF_CONFIG}: task index must be an integer; got {task_index!r}")
    if not 0 <= task_index < len(jobs[task_type]):
        raise ClusterConfigError(
            f"{TF_CONFIG}: task index {task_index} is out of range: job {task_type!r} has "
            f"{len(jobs[task_type])} task(s), indices 0..{len(jobs[task_type]) - 1}"
        )
    return Cluster(jobs=jobs, task_type=task_type, task_index=task_index)


def _check_address(address, who):
    if not isinstance(address, str) or address.count(":") < 1:
        raise ClusterConfigError(f"{TF_CONFIG}: the address of {who} must be 'host:port'; got {address!r}")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ClusterConfigError(
            f"{TF_CONFIG}: the address of {who} must be 'host:port' with a port in 1..65535; got {address!r}"
        )


# --- Strategies ------------------------------------------------------------------------------


def strategy_from_env(
    peer_timeout=PEER_TIMEOUT, collective_timeout=COLLECTIVE_TIMEOUT, join_timeout=JOIN_TIMEOUT
):
    """The strategy `TF_CONFIG` asks for: `MultiWorkerMirroredStrategy` over its workers, or the
    default (one-device) strategy when it is unset.

    Call it first, before other TensorFlow work (TensorFlow configures the cluster once); later
    calls return the strategy the first one made.

    Args:
        peer_timeout: seconds without a heartbeat after which a worker counts as dead and every
            other worker's collectives fail.
        collective_timeout: seconds one collective may wait for its peers (a hung peer).
        join_timeout: seconds the workers wait for each other at start.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        ClusterConfigError: for a malformed `TF_CONFIG` (see `parse_tf_config`).
    """
    cluster = parse_tf_config()
    if cluster is None:
        return tf.distribute.get_strategy()
    if "strategy" in _worker:
        return _worker["strategy"]
    _warn_if_unchecked_keras()
    if cluster.num_workers > 1:
        compat.configure_coordination_service(
            tf.train.ClusterSpec(cluster.jobs),
            heartbeat_timeout=peer_timeout,
            register_timeout=join_timeout,
            shutdown_timeout=peer_timeout,
        )
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=collective_timeout
        )
    )
    _worker["strategy"] = strategy
    return strategy


def mirrored_strategy(cpu_devices=0):
    """`MirroredStrategy` over every GPU, or over `cpu_devices` logical CPU devices without GPUs
    (which makes several replicas testable on one CPU).

    One per process: later calls return the first one's strategy (two strategies over the same
    devices would number their collectives alike, and TensorFlow would mix them up).

    Args:
        cpu_devices: with no GPU, split the CPU into this many logical devices (0 or 1: one).
            Must run before TensorFlow initialises its devices.
    """
    if "mirrored" in _worker:
        return _worker["mirrored"]
    _warn_if_unchecked_keras()
    if tf.config.list_physical_devices("GPU"):
        _worker["mirrored"] = tf.distribute.MirroredStrategy()
    else:
        if cpu_devices > 1:
            split_cpu(cpu_devices)
        devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        _worker["mirrored"] = tf.distribute.MirroredStrategy(devices)
    return _worker["mirrored"]


def split_cpu(count):
    """Splits the CPU into `count` logical devices (before TensorFlow initialises its devices)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError as error:
        if len(tf.config.list_logical_devices("CPU")) != count:
            raise RuntimeError(
                f"cannot split the CPU into {count} devices: TensorFlow already initialised its devices "
                f"({error}); split it before any other TensorFlow work"
            ) from None


def _warn_if_unchecked_keras():
    if not compat.distribution_fixes_installed():
        print(
            f"warning: zoo.compat's fixes for distributed training were checked with Keras "
            f"{', '.join(compat.KERAS_VERSIONS_CHECKED)} and are off under Keras {keras.version()}: "
            "several replicas may clip, weigh losses and fail as Keras does",
            file=sys.stderr,
        )


# The strategies this process made: "strategy" by `strategy_from_env` (TensorFlow configures one
# cluster per process), "mirrored" by `mirrored_strategy`.
_worker = {}


def this_worker_strategy(strategy=None):
    """`strategy`; without one, the current strategy inside a scope, else the multi-worker strategy
    `strategy_from_env` made in this process (a worker program's own), else the default strategy."""
    if strategy is not None:
        return strategy
    if tf.distribute.has_strategy():
        return tf.distribute.get_strategy()
    return _worker.get("strategy") or tf.distribute.get_strategy()


def cluster_of(strategy=None):
    """The `Cluster` a multi-worker `strategy` trains in, or None (default: `this_worker_strategy()`,
    so outside any scope a worker program gets its own cluster)."""
    strategy = this_worker_strategy(strategy)
    if not compat.is_multi_worker(strategy):
        return None
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict()
    jobs = {job: list(spec[job]) for job in _TRAINING_JOBS if job in spec}
    return Cluster(jobs=jobs, task_type=resolver.task_type, task_index=int(resolver.task_id))


def is_chief(strategy=None):
    """Whether this worker writes the run's outputs: always in one process."""
    cluster = cluster_of(strategy)
    return cluster is None or cluster.is_chief


_scratch = {}


def worker_dir(directory, strategy=None):
    """Where this worker writes what belongs in `directory`, created if needed.

    The chief writes `directory` itself. Another worker writes to a private temporary folder
    (`tempfile.mkdtemp`, on its own machine's temporary space, removed when the process ends), so
    workers never write the same file, whether or not `directory` is on a shared filesystem.
    Call the saving code on every worker, each with its own `worker_dir`.
    """
    directory = pathlib.Path(directory)
    cluster = cluster_of(strategy)
    if cluster is None or cluster.is_chief or _is_private(directory):
        directory.mkdir(parents=True, exist_ok=True)
        return directory
    if "root" not in _scratch:
        root = pathlib.Path(tempfile.mkdtemp(prefix=f"zoo-{cluster.task_type}-{cluster.task_index}-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _scratch["root"] = root
    private = _scratch["root"] / directory.resolve().relative_to(directory.resolve().anchor)
    private.mkdir(parents=True, exist_ok=True)
    return private


def _is_private(directory):
    """Whether `directory` is in this worker's private folder already (a `worker_dir`'s subfolder)."""
    return "root" in _scratch and directory.resolve().is_relative_to(_scratch["root"].resolve())


# --- Input -----------------------------------------------------------------------------------


def distribute_batches(strategy, global_batches):
    """Distributes global batches over the replicas of `strategy`, each getting its own rows.

    Each global batch of `n` rows is split in order: replica r takes the r-th slice, the first
    `n % replicas` slices one row longer (a final batch of 1 row on 2 replicas: 1 and 0 rows; the
    loss still weighs every example as one device does). Replica r gets the same slice of every
    batch, so sequential (stateful) batches continue each replica's rows. Slices keep the batch's
    other dimensions (an empty slice of a padded `[1, 7]` batch is `[0, 7]`; TensorFlow's own
    rebatching can make it `[0, 0]`, which no recurrent layer can run).

    Every input pipeline (one per worker, `distribute_datasets_from_function`) builds the same
    global batches and keeps its replicas' rows, so `global_batches` must give every worker the
    same batches: seed its shuffles and random offsets with the same number on every worker.

    Args:
        strategy: a `tf.distribute.Strategy`.
        global_batches: `() -> tf.data.Dataset` of global batches (nested tensors whose first
            dimension is the batch).

    Returns:
        A dataset to pass to `fit`, `evaluate` or `predict` (the dataset itself under the default
        strategy).
    """
    if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
        return global_batches()
    distributed = strategy.distribute_datasets_from_function(
        lambda context: replica_rows(global_batches(), context)
    )
    if strategy.num_replicas_in_sync > _input_pipelines(strategy):
        # Several replicas per pipeline read several elements per step; Keras counts steps.
        compat.set_steps_of_distributed_dataset(distributed, int(global_batches().cardinality()))
    return distributed


def _input_pipelines(strategy):
    cluster = cluster_of(strategy)
    return cluster.num_workers if cluster else 1


def replica_rows(dataset, context):
    """The rows of each global batch of `dataset` that the replicas of one input pipeline train on.

    Args:
        dataset: global batches, the same on every worker.
        context: the `tf.distribute.InputContext` of the pipeline.

    Returns:
        For one replica per pipeline, a dataset of its slices (one per global batch); for several,
        their slices one after the other, as TensorFlow hands a pipeline's elements to its replicas.
    """
    replicas = context.num_replicas_in_sync
    local = replicas // context.num_input_pipelines
    first = context.input_pipeline_id * local

    def bounds(batch, replica):
        rows = tf.shape(tf.nest.flatten(batch)[0], out_type=tf.int64)[0]
        replica = tf.cast(replica, tf.int64)
        size, longer = rows // replicas, rows % replicas
        start = replica * size + tf.minimum(replica, longer)
        return start, start + size + tf.cast(replica < longer, tf.int64)

    def rows_of(batch, replica):
        start, end = bounds(batch, replica)
        return tf.nest.map_structure(lambda tensor: tensor[start:end], batch)

    def pack(*batch):
        return batch[0] if len(batch) == 1 else batch

    if local == 1:
        return dataset.map(lambda *batch: rows_of(pack(*batch), first))
    return dataset.flat_map(
        lambda *batch: tf.data.Dataset.range(first, first + local).map(
            lambda replica: rows_of(pack(*batch), replica)
        )
    )


# --- Checkpoints and resume ------------------------------------------------------------------


class EpochCheckpoint(keras.callbacks.Callback):
    """Checkpoints training after every epoch; `restore` resumes from the last finished one.

    Each epoch writes `epoch-<N>.weights.h5` (the model's and the optimizer's variables, its step
    count included) and then commits it by atomically replacing `state.json`, which names that
    file and holds the per-epoch history, so a run killed at any moment finds a consistent state.
    Every worker saves (see `worker_dir`): the chief into `directory`, the others into their private
    folders.

    Args:
        directory: the checkpoint folder (the chief's).
        strategy: the training strategy (default: the current one).

    Attributes:
        history: the per-epoch entries (`{"epoch": N, **logs}`, epochs counted from 1) of the run,
            resumed epochs included.

    Example:

    >>> checkpoint = EpochCheckpoint(run_dir / "checkpoints", strategy)
    >>> initial_epoch = checkpoint.restore(model)      # after compile, inside or outside the scope
    >>> model.fit(train, epochs=10, initial_epoch=initial_epoch, callbacks=[checkpoint])
    """

    STATE = "state.json"

    def __init__(self, directory, strategy=None):
        super().__init__()
        self.directory = pathlib.Path(directory)
        self.strategy = strategy or tf.distribute.get_strategy()
        self.history = []

    @classmethod
    def load_state(cls, directory):
        """The committed `{"epoch", "weights", "history"}` in `directory`, or None."""
        path = pathlib.Path(directory) / cls.STATE
        if not path.is_file():
            return None
        return json.loads(path.read_text())

    def restore(self, model):
        """Loads the last committed epoch into `model` (built and compiled) and returns the epoch to
        start from (0 when there is none). Call it on every worker, outside `strategy.scope()`.
        Across workers the chief loads its checkpoint and broadcasts the values, so the other
        workers need not see the chief's folder."""
        multi_worker = compat.is_multi_worker(self.strategy)
        if multi_worker and tf.distribute.has_strategy():
            raise RuntimeError("EpochCheckpoint.restore: call it outside strategy.scope()")
        chief = is_chief(self.strategy)
        state = self.load_state(self.directory) if chief else None
        state = broadcast_json(self.strategy, state)
        epoch = state["epoch"] if state else 0
        self.history = list(state["history"]) if state else []
        if not epoch:
            return 0
        with self.strategy.scope():
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
        if chief:
            # Outside the scope: Keras's load_weights creates variables of its own (a reference
            # optimizer), which under the scope would be broadcasts the other workers do not join.
            model.load_weights(self.directory / state["weights"])
        broadcast_variables(self.strategy, model.weights + model.optimizer.variables)
        return epoch

    def on_epoch_end(self, epoch, logs=None):
        directory = worker_dir(self.directory, self.strategy)
        weights = f"epoch-{epoch + 1:04d}.weights.h5"
        self.model.save_weights(directory / weights)
        self.history = [entry for entry in self.history if entry["epoch"] <= epoch]
        self.history.append({"epoch": epoch + 1, **_plain_numbers(logs or {})})
        write_json(directory / self.STATE, {"epoch": epoch + 1, "weights": weights, "history": self.history})
        for stale in directory.glob("epoch-*.weights.h5"):
            if stale.name != weights:
                stale.unlink()


def _broadcast_from_chief(strategy, values, chief):
    """The chief's `values` (tensors or variables) on every worker: sums in which only the chief
    contributes, one per dtype (integers summed as float64, exact below 2**53)."""
    dtypes = [tf.as_dtype(value.dtype) for value in values]
    sum_dtypes = [dtype if dtype.is_floating else tf.float64 for dtype in dtypes]
    groups = {}
    for index, dtype in enumerate(sum_dtypes):
        groups.setdefault(dtype, []).append(index)

    @tf.function
    def broadcast():
        def replica_fn():
            context = tf.distribute.get_replica_context()
            own = [tf.identity(tf.cast(value, dtype)) for value, dtype in zip(values, sum_dtypes)]
            own = [value if chief else tf.zeros_like(value) for value in own]
            result = [None] * len(own)
            for indices in groups.values():
                summed = context.all_reduce(tf.distribute.ReduceOp.SUM, [own[index] for index in indices])
                for index, value in zip(indices, summed):
                    result[index] = tf.cast(value, dtypes[index])
            return result

        return strategy.run(replica_fn)

    return [strategy.experimental_local_results(value)[0] for value in broadcast()]


def broadcast_variables(strategy, variables):
    """Gives `variables` the chief's values on every worker of a multi-worker `strategy` (after
    the chief alone loaded them from its files); does nothing otherwise. Call it on every worker,
    outside `strategy.scope()`."""
    if not compat.is_multi_worker(strategy):
        return
    chief = is_chief(strategy)
    for variable, value in zip(variables, _broadcast_from_chief(strategy, variables, chief)):
        variable.assign(value)


def broadcast_json(strategy, value):
    """The chief's `value` (anything `json.dumps` takes) on every worker of a multi-worker
    `strategy`, `value` itself otherwise: what the other workers cannot read themselves (the
    chief's files) or must decide as the chief does. Call it on every worker, outside
    `strategy.scope()`; the other workers' `value` is ignored."""
    if not compat.is_multi_worker(strategy):
        return value
    chief = is_chief(strategy)
    text = json.dumps(value).encode() if chief else b""
    length = int(_broadcast_from_chief(strategy, [tf.constant(len(text), tf.int64)], chief)[0])
    codes = tf.constant(list(text) if chief else [0] * length, tf.uint8, shape=[length])
    return json.loads(bytes(_broadcast_from_chief(strategy, [codes], chief)[0].numpy().tolist()).decode())


def write_json(path, value):
    """Writes JSON atomically: a reader, or a run killed mid-write, sees the old file or the new."""
    path = pathlib.Path(path)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(temporary, path)


def _plain_numbers(logs):
    plain = {}
    for key, value in logs.items():
        value = float(value)
        plain[key] = value if value == value and abs(value) != float("inf") else None
    return plain


# --- Failures --------------------------------------------------------------------------------

# What TensorFlow raises on the surviving workers when a peer dies or stops responding.
_PEER_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
    tf.errors.InternalError,
)


def describe_peer_failure(error, cluster=None):
    """A `PeerFailure` saying in one line which worker lost which peer and how to resume, when
    `error` is how TensorFlow reports a dead or unresponsive peer; else None.

    Args:
        error: the exception `fit` (or any collective) raised.
        cluster: this worker's `Cluster` (default: from `TF_CONFIG`).
    """
    if not isinstance(error, _PEER_ERRORS):
        return None
    if cluster is None:
        try:
            cluster = parse_tf_config()
        except ClusterConfigError:
            cluster = None
    who = f"{cluster.name} of {cluster.num_workers} workers" if cluster else "this worker"
    message = str(error)
    peers = sorted(set(re.findall(r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)", message)))
    own = (cluster.task_type, str(cluster.task_index)) if cluster else None
    peers = [f"{job} {index}" for job, index in peers if (job, index) != own]
    lost = f"peer {', '.join(peers)}" if peers else "a peer"
    return PeerFailure(
        f"{who}: {lost} died or stopped responding, so training stopped ({type(error).__name__}). "
        "Restart every worker with the same TF_CONFIG to resume from the last finished epoch"
    )


def run_worker(main, *args, **kwargs):
    """Runs `main(*args, **kwargs)` as a worker program should: when a peer dies, prints one line
    saying so on stderr and ends the process with status 3 at once, skipping the exit-time shutdown
    of TensorFlow's coordination service, which waits for every peer; other errors propagate.

    Returns:
        What `main` returns.
    """
    try:
        return main(*args, **kwargs)
    except Exception as error:
        failure = describe_peer_failure(error)
        if failure is None:
            raise
        print(f"error: {failure}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(3)
