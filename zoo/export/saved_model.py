"""SavedModel export of serving modules whose signatures take raw strings.

A serving module is a `tf.Module` that holds a trained model with its text pre- and post-processing
(e.g. `zoo.models.TextGenerator`, `TextClassifier`, `TextTagger`, `Translator`) and exposes
`tf.function`s with string inputs. `saved_model` traces each signature afresh inside
`zoo.export.portable_graph()`, so the SavedModel runs in plain TensorFlow, without zoo:

>>> generator = zoo.models.TextGenerator(model, tokenizer, vocab)
>>> zoo.export.saved_model(generator, "lm", {"generate": generator.serve})
>>> tf.saved_model.load("lm").signatures["generate"](prefix=tf.constant(["time traveller"]))

A language model's streaming step (`streaming_step=model`) is the one signature that takes ids: the
`step` of `zoo.export.streaming`, for servers that keep each stream's states themselves.
"""

import tensorflow as tf

from zoo.export import streaming
from zoo.export.portable import portable_graph


def saved_model(module, path, signatures, *, streaming_step=None):
    """Saves `module` as a SavedModel at `path` with the given serving signatures.

    Args:
        module: a `tf.Module` (a Keras model, or a `tf.Module` holding one as an attribute) that
            tracks every variable the signatures use.
        path: the SavedModel folder.
        signatures: `{name: tf.function}`, each function with an `input_signature` of string
            tensors, e.g. `{"classify": module.classify}`; may be empty beside `streaming_step`.
        streaming_step: a `zoo.models.LanguageModel` whose variables `module` tracks (e.g. the model
            of a `TextGenerator`): adds its `step` signature (`zoo.export.streaming`), token ids and
            states in, logits and states out, for any batch size.

    Returns:
        `path`.

    Raises:
        ValueError: no signature, a signature without an `input_signature`, one whose inputs are
            not strings, or a `step` signature beside `streaming_step`.

    Example:

    >>> classifier = zoo.models.TextClassifier(model, tokenizer, vocab, ["neg", "pos"], max_length=400)
    >>> zoo.export.saved_model(classifier, "saved_model", {"classify": classifier.classify})
    >>> generator = zoo.models.TextGenerator(model, tokenizer, vocab)
    >>> zoo.export.saved_model(generator, "lm", {"generate": generator.serve}, streaming_step=model)
    """
    if not signatures and streaming_step is None:
        raise ValueError("a SavedModel needs at least one signature")
    if streaming_step is not None and streaming.STEP_SIGNATURE in signatures:
        raise ValueError(f"signature {streaming.STEP_SIGNATURE!r} is the streaming step's: rename it")
    concrete = {}
    for name, function in signatures.items():
        spec = getattr(function, "input_signature", None)
        if spec is None:
            raise ValueError(f"signature {name!r} needs a tf.function with an input_signature")
        wrong = [s for s in tf.nest.flatten(spec) if s.dtype != tf.string]
        if wrong:
            raise ValueError(f"signature {name!r} must take raw strings, got {wrong}")
        # A fresh trace in portable mode: an earlier trace of `function` may hold the fused CPU
        # kernels, which a process without zoo's op library cannot load.
        with portable_graph():
            concrete[name] = tf.function(
                function.python_function, input_signature=spec
            ).get_concrete_function()
    if streaming_step is not None:
        with portable_graph():
            step = streaming.step_function(streaming_step)
            concrete[streaming.STEP_SIGNATURE] = step.get_concrete_function()
    tf.saved_model.save(module, str(path), signatures=concrete)
    return path
