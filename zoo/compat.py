"""The zoo's one module for private Keras and TensorFlow internals.

Everything here reaches into `keras.src`, `tensorflow.python` or private attributes, names what it
touches and the versions it was checked against (Keras 3.15.1, TensorFlow 2.21.0,
`KERAS_VERSIONS_CHECKED`). Nothing else in the zoo imports those internals. `tests/test_compat.py`
checks that each one is still where and what this module expects, so a release that moves one fails
a test that names the entry to revisit. For the distributed-training replacements,
`tests/test_distribute.py` (2 replicas on one process) and `tests/test_multi_worker.py` (2 workers)
also run Keras with each switched off and check that it still fails or trains another model as
described.

Layers, metrics and export
--------------------------
- `DropoutRNNCell` (`keras/src/layers/rnn/dropout_rnn_cell.py`): Keras's RNN makes one dropout mask
  per sequence for cells that derive from it; the zoo's cells do.
- `autocast_disabled()` (`keras.src.backend.AutocastScope`): inside a mixed-precision layer's call,
  reads variables as stored (float32) rather than cast to the compute dtype.
- `cudnn_gru`, `cudnn_lstm` (`keras/src/backend/tensorflow/rnn.py: gru, lstm`): Keras's cuDNN
  sequence kernels; they raise `NotImplementedError` where cuDNN cannot run.
- `gradient_tape_may_record()` (`tensorflow.python.eager.record.could_possibly_record`).
- `keras_mask(tensor)` (`keras.src.backend.get_keras_mask`): the mask Keras attached to a layer's
  output.
- `in_save_context()` (`tensorflow.python.saved_model.save_context`): inside `tf.saved_model.save`.
- `install_export_tracing()`: Keras's `ExportArchive` (behind `model.export()` in every format)
  makes each endpoint's `tf.function` in `TFExportArchive._backend_add_endpoint` and may trace it
  before it opens a save context; the replacement makes the function trace inside
  `zoo.export.portable_graph()`.
- `flatten_layers`, `functional_graph`, `run_functional`: walking a model's layers and its
  functional graph (`Layer._flatten_layers`, `Sequential._functional`, `Functional`,
  `Functional._run_through_graph`), for the exporters.
- `litert_operators(flatbuffer)`: LiteRT's flatbuffer schema
  (`tensorflow.lite.python.schema_py_generated`), to list a converted model's operators.
- `sentencepiece_tokenizer(model_proto)` (tensorflow-text 2.21's
  `sentencepiece_tokenizer._SentencepieceModelResource`): a `SentencepieceTokenizer` whose model
  resource has a shared name, so that `tf.random.set_seed` does not delete it under the datasets and
  functions traced before (tensorflow-text makes it private to its kernel, and reseeding clears the
  eager kernel cache).
- `optimizer_variable_index(optimizer, variable)` (`BaseOptimizer._get_variable_index`): which of
  the optimizer's variables `update_step` was given (on TensorFlow, a `tf.Variable` or one replica's
  component of it), as Keras's own optimizers look up their slots.

Distributed training: `install_distribution_fixes()`
----------------------------------------------------
Keras 3.15's TensorFlow trainer fails across workers and, with several replicas, trains a
different model than one device does. `zoo.distribute` installs these replacements when it is
imported (only under the Keras versions in `KERAS_VERSIONS_CHECKED`). Each calls Keras's own code
unless its condition holds, so training on one device is untouched.

In `keras/src/backend/tensorflow/trainer.py`:

1. `TensorFlowTrainer._maybe_symbolic_build` pulls a batch and calls
   `strategy.reduce("MEAN", batch, axis=None)` on the whole nested batch of `PerReplica` values,
   which fails across workers (`ValueError: Attempt to convert a value (PerReplica:{...}) with an
   unsupported type`). The replacement builds from the distributed dataset's element spec (the
   first replica's shapes and dtypes), which is all `_symbolic_build` reads. It applies under
   every strategy (not only across workers): pulling a batch starts an iteration of the dataset,
   so a dataset that draws new randomness per iteration (the language model's random offsets)
   would see each epoch's draw one iteration later than on one device.
2. Under a multi-worker strategy only: `reduce_per_replica` reduces the logs with
   `strategy.reduce("MEAN", v, axis=0)`, and scalars fail with `Invalid reduction dimension 0 for
   input with 0 dimensions` (tensorflow#72388). The replacement uses `axis=None` (the element-wise mean over
   replicas, as Keras computes on one worker).

Under any strategy with several replicas, inside a replica:

3. `keras/src/losses/loss.py: reduce_weighted_values` divides each replica's loss by its own
   count of examples (or valid positions, or sample weight) and by the replica count, so a batch
   that splits unevenly (1 example on 2 replicas), or masks that leave replicas different numbers
   of valid positions, are weighed differently than on one device. The replacement divides each
   replica's sum by the count summed over all replicas (one scalar all-reduce): the replicas'
   losses then add up to the one-device loss.
4. `loss.py: unscale_loss_for_distribution` multiplies by the replica count for the loss metric;
   with 3 the replicas' losses add up to the batch's loss, so the replacement sums them over the
   replicas (one scalar all-reduce), and the metric averages over examples as on one device.
5. `keras/src/backend/tensorflow/optimizer.py: TFOptimizer` clips gradients (`clipnorm`,
   `global_clipnorm`, `clipvalue`) in `_clip_gradients` before `_all_reduce_sum_gradients` sums
   them, so each replica's gradient is clipped on its own. The replacements leave them unclipped
   there and clip the summed gradient instead, as one device would.

Distributed datasets: `set_steps_of_distributed_dataset`
-------------------------------------------------------
The step count Keras reads from a `distribute_datasets_from_function` dataset with several local
replicas (TensorFlow counts the pipeline's elements: one per replica and step).

Multi-worker failure detection: `configure_coordination_service`
-----------------------------------------------------------------
TensorFlow's `MultiWorkerMirroredStrategy` configures its coordination service (the heartbeats that
tell every worker a peer has died) with the defaults unless one is configured already; this
configures it first, with bounded heartbeat, registration and shutdown timeouts
(`tensorflow/python/eager/context.py: Context.configure_coordination_service`).
"""

