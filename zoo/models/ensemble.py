"""Model averaging: one model whose output is the mean of several trained models' probabilities.

Models trained alone from different random starts make partly different errors; the mean of their
predicted distributions is more accurate than the typical member, most of all on small data sets,
where one model's accuracy moves by several points from seed to seed.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class AveragedEnsemble(keras.Model):
    """The mean of the outputs of member models that map the same inputs to probabilities.

    The members are trained beforehand, each on its own (e.g. with different seeds); the ensemble
    has no weights of its own. Its output has the members' shape, so it is evaluated, saved and
    exported like any one of them.

    Args:
        members: A non-empty list of Keras models with the same inputs and output shape, whose
            outputs are probabilities (a softmax), so that their mean is a distribution too.
        **kwargs: Base `keras.Model` arguments (`name`, ...).

    Call arguments:
        inputs: What each member takes.
        training: Passed on to every member.

    Returns:
        The element-wise mean of the members' outputs.

    Example:

    >>> members = [SequenceClassifier(vocab_size, 2) for _ in range(5)]
    >>> for seed, member in enumerate(members):
    ...     keras.utils.set_random_seed(seed)
    ...     member.compile("adam", "sparse_categorical_crossentropy"); member.fit(train)
    >>> ensemble = AveragedEnsemble(members)
    >>> probabilities = ensemble(token_ids)
    """

    def __init__(self, members, **kwargs):
        super().__init__(**kwargs)
        members = list(members)
        if not members or not all(isinstance(member, keras.Model) for member in members):
            raise ValueError(f"members must be a non-empty list of Keras models, got {members!r}")
        self.members = members
        self.autocast = False  # each member casts (or checks) its own inputs: cached embeddings are floats

    @property
    def input_dtype(self):
        # The members' input dtype (token ids): Keras's SavedModel traversal traces a default signature in it.
        return self.members[0].input_dtype

    def build(self, inputs_shape):
        for member in self.members:
            if not member.built:
                member.build(inputs_shape)
        self.built = True

    def call(self, inputs, training=False):
        outputs = [member(inputs, training=training) for member in self.members]
        return ops.mean(ops.stack(outputs, axis=0), axis=0)

    def compute_mask(self, inputs, mask=None):
        return self.members[0].compute_mask(inputs, mask)

    def compute_output_shape(self, inputs_shape):
        return self.members[0].compute_output_shape(inputs_shape)

    def get_config(self):
        config = super().get_config()
        config["members"] = [keras.saving.serialize_keras_object(member) for member in self.members]
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        members = [keras.saving.deserialize_keras_object(member) for member in config.pop("members")]
        return cls(members, **config)
