"""Data for character-level language models: a vocabulary and stream batching for truncated BPTT."""

import math

import numpy as np

from tensorgrad import Variable
from tensorgrad.variable import data_of


class CharVocab:
    """The sorted unique characters of a text, numbered 0, 1, ...

    ``encode`` maps a string to an int64 array of ids and ``decode`` maps ids back. The
    vocabulary is saved as the string ``vocab.chars`` and restored with
    ``CharVocab.from_chars(chars)``.
    """

    def __init__(self, text):
        if not text:
            raise ValueError("CharVocab: the text is empty")
        self.chars = "".join(sorted(set(text)))
        self._codes = _code_points(self.chars)  # sorted, so encode can binary-search them

    @classmethod
    def from_chars(cls, chars):
        """The vocabulary whose ``.chars`` is ``chars`` (sorted unique characters)."""
        chars = str(chars)
        if not chars or chars != "".join(sorted(set(chars))):
            raise ValueError("CharVocab.from_chars: chars must be non-empty, sorted and without repeats")
        return cls(chars)

    def __len__(self):
        return len(self.chars)

    def __repr__(self):
        return f"CharVocab({len(self)} characters)"

    def encode(self, text):
        """The ids of the characters of ``text``, as an int64 array; an unknown character is a ValueError."""
        codes = _code_points(text)
        ids = np.searchsorted(self._codes, codes)
        unknown = self._codes[np.minimum(ids, len(self) - 1)] != codes
        if unknown.any():
            char = chr(codes[np.argmax(unknown)])
            raise ValueError(f"CharVocab.encode: character {char!r} is not in the vocabulary")
        return ids.astype(np.int64)

    def decode(self, ids):
        """The string of the characters with these ids (any integer array or sequence)."""
        ids = data_of(ids).reshape(-1)
        if ids.size and ids.dtype.kind not in "iu":
            raise TypeError(f"CharVocab.decode: ids must be integers, got dtype {ids.dtype}")
        bad = (ids < 0) | (ids >= len(self))
        if bad.any():
            raise IndexError(f"CharVocab.decode: id {ids[bad][0]} is out of range for a vocabulary of "
                             f"{len(self)} characters")
        return "".join([self.chars[i] for i in ids.tolist()])


def _code_points(text):
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


class StreamBatcher:
    """Windows of a long token stream for truncated backpropagation through time.

    The stream ``ids`` is cut into ``batch_size`` rows of n = len(ids) // batch_size
    consecutive tokens (the remainder is dropped): row b is ids[b·n : (b+1)·n] and column b
    of ``data``, an int64 array of shape (n, batch_size). Iterating gives windows of
    ``seq_len`` steps along the rows, (inputs, targets), both int64 arrays of shape
    (T, batch_size) in time-major layout (PyTorch's RNN default): inputs are steps
    [k·seq_len, k·seq_len + T) of every row and targets the tokens one step later. The last
    window may be shorter (T < seq_len); ``len()`` is the number of windows, and
    ``batches[k]`` is window k (so training can resume in the middle of a pass).

    Column b of each window continues column b of the one before, so the final hidden
    state of one window is the right initial state for the next. Carry it, detached, so
    that information flows across windows while gradients stop at the window edge::

        state = None
        for inputs, targets in StreamBatcher(ids, batch_size=32, seq_len=64):
            logits, state = model(inputs, state)       # logits of shape (T, B, vocab)
            state = detach_state(state)                  # cut the graph at the window edge
            loss = nn.softmax_cross_entropy(logits.reshape(-1, len(vocab)), targets.reshape(-1))
            optimizer.zero_grad(); loss.backward(); optimizer.step()
    """

    def __init__(self, ids, batch_size, seq_len):
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise TypeError(f"StreamBatcher: ids must be a 1-d integer array, got shape {ids.shape} "
                            f"and dtype {ids.dtype}")
        if batch_size < 1 or seq_len < 1:
            raise ValueError(f"StreamBatcher: batch_size and seq_len must be at least 1, got {batch_size} "
                             f"and {seq_len}")
        steps = len(ids) // batch_size
        if steps < 2:
            raise ValueError(f"StreamBatcher: {len(ids)} tokens are too few for {batch_size} rows (each row "
                             "needs at least 2 tokens: an input and its target)")
        self.batch_size = batch_size
        self.seq_len = seq_len
        rows = ids[:steps * batch_size].astype(np.int64).reshape(batch_size, steps)
        self.data = np.ascontiguousarray(rows.T)
        self.data.flags.writeable = False  # the windows are views of it

    def __len__(self):
        return math.ceil((len(self.data) - 1) / self.seq_len)

    def __getitem__(self, k):
        """Window k: (inputs, targets) of steps [k·seq_len, k·seq_len + T), as when iterating."""
        if not -len(self) <= k < len(self):
            raise IndexError(f"StreamBatcher: window {k} is out of range for {len(self)} windows")
        start = (k % len(self)) * self.seq_len
        stop = min(start + self.seq_len, len(self.data) - 1)
        return self.data[start:stop], self.data[start + 1:stop + 1]

    def __iter__(self):
        for k in range(len(self)):
            yield self[k]


def detach_state(state):
    """A recurrent state (a Variable, a tuple or list of them, nested, or None) detached from its graph.

    The values are shared; the new Variables are leaves without gradient, so
    backpropagation of the next window stops at them.
    """
    if state is None:
        return None
    if isinstance(state, Variable):
        return state.detach()
    if isinstance(state, tuple | list):
        return type(state)(detach_state(s) for s in state)
    raise TypeError(f"detach_state: expected a Variable or a tuple of them, got {type(state).__name__}")