import contextlib
import functools
import hashlib
import importlib

import keras
import tensorflow as tf
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell  # noqa: F401  (the zoo's cells derive from it)

KERAS_VERSIONS_CHECKED = ("3.15",)
_REDUCTIONS_BY_COUNT = ("sum_over_batch_size", "mean", "mean_with_sample_weight")

# What install_distribution_fixes() replaced: [(owner, attribute name, the owner's own value or None
# when it inherited it)].
_installed = []


def keras_version_checked():
    """Whether the installed Keras is one the workarounds were checked against."""
    return keras.version().startswith(tuple(version + "." for version in KERAS_VERSIONS_CHECKED))


def distribution_fixes_installed():
    return bool(_installed)


def install_distribution_fixes():
    """Installs the replacements listed in the module docstring (once; later calls do nothing).

    Returns:
        True when they are installed; False under a Keras version they were not checked against
        (Keras's own code then runs unchanged).
    """
    if _installed:
        return True
    if not keras_version_checked():
        return False
    from keras.src.backend.tensorflow import optimizer as tf_optimizer
    from keras.src.backend.tensorflow import trainer as tf_trainer
    from keras.src.losses import loss as loss_module

    replacements = [
        (tf_trainer.TensorFlowTrainer, "_maybe_symbolic_build", _maybe_symbolic_build),
        (tf_trainer, "reduce_per_replica", _reduce_per_replica),
        (loss_module, "reduce_weighted_values", _reduce_weighted_values),
        (loss_module, "unscale_loss_for_distribution", _unscale_loss_for_distribution),
        (tf_optimizer.TFOptimizer, "_clip_gradients", _clip_gradients),
        (tf_optimizer.TFOptimizer, "_all_reduce_sum_gradients", _all_reduce_sum_gradients),
    ]
    for owner, name, replacement in replacements:
        original = getattr(owner, name)
        _installed.append((owner, name, vars(owner).get(name)))
        setattr(owner, name, _calling_original(replacement, original))
    return True


@contextlib.contextmanager
def keras_original(*names):
    """Within this context, Keras's own versions of the named replacements run (e.g.
    `"reduce_per_replica"`): for tests that check Keras still behaves as described above."""
    restored = [entry for entry in _installed if entry[1] in names]
    unknown = set(names) - {entry[1] for entry in restored}
    if unknown:
        raise ValueError(f"no installed replacement is named {sorted(unknown)}")
    replacements = [(owner, name, getattr(owner, name)) for owner, name, _ in restored]
    for owner, name, own_value in restored:
        if own_value is None:
            delattr(owner, name)
        else:
            setattr(owner, name, own_value)
    try:
        yield
    finally:
        for owner, name, replacement in replacements:
            setattr(owner, name, replacement)


