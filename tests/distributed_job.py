"""One training process of the distributed tests: one device, `MirroredStrategy` over logical CPUs,
or one worker of a `TF_CONFIG` cluster. Not a test itself: `test_distribute.py` and
`test_multi_worker.py` run it.

    python tests/distributed_job.py '{"mode": "single", "models": ["lm"], "output": "/tmp/x"}'

Config keys:
    mode: "single" (default strategy), "mirrored" (2 logical CPUs, and the one-device reference in
        the same process first, unless "reference": false) or "cluster" (TF_CONFIG).
    models: which models to train: "lm" (a stateful LSTM language model on sequential batches) and
        "tagger" (a masked GRU tagger whose last batch holds one example).
    output: folder for `result-<name>-<rank>.json` (per-epoch losses, final weights).
    epochs: epochs per model (default 3), or `{model: epochs}`.
    without: `{model: {label: [zoo.compat replacement, ...]}}`: also train `model` with those
        replacements switched off (Keras's own code), as `<model>-without-<label>` (mode mirrored).
    probe_keras: in a cluster, first check that Keras's own code still fails across workers.
    checkpoint: a checkpoint folder: the tagger resumes from it and checkpoints every epoch.
    pause_after_epoch, go_file: after that epoch's checkpoint, wait until `go_file` exists.
"""

import json
import pathlib
import sys
import time

import keras
import numpy as np
import tensorflow as tf

import zoo

TEXT = (
    "the time traveller for so it will be convenient to speak of him was expounding a recondite "
    "matter to us his grey eyes shone and twinkled and his usually pale face was flushed and animated "
)
LM_BATCH, LM_STEPS, TAGGER_BATCH = 8, 10, 4


def lm_ids():
    alphabet = sorted(set(TEXT))
    return np.array([alphabet.index(char) for char in TEXT * 5], np.int32), len(alphabet)


def lm_batches():
    ids, _ = lm_ids()
    count = ((len(ids) - LM_STEPS) // LM_BATCH) // LM_STEPS
    batches = zoo.text.sequential_partition_batches(ids, LM_BATCH, LM_STEPS, seed=7)
    return batches.take(count).apply(tf.data.experimental.assert_cardinality(count))


def build_lm():
    _, vocab_size = lm_ids()
    model = zoo.LanguageModel(vocab_size, "lstm", units=16, embedding_dim=8, stateful=True)
    model.compile(
        keras.optimizers.Adam(0.01, global_clipnorm=0.1),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def tagger_batches():
    """13 sentences of 3..9 tokens (0 is padding): batches of 4, 4, 4 and 1."""
    rng = np.random.default_rng(3)
    lengths = rng.integers(3, 10, size=13)
    sentences = [rng.integers(1, 20, size=length) for length in lengths]
    tokens = tf.ragged.constant(sentences, dtype=tf.int32)
    dataset = tf.data.Dataset.from_tensor_slices((tokens, tokens % 5))
    return dataset.map(lambda x, y: (x, y)).padded_batch(TAGGER_BATCH)


def build_tagger():
    model = keras.Sequential(
        [
            keras.layers.Embedding(20, 8, mask_zero=True),
            zoo.layers.GRU(16, return_sequences=True),
            keras.layers.Dense(5),
        ]
    )
    model.compile(
        keras.optimizers.Adam(0.01, global_clipnorm=0.1),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


MODELS = {"lm": (build_lm, lm_batches), "tagger": (build_tagger, tagger_batches)}


class ResetCarriedState(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.model.reset_state()


class PauseAfterEpoch(keras.callbacks.Callback):
    """Holds every worker after an epoch until the test says go (it kills a worker meanwhile)."""

    def __init__(self, epoch, go_file):
        super().__init__()
        self.epoch, self.go_file = epoch, pathlib.Path(go_file)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            print(f"paused after epoch {epoch + 1}", flush=True)
            deadline = time.monotonic() + 300
            while not self.go_file.exists() and time.monotonic() < deadline:
                time.sleep(0.2)


def train(name, strategy, config):
    build, batches = MODELS[name]
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build()
        if name == "tagger" and config.get("checkpoint"):
            model.build((None, None))
    callbacks = [ResetCarriedState()] if name == "lm" else []
    initial_epoch = 0
    if name == "tagger" and config.get("checkpoint"):
        checkpoint = zoo.distribute.EpochCheckpoint(config["checkpoint"], strategy)
        initial_epoch = checkpoint.restore(model)
        print(f"starting at epoch {initial_epoch}", flush=True)
        callbacks.append(checkpoint)
        if config.get("pause_after_epoch"):
            callbacks.append(PauseAfterEpoch(config["pause_after_epoch"], config["go_file"]))
    history = model.fit(
        zoo.distribute.distribute_batches(strategy, batches),
        epochs=epochs if isinstance(epochs := config.get("epochs", 3), int) else epochs[name],
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=0,
    )
    return {
        "losses": [float(loss) for loss in history.history["loss"]],
        "weights": [weight.tolist() for weight in model.get_weights()],
        "initial_epoch": initial_epoch,
        "implementation_used": str(getattr(model, "implementation_used", None)),
    }


def probe_keras(strategy):
    """What Keras's own code does across workers, with each zoo.compat replacement switched off."""
    found = {}
    for name in ("_maybe_symbolic_build", "reduce_per_replica"):
        with zoo.compat.keras_original(name):
            try:
                train("tagger", strategy, {"epochs": 1})
                found[name] = None
            except Exception as error:  # noqa: BLE001 - reported to the test, which checks the message
                found[name] = f"{type(error).__name__}: {error}"[:2000]
    return found


def main(config):
    mode = config.get("mode", "single")
    output = pathlib.Path(config["output"])
    output.mkdir(parents=True, exist_ok=True)
    if mode == "cluster":
        strategy = zoo.distribute.strategy_from_env(peer_timeout=10, collective_timeout=120)
        rank = zoo.distribute.cluster_of(strategy).rank
    elif mode == "mirrored":
        zoo.distribute.split_cpu(2)
        rank = 0
        strategy = zoo.distribute.mirrored_strategy()
    else:
        strategy, rank = tf.distribute.get_strategy(), 0
    results = {}
    result_file = output / f"result-{rank}.json"
    if config.get("probe_keras"):
        results["probe"] = probe_keras(strategy)
    for name in config["models"]:
        if mode == "mirrored" and config.get("reference", True):
            results[f"{name}-reference"] = train(name, tf.distribute.get_strategy(), config)
        results[name] = train(name, strategy, config)
        for label, names in config.get("without", {}).get(name, {}).items():
            with zoo.compat.keras_original(*names):
                results[f"{name}-without-{label}"] = train(name, strategy, config)
        result_file.write_text(json.dumps(results))  # after each model: a later one may be killed
    print(f"done: {sorted(results)}", flush=True)


if __name__ == "__main__":
    zoo.distribute.run_worker(main, json.loads(sys.argv[1]))
