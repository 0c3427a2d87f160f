"""Recurrent networks for Keras 3: cells, sequence layers with fast paths, models, text pipeline,
callbacks and export."""

from zoo import (
    attention,
    callbacks,
    cells,
    compat,
    crf,
    decoding,
    distribute,
    export,
    fine_tuning,
    layers,
    losses,
    metrics,
    models,
    recurrent,
    text,
)
from zoo.attention import AdditiveAttention, AttentionDecoderCell, attention_decoder_step_fn
from zoo.cells import GRUCell, LayerNormLSTMCell, LSTMCell, PeepholeLSTMCell, SimpleRNNCell
from zoo.crf import CRF, CRFTagger, crf_log_likelihood, crf_log_norm, crf_sequence_score, viterbi_decode
from zoo.decoding import BeamSearchResult, beam_search, greedy_decode, sample
from zoo.export import portable_graph
from zoo.layers import GRU, LSTM, Bidirectional, SimpleRNN, StackedRNN
from zoo.losses import SparseCategoricalCrossentropy
from zoo.metrics import Perplexity, bleu, corpus_bleu, entity_f1, entity_spans, token_accuracy
from zoo.models import (
    AveragedEnsemble,
    ContextualStringEmbeddings,
    LanguageModel,
    MultiTaskTagger,
    Seq2Seq,
    SequenceClassifier,
    SequenceTagger,
    TextClassifier,
    TextGenerator,
    TextTagger,
    Translator,
)
from zoo.recurrent import (
    MLSTM,
    RGLRU,
    SLSTM,
    MinGRU,
    MinGRUCell,
    MinLSTM,
    MinLSTMCell,
    MLSTMCell,
    RGLRUCell,
    SLSTMCell,
)
from zoo.text import BPETokenizer, CharTokenizer, TokenEncoder, Vocab, WordTokenizer

__version__ = "0.1.0"
