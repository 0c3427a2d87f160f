"""A trained classifier with its tokenizer, vocabulary and label names: raw strings in, labels out.

`TextClassifier` is the serving module of a `SequenceClassifier` (or an `AveragedEnsemble` of them):
its `classify` signature takes raw text; `zoo.export.saved_model` exports it to run in plain
TensorFlow (with a `BPETokenizer`, the loading process must `import tensorflow_text` first).

Example:

>>> tokenizer = zoo.text.CleaningTokenizer(zoo.text.WordTokenizer("course"))
>>> classifier = zoo.models.TextClassifier(model, tokenizer, vocab, ["neg", "pos"], max_length=400)
>>> classifier.classify(tf.constant(["A wonderful film."]))["label"]     # [b"pos"]
>>> zoo.export.saved_model(classifier, "saved_model", {"classify": classifier.classify})
"""

import tensorflow as tf


class TextClassifier(tf.Module):
    """Raw strings in, class probabilities and labels out.

    Args:
        model: a trained model from token ids `[batch, time]` (0 = padding) to class probabilities.
        tokenizer: a tokenizer of raw strings, e.g. `zoo.text.CleaningTokenizer`: tokens out (with
            `vocab`) or ids out (a `BPETokenizer`, `vocab=None`).
        vocab: the token `zoo.text.Vocab`, or None when the tokenizer yields ids.
        label_names: the class names, in class-id order.
        max_length: longer texts are cut to their first `max_length` tokens.

    Call `classify(texts)`: `tf.string` `[batch]` → `{"probabilities" [batch, classes], "label" [batch]}`.
    """

    def __init__(self, model, tokenizer, vocab, label_names, max_length):
        super().__init__(name="text_classifier")
        self.model = model
        self.tokenizer = tokenizer
        self.vocab = vocab
        self.label_names = tf.constant(label_names, tf.string)
        self.max_length = max_length

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def classify(self, texts):
        tokens = self.tokenizer.tokenize(texts)
        ids = tokens if self.vocab is None else self.vocab.to_ids(tokens)
        ids = tf.cast(ids[:, : self.max_length], tf.int32).to_tensor(0)
        # An empty text has no token: one padding step keeps the time axis non-empty.
        ids = tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])
        probabilities = self.model(ids, training=False)
        label = tf.gather(self.label_names, tf.argmax(probabilities, axis=-1))
        return {"probabilities": probabilities, "label": label}
