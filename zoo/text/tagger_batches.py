"""Training and evaluation batches for taggers, encoded in the graph by a `zoo.text.TokenEncoder`.

Unlike `zoo.text.tagging_batches` (word ids from one vocabulary), these batches hold whatever the
encoder gives (word ids, character ids and word shapes), encoded batch by batch by the same code the
serving module (`zoo.models.TextTagger`) runs, and may weigh entities up and drop words to `<unk>`.

Example:

>>> train = zoo.text.tagger_batches(sentences, tags, encoder, tag_vocab, batch_size=32,
...                                 shuffle=True, seed=0, mask_weights=True, word_dropout=0.15)
>>> model.fit(train, epochs=10)
"""

import tensorflow as tf


def tagger_batches(
    sentences,
    tags,
    encoder,
    tag_vocab,
    batch_size,
    *,
    shuffle,
    seed=None,
    mask_weights,
    word_dropout=0.0,
    entity_weight=1.0,
    string_embeddings=None,
):
    """Batches `(inputs, tag_ids[, weights])` of tokenized sentences and their tags.

    Args:
        sentences: lists of tokens.
        tags: lists of tags, aligned token by token.
        encoder: the `zoo.text.TokenEncoder` that makes the model's inputs.
        tag_vocab: tag → id (a `zoo.text.Vocab` without reserved or unknown tokens).
        batch_size: sentences per batch.
        shuffle: reshuffle the sentences each epoch.
        seed: the seed of the shuffling and of the word dropout: with one, every epoch's batches
            are the same from run to run, however many threads encode them.
        mask_weights: yield per-token sample weights (the padding mask, times `entity_weight` on
            entities) for a softmax tagger; a CRF reads the mask from the model, so without it the
            weights are per sentence, and only when `entity_weight` is not 1.
        word_dropout: the chance that a word id is replaced by `<unk>` (for training): the `<unk>`
            embedding gets trained and the tagger learns to lean on characters and context, as it
            must for words it never saw.
        entity_weight: the training weight, relative to 1, of the tokens not tagged `O` (with
            `mask_weights`), or else of the whole sentences that hold such a token: where entities
            are rare, it trades precision for recall.
        string_embeddings: a frozen `zoo.models.ContextualStringEmbeddings` for an `encoder` with a
            `string_embedding_vocab`: each sentence's embeddings are computed once, here, and the
            batches carry them in place of the language models' character ids (the layer takes
            either), so that training does not run the language models epoch after epoch. Build
            the model on `encoder.input_shapes()` first: Keras traces a model's default SavedModel
            signature on the shapes of its first build.

    Returns:
        A `tf.data.Dataset` of `(inputs, tag_ids [batch, time])` plus float32 weights (`[batch,
        time]` with `mask_weights`, `[batch]` otherwise) when there are any.

    Raises:
        ValueError: no sentences, an empty sentence, or a sentence whose tags are not one per token.
    """
    _check_sentences(sentences, tags)
    unk_id = encoder.word_vocab.unk_id
    outside_id = tag_vocab.token_to_idx.get("O", -1)
    columns = (tf.ragged.constant(sentences, dtype=tf.string), tf.ragged.constant(tags, dtype=tf.string))
    if string_embeddings is not None:
        columns += (embed_sentences(columns[0], encoder, string_embeddings, batch_size),)
    dataset = tf.data.Dataset.from_tensor_slices(columns)
    if shuffle:
        dataset = dataset.shuffle(len(sentences), seed=seed, reshuffle_each_iteration=True)

    def encode(tokens, token_tags, *rest):
        inputs, mask = encoder(tokens)
        if string_embeddings is not None:
            embedded, *rest = rest
            padded = embedded.to_tensor(0.0)
            # The encoder's steps: at least one, for a batch of empty sentences.
            padded = tf.pad(padded, [[0, 0], [0, tf.shape(mask)[1] - tf.shape(padded)[1]], [0, 0]])
            inputs = (*inputs[:-2], padded, inputs[-1])
        dropout_seed = rest[0] if rest else None
        if word_dropout:
            word_ids = inputs[0] if isinstance(inputs, tuple) else inputs
            # Stateless: a stateful op's draws would go to whichever batch a parallel map runs first.
            dropped = tf.random.stateless_uniform(tf.shape(word_ids), dropout_seed) < word_dropout
            word_ids = tf.where(dropped & mask, unk_id, word_ids)
            inputs = (word_ids, *inputs[1:]) if isinstance(inputs, tuple) else word_ids
        tag_ids = tag_vocab.to_ids(token_tags).to_tensor(0, shape=tf.shape(mask, out_type=tf.int64))
        entity = mask & tf.not_equal(tag_ids, outside_id)
        if mask_weights:
            return inputs, tag_ids, tf.where(entity, entity_weight, tf.cast(mask, tf.float32))
        if entity_weight != 1.0:
            return inputs, tag_ids, tf.where(tf.reduce_any(entity, axis=1), entity_weight, 1.0)
        return inputs, tag_ids

    dataset = dataset.ragged_batch(batch_size)
    if word_dropout:
        # A seed per batch, drawn anew each epoch from `seed`.
        batch_seeds = tf.data.Dataset.random(seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(dataset, batch_seeds).map(lambda batch, seeds: (*batch, seeds))
    return dataset.map(encode, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _check_sentences(sentences, tags):
    if len(sentences) != len(tags):
        raise ValueError(f"{len(sentences)} sentences but {len(tags)} tag sequences: give one per sentence")
    if not sentences:
        raise ValueError("no sentences: a tagger needs at least one tagged sentence")
    for index, (tokens, token_tags) in enumerate(zip(sentences, tags)):
        if not len(tokens):
            raise ValueError(f"sentence {index} is empty: each sentence needs at least one token")
        if len(tokens) != len(token_tags):
            raise ValueError(
                f"sentence {index} has {len(tokens)} tokens but {len(token_tags)} tags: one tag per token"
            )


def embed_sentences(sentences, encoder, string_embeddings, batch_size):
    """Each sentence's string embeddings, ragged float32 `[sentences, (words), dim]`: computed in
    batches of sentences of similar length (less padding to run the language models over)."""
    if getattr(encoder, "string_embedding_vocab", None) is None:
        raise ValueError("string_embeddings needs an encoder with a string_embedding_vocab")
    if string_embeddings.trainable:
        raise ValueError(
            "string_embeddings are computed once only when frozen: a trainable layer must run in training"
        )
    texts = tf.strings.reduce_join(sentences, axis=1, separator=" ")
    order = tf.argsort(tf.strings.length(texts, unit="UTF8_CHAR"))

    @tf.function(reduce_retracing=True)
    def embed(tokens):
        inputs, _ = encoder(tokens)
        embedded = string_embeddings(inputs[-2:], training=False)
        return tf.RaggedTensor.from_tensor(tf.cast(embedded, tf.float32), lengths=tokens.row_lengths())

    pieces = [
        embed(tf.gather(sentences, order[start : start + batch_size]))
        for start in range(0, len(order), batch_size)
    ]
    # Back from length order to the sentences' own.
    return tf.gather(tf.concat(pieces, axis=0), tf.argsort(order))
