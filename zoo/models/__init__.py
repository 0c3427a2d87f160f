"""Models for the course's uses of RNNs: one-to-many, many-to-one, many-to-many; and their serving
modules (`TextGenerator`, `TextClassifier`, `TextTagger`, `Translator`), which take raw strings."""

from zoo.models.classifier import POOLING_MODES, SequenceClassifier, masked_pooling
from zoo.models.ensemble import AveragedEnsemble
from zoo.models.language_model import LanguageModel, TextGenerator
from zoo.models.multitask_tagger import MultiTaskTagger, multitask_batches
from zoo.models.residual_block import ResidualRecurrentBlock
from zoo.models.seq2seq import Seq2Seq, sequence_loss
from zoo.models.string_embeddings import ContextualStringEmbeddings
from zoo.models.tagger import SequenceTagger, build_tagger
from zoo.models.temporal_conv import TemporalConv
from zoo.models.text_classifier import TextClassifier
from zoo.models.text_tagger import TextTagger, predict_tag_ids, predict_tags
from zoo.models.translator import Translator, score_translations

__all__ = [
    "POOLING_MODES",
    "AveragedEnsemble",
    "ContextualStringEmbeddings",
    "LanguageModel",
    "MultiTaskTagger",
    "ResidualRecurrentBlock",
    "Seq2Seq",
    "SequenceClassifier",
    "SequenceTagger",
    "TextClassifier",
    "TemporalConv",
    "TextGenerator",
    "TextTagger",
    "Translator",
    "build_tagger",
    "masked_pooling",
    "multitask_batches",
    "predict_tag_ids",
    "predict_tags",
    "score_translations",
    "sequence_loss",
]
