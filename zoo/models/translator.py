"""A trained `Seq2Seq` with its preprocessing and vocabularies: raw text in, translated text out.

`Translator` is the serving module of a `Seq2Seq` model: its `translate` signature takes English text
of any shape and returns French text of that shape (the course's tokens joined by spaces), greedy or
by beam search; `zoo.export.saved_model` exports it to run in plain TensorFlow. `score_translations`
scores a translator against all the references of each source sentence.

Example:

>>> translator = zoo.models.Translator(model, source_vocab, target_vocab, 10, 20, beam_size=8,
...                                    length_penalty=1.0)
>>> translator(["go .", "i lost ."])                     # ["va !", "j'ai perdu ."]
>>> zoo.export.saved_model(translator, "saved_model", {"translate": translator.translate})
"""

import numpy as np
import tensorflow as tf

from zoo.metrics import bleu, corpus_bleu
from zoo.text.cleaning import nmt_tokens
from zoo.text.vocab import EOS

# Sentences per call of `translate` when a Translator is called on a Python list.
_PYTHON_BATCH = 256


class Translator(tf.Module):
    """Raw text in, translated text out: `zoo.text.nmt_tokens`, the vocabularies and a `Seq2Seq`, in
    one graph.

    Args:
        model: a built `zoo.models.Seq2Seq`.
        source_vocab, target_vocab: the `zoo.text.Vocab`s it was trained with (`SEQUENCE_RESERVED`).
        max_source_length: source tokens read, `<eos>` included (longer input is cut).
        max_output_length: the most target tokens generated, `<eos>` included.
        beam_size: None for greedy decoding, else the beam size.
        length_penalty: GNMT's alpha for beam search.

    Call `translate(text)`: `tf.string` of any shape → `{"translation": tf.string of that shape}`.
    Calling the translator on a list of Python strings returns a list of strings.
    """

    def __init__(
        self,
        model,
        source_vocab,
        target_vocab,
        max_source_length,
        max_output_length,
        beam_size=None,
        length_penalty=0.0,
    ):
        super().__init__(name="translator")
        if max_source_length < 1 or max_output_length < 1:
            raise ValueError("max_source_length and max_output_length must be >= 1")
        self.model = model
        self.source_vocab = source_vocab
        self.target_vocab = target_vocab
        self.max_source_length = max_source_length
        self.max_output_length = max_output_length
        self.beam_size = beam_size
        self.length_penalty = length_penalty
        self.source_eos = source_vocab.id_of(EOS)
        self.target_eos = target_vocab.id_of(EOS)

    @tf.function(input_signature=[tf.TensorSpec(None, tf.string, name="text")])
    def translate(self, text):
        flat = tf.reshape(text, [-1])
        # Keras's RNN loop (in the exported encoder) cannot stack the outputs of an empty batch.
        translation = tf.cond(tf.size(flat) > 0, lambda: self._translate_batch(flat), lambda: flat)
        return {"translation": tf.reshape(translation, tf.shape(text))}

    def _translate_batch(self, text):
        tokens = nmt_tokens(text)[:, : self.max_source_length - 1]
        eos = tf.RaggedTensor.from_tensor(tf.fill([tf.shape(text)[0], 1], self.source_eos))
        source_ids = tf.concat([self.source_vocab.to_ids(tokens), eos], axis=1).to_tensor(self.model.pad_id)
        token_ids, lengths = self.model.translate(
            source_ids, self.max_output_length, beam_size=self.beam_size, length_penalty=self.length_penalty
        )
        generated = tf.RaggedTensor.from_tensor(token_ids, lengths=lengths)
        words = tf.ragged.boolean_mask(generated, tf.not_equal(generated, self.target_eos))
        return tf.strings.reduce_join(self.target_vocab.to_tokens(words), axis=-1, separator=" ")

    def ids_signature(self, batch_size=1):
        """Translation of token ids, for runtimes without text ops (LiteRT: `zoo.export.tflite(model,
        path, signatures={"translate": translator.ids_signature()})`).

        Returns:
            A `tf.function` from `source_ids`, int32 `[batch_size, max_source_length]` (the source's
            ids as `translate` makes them: its first `max_source_length - 1` tokens, `<eos>`, then
            `pad_id` up to the fixed length), to `token_ids`, int32 `[batch_size, max_output_length]`
            (`<eos>` kept, then `pad_id`), and `lengths`, int32 `[batch_size]` (up to and including
            `<eos>`).
        """

        def translate_ids(source_ids):
            token_ids, lengths = self.model.translate(
                source_ids,
                self.max_output_length,
                beam_size=self.beam_size,
                length_penalty=self.length_penalty,
            )
            return {"token_ids": token_ids, "lengths": lengths}

        # A static source length: beam search fixes the shape of what it repeats along the beam
        # (the attention decoder's encoder outputs), which LiteRT can only do on a known shape.
        spec = tf.TensorSpec([batch_size, self.max_source_length], tf.int32, name="source_ids")
        return tf.function(translate_ids, input_signature=[spec])

    def __call__(self, sentences):
        """Translates a list of Python strings in batches; returns a list of strings."""
        results = []
        for start in range(0, len(sentences), _PYTHON_BATCH):
            batch = tf.constant(list(sentences[start : start + _PYTHON_BATCH]), tf.string)
            results.extend(text.decode("utf-8") for text in self.translate(batch)["translation"].numpy())
        return results


def score_translations(translator, sources, references):
    """Scores the translations of the distinct `sources`, each against all its `references`.

    Args:
        translator: a function from a list of source strings to their translations (a `Translator`).
        sources, references: aligned lists of sentence pairs; a source may repeat, with another
            translation.

    Returns:
        `(scores, translations)`: a dict of figures, and the translation of each pair's source. The
        figures: `corpus_bleu`, corpus BLEU (up to 4-grams) of the distinct sources against all their
        references; `corpus_bleu_single_reference`, corpus BLEU of every pair against its one
        reference (a sentence with several translations counts once per pair); `mean_sentence_bleu`,
        the mean over pairs of the course's sentence BLEU (k=2, as the course scores its test
        sentences); `exact`, the share of distinct sources translated exactly as one of their references.
    """
    references_of = {}
    for source, reference in zip(sources, references):
        references_of.setdefault(source, []).append(reference)
    distinct = list(references_of)
    translation_of = dict(zip(distinct, translator(distinct)))
    translations = [translation_of[source] for source in sources]
    return {
        "corpus_bleu": corpus_bleu(
            [translation_of[s] for s in distinct], [tuple(references_of[s]) for s in distinct]
        ),
        "corpus_bleu_single_reference": corpus_bleu(translations, references),
        "mean_sentence_bleu": float(np.mean([bleu(t, r, k=2) for t, r in zip(translations, references)])),
        "exact": float(np.mean([translation_of[s] in references_of[s] for s in distinct])),
    }, translations
