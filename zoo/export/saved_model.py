"""SavedModel export of serving modules whose signatures take raw strings.

A serving module is a `tf.Module` that holds a trained model with its text pre- and post-processing
(e.g. `zoo.models.TextGenerator`, `TextClassifier`, `TextTagger`, `Translator`) and exposes
`tf.function`s with string inputs. `saved_model` traces each signature afresh inside
`zoo.export.portable_graph()`, so the SavedModel runs in plain TensorFlow, without zoo:

>>> generator = zoo.models.TextGenerator(model, tokenizer, vocab)
>>> zoo.export.saved_model(generator, "lm", {"generate": generator.serve})
>>> tf.saved_model.load("lm").signatures["generate"](prefix=tf.constant(["time traveller"]))
"""

import tensorflow as tf

from zoo.export.portable import portable_graph


def saved_model(module, path, signatures):
    """Saves `module` as a SavedModel at `path` with the given serving signatures.

    Args:
        module: a `tf.Module` (a Keras model, or a `tf.Module` holding one as an attribute) that
            tracks every variable the signatures use.
        path: the SavedModel folder.
        signatures: `{name: tf.function}`, each function with an `input_signature` of string
            tensors, e.g. `{"classify": module.classify}`.

    Returns:
        `path`.

    Raises:
        ValueError: no signature, a signature without an `input_signature`, or one whose inputs are
            not strings.

    Example:

    >>> classifier = zoo.models.TextClassifier(model, tokenizer, vocab, ["neg", "pos"], max_length=400)
    >>> zoo.export.saved_model(classifier, "saved_model", {"classify": classifier.classify})
    """
    if not signatures:
        raise ValueError("a SavedModel needs at least one signature")
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
    tf.saved_model.save(module, str(path), signatures=concrete)
    return path
