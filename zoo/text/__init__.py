"""Text pipeline: tokenizers (char, word, BPE), vocabulary, readers of the formats people keep their
data in (labelled texts, tagged sentences, sentence pairs) and of the corpora, in-graph cleaning and
encoders, held-out splits and tf.data batching."""

from zoo.text.bpe import BPETokenizer
from zoo.text.bpe_merges import apply_bpe_merges, learn_bpe_merges
from zoo.text.cleaning import CleaningTokenizer, clean_markup, nmt_tokens
from zoo.text.corpora import (
    TIME_MACHINE_SHA1,
    TIME_MACHINE_URL,
    load_tfds,
    load_time_machine,
    preprocess_nmt,
    read_lines,
    read_sentence_pairs,
    read_text,
)
from zoo.text.data_errors import DataFormatError
from zoo.text.labelled_texts import (
    LABEL_COLUMNS,
    LABELLED_TEXT_FORMATS,
    TEXT_COLUMNS,
    labelled_text_format,
    read_delimited,
    read_imdb_tsv,
    read_labelled_texts,
)
from zoo.text.lm_batches import (
    BATCHING_SCHEMES,
    language_model_batches,
    overlapping_window_batches,
    random_sampling_batches,
    sequential_partition_batches,
    split_stream,
)
from zoo.text.lm_corpus import (
    TEXT_MODES,
    TOKEN_LEVELS,
    LanguageModelCorpus,
    language_model_corpus,
    read_language_model_corpus,
)
from zoo.text.padded_batches import classification_batches, seq2seq_batches, tagging_batches
from zoo.text.splits import split_by_source, split_held_out
from zoo.text.string_embedding_inputs import string_embedding_inputs
from zoo.text.tagged_sentences import (
    CONLLU_TAG_COLUMNS,
    TAGGING_FORMATS,
    read_conll,
    read_conllu,
    read_tagged_sentences,
    tagging_format,
)
from zoo.text.tagger_batches import tagger_batches
from zoo.text.token_encoder import TokenEncoder
from zoo.text.tokenizers import CharTokenizer, WordTokenizer, course_clean
from zoo.text.vocab import BOS, COURSE_RESERVED, EOS, PAD, SEQUENCE_RESERVED, UNK, Vocab
from zoo.text.word_shapes import SHAPE_TOKENS, WORD_SHAPES, word_shapes

__all__ = [
    "BATCHING_SCHEMES",
    "BOS",
    "CONLLU_TAG_COLUMNS",
    "BPETokenizer",
    "COURSE_RESERVED",
    "CharTokenizer",
    "CleaningTokenizer",
    "DataFormatError",
    "EOS",
    "LABELLED_TEXT_FORMATS",
    "LABEL_COLUMNS",
    "LanguageModelCorpus",
    "PAD",
    "SEQUENCE_RESERVED",
    "SHAPE_TOKENS",
    "TAGGING_FORMATS",
    "TEXT_COLUMNS",
    "TEXT_MODES",
    "TOKEN_LEVELS",
    "TIME_MACHINE_SHA1",
    "TIME_MACHINE_URL",
    "TokenEncoder",
    "UNK",
    "Vocab",
    "WORD_SHAPES",
    "WordTokenizer",
    "apply_bpe_merges",
    "classification_batches",
    "clean_markup",
    "course_clean",
    "labelled_text_format",
    "language_model_batches",
    "language_model_corpus",
    "learn_bpe_merges",
    "load_tfds",
    "load_time_machine",
    "nmt_tokens",
    "overlapping_window_batches",
    "preprocess_nmt",
    "random_sampling_batches",
    "read_conll",
    "read_conllu",
    "read_delimited",
    "read_imdb_tsv",
    "read_labelled_texts",
    "read_language_model_corpus",
    "read_lines",
    "read_sentence_pairs",
    "read_tagged_sentences",
    "read_text",
    "seq2seq_batches",
    "sequential_partition_batches",
    "split_by_source",
    "string_embedding_inputs",
    "split_held_out",
    "split_stream",
    "tagger_batches",
    "tagging_batches",
    "tagging_format",
    "word_shapes",
]
