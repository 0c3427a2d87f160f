"""Models for the course's uses of RNNs: one-to-many, many-to-one, many-to-many."""

from zoo.models.classifier import POOLING_MODES, SequenceClassifier, masked_pooling
from zoo.models.ensemble import AveragedEnsemble
from zoo.models.language_model import LanguageModel, TextGenerator
from zoo.models.multitask_tagger import MultiTaskTagger
from zoo.models.seq2seq import Seq2Seq, sequence_loss
from zoo.models.tagger import SequenceTagger, build_tagger

__all__ = [
    "POOLING_MODES",
    "AveragedEnsemble",
    "LanguageModel",
    "MultiTaskTagger",
    "Seq2Seq",
    "SequenceClassifier",
    "SequenceTagger",
    "TextGenerator",
    "build_tagger",
    "masked_pooling",
    "sequence_loss",
]
