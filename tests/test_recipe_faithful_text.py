"""Language models of text as written (`--text faithful`, `zoo.text.language_model_corpus`): corpora
in other scripts written by the tests keep their characters in the vocabulary, in generation and in
the exported SavedModel (slow tier: the recipe end to end, the export loaded by plain TensorFlow);
the defaults the recipe chooses from the corpus."""

import hashlib
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from recipes import language_model as recipe
from zoo import text as zoo_text
from zoo.models.language_model import LanguageModel, TextGenerator

CORPORA = {
    "accented latin": "Les étoiles étincelaient au-dessus de la forêt. « Où es-tu ? » demanda Éloïse, "
    "inquiète ; Noël répondit : « Ici, près du lac gelé ! »\n",
    "cyrillic": "Звёзды сияли над лесом. «Где ты?» — спросила Элоиза. Ёжик ответил: «Здесь, у озера!»\n",
    "cjk": "星星在森林上空闪烁。「你在哪里？」埃洛伊丝问道。刺猬回答：「在这里，在结冰的湖边！」\n",
    "code": 'def area(r):\n    """Circle."""\n    return 3.14159 * r ** 2  # {r: [0, ∞)}\n'
    "if __name__ == '__main__':\n    print(f\"{area(2.0):.3f}\", end='\\n')\n",
}
TINY = ["--layers", "1", "--units", "16", "--embedding-dim", "8", "--dropout", "0"]
TINY += ["--batch-size", "4", "--num-steps", "16", "--sample-tokens", "12", "--epochs", "1"]


def repeated(text, times=8):
    return text * times


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_faithful_characters_of_any_script_are_the_vocabulary(name):
    text = repeated(CORPORA[name])
    corpus = zoo_text.language_model_corpus(text, "char", "faithful")
    assert set(corpus.vocab.idx_to_token) == set(text) | {zoo_text.UNK}
    assert corpus.tokenizer.mode == "faithful"
    # Every character reads back as written: nothing is cleaned away and nothing is <unk>.
    assert "".join(corpus.vocab.to_tokens(corpus.ids.tolist())) == text


def test_unknown_characters_are_only_those_the_validation_text_adds():
    head = repeated(CORPORA["cyrillic"], 9)
    text = head + "жук ЩЪ 🦔 ъ.\n"  # Щ, Ъ, 🦔 and ъ occur in the last 10% only
    corpus = zoo_text.language_model_corpus(text, "char", "faithful", validation_fraction=0.1)
    train_ids, validation_ids = zoo_text.split_stream(corpus.ids, 0.1)
    unk = corpus.vocab.unk_id
    assert unk not in train_ids
    unknown = [char for char, id_ in zip(text[len(train_ids) :], validation_ids) if id_ == unk]
    assert unknown == ["Щ", "Ъ", "🦔", "ъ"]
    assert "ж" in corpus.vocab  # as in the training text
    for char in "ЩЪ🦔ъ":
        assert char not in corpus.vocab


def test_faithful_words_split_as_the_faithful_tokenizer_and_the_course_keeps_latin_letters():
    text = repeated(CORPORA["accented latin"])
    words = zoo_text.language_model_corpus(text, "word", "faithful")
    tokens = words.vocab.to_tokens(words.ids.tolist())
    assert tokens[:6] == ["Les", "étoiles", "étincelaient", "au", "-", "dessus"]
    assert tokens == zoo_text.WordTokenizer("faithful").tokenize(text)
    course = zoo_text.language_model_corpus(text, "char", "course")
    assert "".join(course.vocab.to_tokens(course.ids.tolist())).startswith("les toiles tincelaient")
    with pytest.raises(zoo_text.DataFormatError, match=r"Latin letters only\): pass text='faithful'"):
        zoo_text.language_model_corpus(CORPORA["cjk"], "char", "course")
    with pytest.raises(ValueError, match="text must be one of"):
        zoo_text.language_model_corpus(text, "char", "as-is")


def test_reader_defaults_course_for_the_book_and_faithful_for_a_file(tmp_path):
    book = zoo_text.read_language_model_corpus()
    assert (len(book.ids), len(book.vocab), book.tokenizer.mode) == (173_427, 28, "course")
    path = tmp_path / "ru.txt"
    path.write_text(repeated(CORPORA["cyrillic"]), encoding="utf-8")
    own = zoo_text.read_language_model_corpus(path)
    assert own.tokenizer.mode == "faithful" and "ё" in own.vocab and "\n" in own.vocab
    path.write_text(CORPORA["cjk"], encoding="utf-8")
    with pytest.raises(zoo_text.DataFormatError, match=r"ru.txt: no tokens .* pass text='faithful'"):
        zoo_text.read_language_model_corpus(path, text="course")


