"""The serving modules that take raw strings (zoo.models.TextClassifier, TextTagger, Translator):
in-process against their models, and exported by zoo.export.saved_model, loaded in a process that
never imports zoo."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.crf import CRFTagger
from zoo.models import Seq2Seq, SequenceClassifier, TextClassifier, TextTagger, Translator, score_translations
from zoo.models.tagger import build_tagger
from zoo.text import (
    BOS,
    EOS,
    PAD,
    SEQUENCE_RESERVED,
    SHAPE_TOKENS,
    BPETokenizer,
    CleaningTokenizer,
    TokenEncoder,
    Vocab,
    WordTokenizer,
)

REVIEWS = ["A wonderful film.<br />Loved it", "", "great " * 2000, "zzqx unknownwordzz", b"\xff\xfe bad \xc3"]
SENTENCES = ["The cat sat on the mat .", "", "word " * 50, "zzqx unknownwordzz", b"\xff\xfe bad \xc3 bytes"]
ENGLISH = ["go .", "i lost .", "", "word " * 50, "zzyzx qwerty", b"caf\xc3\xa9 \xff !"]


def classifier():
    words = WordTokenizer("course")
    vocab = Vocab(
        words.tokenize(["a wonderful film loved it", "a dull film"]), reserved_tokens=SEQUENCE_RESERVED
    )
    model = SequenceClassifier(len(vocab), 2, embedding_dim=4, units=4, num_layers=1)
    return TextClassifier(model, CleaningTokenizer(words), vocab, ["neg", "pos"], max_length=40)


def tagger():
    sentences = [["The", "cat", "sat", "on", "the", "mat", "."]]
    words = Vocab([[w.lower() for w in row] for row in sentences], reserved_tokens=SEQUENCE_RESERVED)
    chars = Vocab(
        [list(w) for row in sentences for w in row], reserved_tokens=SEQUENCE_RESERVED + SHAPE_TOKENS
    )
    tags = Vocab([["DET", "NOUN", "VERB", "ADP", "PUNCT"]], reserved_tokens=(), unk_token=None)
    model = build_tagger(
        "crf",
        vocab_size=len(words),
        num_tags=len(tags),
        embedding_dim=4,
        units=4,
        num_layers=1,
        char_vocab_size=len(chars),
        char_embedding_dim=3,
        char_filters=3,
    )
    encoder = TokenEncoder(words, chars, lowercase=True, max_chars=6, word_shape=True)
    return TextTagger(model, encoder, tags, max_tokens=20)


def translator():
    source = Vocab([["go", ".", "i", "lost"]], reserved_tokens=SEQUENCE_RESERVED)
    target = Vocab([["va", "!", "j'ai", "perdu", "."]], reserved_tokens=SEQUENCE_RESERVED)
    model = Seq2Seq(
        len(source),
        len(target),
        embedding_dim=4,
        units=6,
        num_layers=1,
        attention=True,
        bos_id=target.id_of(BOS),
        eos_id=target.id_of(EOS),
        pad_id=target.id_of(PAD),
        unk_id=target.unk_id,
    )
    model((np.ones((1, 2), np.int32), np.ones((1, 2), np.int32)))
    return Translator(model, source, target, max_source_length=8, max_output_length=6)


def test_classifier_tokenizes_cleans_and_cuts_as_the_model_reads():
    serving = classifier()
    out = serving.classify(tf.constant(REVIEWS))
    assert out["probabilities"].shape == (5, 2) and set(out["label"].numpy()) <= {b"neg", b"pos"}
    ids = serving.vocab.to_ids(tf.constant([["a", "wonderful", "film", "loved", "it"]])).numpy()
    np.testing.assert_allclose(out["probabilities"][0], serving.model(ids)[0], rtol=1e-6)


def test_classifier_with_bpe_ids():
    bpe = BPETokenizer.train(["a wonderful film, loved it; a dull film"] * 20, vocab_size=40)
    model = SequenceClassifier(bpe.vocab_size, 2, embedding_dim=4, units=4, num_layers=1)
    serving = TextClassifier(model, CleaningTokenizer(bpe), None, ["0", "1"], max_length=50)
    got = serving.classify(tf.constant(["A wonderful film.<br />Loved it", ""]))["probabilities"]
    ids = tf.constant([bpe.tokenize(tf.constant("A wonderful film. Loved it")).numpy().tolist()])
    np.testing.assert_allclose(got[0], model(ids)[0], rtol=1e-6)


def test_tagger_tags_each_token_and_pads_with_empty_strings():
    serving = tagger()
    out = serving.tag(tf.constant(SENTENCES))
    tokens, tags = out["tokens"].numpy(), out["tags"].numpy()
    assert [t.decode() for t in tokens[0][:7]] == SENTENCES[0].split()
    assert set(tags[1]) == {b""}  # an empty sentence: no token, no tag
    assert sum(tag != b"" for tag in tags[2]) == 20  # cut to max_tokens
    assert all(tag in serving.tag_vocab.token_to_idx for tag in (t.decode() for t in tags[0][:7]))
    (word_ids, char_ids), _ = serving.encoder(tf.strings.split(tf.constant(SENTENCES[:1])))
    np.testing.assert_array_equal(
        tags[0][:7], serving.tag_vocab.to_tokens(serving.model((word_ids, char_ids))).numpy()[0]
    )
    assert isinstance(serving.model, CRFTagger)


def test_translator_keeps_the_input_shape_and_scores_against_all_references():
    serving = translator()
    assert serving.translate(tf.constant([["go .", "a"], ["b", "c"]]))["translation"].shape == (2, 2)
    assert serving.translate(tf.constant([], tf.string))["translation"].shape == (0,)
    assert len(serving(["go .", "i lost ."])) == 2

    def fixed(sentences):
        return [{"go .": "va !", "run !": "file !"}[s] for s in sentences]

    scores, translations = score_translations(
        fixed, ["go .", "go .", "run !"], ["marche .", "va !", "cours !"]
    )
    assert translations == ["va !", "va !", "file !"]
    assert scores["exact"] == 0.5  # "go ." matches one of its references, "run !" none
    assert scores["corpus_bleu"] == zoo.corpus_bleu(["va !", "file !"], [("marche .", "va !"), ("cours !",)])
    assert scores["corpus_bleu_single_reference"] == zoo.corpus_bleu(
        translations, ["marche .", "va !", "cours !"]
    )


# A fresh interpreter that never imports zoo: the SavedModels must stand on plain TensorFlow.
LOAD_WITHOUT_ZOO = r"""
import json, sys
import tensorflow as tf
classify = tf.saved_model.load(sys.argv[1]).signatures["classify"]
tag = tf.saved_model.load(sys.argv[2]).signatures["tag"]
translate = tf.saved_model.load(sys.argv[3]).signatures["translate"]
reviews, sentences, english = json.loads(sys.argv[4])
to_bytes = lambda texts: tf.constant([t.encode("latin-1") for t in texts])
def decode(strings):
    return [decode(row) for row in strings] if strings.ndim > 1 else [text.decode() for text in strings]

