"""A recurrent language model (one-to-many) and in-graph text generation from it.

`LanguageModel` maps token ids to next-token logits: an embedding (or the course's one-hot inputs), a
recurrent stack and a dense output layer. The stack is either plain (`zoo.layers.StackedRNN`: deep
and/or bidirectional, the classic cells' default) or residual (`ResidualRecurrentBlock`s: normalisation,
the recurrent layer, a gated MLP, residual connections; the modern cells' default). It trains with
`model.fit` on `(X, Y)` batches from `zoo.text.random_sampling_batches`
(state reset for every batch: the default) or `zoo.text.sequential_partition_batches` with
`stateful=True` (state carried from batch to batch; call `reset_state()` at each epoch).

Generation runs in one graph: the prompt warms the state up, then `zoo.decoding.sample` draws the new
tokens with a step function that runs the cells once on the layers' own weights (no sequence layer,
no Python per token). `TextGenerator` wraps a model with its tokenizer and vocabulary: strings in,
strings out, exportable as a SavedModel that runs without `zoo`.
"""

import numbers

import keras
import tensorflow as tf
from keras import ops

from zoo import compat, decoding
from zoo.layers import StackedRNN
from zoo.models.residual_block import ResidualRecurrentBlock, cell_step
from zoo.text.bpe import BPETokenizer
from zoo.text.tokenizers import CharTokenizer

