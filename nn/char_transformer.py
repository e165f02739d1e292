"""A character-level Transformer language model: the causal counterpart of :class:`nn.CharRNN`."""


import tensorgrad as tg
import tensorgrad.functions as F
from nn.layers import Embedding, LayerNorm, Linear
from nn.module import Module
from nn.positional import (
    LearnedPositionalEncoding,
    SinusoidalPositionalEncoding,
    generate_square_subsequent_mask,
)
from nn.transformer import TransformerEncoder, TransformerEncoderLayer
from tensorgrad import ShapeError

POSITIONS = {"learned": LearnedPositionalEncoding, "sinusoidal": SinusoidalPositionalEncoding}


class CharTransformer(Module):
    """P(next character | the previous ``context`` characters), one distribution per position.

    ids (T, B) → embeddings + positions (T, B, d) → pre-norm Transformer encoder layers under
    the causal mask (position t attends to positions ≤ t) → LayerNorm → logits (T, B, V).

    Unlike a recurrent model it carries no state across windows: a window of ``context``
    characters is attended over on its own, all positions at once. ``forward(ids, state)``
    keeps :class:`nn.CharRNN`'s signature for sampling: ``state`` is the last characters
    seen (at most ``context - 1`` of them), which only matter when fewer than ``context``
    new characters arrive, as when sampling one character at a time; for a full window they
    fall out of the context, so training is window by window. Longer inputs are read window
    by window too.
    """

    def __init__(self, vocab_size, d_model=128, num_layers=1, nhead=4, context=64, positions="learned",
                 dim_feedforward=None, dropout=0.0):
        super().__init__()
        if positions not in POSITIONS:
            raise ValueError(f"CharTransformer: positions must be one of {sorted(POSITIONS)}, "
                             f"got {positions!r}")
        self.context, self.positions = context, positions
        self.embedding = Embedding(vocab_size, d_model)
        self.position = POSITIONS[positions](d_model, max_len=context)
        layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward or 4 * d_model, dropout,
                                        norm_first=True)
        self.encoder = TransformerEncoder(layer, num_layers, LayerNorm(d_model))
        self.head = Linear(d_model, vocab_size)

    def forward(self, ids, state=None):
        """Logits (T, B, V) for integer ``ids`` (T, B), and the characters to carry for sampling.

        The ids are handled as Variables (concatenated and sliced on the tape), so that a
        ``tg.jit`` trace of a window sees them as inputs of the plan.
        """
        ids = tg.as_variable(ids)
        if ids.ndim != 2 or len(ids) == 0:
            raise ShapeError(f"CharTransformer: ids must be (T, B) with T >= 1, got shape {ids.shape}")
        pieces = []
        for start in range(0, len(ids), self.context):  # more than one window (a long prime): in turn
            logits, state = self._window(ids[start:start + self.context], state)
            pieces.append(logits)
        return (pieces[0] if len(pieces) == 1 else F.concat(pieces)), state

    def _window(self, ids, state):
        """The logits of at most ``context`` new ``ids`` after the carried ones, and what to carry."""
        new = len(ids)
        if state is not None:
            ids = F.concat([state, ids])[-self.context:]
        T = len(ids)
        x = self.position(self.embedding(ids))
        x = self.encoder(x, mask=generate_square_subsequent_mask(T, x.dtype), is_causal=True)
        logits = self.head(x[T - new:])
        return logits, ids[-(self.context - 1):] if self.context > 1 else ids[:0]

    def extra_repr(self):
        return f"context={self.context}, positions={self.positions!r}"