def uninstall_distribution_fixes():
    """Restores Keras's own functions (for tests that check Keras's behaviour without them)."""
    while _installed:
        owner, name, own_value = _installed.pop()
        if own_value is None:  # inherited: remove the override
            delattr(owner, name)
        else:
            setattr(owner, name, own_value)


def _calling_original(replacement, original):
    """`replacement` with Keras's `original` as its first argument (a function or a method)."""

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        return replacement(original, *args, **kwargs)

    return wrapper


def _replica_context_of_several():
    """The replica context when called inside one of several replicas, else None."""
    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return None
    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None


def is_multi_worker(strategy):
    """Whether `strategy` is a `MultiWorkerMirroredStrategy` spanning several workers."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and bool(
        strategy.extended._in_multi_worker_mode()
    )


# --- 1. Symbolic build -----------------------------------------------------------------------


def _first_replica_spec(spec):
    value_specs = getattr(spec, "_value_specs", None)  # PerReplicaSpec
    return value_specs[0] if value_specs else spec


def _maybe_symbolic_build(original, self, iterator=None, data_batch=None):
    distributed = getattr(iterator, "_distributed_dataset", None)
    if self._distribute_strategy is None or distributed is None:
        return original(self, iterator=iterator, data_batch=data_batch)
    # `_symbolic_build` reads only the shapes and dtypes of the batch.
    data_batch = tf.nest.map_structure(_first_replica_spec, distributed.element_spec)
    with self.distribute_strategy.scope():
        self._symbolic_build(data_batch=data_batch)


# --- 2. Logs across workers ------------------------------------------------------------------


def _reduce_per_replica(original, values, strategy, reduction):
    if reduction not in ("auto", "mean") or not is_multi_worker(strategy):
        return original(values, strategy, reduction)
    from keras.src import tree

    return tree.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)


# --- 3, 4. Losses weighed by examples over all replicas ---------------------------------------


def _reduce_weighted_values(
    original, values, sample_weight=None, mask=None, reduction="sum_over_batch_size", dtype=None
):
    from keras.src.losses import loss as loss_module

    replica = _replica_context_of_several()
    if replica is None or loss_module.standardize_reduction(reduction) not in _REDUCTIONS_BY_COUNT:
        return original(values, sample_weight, mask, reduction, dtype)
    values = keras.ops.convert_to_tensor(values, dtype=dtype)
    if tuple(values.shape) in ((), (0,)):  # Keras returns these as they are
        return original(values, sample_weight, mask, reduction, dtype)
    if sample_weight is not None:
        sample_weight = keras.ops.convert_to_tensor(sample_weight, dtype=dtype)
    if mask is not None:
        mask = keras.ops.convert_to_tensor(mask, dtype=dtype)
    # The mask as 0/1 weights ("sum" leaves it unscaled), merged with the sample weights.
    weights = loss_module.apply_mask(sample_weight, mask, dtype=values.dtype, reduction="sum")
    if weights is not None:
        weights = keras.ops.cast(weights, values.dtype)
        values, weights = loss_module.squeeze_or_expand_to_same_rank(values, weights)
        values = values * weights
    if reduction == "mean_with_sample_weight" and weights is not None:
        count = keras.ops.sum(weights)
    elif mask is not None:
        count = keras.ops.sum(keras.ops.cast(mask, values.dtype))
    else:
        count = keras.ops.cast(keras.ops.size(values), values.dtype)
    total_count = replica.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(tf.cast(count, "float32")))
    return keras.ops.divide_no_nan(keras.ops.sum(values), keras.ops.cast(total_count, values.dtype))


def _unscale_loss_for_distribution(original, value):
    replica = _replica_context_of_several()
    if replica is None:
        return original(value)
    return replica.all_reduce(tf.distribute.ReduceOp.SUM, tf.stop_gradient(value))


# --- 5. Clipping the summed gradient ---------------------------------------------------------


def _clips(optimizer):
    return any(
        (getattr(optimizer, name, None) or 0) > 0 for name in ("clipnorm", "global_clipnorm", "clipvalue")
    )


def _clip_gradients(original, self, grads):
    if _clips(self) and _replica_context_of_several() is not None:
        return grads  # clipped once summed, in _all_reduce_sum_gradients
    return original(self, grads)


def _all_reduce_sum_gradients(original, self, grads_and_vars):
    summed = original(self, grads_and_vars)
    if not (_clips(self) and _replica_context_of_several() is not None):
        return summed
    present = [index for index, (grad, _) in enumerate(summed) if grad is not None]
    from keras.src.optimizers.base_optimizer import BaseOptimizer

    clipped = BaseOptimizer._clip_gradients(self, [summed[index][0] for index in present])
    summed = list(summed)
    for index, grad in zip(present, clipped):
        summed[index] = (grad, summed[index][1])
    return summed


# --- Distributed datasets ---------------------------------------------------------------------


def set_steps_of_distributed_dataset(distributed, steps):
    """Makes the cardinality of a `distribute_datasets_from_function` dataset (what Keras reads as
    steps per epoch) `steps` (checked with TensorFlow 2.21).

    TensorFlow takes it from the input pipeline's dataset, whose elements its local replicas read
    one each per step: with several local replicas it counts elements, not steps, and Keras would
    expect more steps than an epoch has. `DistributedDatasetsFromFunction._cardinality` is otherwise
    read only to tell infinite and empty datasets apart, which `steps` does as well.
    """
    if not hasattr(distributed, "_cardinality"):
        raise TypeError(f"expected a DistributedDatasetsFromFunction, got {type(distributed).__name__}")
    distributed._cardinality = steps


# --- Coordination service --------------------------------------------------------------------


def configure_coordination_service(cluster_spec, heartbeat_timeout, register_timeout, shutdown_timeout):
    """Configures TensorFlow's coordination service for `MultiWorkerMirroredStrategy` with bounded
    timeouts (seconds), before the strategy configures it with TensorFlow's defaults.

    Args:
        cluster_spec: the cluster's `tf.train.ClusterSpec`.
        heartbeat_timeout: a worker that sends no heartbeat for this long is declared dead, and
            the collectives of every other worker fail.
        register_timeout: how long the leader waits for every worker to join at start.
        shutdown_timeout: how long a worker that ends waits for the others at exit.
    """
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    try:
        from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    except ImportError:
        from tsl.protobuf import coordination_config_pb2
    if context.context().coordination_service is not None:
        return
    jobs = [
        coordination_config_pb2.CoordinatedJob(name=job, num_tasks=cluster_spec.num_tasks(job))
        for job in ("chief", "worker")
        if job in cluster_spec.jobs
    ]
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=multi_worker_util.coordination_leader(cluster_spec),
        coordinated_jobs=jobs,
        heartbeat_timeout_in_ms=int(heartbeat_timeout * 1000),
        cluster_register_timeout_in_ms=int(register_timeout * 1000),
        shutdown_barrier_timeout_in_ms=int(shutdown_timeout * 1000),
    )


# --- Layers, metrics and export ----------------------------------------------------------------


def keep_input_dtypes(layer):
    """Stops Keras from casting `layer`'s float call arguments to its `input_dtype`: for layers
    that take token ids beside float tensors (states, cached embeddings) and check dtypes themselves."""
    layer._convert_input_args = False


def autocast_disabled():
    """A context in which Keras variables read as stored, not autocast to a layer's compute dtype."""
    from keras.src.backend import AutocastScope

    return AutocastScope(None)


