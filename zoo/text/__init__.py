"""Text pipeline: tokenizers (char, word, BPE), vocabulary, corpus readers and tf.data batching."""

from zoo.text.bpe import BPETokenizer
from zoo.text.bpe_merges import apply_bpe_merges, learn_bpe_merges
from zoo.text.corpora import (
    TIME_MACHINE_SHA1,
    TIME_MACHINE_URL,
    load_tfds,
    load_time_machine,
    preprocess_nmt,
    read_conll,
    read_conllu,
    read_delimited,
    read_imdb_tsv,
    read_lines,
    read_sentence_pairs,
    read_text,
)
from zoo.text.lm_batches import random_sampling_batches, sequential_partition_batches, split_stream
from zoo.text.padded_batches import classification_batches, seq2seq_batches, tagging_batches
from zoo.text.tokenizers import CharTokenizer, WordTokenizer, course_clean
from zoo.text.vocab import BOS, COURSE_RESERVED, EOS, PAD, SEQUENCE_RESERVED, UNK, Vocab

__all__ = [
    "BOS",
    "BPETokenizer",
    "COURSE_RESERVED",
    "CharTokenizer",
    "EOS",
    "PAD",
    "SEQUENCE_RESERVED",
    "TIME_MACHINE_SHA1",
    "TIME_MACHINE_URL",
    "UNK",
    "Vocab",
    "WordTokenizer",
    "apply_bpe_merges",
    "classification_batches",
    "course_clean",
    "learn_bpe_merges",
    "load_tfds",
    "load_time_machine",
    "preprocess_nmt",
    "random_sampling_batches",
    "read_conll",
    "read_conllu",
    "read_delimited",
    "read_imdb_tsv",
    "read_lines",
    "read_sentence_pairs",
    "read_text",
    "seq2seq_batches",
    "sequential_partition_batches",
    "split_stream",
    "tagging_batches",
]