_PACKAGE = "zoo"
# A column appended to the logits while generating a run-time number of tokens: it wins once a row has
# used up its budget, acting as the end-of-sequence that stops zoo.decoding's loop.
_STOP_LOGIT = 1e9
CLASSIC_CELLS = ("rnn", "gru", "lstm")
MODERN_CELLS = ("mingru", "minlstm", "rglru", "slstm", "mlstm")
CELL_TYPES = CLASSIC_CELLS + MODERN_CELLS
BLOCKS = ("plain", "residual")
# Hawk's temporal convolution before the RG-LRU (De et al., 2024, Sec. 2.4).
DEFAULT_CONV_WIDTHS = {"rglru": 4}
BIDIRECTIONAL_GENERATION_ERROR = (
    "a bidirectional language model cannot generate text: its backward layer reads each sequence "
    "from its end, so predicting token t uses tokens after t, which do not exist yet while "
    "generating. Use it to score text; train a unidirectional model (bidirectional=False) to generate"
)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LanguageModel(keras.Model):
    """Next-token language model: embedding (or one-hot) → recurrent stack → dense logits.

    The stack is plain (`block="plain"`: `zoo.layers.StackedRNN`, layer on layer) or residual
    (`block="residual"`: the embedding projected to `units`, `num_layers` `ResidualRecurrentBlock`s,
    a final RMS normalisation), as the papers of the modern cells build their language models.

    Args:
        vocab_size: Number of token ids.
        cell_type: `"rnn"`, `"gru"`, `"lstm"` (classic), `"mingru"`, `"minlstm"`, `"rglru"`,
            `"slstm"` or `"mlstm"` (`zoo.recurrent`).
        units: Hidden size of each recurrent layer (per direction); the width of residual blocks.
        num_layers: Number of stacked recurrent layers or residual blocks.
        embedding_dim: Size of a learned embedding; None feeds one-hot vectors, as the course starts.
        dropout: Dropout rate between recurrent layers (residual: on each residual branch) and before
            the output layer.
        bidirectional: Bidirectional recurrent layers. Such a model scores text (it sees both sides
            of each position, so with inputs equal to targets it is not a language model of the
            future) and refuses to generate.
        stateful: Carry the recurrent state from one batch to the next (sequential partitioning):
            every batch must have the same size until `reset_state()`. Under a `tf.distribute`
            strategy each replica carries the state of its own rows (see `zoo.layers.CarriedState`).
        implementation: The recurrent layers' `implementation` (`"auto"`, `"fused"`, `"cudnn"`,
            `"loop"`).
        recurrent_layer_kwargs: Other keyword arguments of the recurrent layers (e.g.
            `{"recurrent_dropout": 0.1}`, `{"num_heads": 4}` for sLSTM and mLSTM).
        block: `"plain"` or `"residual"`; None takes the cell's default: plain for the classic
            cells (the models trained before residual blocks load unchanged), residual for the
            modern ones.
        conv_width: Residual blocks: width of the causal convolution before the recurrent layer
            (0: none); None takes 4 for the RG-LRU (Hawk's) and 0 for the others.
        mlp_expansion: Residual blocks: the gated MLP's hidden width as a multiple of `units`.

    Call arguments:
        inputs: int `[batch, time]` token ids.
        initial_state: Optional flat list of states (see `StackedRNN`).
        training: Whether dropout applies.
        return_state: Also return the final states.

    Returns:
        float `[batch, time, vocab_size]` logits (and the list of final states).

    Example:

    >>> model = LanguageModel(vocab_size=28, cell_type="gru", units=64)
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=1.0),
    ...               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ...               metrics=[zoo.metrics.Perplexity()])
    >>> model.fit(zoo.text.random_sampling_batches(ids, 32, 35, seed=0), epochs=5)
    """

    def __init__(
        self,
        vocab_size,
        cell_type="lstm",
        units=256,
        num_layers=1,
        embedding_dim=None,
        dropout=0.0,
        bidirectional=False,
        stateful=False,
        implementation="auto",
        recurrent_layer_kwargs=None,
        block=None,
        conv_width=None,
        mlp_expansion=3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if cell_type not in CELL_TYPES:
            raise ValueError(f"cell_type must be one of {', '.join(CELL_TYPES)}; got {cell_type!r}")
        if block is None:
            block = "plain" if cell_type in CLASSIC_CELLS else "residual"
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {BLOCKS} (or None: the cell's default); got {block!r}")
        if conv_width is None:
            conv_width = DEFAULT_CONV_WIDTHS.get(cell_type, 0) if block == "residual" else 0
        if isinstance(conv_width, bool) or not isinstance(conv_width, numbers.Integral) or conv_width < 0:
            raise ValueError(f"conv_width must be an int >= 0, got {conv_width!r}")
        if block == "plain" and conv_width:
            raise ValueError("conv_width is the convolution of residual blocks: use block='residual'")
        if block == "residual" and bidirectional:
            raise ValueError(
                "residual blocks are unidirectional: use block='plain' for a bidirectional model"
            )
        for name, value in (("vocab_size", vocab_size), ("units", units), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if embedding_dim is not None and (
            not isinstance(embedding_dim, numbers.Integral) or embedding_dim < 1
        ):
            raise ValueError(f"embedding_dim must be None (one-hot) or a positive int, got {embedding_dim!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.vocab_size = int(vocab_size)
        self.cell_type = cell_type
        self.units = int(units)
        self.num_layers = int(num_layers)
        self.embedding_dim = embedding_dim
        self.dropout = dropout
        self.bidirectional = bool(bidirectional)
        self.stateful = bool(stateful)
        self.implementation = implementation
        self.recurrent_layer_kwargs = dict(recurrent_layer_kwargs or {})
        self.block = block
        self.conv_width = int(conv_width)
        self.mlp_expansion = mlp_expansion
        self.embedding = (
            keras.layers.Embedding(vocab_size, embedding_dim, name="embedding") if embedding_dim else None
        )
        if block == "residual":
            self._build_residual_stack()
        else:
            self._build_plain_stack()
        self.output_dropout = keras.layers.Dropout(dropout) if dropout else None
        self.head = keras.layers.Dense(vocab_size, name="head")
        # Keras would cast every float argument to `input_dtype`, `initial_state` too (to int32 zeros);
        # `__call__` converts the token ids itself.
        compat.keep_input_dtypes(self)

    def _build_plain_stack(self):
        self.rnn = StackedRNN(
            self.cell_type,
            self.units,
            num_layers=self.num_layers,
            dropout=self.dropout,
            bidirectional=self.bidirectional,
            return_sequences=True,
            return_state=True,
            stateful=self.stateful,
            implementation=self.implementation,
            name="rnn",
            **self.recurrent_layer_kwargs,
        )

    def _build_residual_stack(self):
        features = self.embedding_dim or self.vocab_size
        # The residual stream has the blocks' width: a projection of the embedding when it differs.
        self.input_projection = (
            keras.layers.Dense(self.units, use_bias=False, name="input_projection")
            if features != self.units
            else None
        )
        self.blocks = [
            ResidualRecurrentBlock(
                self.cell_type,
                self.units,
                conv_width=self.conv_width,
                mlp_expansion=self.mlp_expansion,
                dropout=self.dropout,
                stateful=self.stateful,
                implementation=self.implementation,
                recurrent_layer_kwargs=self.recurrent_layer_kwargs,
                name=f"block_{index}",
            )
            for index in range(self.num_layers)
        ]
        self.final_norm = keras.layers.RMSNormalization(epsilon=1e-6, name="final_norm")

    # ------------------------------------------------------------------ training graph
    @property
    def input_dtype(self):
        # Token ids, not floats: Keras's SavedModel traversal traces a default signature in this dtype.
        return "int32"

    def __call__(self, inputs, *args, **kwargs):
        # Checked before Keras's conversion, which would silently turn float inputs into ids.
        # Placeholders are let through: Keras's symbolic build under a distribution strategy passes
        # float ones whatever the data's dtype.
        symbolic = isinstance(inputs, keras.KerasTensor) or tf.is_symbolic_tensor(inputs)
        dtype = None if symbolic else getattr(inputs, "dtype", None)
        if dtype is not None and not tf.as_dtype(dtype).is_integer:
            raise TypeError(f"LanguageModel expects integer token ids; got dtype {tf.as_dtype(dtype).name}")
        if not symbolic:
            inputs = ops.cast(inputs, "int32")
        return super().__call__(inputs, *args, **kwargs)

    def _embed(self, token_ids):
        if self.embedding is not None:
            embedded = self.embedding(token_ids)
        else:
            embedded = ops.one_hot(token_ids, self.vocab_size, dtype=self.compute_dtype)
        if self.block == "residual" and self.input_projection is not None:
            return self.input_projection(embedded)
        return embedded

    def _state_slices(self, states):
        """The flat states cut into each residual block's."""
        slices, start = [], 0
        for block in self.blocks:
            slices.append(list(states[start : start + len(block.state_sizes)]))
            start += len(block.state_sizes)
        return slices

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 2:
            raise ValueError(f"LanguageModel expects token ids of shape (batch, time); got {input_shape}")
        features = self.embedding_dim or self.vocab_size
        if self.embedding is not None:
            self.embedding.build(input_shape)
        if self.block == "residual":
            if self.input_projection is not None:
                self.input_projection.build(input_shape + (features,))
            for block in self.blocks:
                block.build(input_shape + (self.units,))
            self.final_norm.build(input_shape + (self.units,))
        else:
            self.rnn.build(input_shape + (features,))
        self.head.build(input_shape + (self.units * (2 if self.bidirectional else 1),))
        self.built = True

    def call(self, inputs, initial_state=None, training=False, return_state=False):
        outputs, states = self._top_layer(inputs, initial_state, training)
        if self.output_dropout is not None:
            outputs = self.output_dropout(outputs, training=training)
        logits = self.head(outputs)
        return (logits, states) if return_state else logits

    def hidden_states(self, token_ids, training=False, all_layers=False):
        """The top layer's output at each step, what the output layer reads (before its dropout).

        Args:
            token_ids: int `[batch, time]`.
            training: Whether dropout applies.
            all_layers: True concatenates every recurrent layer's (residual block's) output, the
                lowest first, as ELMo reads its layers: lower layers hold more of the syntax.

        Returns:
            float `[batch, time, units]` (`2 * units` when bidirectional; times `num_layers` with
            `all_layers`): at step t, the state after reading tokens 0..t.
        """
        token_ids = ops.convert_to_tensor(token_ids)
        if not token_ids.dtype.is_integer:
            raise TypeError(f"LanguageModel expects integer token ids; got dtype {token_ids.dtype.name}")
        if not all_layers:
            return self._top_layer(token_ids, None, training)[0]
        return ops.concatenate(self._layer_outputs(ops.cast(token_ids, "int32"), training), axis=-1)

    def _layer_outputs(self, inputs, training):
        """Each recurrent layer's (residual block's) outputs from zero states, the lowest first."""
        outputs = self._embed(inputs)
        if self.block != "residual":
            return [layer_outputs for layer_outputs, _ in self.rnn.layer_by_layer(outputs, training=training)]
        block_outputs = []
        for block in self.blocks:
            outputs, _ = block(outputs, training=training)
            block_outputs.append(outputs)
        block_outputs[-1] = self.final_norm(outputs)  # the top one as the output layer reads it
        return block_outputs

    def _top_layer(self, inputs, initial_state, training):
        """`(top layer's outputs, final states)`."""
        inputs = ops.cast(inputs, "int32")
        if inputs.shape.rank != 2:
            raise ValueError(f"LanguageModel expects token ids of shape (batch, time); got {inputs.shape}")
        if self.block == "residual":
            return self._residual_stack(self._embed(inputs), initial_state, training)
        outputs, *states = self.rnn(self._embed(inputs), initial_state=initial_state, training=training)
        return outputs, states

    def _residual_stack(self, outputs, initial_state, training):
        expected = sum(len(block.state_sizes) for block in self.blocks)
        if initial_state is not None and len(initial_state) != expected:
            raise ValueError(
                f"LanguageModel '{self.name}' expects {expected} initial states; got {len(initial_state)}"
            )
        slices = [None] * len(self.blocks) if initial_state is None else self._state_slices(initial_state)
        states = []
        for block, block_states in zip(self.blocks, slices):
            outputs, final = block(outputs, initial_state=block_states, training=training)
            states.extend(final)
        return self.final_norm(outputs), states

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.vocab_size,)

    def reset_state(self):
        """Zeros the carried state of a stateful model (at the start of each epoch)."""
        for stack in self.blocks if self.block == "residual" else [self.rnn]:
            stack.reset_state()

    def stateless_copy(self):
        """A new model of this configuration with `stateful=False` and this model's weights.

        What the exports take from a model trained with `stateful=True` (LiteRT refuses stateful
        layers): the caller carries the states instead, through `streaming_step`.
        """
        if not self.built:
            raise ValueError("build the model (call it on a batch or load trained weights) before copying it")
        copy = type(self).from_config({**self.get_config(), "stateful": False})
        copy.build((None, None))
        copy.set_weights(self.get_weights())
        return copy

    @property
    def implementation_used(self):
        """The path each recurrent layer took on its last trace."""
        if self.block == "residual":
            return [block.implementation_used for block in self.blocks]
        return self.rnn.implementation_used

    # ------------------------------------------------------------------ one step, for generation
    def _check_can_generate(self):
        if self.bidirectional:
            raise ValueError(BIDIRECTIONAL_GENERATION_ERROR)
        if not self.built:
            raise ValueError("build the model (call it on a batch or load trained weights) before generating")

    def initial_state(self, batch_size):
        """Zero states for `batch_size` sequences: a flat list, `StackedRNN`'s order."""
        self._check_can_generate()
        if self.block == "residual":
            return [state for block in self.blocks for state in block.get_initial_state(batch_size)]
        cells = [layer.cell for layer in self.rnn.rnn_layers]
        return [state for cell in cells for state in cell.get_initial_state(batch_size=batch_size)]

    def step(self, token_ids, states):
        """One time step on the layers' weights: `zoo.decoding`'s `step_fn(token_ids, states)`.

        Args:
            token_ids: int `[batch]`, the current token of each sequence.
            states: flat list of states, as from `initial_state` or `call(..., return_state=True)`.

        Returns:
            `(logits [batch, vocab_size], new_states)`.
        """
        self._check_can_generate()
        inputs = self._embed(token_ids)
        new_states = []
        if self.block == "residual":
            for block, block_states in zip(self.blocks, self._state_slices(states)):
                inputs, block_new = block.step(inputs, block_states)
                new_states.extend(block_new)
            return self.head(self.final_norm(inputs)), new_states
        start = 0
        for layer in self.rnn.rnn_layers:
            cell = layer.cell
            count = len(cell.state_size) if isinstance(cell.state_size, (list, tuple)) else 1
            inputs, layer_states = cell_step(cell, inputs, list(states[start : start + count]))
            new_states.extend(layer_states)
            start += count
        return self.head(inputs), new_states

    def streaming_step(self, token_ids, states):
        """One time step for streaming inference (`zoo.export.streaming`'s `step` signature).

        Args:
            token_ids: int `[batch, 1]`, the next token of each sequence.
            states: flat list of states (`initial_state`'s order and shapes).

        Returns:
            `(logits [batch, 1, vocab_size], new_states)`: fed one token at a time from zero
            states, the logits `call` gives the whole sequence.
        """
        token_ids = ops.convert_to_tensor(token_ids)
        if token_ids.shape.rank != 2 or token_ids.shape[1] not in (1, None):
            raise ValueError(f"streaming_step takes token ids of shape (batch, 1); got {token_ids.shape}")
        expected = len(self.initial_state(1))
        if len(states) != expected:
            raise ValueError(f"streaming_step takes {expected} states; got {len(states)}")
        logits, new_states = self.step(ops.cast(token_ids[:, 0], "int32"), states)
        return logits[:, None, :], new_states

    def warm_up(self, prefix_ids):
        """Feeds every prompt but its last token: the state and the token generation starts from.

        Args:
            prefix_ids: int `tf.RaggedTensor` `[batch, (length)]`, each row at least one token.

        Returns:
            `(last_ids [batch], states)`.
        """
        self._check_can_generate()
        lengths = tf.cast(prefix_ids.row_lengths(), tf.int32)
        check = tf.debugging.assert_positive(
            lengths, message="every prompt must hold at least one token after tokenization"
        )
        # Ordered before the gathers below, which would fail first with a less helpful message.
        with tf.control_dependencies([check]):
            lengths = tf.identity(lengths)
        tokens = tf.cast(prefix_ids.to_tensor(), tf.int32)
        batch_size = tf.shape(tokens)[0]

        def feed(position, states):
            _, new_states = self.step(tokens[:, position], states)
            # Rows whose prompt is shorter keep their state.
            keep = (position < lengths - 1)[:, None]
            return position + 1, [tf.where(keep, new, old) for new, old in zip(new_states, states)]

        _, states = tf.while_loop(
            lambda position, _: position < tf.reduce_max(lengths) - 1,
            feed,
            (tf.constant(0), self.initial_state(batch_size)),
        )
        return tf.gather(tokens, lengths - 1, batch_dims=1), states

    def generate_ids(self, prefix_ids, num_tokens, temperature=0.0, top_k=None, seed=None, max_tokens=None):
        """Continues token-id prompts, all in one graph.

        Args:
            prefix_ids: int `tf.RaggedTensor` `[batch, (length)]` (or a dense `[batch, length]`
                tensor / nested list); each prompt needs at least one token.
            num_tokens: How many tokens to generate: a Python int, or a scalar int tensor (then
                `max_tokens`, a Python int, bounds it).
            temperature: 0 (greedy) or > 0: sample from `softmax(logits / temperature)`.
            top_k: None, or sample among the `top_k` most likely tokens only.
            seed: int or int `[2]` tensor for reproducible samples; None draws a fresh one.
            max_tokens: With a tensor `num_tokens`, the largest value it may take.

        Returns:
            int32 `[batch, num_tokens]` generated ids (the prompt not included).
        """
        self._check_can_generate()
        if top_k is not None and (
            not isinstance(top_k, numbers.Integral) or not 1 <= top_k <= self.vocab_size
        ):
            raise ValueError(f"top_k must be None or an int in [1, {self.vocab_size}], got {top_k!r}")
        if not isinstance(prefix_ids, tf.RaggedTensor):
            prefix_ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(prefix_ids))
        if not prefix_ids.dtype.is_integer:
            raise TypeError(f"prefix_ids must be integer token ids; got dtype {prefix_ids.dtype.name}")
        if isinstance(num_tokens, numbers.Integral) and not isinstance(num_tokens, bool):
            if num_tokens < 1:
                raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
            last_ids, states = self.warm_up(prefix_ids)
            # A count known when tracing needs no stop token: the loop body stays minimal.
            generated, _ = decoding.sample(
                self.step,
                last_ids,
                states,
                max_length=int(num_tokens),
                temperature=temperature,
                top_k=top_k,
                seed=seed,
            )
            return generated
        if not isinstance(max_tokens, numbers.Integral) or max_tokens < 1:
            raise ValueError("a tensor num_tokens needs max_tokens, a Python int >= 1, to bound it")
        num_tokens = tf.convert_to_tensor(num_tokens, tf.int32)
        tf.debugging.assert_greater(num_tokens, 0, message="num_tokens must be >= 1")
        tf.debugging.assert_less_equal(
            num_tokens, max_tokens, message=f"num_tokens must be <= max_tokens={max_tokens}"
        )
        last_ids, states = self.warm_up(prefix_ids)
        stop_id = self.vocab_size

        def step_with_budget(token_ids, budget_and_states):
            remaining, states = budget_and_states
            logits, states = self.step(token_ids, states)
            stop = tf.where(remaining > 0, -_STOP_LOGIT, _STOP_LOGIT)[:, None]
            return tf.concat([logits, stop], axis=1), (remaining - 1, states)

        budget = tf.fill(tf.shape(last_ids), num_tokens)
        generated, _ = decoding.sample(
            step_with_budget,
            last_ids,
            (budget, states),
            max_length=max_tokens,
            temperature=temperature,
            top_k=top_k,
            seed=seed,
            eos_id=stop_id,
        )
        return generated[:, :num_tokens]

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "cell_type": self.cell_type,
            "units": self.units,
            "num_layers": self.num_layers,
            "embedding_dim": self.embedding_dim,
            "dropout": self.dropout,
            "bidirectional": self.bidirectional,
            "stateful": self.stateful,
            "implementation": self.implementation,
            "recurrent_layer_kwargs": self.recurrent_layer_kwargs,
            "block": self.block,
            "conv_width": self.conv_width,
            "mlp_expansion": self.mlp_expansion,
        }


class TextGenerator(tf.Module):
    """A language model with its tokenizer: text prompts in, text out, in one graph.

    Args:
        model: A trained `LanguageModel` (unidirectional).
        tokenizer: `zoo.text.CharTokenizer`, `WordTokenizer` (with `vocab`) or `BPETokenizer`
            (its own ids; `vocab` must be None).
        vocab: The `zoo.text.Vocab` the model's ids come from (char and word tokenizers).
        max_tokens: The most tokens `generate` produces per call.
        default_tokens: How many tokens `generate` produces when not told (the SavedModel's
            `generate` signature, which takes only the prompts, always produces this many).
        top_k: Optional top-k sampling in `generate` (fixed when the graph is built).
        reverse: The model reads text right to left (a character model trained on the reversed
            text, e.g. `recipes.language_model --reverse`): prompts are reversed before the model
            reads them and the outputs reversed back, so `generate` writes the text that comes
            before each prompt, in reading order.

    The output of `generate` is each prompt as the tokenizer sees it (e.g. cleaned and lowercased by
    the course's mode) followed by its continuation, as the course's `predict` prints it (with
    `reverse`: the text before the prompt, then the prompt).

    Example:

    >>> generator = TextGenerator(model, zoo.text.CharTokenizer(), vocab)
    >>> generator.generate(["time traveller"], num_tokens=50)            # greedy
    >>> generator.generate(["time traveller"], 50, temperature=0.8, seed=3)
    >>> tf.saved_model.save(generator, "lm")   # reload: tf.saved_model.load("lm").generate(...)
    """

    def __init__(
        self, model, tokenizer, vocab=None, max_tokens=1000, default_tokens=100, top_k=None, reverse=False
    ):
        super().__init__(name="text_generator")
        model._check_can_generate()
        is_bpe = isinstance(tokenizer, BPETokenizer)
        if reverse and not isinstance(tokenizer, CharTokenizer):
            raise ValueError("reverse=True is for character models (text reversed character by character)")
        if is_bpe and vocab is not None:
            raise ValueError("a BPETokenizer maps text to ids itself: pass vocab=None")
        if not is_bpe and vocab is None:
            raise ValueError(f"a {type(tokenizer).__name__} needs the Vocab that maps its tokens to ids")
        size = tokenizer.vocab_size if is_bpe else len(vocab)
        if size != model.vocab_size:
            raise ValueError(f"the tokenizer has {size} ids but the model was built for {model.vocab_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.vocab = vocab
        if not 1 <= default_tokens <= max_tokens:
            raise ValueError(f"default_tokens must be in [1, max_tokens={max_tokens}], got {default_tokens}")
        self.max_tokens = int(max_tokens)
        self.default_tokens = int(default_tokens)
        self.top_k = top_k
        self.reverse = bool(reverse)

        def generate(prefix, num_tokens=self.default_tokens, temperature=0.0, seed=-1):
            return self._generate(prefix, num_tokens, temperature, seed)

        self.generate = tf.function(
            generate,
            input_signature=[
                tf.TensorSpec([None], tf.string, name="prefix"),
                tf.TensorSpec([], tf.int32, name="num_tokens"),
                tf.TensorSpec([], tf.float32, name="temperature"),
                tf.TensorSpec([], tf.int64, name="seed"),
            ],
        )
        self.serve = tf.function(
            lambda prefix: {"text": self._generate(prefix)},
            input_signature=[tf.TensorSpec([None], tf.string, name="prefix")],
        )

    def encode(self, texts):
        """`tf.string` `[batch]` → int32 ragged ids `[batch, (tokens)]`, in the model's reading order."""
        if self.reverse:
            return self.vocab.to_ids(tf.reverse(self.tokenizer.tokenize(texts), axis=[1]))
        if self.vocab is None:
            return self.tokenizer.tokenize(texts)
        return self.vocab.to_ids(self.tokenizer.tokenize(texts))

    def decode(self, ids):
        """int ids `[batch, (tokens)]`, in the model's reading order → `tf.string` `[batch]`."""
        if self.reverse:
            return self.tokenizer.detokenize(tf.reverse(self.vocab.to_tokens(ids), axis=[1]))
        if self.vocab is None:
            return self.tokenizer.detokenize(ids)
        return self.tokenizer.detokenize(self.vocab.to_tokens(ids))

    def _generate(self, prefix, num_tokens=None, temperature=0.0, seed=-1):
        """Prompt + continuation for each prompt; `seed` < 0 draws a fresh seed."""
        prefix_ids = self.encode(prefix)
        if num_tokens is None:
            num_tokens = self.default_tokens
        seed = tf.convert_to_tensor(seed, tf.int64)
        seed_pair = tf.where(
            seed < 0, tf.random.uniform([2], maxval=tf.int64.max, dtype=tf.int64), tf.stack([seed, 0])
        )
        generated = self.model.generate_ids(
            prefix_ids,
            num_tokens,
            temperature=temperature,
            top_k=self.top_k,
            seed=seed_pair,
            max_tokens=self.max_tokens,
        )
        return self.decode(tf.concat([prefix_ids, tf.RaggedTensor.from_tensor(generated)], axis=1))

    def __call__(self, prefixes, num_tokens=100, temperature=0.0, seed=None):
        """Python strings in and out: `generate` for a str or a list of str.

        Args:
            prefixes: a str or a list of str.
            num_tokens: tokens to add to each.
            temperature: 0 for greedy, > 0 to sample.
            seed: an int >= 0 for reproducible samples, or None.
        """
        single = isinstance(prefixes, str)
        batch = [prefixes] if single else list(prefixes)
        if not batch or not all(isinstance(text, str) for text in batch):
            raise TypeError("prefixes must be a str or a non-empty list of str")
        if seed is not None and (not isinstance(seed, numbers.Integral) or seed < 0):
            raise ValueError(f"seed must be None or an int >= 0, got {seed!r}")
        texts = self.generate(
            tf.constant(batch),
            tf.constant(num_tokens, tf.int32),
            tf.constant(temperature, tf.float32),
            tf.constant(-1 if seed is None else seed, tf.int64),
        )
        texts = [text.decode("utf-8") for text in texts.numpy().tolist()]
        return texts[0] if single else texts
