"""MultiTaskTagger: the tagger inside it is the model, each output layer learns from its own task only."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.models import MultiTaskTagger, SequenceTagger, multitask_batches
from zoo.text import SEQUENCE_RESERVED, TokenEncoder, Vocab, tagger_batches

WORDS = np.array([[3, 7, 5, 0], [2, 2, 4, 1]])
CHARS = np.random.default_rng(1).integers(1, 12, size=(2, 4, 3)) * (WORDS != 0)[:, :, None]


def small_multitask_tagger():
    tagger = SequenceTagger(
        vocab_size=20,
        num_tags=4,
        embedding_dim=6,
        units=5,
        char_vocab_size=12,
        char_embedding_dim=4,
        char_filters=3,
    )
    return MultiTaskTagger(tagger, auxiliary_tags=3)


def compiled(model):
    model.compile(
        keras.optimizers.SGD(0.5),
        loss={"tags": "sparse_categorical_crossentropy", "auxiliary": "sparse_categorical_crossentropy"},
    )
    return model


def test_main_output_is_the_tagger_and_the_auxiliary_output_its_own_softmax():
    model = small_multitask_tagger()
    outputs = model((WORDS, CHARS))
    assert set(outputs) == {"tags", "auxiliary"}
    assert outputs["tags"].shape == (2, 4, 4) and outputs["auxiliary"].shape == (2, 4, 3)
    np.testing.assert_allclose(
        np.asarray(outputs["tags"]), np.asarray(model.tagger((WORDS, CHARS))), atol=1e-6
    )
    np.testing.assert_allclose(np.asarray(outputs["auxiliary"]).sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("task", ["tags", "auxiliary"])
def test_each_task_trains_the_shared_encoder_and_only_its_own_output_layer(task):
    model = compiled(small_multitask_tagger())
    model((WORDS, CHARS))
    before = [variable.numpy().copy() for variable in model.weights]
    other = "auxiliary" if task == "tags" else "tags"
    targets = {task: np.array([[1, 2, 0, 0], [0, 1, 2, 1]]), other: np.zeros((2, 4), "int64")}
    weights = {task: (WORDS != 0).astype("float32"), other: np.zeros((2, 4), "float32")}
    model.fit((WORDS, CHARS), targets, sample_weight=weights, epochs=1, verbose=0)
    changed = {
        variable.path
        for variable, value in zip(model.weights, before)
        if not np.array_equal(value, variable.numpy())
    }
    own_layer = "scores" if task == "tags" else "auxiliary_scores"
    other_layer = "auxiliary_scores" if task == "tags" else "scores"
    assert any(f"/{own_layer}/" in path for path in changed)
    assert any("/encoder/" in path for path in changed) and any("word_embedding" in path for path in changed)
    assert not any(f"/{other_layer}/" in path for path in changed)


def test_keras_round_trip_is_exact(tmp_path):
    model = compiled(small_multitask_tagger())
    targets = {
        "tags": np.array([[1, 2, 3, 0], [0, 1, 2, 3]]),
        "auxiliary": np.array([[2, 1, 0, 0], [0, 1, 2, 1]]),
    }
    model.fit((WORDS, CHARS), targets, epochs=1, verbose=0)
    model.save(tmp_path / "multitask.keras")
    restored = keras.models.load_model(tmp_path / "multitask.keras")
    assert isinstance(restored, MultiTaskTagger) and isinstance(restored.tagger, SequenceTagger)
    for name in ("tags", "auxiliary"):
        np.testing.assert_array_equal(
            np.asarray(restored((WORDS, CHARS))[name]), np.asarray(model((WORDS, CHARS))[name])
        )


def test_bad_arguments_raise_clear_errors():
    logits_tagger = SequenceTagger(vocab_size=5, num_tags=2, output="logits")
    with pytest.raises(ValueError, match="output='softmax'"):
        MultiTaskTagger(logits_tagger, 3)
    with pytest.raises(ValueError, match="auxiliary_tags must be a positive int"):
        MultiTaskTagger(SequenceTagger(vocab_size=5, num_tags=2), 0)


def test_saved_model_export_gives_both_outputs(tmp_path):
    model = small_multitask_tagger()
    expected = model((WORDS, CHARS))
    model.export(str(tmp_path / "saved"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    served = loaded.serve((WORDS.astype("int32"), CHARS.astype("int32")))
    for name in ("tags", "auxiliary"):
        np.testing.assert_allclose(served[name].numpy(), np.asarray(expected[name]), atol=1e-6)


def test_multitask_batches_mix_whole_batches_of_each_task():
    words = Vocab([["a", "b"]], reserved_tokens=SEQUENCE_RESERVED)
    encoder = TokenEncoder(words, None, lowercase=True, max_chars=5)
    bio = Vocab([["O", "B-person"]], reserved_tokens=(), unk_token=None)
    upos = Vocab([["NOUN", "DET", "VERB"]], reserved_tokens=(), unk_token=None)
    main = tagger_batches(
        [["a", "b"]] * 5, [["O", "B-person"]] * 5, encoder, bio, 2, shuffle=True, seed=0, mask_weights=True
    )
    auxiliary = tagger_batches(
        [["b", "a", "a"]] * 7,
        [["DET", "NOUN", "VERB"]] * 7,
        encoder,
        upos,
        2,
        shuffle=True,
        seed=0,
        mask_weights=True,
    )
    mixed = multitask_batches(main, auxiliary, auxiliary_weight=0.5, seed=0)
    assert int(mixed.cardinality()) == 3 + 4
    tasks = []
    for _, tag_ids, weights in mixed:
        task = "tags" if weights["tags"].numpy().any() else "auxiliary"
        other = "auxiliary" if task == "tags" else "tags"
        assert not weights[other].numpy().any() and not tag_ids[other].numpy().any()
        expected = ("O", "B-person") if task == "tags" else ("DET", "NOUN", "VERB")
        expected_ids = [(bio if task == "tags" else upos).token_to_idx[tag] for tag in expected]
        assert (tag_ids[task].numpy() == expected_ids).all()
        assert set(weights[task].numpy().ravel()) == ({1.0} if task == "tags" else {0.5})
        tasks.append(task)
    assert tasks.count("tags") == 3 and tasks.count("auxiliary") == 4
    validation = next(iter(multitask_batches(main)))
    assert not validation[2]["auxiliary"].numpy().any()
    with pytest.raises(ValueError, match="multitask_batches needs datasets of known length"):
        multitask_batches(main, auxiliary.filter(lambda *batch: True))
