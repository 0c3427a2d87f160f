"""Multi-task tagging: a tagger trained on its own tags and, through the same encoder, on another tag set.

An auxiliary task with more data shapes the shared word embeddings, character features and
recurrent encoder for the main one: part-of-speech tags of a treebank teach a named-entity tagger
what proper nouns look like, which its own few entity examples cannot. Each sentence is labelled
for one of the two tasks; the other output's sample weights are zero for it: `multitask_batches`
mixes the two tasks' batches into the format the model trains on.

Example:

>>> model = MultiTaskTagger(tagger, auxiliary_tags=len(upos_vocab))
>>> train = multitask_batches(ner_batches, upos_batches, auxiliary_weight=1.0, seed=0)
>>> model.fit(train, validation_data=multitask_batches(ner_validation_batches))
"""

import keras
import tensorflow as tf

from zoo.models.tagger import SequenceTagger

MAIN_OUTPUT = "tags"
AUXILIARY_OUTPUT = "auxiliary"


@keras.saving.register_keras_serializable(package="zoo")
class MultiTaskTagger(keras.Model):
    """A `SequenceTagger` plus a second softmax output layer over its encoding, for an auxiliary tag set.

    Trained with Keras's multiple outputs: targets and sample weights are dicts keyed `"tags"` (the
    tagger's own tags) and `"auxiliary"`, and so are the losses and metrics given to `compile`.
    After training, `tagger` alone is the model to evaluate, ensemble and export: it shares every
    weight it has with this model, and the auxiliary output layer is not part of it.

    Args:
        tagger: a `SequenceTagger` with `output="softmax"`.
        auxiliary_tags: the number of auxiliary tag ids.
        **kwargs: `keras.Model` arguments.

    Call arguments:
        inputs: what `tagger` takes.
        training: whether dropout applies.

    Returns:
        `{"tags": [batch, time, tagger.num_tags], "auxiliary": [batch, time, auxiliary_tags]}`
        probabilities.

    Example:
    >>> model = MultiTaskTagger(SequenceTagger(vocab_size=50, num_tags=13), auxiliary_tags=17)
    >>> model.compile("adam", loss={"tags": "sparse_categorical_crossentropy",
    ...                             "auxiliary": "sparse_categorical_crossentropy"})
    >>> model.fit(batches_of_inputs_and_dicts_of_tag_ids_and_weights)
    >>> tag_probabilities = model.tagger(word_ids)
    """

    def __init__(self, tagger, auxiliary_tags, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(tagger, SequenceTagger) or tagger.output_mode != "softmax":
            raise ValueError(f"tagger must be a SequenceTagger with output='softmax', got {tagger!r}")
        if isinstance(auxiliary_tags, bool) or not isinstance(auxiliary_tags, int) or auxiliary_tags < 1:
            raise ValueError(f"auxiliary_tags must be a positive int, got {auxiliary_tags!r}")
        self.tagger = tagger
        self.auxiliary_tags = auxiliary_tags
        self.auxiliary_scores = keras.layers.Dense(
            auxiliary_tags, activation="softmax", name="auxiliary_scores"
        )
        self.autocast = False  # the tagger casts (or checks) its own inputs

    @property
    def input_dtype(self):
        return self.tagger.input_dtype

    def build(self, inputs_shape):
        if not self.tagger.built:  # a deserialized tagger is built already
            self.tagger.build(inputs_shape)
        self.auxiliary_scores.build((None, None, 2 * self.tagger.units))

    def call(self, inputs, training=False):
        encoding = self.tagger.encode(inputs, training=training)
        return {MAIN_OUTPUT: self.tagger.scores(encoding), AUXILIARY_OUTPUT: self.auxiliary_scores(encoding)}

    def compute_output_shape(self, inputs_shape):
        main = self.tagger.compute_output_shape(inputs_shape)
        return {MAIN_OUTPUT: main, AUXILIARY_OUTPUT: (*main[:2], self.auxiliary_tags)}

    def get_config(self):
        return {
            **super().get_config(),
            "tagger": keras.saving.serialize_keras_object(self.tagger),
            "auxiliary_tags": self.auxiliary_tags,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["tagger"] = keras.saving.deserialize_keras_object(config["tagger"])
        return cls(**config)


def multitask_batches(main, auxiliary=None, auxiliary_weight=1.0, seed=None):
    """Batches for a `MultiTaskTagger`: `(inputs, tag ids, weights)`, the last two dicts keyed by its
    outputs (`"tags"`, `"auxiliary"`).

    Each batch holds the sentences of one task, and the other output's tag ids and weights are zero for
    them. The two tasks' batches come in an order drawn again each epoch; the dataset knows its length
    (Keras averages an epoch's figures over it).

    Args:
        main: `zoo.text.tagger_batches` of the main tags, with mask weights.
        auxiliary: the same for the auxiliary tags; None: only `main` (e.g. validation).
        auxiliary_weight: the auxiliary weights' factor, relative to the main ones.
        seed: the seed of the order.

    Returns:
        A `tf.data.Dataset` of `(inputs, {"tags", "auxiliary"}, {"tags", "auxiliary"})`.

    Raises:
        ValueError: datasets of unknown length.
    """

    def for_output(output, factor):
        other = AUXILIARY_OUTPUT if output == MAIN_OUTPUT else MAIN_OUTPUT

        def to_dicts(inputs, tag_ids, weights):
            return (
                inputs,
                {output: tag_ids, other: tf.zeros_like(tag_ids)},
                {output: weights * factor, other: tf.zeros_like(weights)},
            )

        return to_dicts

    main = main.map(for_output(MAIN_OUTPUT, 1.0))
    if auxiliary is None:
        return main
    auxiliary = auxiliary.map(for_output(AUXILIARY_OUTPUT, auxiliary_weight))
    counts = [int(part.cardinality()) for part in (main, auxiliary)]
    if min(counts) < 0:
        raise ValueError("multitask_batches needs datasets of known length")
    choices = tf.data.Dataset.from_tensor_slices(tf.repeat(tf.constant([0, 1], tf.int64), counts)).shuffle(
        sum(counts), seed=seed, reshuffle_each_iteration=True
    )
    mixed = tf.data.Dataset.choose_from_datasets([main, auxiliary], choices, stop_on_empty_dataset=True)
    return mixed.apply(tf.data.experimental.assert_cardinality(sum(counts)))
