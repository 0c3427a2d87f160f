"""Models for the course's uses of RNNs: one-to-many, many-to-one, many-to-many."""

from zoo.models.classifier import SequenceClassifier
from zoo.models.language_model import LanguageModel, TextGenerator
from zoo.models.seq2seq import Seq2Seq
from zoo.models.tagger import SequenceTagger

__all__ = ["LanguageModel", "Seq2Seq", "SequenceClassifier", "SequenceTagger", "TextGenerator"]
