"""The small models the export tests convert (LiteRT and ONNX), their inputs, and what they hold."""

import subprocess
import sys

import keras
import numpy as np

import zoo

VOCAB = 20


def sequential(*layers, ids=False):
    return keras.Sequential(
        [keras.Input((None,), dtype="int32") if ids else keras.Input((None, 3))] + list(layers)
    )


def token_ids(batch, time, lengths=None, seed=0):
    ids = np.random.default_rng(seed).integers(1, VOCAB, size=(batch, time)).astype("int32")
    for row, length in enumerate(lengths or []):
        ids[row, length:] = 0
    return ids


def features(batch, time, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, time, 3)).astype("float32")


def fine_tuned_classifier():
    """A classifier of the shape `SequenceClassifier.from_language_model` makes (one direction,
    ULMFiT's concat pooling, a batch-normalized head), its normalization's statistics far from the
    identity so that an export that dropped them would show."""
    model = zoo.models.SequenceClassifier(
        VOCAB,
        num_classes=3,
        embedding_dim=6,
        units=8,
        bidirectional=False,
        pooling="last_max_mean",
        pool_embeddings=True,
        normalize_encoding=True,
    )
    model.build((None, None))
    rng = np.random.default_rng(3)
    norm = model.encoding_norm
    for variable, low, high in ((norm.moving_mean, -0.5, 0.5), (norm.moving_variance, 0.01, 0.1)):
        variable.assign(rng.uniform(low, high, variable.shape).astype("float32"))
    for variable in (norm.gamma, norm.beta):
        variable.assign(rng.normal(size=variable.shape).astype("float32"))
    return model


def masked_embedding():
    return keras.layers.Embedding(VOCAB, 6, mask_zero=True)


# name: (model factory, inputs factory, batch size, fused LSTM ops expected)
MODELS = {
    "lstm": (lambda: sequential(zoo.layers.LSTM(8, return_sequences=True)), lambda: features(1, 7), 1, 1),
    "lstm_last_output_no_bias": (
        lambda: sequential(zoo.layers.LSTM(8, use_bias=False), keras.layers.Dense(2)),
        lambda: features(1, 7),
        1,
        1,
    ),
    "go_backwards": (
        lambda: sequential(zoo.layers.LSTM(8, return_sequences=True, go_backwards=True)),
        lambda: features(2, 6),
        2,
        1,
    ),
    "stacked_embedding_dense": (
        lambda: sequential(
            keras.layers.Embedding(VOCAB, 6),
            zoo.layers.StackedRNN("lstm", 8, num_layers=2, dropout=0.3),
            keras.layers.LayerNormalization(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(5),
            ids=True,
        ),
        lambda: token_ids(1, 9),
        1,
        2,
    ),
    "bidirectional": (
        lambda: sequential(
            zoo.layers.Bidirectional(zoo.layers.LSTM(8, return_sequences=True), merge_mode="sum")
        ),
        lambda: features(1, 7),
        1,
        2,
    ),
    "gru_simple_rnn": (
        lambda: sequential(
            zoo.layers.GRU(8, return_sequences=True),
            zoo.layers.GRU(6, reset_after=False, return_sequences=True, go_backwards=True),
            zoo.layers.SimpleRNN(4),
        ),
        lambda: features(1, 7),
        1,
        0,
    ),
    # Right-padded rows of different lengths, one fully padded; padded steps follow Keras's rules.
    "masked_bidirectional_stack": (
        lambda: sequential(
            masked_embedding(),
            zoo.layers.StackedRNN("lstm", 8, num_layers=2, bidirectional=True),
            zoo.layers.LSTM(4, zero_output_for_mask=True, return_sequences=True),
            ids=True,
        ),
        lambda: token_ids(3, 8, lengths=[8, 5, 0]),
        3,
        5,
    ),
    "masked_backward_last": (
        lambda: sequential(masked_embedding(), zoo.layers.LSTM(8, go_backwards=True), ids=True),
        lambda: token_ids(2, 6, lengths=[3, 6]),
        2,
        1,
    ),
    "masked_gru": (
        lambda: sequential(masked_embedding(), zoo.layers.Bidirectional(zoo.layers.GRU(8)), ids=True),
        lambda: token_ids(2, 6, lengths=[4, 6]),
        2,
        0,
    ),
    "language_model": (
        lambda: zoo.models.LanguageModel(VOCAB, cell_type="lstm", units=8, num_layers=2, embedding_dim=6),
        lambda: token_ids(1, 9),
        1,
        2,
    ),
    "classifier": (
        lambda: zoo.models.SequenceClassifier(VOCAB, num_classes=3, embedding_dim=6, units=8),
        lambda: token_ids(2, 7, lengths=[7, 4]),
        2,
        4,
    ),
    "fine_tuned_classifier": (
        fine_tuned_classifier,
        lambda: token_ids(2, 7, lengths=[7, 4]),
        2,
        2,
    ),
    "ensemble": (
        lambda: zoo.models.AveragedEnsemble(
            [
                zoo.models.SequenceClassifier(
                    VOCAB, num_classes=2, embedding_dim=4, units=5, num_layers=1, bidirectional=False
                )
                for _ in range(2)
            ]
        ),
        lambda: token_ids(2, 6, lengths=[6, 3]),
        2,
        2,
    ),
}


def step_logits_in_plain_tensorflow(saved_model_path, ids, folder):
    """The logits of a SavedModel's `step` signature fed `ids` [batch, time] one position at a time
    from zero states, in a fresh interpreter that asserts it never imports zoo or ops."""
    np.save(folder / "ids.npy", ids)
    script = f"""
import sys
import numpy as np
import tensorflow as tf
step = tf.saved_model.load({str(saved_model_path)!r}).signatures["step"]
ids = np.load({str(folder / "ids.npy")!r})
states = {{name: tf.zeros([ids.shape[0]] + spec.shape.as_list()[1:])
          for name, spec in step.structured_input_signature[1].items() if name.startswith("state_")}}
logits = []
for position in range(ids.shape[1]):
    outputs = step(token_ids=tf.constant(ids[:, position : position + 1]), **states)
    states = {{name: outputs[name] for name in states}}
    logits.append(outputs["logits"].numpy())
np.save({str(folder / "logits.npy")!r}, np.concatenate(logits, axis=1))
assert not [m for m in sys.modules if m.split(".")[0] in ("zoo", "ops")], "zoo or ops was imported"
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(folder / "logits.npy")