@pytest.mark.parametrize("name", ["cjk", "code"])
def test_generation_returns_the_characters_of_the_corpus(name):
    text = repeated(CORPORA[name])
    corpus = zoo_text.language_model_corpus(text, "char", "faithful")
    model = LanguageModel(len(corpus.vocab), "lstm", 8, embedding_dim=4)
    model(np.zeros((1, 2), "int32"))
    generator = TextGenerator(model, corpus.tokenizer, corpus.vocab)
    prefix = text[:12]
    sample = generator(prefix, 200, temperature=1.5, seed=3)
    assert sample.startswith(prefix)
    continuation = sample[len(prefix) :].replace(zoo_text.UNK, "")
    assert set(continuation) <= set(text) and set(continuation) - set(" \n")
    # An untrained model draws from all the characters: those of the script come out too.
    assert any(ord(char) > 127 for char in continuation)


def test_pretraining_text_is_read_as_written_in_the_vocabulary_of_the_data(tmp_path):
    data = tmp_path / "fr.txt"
    data.write_text(repeated(CORPORA["accented latin"]), encoding="utf-8")
    other = tmp_path / "other.txt"
    other.write_text("Où, Noël ?\nЁж!\n", encoding="utf-8")
    args = recipe.build_parser().parse_args(["--data", str(data), "--pretrain-data", str(other)])
    args.text = "faithful"
    ids, tokenizer, vocab = recipe.tokenize(args, data.read_text(encoding="utf-8"))
    tokens = vocab.to_tokens(recipe.pretraining_ids(args, tokenizer, vocab).tolist())
    assert "".join(tokens) == "Où, Noël ?\n<unk><unk>!\n"  # Cyrillic is not in the French text


# --- The recipe's choices from the corpus ---------------------------------------------------


def parsed(argv):
    return recipe.build_parser().parse_args(argv)


def test_the_book_is_recognised_by_its_sha1_wherever_it_is_read_from(data_file, tmp_path):
    book = data_file("timemachine/timemachine.txt")
    text = book.read_text()
    assert recipe.is_the_book(parsed([]), text)
    assert recipe.is_the_book(parsed(["--data", str(book)]), text)
    assert not recipe.is_the_book(parsed(["--data", str(book)]), text[:8_000])
    assert hashlib.sha1(text.encode()).hexdigest() == zoo_text.TIME_MACHINE_SHA1


@pytest.mark.parametrize(
    "book, given, expected_text, expected_prefix",
    [
        (True, [], "course", "time traveller"),
        (False, [], "faithful", CORPORA["cjk"][: recipe.PREFIX_CHARS]),  # no spaces: 20 characters
        (False, ["--text", "course", "--prefix", "lac"], "course", "lac"),
    ],
)
def test_text_and_prefix_defaults(book, given, expected_text, expected_prefix, capsys):
    args = parsed(given)
    recipe.choose_text_defaults(args, CORPORA["cjk"], book)
    assert (args.text, args.prefix) == (expected_text, expected_prefix)
    assert f"text: {expected_text} (" in capsys.readouterr().out


def test_corpus_prefix_is_the_first_words_of_the_first_line_that_is_not_blank():
    assert recipe.corpus_prefix("\n  \nLes étoiles étincelaient au-dessus\n") == "Les étoiles"
    assert recipe.corpus_prefix(CORPORA["code"]) == "def area(r):"


