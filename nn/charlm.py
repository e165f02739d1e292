"""A character-level language model: embedding → recurrent layers → linear to the vocabulary."""

import numpy as np

import tensorgrad as tg
from nn.generate import sample_next
from nn.layers import Embedding, Linear
from nn.module import Module
from nn.recurrent import GRU, LSTM, RNN

RECURRENT_LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}


class CharRNN(Module):
    """P(next character | characters so far), one distribution per time step.

    ids (T, B) → embeddings (T, B, H) → recurrent layers → logits (T, B, V).
    """

    def __init__(self, vocab_size, hidden_size=128, num_layers=1, model="lstm", dropout=0.0):
        super().__init__()
        if model not in RECURRENT_LAYERS:
            raise ValueError(f"CharRNN: model must be one of {sorted(RECURRENT_LAYERS)}, got {model!r}")
        self.embedding = Embedding(vocab_size, hidden_size)
        self.rnn = RECURRENT_LAYERS[model](hidden_size, hidden_size, num_layers, dropout=dropout)
        self.head = Linear(hidden_size, vocab_size)

    def forward(self, ids, state=None):
        """Logits (T, B, V) for integer ``ids`` (T, B), and the recurrent state after them."""
        output, state = self.rnn(self.embedding(ids), state)
        return self.head(output), state


@tg.no_grad()
def sample_text(model, vocab, length, *, prime="", temperature=1.0, top_k=None, rng=None):
    """``prime`` followed by ``length`` characters sampled one at a time from ``model``."""
    if temperature <= 0:
        raise ValueError(f"sample_text: temperature must be > 0, got {temperature}")
    rng = np.random.default_rng() if rng is None else rng
    was_training = model.training
    model.eval()
    try:
        ids = list(vocab.encode(prime)) if prime else [int(rng.integers(len(vocab)))]
        logits, state = model(np.asarray(ids, dtype=np.int64).reshape(-1, 1))
        generated = []
        for _ in range(length):
            next_id = sample_next(logits.data[-1, 0], temperature=temperature, top_k=top_k, rng=rng)
            generated.append(next_id)
            logits, state = model(np.array([[next_id]], dtype=np.int64), state)
        return (prime if prime else vocab.decode(ids)) + vocab.decode(generated)
    finally:
        model.train(was_training)
