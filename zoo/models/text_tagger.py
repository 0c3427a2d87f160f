"""A trained tagger with its token encoder and tag names: sentences in, tags out, in one graph.

`TextTagger` is the serving module of a `SequenceTagger`, `CRFTagger` or `MultiTaskTagger` (its main
tags): its `tag` signature takes sentences (tokens separated by whitespace) and returns their tokens
and tags; `zoo.export.saved_model` exports it to run in plain TensorFlow. `predict_tag_ids` and
`predict_tags` are the same decoding for evaluation in Python.

Example:

>>> tagger = zoo.models.TextTagger(model, encoder, tag_vocab, max_tokens=1000)
>>> tagger.tag(tf.constant(["The cat sat ."]))["tags"]        # [[b"DET", b"NOUN", b"VERB", b"PUNCT"]]
>>> zoo.export.saved_model(tagger, "saved_model", {"tag": tagger.tag})
"""

import tensorflow as tf

from zoo.crf import CRFTagger
from zoo.models.multitask_tagger import MultiTaskTagger


def predict_tag_ids(model, inputs):
    """The tag ids a tagger decodes.

    Args:
        model: a softmax `SequenceTagger`, a `CRFTagger`, a `MultiTaskTagger` (its main tags) or a
            `zoo.models.AveragedEnsemble` of softmax taggers.
        inputs: what the model takes (e.g. from a `zoo.text.TokenEncoder`).

    Returns:
        int32 `[batch, time]`: the CRF's Viterbi path, or else each word's most probable tag.
    """
    if isinstance(model, MultiTaskTagger):
        model = model.tagger
    outputs = model(inputs, training=False)
    if isinstance(model, CRFTagger):
        return outputs
    return tf.argmax(outputs, axis=-1, output_type=tf.int32)


def predict_tags(model, dataset, sentences, tag_vocab):
    """The tags a tagger gives each sentence, as strings.

    Args:
        model: as for `predict_tag_ids`.
        dataset: batches whose first element is the model's inputs (e.g. `zoo.text.tagger_batches`
            without shuffling), in the order of `sentences`.
        sentences: the sentences (lists of tokens) of `dataset`.
        tag_vocab: tag → id.

    Returns:
        One list of tags per sentence, as long as the sentence.
    """
    rows = []
    for batch in dataset:
        rows.extend(row.tolist() for row in predict_tag_ids(model, batch[0]).numpy())
    return [tag_vocab.to_tokens(row[: len(words)]) for row, words in zip(rows, sentences)]


class TextTagger(tf.Module):
    """Sentences in, their tokens and tags out: a tagger, its `TokenEncoder` and its tag names.

    Args:
        model: a trained tagger (see `predict_tag_ids`).
        encoder: the `zoo.text.TokenEncoder` it was trained with.
        tag_vocab: tag → id.
        max_tokens: longer sentences are cut to their first `max_tokens` tokens.

    Call `tag(sentences)`: `tf.string` `[batch]` (tokens separated by whitespace; undecodable bytes
    become U+FFFD) → `{"tokens", "tags"}`, `tf.string` `[batch, time]`, "" after each sentence's end.
    """

    def __init__(self, model, encoder, tag_vocab, max_tokens):
        super().__init__(name="tagger")
        self.model = model
        self.encoder = encoder
        self.tag_vocab = tag_vocab
        self.max_tokens = max_tokens

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def tag(self, sentences):
        sentences = tf.strings.unicode_transcode(sentences, "UTF-8", "UTF-8", errors="replace")
        tokens = tf.strings.split(sentences)[:, : self.max_tokens]
        inputs, mask = self.encoder(tokens)
        tags = tf.where(mask, self.tag_vocab.to_tokens(predict_tag_ids(self.model, inputs)), "")
        return {"tokens": tokens.to_tensor("", shape=tf.shape(mask, out_type=tf.int64)), "tags": tags}