def _keras_tensorflow_rnn():
    # The package `keras.src.backend.tensorflow` exports a function `rnn` under the module's name.
    return importlib.import_module("keras.src.backend.tensorflow.rnn")


def cudnn_gru(*args, **kwargs):
    """Keras's cuDNN GRU over a whole sequence: `(last_output, outputs, states)`; raises
    `NotImplementedError` where cuDNN cannot run it."""
    return _keras_tensorflow_rnn().gru(*args, **kwargs)


def cudnn_lstm(*args, **kwargs):
    """Keras's cuDNN LSTM over a whole sequence, as `cudnn_gru`."""
    return _keras_tensorflow_rnn().lstm(*args, **kwargs)


def gradient_tape_may_record():
    """Whether a `tf.GradientTape` (or forward accumulator) may record what runs now; True when
    TensorFlow no longer has the private function (then always assume a gradient may be taken)."""
    try:
        from tensorflow.python.eager import record
    except ImportError:
        return True
    return record.could_possibly_record()


def keras_mask(tensor):
    """The mask Keras attached to `tensor` (a layer's output), or None."""
    from keras.src.backend import get_keras_mask

    return get_keras_mask(tensor)


def optimizer_variable_index(optimizer, variable):
    """The position in `optimizer.build(variables)`'s list of the variable `update_step` was given."""
    return optimizer._get_variable_index(variable)