print(json.dumps({
    "probabilities": classify(texts=to_bytes(reviews))["probabilities"].numpy().tolist(),
    "tags": decode(tag(sentences=to_bytes(sentences))["tags"].numpy()),
    "translations": decode(translate(text=to_bytes(english))["translation"].numpy()),
    "zoo_imported": sorted(m for m in sys.modules if m.split(".")[0] in ("zoo", "ops", "recipes")),
}))
"""


def as_latin1(texts):
    """Texts as JSON-safe strings that encode back to the same bytes with latin-1."""
    return [(t if isinstance(t, bytes) else t.encode("utf-8")).decode("latin-1") for t in texts]


def test_saved_models_run_without_zoo_and_agree_with_the_modules(tmp_path):
    modules = {"classify": classifier(), "tag": tagger(), "translate": translator()}
    tags = modules["tag"].tag(tf.constant(SENTENCES))["tags"].numpy()
    translations = modules["translate"].translate(tf.constant(ENGLISH))["translation"].numpy()
    expected = {
        "probabilities": modules["classify"].classify(tf.constant(REVIEWS))["probabilities"].numpy(),
        "tags": [[tag.decode() for tag in row] for row in tags],
        "translations": [text.decode() for text in translations],
    }
    paths = []
    for name, module in modules.items():
        paths.append(zoo.export.saved_model(module, tmp_path / name, {name: getattr(module, name)}))
        assert b"Zoo" not in (tmp_path / name / "saved_model.pb").read_bytes(), f"{name}: zoo custom ops"
    inputs = json.dumps([as_latin1(REVIEWS), as_latin1(SENTENCES), as_latin1(ENGLISH)])
    result = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_ZOO, *map(str, paths), inputs],
        capture_output=True,
        text=True,
        cwd="/",
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["zoo_imported"] == []
    np.testing.assert_allclose(loaded["probabilities"], expected["probabilities"], rtol=1e-5, atol=1e-6)
    assert loaded["tags"] == expected["tags"]
    assert loaded["translations"] == expected["translations"]


def test_saved_model_refuses_signatures_it_cannot_serve():
    module = tf.Module()
    module.double = tf.function(lambda x: 2 * x, input_signature=[tf.TensorSpec([None], tf.float32)])
    with pytest.raises(ValueError, match="signature 'double' must take raw strings"):
        zoo.export.saved_model(module, "/nonexistent", {"double": module.double})
    module.untyped = tf.function(lambda x: x)
    with pytest.raises(ValueError, match="signature 'untyped' needs a tf.function with an input_signature"):
        zoo.export.saved_model(module, "/nonexistent", {"untyped": module.untyped})
    with pytest.raises(ValueError, match="a SavedModel needs at least one signature"):
        zoo.export.saved_model(module, "/nonexistent", {})


def test_portable_graph_is_the_one_context_everywhere():
    assert zoo.portable_graph is zoo.export.portable_graph is zoo.layers.portable_graph
    assert not zoo.export.is_tracing_for_export()
    with zoo.export.portable_graph():
        assert zoo.export.is_tracing_for_export()
        with zoo.export.portable_graph():
            pass
        assert zoo.export.is_tracing_for_export()  # a nested context leaves the outer one on
    assert not zoo.export.is_tracing_for_export()
