"""Word shapes: a token's case and form (capitalised, all caps, handle, URL, number) as a symbol.

The shape tells names from other words where a lowercased word embedding cannot, and it carries
over to words never seen in training. `TokenEncoder(word_shape=True)` spells it as one extra leading
"character" that a character CNN reads beside the word's own characters.

Example:

>>> zoo.text.word_shapes(["Paris", "@bob", "2017"]).numpy()
array([b'<shape:capitalized>', b'<shape:handle>', b'<shape:number>'], dtype=object)
"""

import tensorflow as tf

# The first pattern a token fully matches names its shape.
WORD_SHAPES = (
    ("<shape:url>", r"(?i)(https?://|www\.).*"),
    ("<shape:handle>", r"[@#].+"),
    ("<shape:caps>", r"\p{Lu}[\p{Lu}\d]*\p{Lu}[\p{Lu}\d]*"),
    ("<shape:capitalized>", r"\p{Lu}.*"),
    ("<shape:lower>", r"\p{Ll}.*"),
    ("<shape:number>", r"\d.*"),
)
OTHER_SHAPE = "<shape:other>"
SHAPE_TOKENS = tuple(name for name, _ in WORD_SHAPES) + (OTHER_SHAPE,)


def word_shapes(tokens):
    """The shape of each token, in the graph.

    Args:
        tokens: a `tf.string` tensor (or anything that converts to one) of any shape.

    Returns:
        A `tf.string` tensor of the same shape: one of `SHAPE_TOKENS` per token.
    """
    tokens = tf.convert_to_tensor(tokens, tf.string)
    shapes = tf.fill(tf.shape(tokens), OTHER_SHAPE)
    for name, pattern in reversed(WORD_SHAPES):
        shapes = tf.where(tf.strings.regex_full_match(tokens, pattern), name, shapes)
    return shapes
