"""Models for the course's uses of RNNs: one-to-many, many-to-one, many-to-many."""

from zoo.models.language_model import LanguageModel, TextGenerator

__all__ = ["LanguageModel", "TextGenerator"]
