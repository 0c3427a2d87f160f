"""Byte-pair encoding: trained with sentencepiece, applied in-graph with tensorflow-text."""

import io
import os
import pathlib

import sentencepiece as spm
import tensorflow as tf

from zoo import compat
from zoo.text.corpora import read_text


def _sentences(files_or_texts):
    """Yields non-blank lines: a lone str or path is a file; in an iterable, paths (`os.PathLike`) are
    files and str items are text."""
    if isinstance(files_or_texts, (str, os.PathLike)):
        files_or_texts = [pathlib.Path(files_or_texts)]
    for item in files_or_texts:
        if isinstance(item, os.PathLike):
            lines = read_text(item).split("\n")
        elif isinstance(item, str):
            lines = item.split("\n")
        else:
            raise TypeError(f"expected file paths or strings, got {type(item).__name__}")
        for line in lines:
            if line.strip():
                yield line


class BPETokenizer(tf.Module):
    """Subword tokenizer: a sentencepiece BPE model run by `tensorflow_text.SentencepieceTokenizer`.

    The tokenizer is a `tf.Module`, so it can be held by a model or module and saved in a SavedModel
    (loading that SavedModel needs `import tensorflow_text`, which registers the op). It never uses
    `FastSentencepieceTokenizer`: that one decodes BPE models as unigram and gives other pieces.

    Args:
        model_proto: the serialized sentencepiece model (bytes), as `train` builds it and `save` writes it.

    Example:
    >>> tokenizer = BPETokenizer.train(["the time machine"] * 50, vocab_size=30)
    >>> tokenizer.detokenize(tokenizer.tokenize("the time"))
    'the time'
    """

    def __init__(self, model_proto):
        super().__init__(name="bpe_tokenizer")
        if not isinstance(model_proto, bytes) or not model_proto:
            raise ValueError("model_proto must be the non-empty bytes of a sentencepiece model")
        self._processor = spm.SentencePieceProcessor(model_proto=model_proto)
        self._model_proto = model_proto
        self._tokenizer = compat.sentencepiece_tokenizer(model_proto)

    @classmethod
    def train(cls, files_or_texts, vocab_size, character_coverage=1.0, num_threads=2, **options):
        """Trains a BPE model with sentencepiece.

        The special pieces follow `zoo.text.SEQUENCE_RESERVED`: `<pad>`=0 (so padded batches pad with 0),
        `<unk>`=1, `<s>` (bos)=2, `</s>` (eos)=3; override with `pad_id=`, `unk_id=`, ... options.

        Args:
            files_or_texts: a file path (str or `pathlib.Path`), or an iterable whose items are
                `pathlib.Path` files or str texts (each split into lines).
            vocab_size: the number of pieces, including `<pad>`, `<unk>`, `<s>`, `</s>`.
            character_coverage: the share of characters the alphabet must cover (1.0: all of them).
            num_threads: sentencepiece's training threads.
            **options: other `sentencepiece.SentencePieceTrainer` options (e.g. `user_defined_symbols`).

        Returns:
            A `BPETokenizer`.

        Raises:
            ValueError: the corpus is empty, or `vocab_size` is more than the corpus can fill.
        """
        sentences = list(_sentences(files_or_texts))
        if not sentences:
            raise ValueError("the corpus is empty: BPE training needs at least one non-blank line")
        if not isinstance(vocab_size, int) or vocab_size < 4:
            raise ValueError(f"vocab_size must be an int >= 4, got {vocab_size!r}")
        model = io.BytesIO()
        options = {"pad_id": 0, "unk_id": 1, "bos_id": 2, "eos_id": 3, **options}
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences),
                model_writer=model,
                model_type="bpe",
                vocab_size=vocab_size,
                character_coverage=character_coverage,
                num_threads=num_threads,
                minloglevel=2,
                **options,
            )
        except RuntimeError as error:
            if "Vocabulary size too high" in str(error) or "vocab_size" in str(error):
                raise ValueError(
                    f"vocab_size={vocab_size} is too large for this corpus ({len(sentences)} lines): "
                    f"sentencepiece says: {error}"
                ) from error
            raise
        return cls(model.getvalue())

    @property
    def vocab_size(self):
        return self._processor.get_piece_size()

    @property
    def model_proto(self):
        return self._model_proto

    def id_of(self, name):
        """The id of a special piece by its `Vocab` name (`"<pad>"`, `"<unk>"`, `"<bos>"`, `"<eos>"`) or of
        any piece; KeyError if the model lacks it."""
        special = {
            "<pad>": self._processor.pad_id(),
            "<unk>": self._processor.unk_id(),
            "<bos>": self._processor.bos_id(),
            "<eos>": self._processor.eos_id(),
        }
        index = special[name] if name in special else self._processor.piece_to_id(name)
        if index < 0 or (name not in special and index == self._processor.unk_id() and name != "<unk>"):
            raise KeyError(f"{name!r} is not a piece of this sentencepiece model")
        return index

    def save(self, path):
        """Writes the serialized sentencepiece model (a `.model` file sentencepiece itself can load)."""
        with open(path, "wb") as file:
            file.write(self._model_proto)

    @classmethod
    def load(cls, path):
        """Reads a model written by `save` (or any sentencepiece `.model` file)."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"sentencepiece model file not found: {path}")
        with open(path, "rb") as file:
            proto = file.read()
        try:
            return cls(proto)
        except RuntimeError as error:
            raise ValueError(f"{path} is not a sentencepiece model: {error}") from error

    def tokenize(self, text):
        """Text → piece ids.

        Args:
            text: a str (→ list of int), a list of str (→ list of lists), or a `tf.string` tensor of rank
                0 (→ 1-D int32 tensor) or 1 (→ int32 `tf.RaggedTensor`).
        """
        if isinstance(text, str):
            return self.tokenize([text])[0]
        if isinstance(text, (list, tuple)):
            return self._tokenizer.tokenize(tf.constant(list(text), tf.string)).to_list()
        return self._tokenizer.tokenize(text)

    def detokenize(self, ids):
        """Piece ids → text: a list of int → str, a list of lists → list of str, a tensor → a tf.string
        tensor with the last axis removed. Out-of-range ids raise an error."""
        if isinstance(ids, (list, tuple)):
            if all(isinstance(item, int) for item in ids):
                return self.detokenize([list(ids)])[0]
            for row in ids:
                self._check_ids(row)
            out = self._tokenizer.detokenize(tf.ragged.constant(ids, dtype=tf.int32, ragged_rank=1))
            return [value.decode("utf-8") for value in out.numpy().tolist()]
        check = tf.debugging.assert_less(
            ids if isinstance(ids, tf.Tensor) else ids.flat_values,
            tf.constant(self.vocab_size, ids.dtype),
            message=f"piece ids must be < {self.vocab_size} (vocab size)",
        )
        with tf.control_dependencies([check]):
            return self._tokenizer.detokenize(ids)

    def _check_ids(self, row):
        for value in row:
            if not isinstance(value, int) or not 0 <= value < self.vocab_size:
                raise IndexError(f"piece id {value!r} is out of range [0, {self.vocab_size})")

    def id_to_piece(self, ids):
        """Piece strings of ids, in-graph (`tf.string` tensor of the same shape)."""
        return self._tokenizer.id_to_string(ids)

    def python_tokenize(self, text):
        """Tokenizes with sentencepiece's own Python API (no TensorFlow): the reference for `tokenize`."""
        return self._processor.encode(text)
