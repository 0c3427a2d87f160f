"""Multi-task tagging: a tagger trained on its own tags and, through the same encoder, on another tag set.

An auxiliary task with more data shapes the shared word embeddings, character features and
recurrent encoder for the main one: part-of-speech tags of a treebank teach a named-entity tagger
what proper nouns look like, which its own few entity examples cannot. Each sentence is labelled
for one of the two tasks; the other output's sample weights are zero for it.
"""

import keras

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
