"""The streaming step of a language model as a function with named inputs and outputs.

`step_function(model)` is what LiteRT's `step` signature (`zoo.export.tflite(..., streaming_step=True)`)
and a SavedModel's `step` signature run: `token_ids` (int32 `[batch, 1]`) and `state_0`,
`state_1`, ... in (the states in the order `LanguageModel` returns them: per layer, h then c for an
LSTM), `logits` (`[batch, 1, vocab_size]`) and the same `state_*` names out. Fed one token at a
time from zero states, it gives the logits the model gives the whole sequence.

Example (greedy generation on a phone: LiteRT only, ids in and out, the vocabulary beside the file):

>>> from ai_edge_litert.interpreter import Interpreter
>>> step = Interpreter(model_path="model.tflite").get_signature_runner("step")
>>> states = {name: np.zeros(spec["shape"], np.float32)
...           for name, spec in step.get_input_details().items() if name.startswith("state_")}
>>> def feed(token, states):
...     outputs = step(token_ids=np.array([[token]], np.int32), **states)
...     return int(outputs["logits"][0, -1].argmax()), {name: outputs[name] for name in states}
>>> for token in prompt_ids:  # warm the states up on the prompt
...     next_token, states = feed(token, states)
>>> generated = [next_token]
>>> for _ in range(49):
...     next_token, states = feed(next_token, states)
...     generated.append(next_token)

Example (a server's SavedModel, beside the `generate` signature of text):

>>> generator = zoo.models.TextGenerator(model, tokenizer, vocab)
>>> zoo.export.saved_model(generator, "saved_model", {"generate": generator.serve}, streaming_step=model)
>>> step = tf.saved_model.load("saved_model").signatures["step"]
"""

import tensorflow as tf

STEP_SIGNATURE = "step"
TOKEN_IDS = "token_ids"
LOGITS = "logits"


def state_name(index):
    return f"state_{index}"


def step_function(model, batch_size=None):
    """`model.streaming_step` as a `tf.function` over named tensors (see the module docstring).

    Args:
        model: a built unidirectional `zoo.models.LanguageModel` (anything with `streaming_step`
            and `initial_state`).
        batch_size: the batch size of the signature; None accepts any.

    Returns:
        A `tf.function` with an input signature, called as `step(token_ids, state_0, state_1, ...)`
        and returning a dict of `logits` and `state_*`; as a signature (SavedModel, LiteRT) its
        inputs are named `token_ids`, `state_0`, ...
    """
    if not hasattr(model, "streaming_step"):
        raise TypeError(
            f"{type(model).__name__} has no streaming step: streaming export is for "
            "zoo.models.LanguageModel (unidirectional)"
        )
    if not model.built:
        raise ValueError("build the model (call it on a batch or load trained weights) before exporting it")
    zero_states = model.initial_state(1)
    specs = [tf.TensorSpec([batch_size, 1], tf.int32, name=TOKEN_IDS)] + [
        tf.TensorSpec([batch_size] + list(state.shape[1:]), state.dtype, name=state_name(index))
        for index, state in enumerate(zero_states)
    ]

    def step(token_ids, *states):
        logits, new_states = model.streaming_step(token_ids, list(states))
        outputs = {LOGITS: logits}
        outputs.update({state_name(index): state for index, state in enumerate(new_states)})
        return outputs

    return tf.function(step, input_signature=specs, autograph=False)