def in_save_context():
    """Whether this runs inside `tf.saved_model.save` (tracing the functions it saves)."""
    from tensorflow.python.saved_model import save_context

    return save_context.in_save_context()


def install_export_tracing(portable_graph):
    """Makes the functions of Keras's `ExportArchive` endpoints trace inside `portable_graph()`
    (once; later calls do nothing).

    Args:
        portable_graph: the context manager of `zoo.export.portable`.

    Raises:
        RuntimeError: Keras's TensorFlow export archive no longer has `_backend_add_endpoint`.
    """
    from keras.src.backend.tensorflow.export import TFExportArchive

    original = vars(TFExportArchive).get("_backend_add_endpoint")
    if original is None:
        raise RuntimeError(
            "keras.src.backend.tensorflow.export.TFExportArchive has no _backend_add_endpoint (checked "
            f"with Keras {', '.join(KERAS_VERSIONS_CHECKED)}; this is Keras {keras.version()}): "
            "zoo.compat.install_export_tracing needs revisiting"
        )
    if getattr(original, "zoo_portable", False):
        return

    @functools.wraps(original)
    def backend_add_endpoint(self, name, fn, input_signature, **kwargs):
        @functools.wraps(fn)
        def traced_portably(*args, **fn_kwargs):
            with portable_graph():
                return fn(*args, **fn_kwargs)

        return original(self, name, traced_portably, input_signature, **kwargs)

    backend_add_endpoint.zoo_portable = True
    TFExportArchive._backend_add_endpoint = backend_add_endpoint


def flatten_layers(model):
    """Every layer inside `model` (nested ones too, wrappers' inner layers included), not `model`."""
    return model._flatten_layers(include_self=False, recursive=True)


def functional_graph(model):
    """The functional graph of a functional or sequential model; None for a subclassed model (or a
    sequential one built without an input shape)."""
    from keras.src.models.functional import Functional

    if isinstance(model, keras.Sequential):
        return model._functional
    if isinstance(model, Functional):
        return model
    return None


def run_functional(functional, inputs, call):
    """Walks a functional graph from `inputs`, computing each node as `call(layer, *args, **kwargs)`
    (the node's arguments with its input tensors replaced by what `call` returned for them)."""
    return functional._run_through_graph(inputs, operation_fn=lambda operation: operation, call_fn=call)


def litert_operators(flatbuffer):
    """The operators of a LiteRT flatbuffer: a list of `(subgraph_name, operator_name)` pairs.

    Builtin operators are named as in LiteRT's schema (`"UNIDIRECTIONAL_SEQUENCE_LSTM"`); a
    custom or Flex operator by its custom code, prefixed with `"CUSTOM:"`.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    builtin_names = {
        code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")
    }
    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    names = []
    for code in model.operatorCodes:
        # Schema v3 keeps codes below 127 in the deprecated byte and newer ones in `builtinCode`.
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            names.append(f"CUSTOM:{custom}")
        else:
            names.append(builtin_names.get(builtin, str(builtin)))
    operators = []
    for subgraph in model.subgraphs:
        subgraph_name = subgraph.name.decode() if isinstance(subgraph.name, bytes) else subgraph.name
        for operator in subgraph.operators or []:
            operators.append((subgraph_name or "", names[operator.opcodeIndex]))
    return operators


def sentencepiece_tokenizer(model_proto):
    """A `tensorflow_text.SentencepieceTokenizer` of `model_proto` (bytes) whose model resource
    survives `tf.random.set_seed`: one named after the model's SHA-1, kept by TensorFlow's resource
    manager rather than by its kernel, so a kernel made again after the cache is cleared finds it."""
    import tensorflow_text as tf_text
    from tensorflow_text.python.ops import sentencepiece_tokenizer as tf_text_sentencepiece

    class SharedModelResource(tf_text_sentencepiece._SentencepieceModelResource):
        def _create_resource(self):
            with tf.name_scope(self._name or "SentenceTokenizerInitializer"):
                return tf_text_sentencepiece.gen_sentencepiece_tokenizer.sentencepiece_op(
                    model=self._model, shared_name=shared_name
                )

    shared_name = "zoo_sentencepiece_" + hashlib.sha1(model_proto).hexdigest()
    tokenizer = tf_text.SentencepieceTokenizer(model=model_proto, out_type=tf.int32)
    tokenizer._model_resource = SharedModelResource(model_proto, None)
    return tokenizer