def test_run_length_follows_the_corpus_and_epochs_overrides(capsys):
    book = parsed([])
    recipe.choose_run_length(book, 156_084, 28, book=True)  # the book's training characters
    assert (book.epochs, book.patience, book.dropout) == (40, 0, 0.4)
    assert "run length: 40 epochs of 156,084 tokens" in capsys.readouterr().out
    big = parsed([])
    recipe.choose_run_length(big, 3_000_000, 120, book=False)
    assert big.epochs == round(recipe.TOKEN_BUDGET / 3_000_000) and big.patience == recipe.CORPUS_PATIENCE
    out = capsys.readouterr().out
    assert f"run length: {big.epochs} epochs of 3,000,000 tokens" in out and "early stop after 3" in out
    assert big.dropout == 0.1 and "dropout 0.1 (at most 10 epochs)" in out  # a few epochs barely fit
    minutes = int(re.search(r"expected about (\d+) minutes", out).group(1))
    assert 20 <= minutes <= 25  # the budget is 20-25 minutes of the default model
    huge = parsed(["--patience", "0"])
    recipe.choose_run_length(huge, 500_000_000, 120, book=False)
    assert (huge.epochs, huge.patience) == (1, 0)
    capsys.readouterr()
    given = parsed(["--epochs", "2", "--units", "1024", "--dropout", "0.3"])
    recipe.choose_run_length(given, 3_000_000, 120, book=False)
    assert (given.epochs, given.dropout) == (2, 0.3)
    out = capsys.readouterr().out
    assert "(--epochs)" in out and "dropout" not in out
    small = parsed([])
    recipe.choose_run_length(small, 400_000, 120, book=False)  # 25 epochs of a small text
    assert (small.epochs, small.dropout) == (25, 0.4)
    assert "dropout 0.4 (over 10 epochs)" in capsys.readouterr().out


def test_text_flag_is_for_char_and_word_tokens(tmp_path, capsys):
    with pytest.raises(SystemExit):
        recipe.main(["--tokenizer", "bpe", "--text", "faithful", "--output-dir", str(tmp_path / "run")])
    assert "error: --text is for char and word tokens" in capsys.readouterr().err


def test_course_cleaning_of_a_chinese_file_names_the_flag_to_pass(tmp_path, capsys):
    path = tmp_path / "zh.txt"
    path.write_text(repeated(CORPORA["cjk"]), encoding="utf-8")
    with pytest.raises(SystemExit):
        recipe.main(["--data", str(path), "--text", "course", "--output-dir", str(tmp_path / "run"), *TINY])
    assert capsys.readouterr().err == (
        f"error: --data {path}: no tokens after the course's cleaning (Latin letters only): pass "
        "--text faithful to keep every script, case and punctuation\n"
    )


# --- End to end (slow tier) -----------------------------------------------------------------


@pytest.mark.slow
def test_recipe_on_a_mixed_script_corpus_exports_it_to_plain_tensorflow(tmp_path, capsys):
    text = repeated("".join(CORPORA.values()), 6)
    path = tmp_path / "mixed.txt"
    path.write_text(text, encoding="utf-8")
    run = tmp_path / "run"
    result = recipe.main(["--data", str(path), "--output-dir", str(run), *TINY])
    out = capsys.readouterr().out
    assert "text: faithful" in out and "run length: 1 epoch of" in out
    assert "epoch 1 sample: 'Les étoiles" in out
    vocab = zoo_text.Vocab.load(run / "vocab.txt")
    assert set(vocab.idx_to_token) == set(text) | {zoo_text.UNK}  # "\n" and "\\" included
    assert result.final["vocab_size"] == len(vocab)

    # The SavedModel, in a process that never imports zoo, keeps every script's characters.
    script = (
        "import sys, tensorflow as tf\n"
        f"lm = tf.saved_model.load({str(run / 'saved_model')!r})\n"
        "prompts = ['Звёзды', '星星在', 'print(f\"{']\n"
        "greedy = lm.generate(tf.constant(prompts), num_tokens=12)\n"
        "sampled = lm.generate(tf.constant(['Où']), 300, 1.5, 5)\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('zoo', 'ops', 'recipes')]\n"
        "for line in [*greedy.numpy(), sampled.numpy()[0]]:\n"
        "    print(line.decode('utf-8').encode('unicode_escape').decode('ascii'))\n"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH="")
    process = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert process.returncode == 0, process.stderr[-2000:]
    lines = [
        line.encode("ascii").decode("unicode_escape") for line in process.stdout.strip().split("\n")[-4:]
    ]
    greedy, sampled = lines[:3], lines[3]
    generator = TextGenerator(result.model, zoo_text.CharTokenizer("faithful"), vocab)
    assert greedy == generator(["Звёзды", "星星在", 'print(f"{'], 12)
    assert sampled.startswith("Où") and set(sampled) <= set(text) | set(zoo_text.UNK)
    # Sampled hot from a model of one epoch: characters of the other scripts come out.
    assert {char for char in sampled[2:] if ord(char) > 127} - set(CORPORA["accented latin"])
