"""The encoder–decoder (sequence-to-sequence) model, with or without attention.

An LSTM reads the source; its final state (h, c) starts an LSTM decoder, which at step i
is fed the previous target token y_{i-1} (BOS first) and predicts y_i:

    without attention:  s_i = LSTM(embed(y_{i-1}), s_{i-1}),           logits_i = W_o s_i
    with attention:     c_i = Attend(s_{i-1}, h_1..h_S)                (Bahdanau, additive)
                        s_i = LSTM([embed(y_{i-1}); c_i], s_{i-1}),    logits_i = W_o [s_i; c_i]

Without attention everything the decoder knows of the source passes through the fixed-size
final state (the "thought vector"); with it, every step looks back at all encoder outputs.
Training feeds the true previous tokens (teacher forcing); decoding feeds the model's own
(:func:`nn.generate.greedy_decode`, :func:`nn.generate.beam_search`).
"""

from typing import NamedTuple

import numpy as np

import tensorgrad as tg
import tensorgrad.functions as F
from nn.attention import BahdanauAttention
from nn.cells import LSTMCell
from nn.layers import Embedding, Linear
from nn.module import Module
from nn.recurrent import LSTM
from tensorgrad import ShapeError, Variable
from tensorgrad.variable import data_of


class DecoderState(NamedTuple):
    """What one decoder step needs: its LSTM state, and the encoder's outputs to attend over."""

    h: Variable  # (N, H)
    c: Variable  # (N, H)
    memory: Variable  # (S, N, H) encoder outputs
    keys: Variable | None  # (S, N, A) their projection U h + b (attention only)
    padding: np.ndarray  # (N, S) True past each source's length

    def select(self, rows):
        """The state of the batch rows ``rows`` (an int array; rows may repeat, as beams do)."""
        return DecoderState(self.h[rows], self.c[rows], self.memory[:, rows],
                            None if self.keys is None else self.keys[:, rows], self.padding[rows])


class Seq2Seq(Module):
    """An LSTM encoder–decoder over token ids; ``attention=True`` adds Bahdanau attention.

    ``forward(source, lengths, decoder_inputs)`` with source (S, B), lengths (B,) and
    decoder_inputs (T, B) (BOS then the target, teacher forcing) returns the logits (T, B, V)
    and the attention weights (T, B, S) (None without attention).

    The token ids (arrays or Variables) reach the embeddings through the tape, so that a
    ``tg.jit`` replay of a training step embeds each call's ids. The lengths decide the
    steps the encoder runs and the padding: under ``tg.jit`` they are a tuple or a list
    (part of the signature), not an array argument.
    """

    def __init__(self, vocab_size, embedding_dim=32, hidden_size=64, attention=False):
        super().__init__()
        self.hidden_size, self.uses_attention = hidden_size, attention
        self.source_embedding = Embedding(vocab_size, embedding_dim)
        self.target_embedding = Embedding(vocab_size, embedding_dim)
        self.encoder = LSTM(embedding_dim, hidden_size)
        context = hidden_size if attention else 0
        self.decoder = LSTMCell(embedding_dim + context, hidden_size)
        if attention:
            self.attention = BahdanauAttention(hidden_size, hidden_size, hidden_size)
        self.head = Linear(hidden_size + context, vocab_size)

    def encode(self, source, lengths):
        """Run the encoder; the decoder's starting state (its final (h, c) and its outputs)."""
        source, lengths = tg.as_variable(source), data_of(lengths)
        if source.ndim != 2 or lengths.shape != source.shape[1:]:
            raise ShapeError(f"Seq2Seq: source must be (S, B) with lengths (B,), got {source.shape} and "
                             f"{lengths.shape}")
        with tg.scope("encoder"):
            memory, (h, c) = self.encoder(self.source_embedding(source), lengths=lengths)
        padding = np.arange(source.shape[0])[None, :] >= lengths[:, None]
        keys = self.attention.project_keys(memory) if self.uses_attention else None
        return DecoderState(h[0], c[0], memory, keys, padding)

    def decode_step(self, previous, state):
        """One decoder step fed the ``previous`` tokens (N,): (logits (N, V), new state, weights (N, S))."""
        x = self.target_embedding(previous)
        weights = None
        if self.uses_attention:
            context, weights = self.attention(state.h, state.memory, state.keys, state.padding)
            x = F.concat([x, context], axis=-1)
        h, c = self.decoder(x, (state.h, state.c))
        features = F.concat([h, context], axis=-1) if self.uses_attention else h
        return self.head(features), state._replace(h=h, c=c), weights

    def forward(self, source, lengths, decoder_inputs):
        state = self.encode(source, lengths)
        logits, weights = [], []
        for t, previous in enumerate(F.unbind(tg.as_variable(decoder_inputs))):
            with tg.scope("decoder"), tg.scope(f"t={t}"):
                step_logits, state, step_weights = self.decode_step(previous, state)
            logits.append(step_logits)
            weights.append(step_weights)
        return F.stack(logits), (F.stack(weights) if self.uses_attention else None)
