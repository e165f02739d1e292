"""Synthetic sequence tasks: small, exactly specified problems for training recurrent networks.

Every generator draws from ``rng``, a ``numpy.random.Generator`` (or a seed for one), so the
same generator state gives the same data. Arrays are time-major, (T, B, ...) as PyTorch's RNN
default: inputs are float32 features or int64 token ids, targets float32 values or int64 classes.

=====================  ==============================  ===================================
task                   inputs                          targets
=====================  ==============================  ===================================
adding_problem         (T, B, 2) value and marker      (B, 1) sum of the two marked values
word_detection         (T, B) character ids            (T, B) 1 where the word ends, else 0
sentiment_phrases      (T, B) word ids, (B,) lengths   (B,) 1 positive, 0 negative
reverse_digits         (L, B) digits                   (L, B) the digits reversed
reverse_strings        (S, B) symbol ids, (B,) lengths (S + 1, B) BOS + reversal, reversal + EOS
noisy_sine             (T, B, 1) noisy samples         (T, B, 1) the clean next sample
next_token             (T, B) token ids                (T - offset, B) the token ``offset`` ahead
embedded_reber         (T, B) symbol ids               (T, B) the next symbol, (T, B, 7) legal ones
copy_task              (T, B) symbol ids               (T, B) blank, then the first symbols
shape_captions         (B, 3, 8, 24) RGB images        (T, B) caption word ids, then END
=====================  ==============================  ===================================
"""

import string

import numpy as np

__all__ = [
    "adding_problem", "word_detection", "sentiment_phrases", "SENTIMENT_VOCAB", "reverse_digits",
    "noisy_sine", "next_token", "reverse_strings", "PAD", "BOS", "EOS",
    "REBER_SYMBOLS", "embedded_reber", "copy_task", "shape_captions", "CAPTION_VOCAB", "caption_text",
]


def adding_problem(rng, batch_size, seq_len):
    """The adding problem (Hochreiter & Schmidhuber, 1997): add two numbers seen long ago.

    Each step t of a sequence has two features: a value uₜ ~ U(0, 1) and a marker mₜ ∈ {0, 1}.
    Exactly two markers are 1, the first at a step in the first half [0, T/2) and the second
    in the second half [T/2, T), so the first marked value must be remembered for about T/2
    steps. The target is the sum of the marked values, y = Σₜ mₜ uₜ.

    Guessing y = 1 always has mean squared error E[(u + u' - 1)²] = Var(u + u') = 2/12 = 1/6.

    Returns x, float32 of shape (seq_len, batch_size, 2) with x[..., 0] the values and
    x[..., 1] the markers, and y, float32 of shape (batch_size, 1).
    """
    rng = np.random.default_rng(rng)
    _check_size("adding_problem", "batch_size", batch_size)
    _check_size("adding_problem", "seq_len", seq_len, minimum=2)
    half = seq_len // 2
    values = rng.random((seq_len, batch_size))
    markers = np.zeros((seq_len, batch_size))
    columns = np.arange(batch_size)
    markers[rng.integers(0, half, batch_size), columns] = 1
    markers[rng.integers(half, seq_len, batch_size), columns] = 1
    x = np.stack([values, markers], axis=-1).astype(np.float32)
    y = (x[..., 0] * x[..., 1]).sum(axis=0).reshape(batch_size, 1)
    return x, y


def word_detection(rng, batch_size, seq_len, word="cat", alphabet=string.ascii_lowercase, rate=0.05):
    """Character streams with a word hidden in them, labelled where each occurrence ends.

    Each stream is ``seq_len`` characters of ``alphabet`` drawn uniformly. At every position,
    with probability ``rate``, either ``word`` or, as often, a decoy (its letters shuffled,
    such as "act" or "tca" for "cat") is written over the stream, so that spotting the
    word needs its letters in the right order. The label of step t is 1 if an occurrence of
    ``word`` ends at t (stream[t-n+1 .. t] = word, n = len(word)), wherever it came from,
    and 0 otherwise.

    Returns ids, int64 of shape (seq_len, batch_size) (indices into ``alphabet``), and labels,
    int64 of the same shape.
    """
    rng = np.random.default_rng(rng)
    _check_size("word_detection", "batch_size", batch_size)
    _check_size("word_detection", "seq_len", seq_len)
    if len(word) < 2 or not set(word) <= set(alphabet) or len(set(alphabet)) != len(alphabet):
        raise ValueError(f"word_detection: the word {word!r} must have at least 2 characters, all in the "
                         f"alphabet {alphabet!r} (which must not repeat a character)")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"word_detection: rate must be in [0, 1], got {rate}")
    codes = np.array([alphabet.index(c) for c in word])
    n = len(codes)
    ids = rng.integers(0, len(alphabet), (seq_len, batch_size))
    starts, columns = np.nonzero(rng.random((max(seq_len - n + 1, 0), batch_size)) < rate)
    for start, column in zip(starts.tolist(), columns.tolist(), strict=True):
        ids[start:start + n, column] = codes if rng.random() < 0.5 else rng.permutation(codes)
    labels = np.zeros((seq_len, batch_size), dtype=np.int64)
    if seq_len >= n:
        windows = np.lib.stride_tricks.sliding_window_view(ids, n, axis=0)  # (T - n + 1, B, n)
        labels[n - 1:] = (windows == codes).all(axis=-1)
    return ids.astype(np.int64), labels


SENTIMENT_VOCAB = ("<pad>", "not", "but", "the", "film", "plot", "acting", "was", "is", "really", "quite",
                   "good", "great", "fine", "bad", "awful", "dull")
"""The words of :func:`sentiment_phrases`; a word's id is its index, and 0 is padding."""

_SUBJECTS, _VERBS, _INTENSIFIERS = ("film", "plot", "acting"), ("was", "is"), ("really", "quite")
_POSITIVE, _NEGATIVE = ("good", "great", "fine"), ("bad", "awful", "dull")


def sentiment_phrases(rng, batch_size):
    """Short reviews whose sentiment depends on word order, for many-to-one classification.

    A phrase is one clause, or two joined by "but" (each with probability 1/2), and a clause
    is "the <subject> <verb> [not] [really|quite] <adjective>", each bracket present with
    probability 1/2, e.g. "the film was not really good but the plot is great". The
    sentiment of the phrase is that of its last clause: its adjective's polarity, flipped if
    the clause has "not". The words present and their counts do not decide it: "the film was
    good but the plot is not bad" (positive) and "the film was not good but the plot is bad"
    (negative) have the same words. Even the best possible function of the word counts is
    right only 13/16 of the time (always for one clause, 5/8 of the time for two), while a
    recurrent network that reads the words in order can be right always.

    Returns ids, int64 of shape (T, batch_size) (indices into :data:`SENTIMENT_VOCAB`, padded
    with 0 after each phrase's end; T is the longest phrase), lengths, int64 of shape
    (batch_size,), and labels, int64 of shape (batch_size,): 1 positive, 0 negative.
    """
    rng = np.random.default_rng(rng)
    _check_size("sentiment_phrases", "batch_size", batch_size)
    phrases, labels = [], []
    for _ in range(batch_size):
        words = []
        for clause in range(1 + (rng.random() < 0.5)):
            if clause:
                words.append("but")
            negated, positive = rng.random() < 0.5, rng.random() < 0.5
            words += ["the", _pick(rng, _SUBJECTS), _pick(rng, _VERBS)]
            words += ["not"] * negated
            words += [_pick(rng, _INTENSIFIERS)] * (rng.random() < 0.5)
            words.append(_pick(rng, _POSITIVE if positive else _NEGATIVE))
        phrases.append([SENTIMENT_VOCAB.index(w) for w in words])
        labels.append(int(positive != negated))  # those of the last clause
    lengths = np.array([len(p) for p in phrases], dtype=np.int64)
    ids = np.zeros((lengths.max(), batch_size), dtype=np.int64)
    for column, phrase in enumerate(phrases):
        ids[:len(phrase), column] = phrase
    return ids, lengths, np.array(labels, dtype=np.int64)


def reverse_digits(rng, batch_size, length, num_digits=10):
    """Random digit strings and their reversals, for sequence-to-sequence learning.

    Returns source, int64 of shape (length, batch_size) with digits drawn uniformly from
    0 .. num_digits - 1, and target = source[::-1] (a copy), of the same shape.
    """
    rng = np.random.default_rng(rng)
    for name, value in (("batch_size", batch_size), ("length", length), ("num_digits", num_digits)):
        _check_size("reverse_digits", name, value)
    source = rng.integers(0, num_digits, (length, batch_size), dtype=np.int64)
    return source, source[::-1].copy()


PAD, BOS, EOS = 0, 1, 2  # the special tokens of reverse_strings; symbols are 3, 4, ...


def reverse_strings(rng, batch_size, min_length, max_length, num_symbols=8):
    """Strings of varying length and their reversals, for encoder–decoder models.

    Each string has a length drawn uniformly from [min_length, max_length] and symbols drawn
    uniformly from ``num_symbols`` ids 3 .. num_symbols + 2 (0 is PAD, 1 is BOS, 2 is EOS, so
    the vocabulary has num_symbols + 3 tokens). Returns

    - source, int64 (S, B): the strings, padded with PAD to S = the longest length drawn;
    - lengths, int64 (B,);
    - decoder_inputs, int64 (S + 1, B): BOS then the reversal (the decoder's previous tokens);
    - targets, int64 (S + 1, B): the reversal then EOS, padded with PAD (a loss ignores it).
    """
    rng = np.random.default_rng(rng)
    for name, value in (("batch_size", batch_size), ("min_length", min_length), ("num_symbols", num_symbols)):
        _check_size("reverse_strings", name, value)
    if max_length < min_length:
        raise ValueError(f"reverse_strings: max_length={max_length} is below min_length={min_length}")
    lengths = rng.integers(min_length, max_length + 1, batch_size).astype(np.int64)
    S = int(lengths.max())
    source = np.full((S, batch_size), PAD, dtype=np.int64)
    decoder_inputs = np.full((S + 1, batch_size), PAD, dtype=np.int64)
    targets = np.full((S + 1, batch_size), PAD, dtype=np.int64)
    decoder_inputs[0] = BOS
    for b, n in enumerate(lengths):
        string = rng.integers(3, num_symbols + 3, n)
        source[:n, b] = string
        decoder_inputs[1:n + 1, b] = string[::-1]
        targets[:n, b] = string[::-1]
        targets[n, b] = EOS
    return source, lengths, decoder_inputs, targets


def noisy_sine(rng, batch_size, seq_len, noise=0.1, frequency=(0.1, 0.3)):
    """Noisy samples of sine waves and the clean next sample, for time-series prediction.

    Sequence b is sₜ = sin(ω t + φ) with ω ~ U(``frequency``) (radians per step) and
    φ ~ U(0, 2π), observed with Gaussian noise: xₜ = sₜ + εₜ, εₜ ~ N(0, noise²). The target
    of step t is the clean next value sₜ₊₁.

    Predicting the last observation, ŝₜ₊₁ = xₜ, has mean squared error E[(sₜ₊₁ - sₜ)²] + noise².

    Returns x and y, float32 of shape (seq_len, batch_size, 1).
    """
    rng = np.random.default_rng(rng)
    _check_size("noisy_sine", "batch_size", batch_size)
    _check_size("noisy_sine", "seq_len", seq_len)
    if noise < 0 or not 0 <= frequency[0] <= frequency[1]:
        raise ValueError(f"noisy_sine: noise must be non-negative and frequency an interval (low, high) "
                         f"with 0 <= low <= high, got noise={noise} and frequency={frequency}")
    omega = rng.uniform(frequency[0], frequency[1], batch_size)
    phase = rng.uniform(0, 2 * np.pi, batch_size)
    clean = np.sin(np.arange(seq_len + 1)[:, None] * omega + phase)  # (T + 1, B)
    x = clean[:-1] + noise * rng.standard_normal((seq_len, batch_size))
    return x[..., None].astype(np.float32), clean[1:, :, None].astype(np.float32)


def next_token(rng, batch_size, seq_len, num_tokens, offset=1):
    """Random tokens with, as the target of each step, the token ``offset`` steps ahead.

    The tokens are independent and uniform over 0 .. num_tokens - 1, so the past says
    nothing about the future: a model that reads only up to step t is right with
    probability 1/num_tokens, and one that also reads the sequence backwards (a
    bidirectional RNN) can be right always.

    Returns ids, int64 of shape (seq_len, batch_size), and targets = ids[offset:], int64 of
    shape (seq_len - offset, batch_size): targets[t] is the token at step t + offset.
    """
    rng = np.random.default_rng(rng)
    for name, value in (("batch_size", batch_size), ("num_tokens", num_tokens), ("offset", offset)):
        _check_size("next_token", name, value)
    _check_size("next_token", "seq_len", seq_len, minimum=offset + 1)
    ids = rng.integers(0, num_tokens, (seq_len, batch_size), dtype=np.int64)
    return ids, ids[offset:].copy()


REBER_SYMBOLS = "BTSXPVE"
"""The symbols of the (embedded) Reber grammar; a symbol's id is its index."""

# Reber's grammar as a finite automaton, state: ((symbol, next state), ...); None ends the string.
# Each state's symbols differ, so a prefix of a string determines the state it leads to.
_REBER = {0: (("B", 1),), 1: (("T", 2), ("P", 3)), 2: (("S", 2), ("X", 4)), 3: (("T", 3), ("V", 5)),
          4: (("X", 3), ("S", 6)), 5: (("P", 4), ("V", 6)), 6: (("E", None),)}


def _reber_string(rng):
    """A string of Reber's grammar, with the symbols that may follow each of its prefixes."""
    symbols, legal, state = [], [], 0
    while state is not None:
        choices = _REBER[state]
        legal.append({symbol for symbol, _ in choices})
        symbol, state = choices[rng.integers(len(choices))]
        symbols.append(symbol)
    return symbols, legal


def embedded_reber(rng, batch_size):
    """Strings of the embedded Reber grammar (Cleeremans et al., 1989; Hochreiter & Schmidhuber, 1997).

    A string is B, then T or P, then a string of Reber's grammar (itself from B to E), then
    the same T or P again, then E: "BTBTXSETE", "BPBPVVEPE". The task is to predict, at
    every symbol, the next one. Inside the Reber string the next symbol is one of at most
    two, which the last few symbols decide; the next-to-last symbol is the second one again,
    which only a network that remembered it across the whole inner string can predict.

    A prediction is *legal* if its largest scores are exactly those of the symbols that may
    follow (Hochreiter & Schmidhuber's criterion: the possible next symbols are the most
    active outputs). ``legal[t, b]`` marks the symbols that may follow symbols 0..t of
    string b.

    Returns ids, int64 of shape (T, batch_size) (indices into :data:`REBER_SYMBOLS`, T the
    longest string, padded with 0 after each string's end), targets, int64 of the same
    shape, the next symbol of each step and -100 (the cross-entropy's ``ignore_index``)
    where there is none (the last E and the padding), and legal, bool of shape
    (T, batch_size, 7), False wherever the target is -100.
    """
    rng = np.random.default_rng(rng)
    _check_size("embedded_reber", "batch_size", batch_size)
    strings = []
    for _ in range(batch_size):
        branch = "TP"[rng.integers(2)]
        inner, inner_legal = _reber_string(rng)
        strings.append((["B", branch, *inner, branch, "E"], [{"T", "P"}, *inner_legal, {branch}, {"E"}]))
    steps = max(len(symbols) for symbols, _ in strings)
    ids = np.zeros((steps, batch_size), dtype=np.int64)
    targets = np.full((steps, batch_size), -100, dtype=np.int64)
    legal = np.zeros((steps, batch_size, len(REBER_SYMBOLS)), dtype=bool)
    for column, (symbols, follow) in enumerate(strings):
        codes = [REBER_SYMBOLS.index(symbol) for symbol in symbols]
        ids[:len(codes), column] = codes
        targets[:len(codes) - 1, column] = codes[1:]
        for t, allowed in enumerate(follow):
            legal[t, column, [REBER_SYMBOLS.index(symbol) for symbol in allowed]] = True
    return ids, targets, legal


def copy_task(rng, batch_size, delay, length=10, num_symbols=8):
    """The copy task (Hochreiter & Schmidhuber, 1997; Arjovsky et al., 2016): repeat symbols seen long ago.

    Ids 1..num_symbols are data, 0 is the blank and num_symbols + 1 the delimiter. The input
    is ``length`` data symbols drawn uniformly, ``delay - 1`` blanks, the delimiter and
    ``length`` more blanks, delay + 2·length steps in all; the target is blank for the first
    delay + length steps and then the data symbols, in order. So the first symbol must be
    kept for delay + length steps.

    A network without memory can learn only that the answer is blank until the delimiter,
    and then guess uniformly among the data symbols: its cross-entropy per step is
    length·ln(num_symbols) / (delay + 2·length), 10·ln 8 / (T + 20) in the classic setting
    (length 10, 8 symbols, delay T).

    Returns ids and targets, int64 of shape (delay + 2·length, batch_size).
    """
    rng = np.random.default_rng(rng)
    for name, value in (("batch_size", batch_size), ("delay", delay), ("length", length),
                        ("num_symbols", num_symbols)):
        _check_size("copy_task", name, value)
    data = rng.integers(1, num_symbols + 1, (length, batch_size), dtype=np.int64)
    ids = np.zeros((delay + 2 * length, batch_size), dtype=np.int64)
    ids[:length] = data
    ids[length + delay - 1] = num_symbols + 1
    targets = np.zeros_like(ids)
    targets[length + delay:] = data
    return ids, targets


CAPTION_VOCAB = ("<pad>", "<start>", "<end>", "a", "two", "three", "red", "green", "blue", "yellow",
                 "square", "squares", "circle", "circles", "triangle", "triangles", "left", "of")
_COLOURS = {"red": (1, 0, 0), "green": (0, 1, 0), "blue": (0, 0, 1), "yellow": (1, 1, 0)}
_SHAPES = ("square", "circle", "triangle")
_SLOT, _SIZE = 8, 7  # three 8×8 slots side by side, each holding at most one 7×7 shape


def _shape_masks():
    i, j = np.mgrid[:_SIZE, :_SIZE] - (_SIZE - 1) / 2
    return {"square": np.ones((_SIZE, _SIZE), bool), "circle": i ** 2 + j ** 2 <= 3.2 ** 2,
            "triangle": np.abs(j) <= (i + (_SIZE - 1) / 2) / 2 + 0.25}


def shape_captions(rng, batch_size, noise=0.1):
    """Small pictures of one to three shapes, each with its one correct caption.

    An 8×24 RGB image has three slots side by side; 1-3 of them hold a filled square, circle
    or triangle in red, green, blue or yellow, shifted by up to one pixel, on a black
    background with Gaussian ``noise``. Either all shapes are alike ("three blue circles") or
    there are two kinds, all of the first left of all of the second, and the caption says so:
    "two red squares left of a yellow triangle". Counts are "a", "two", "three".

    Returns images, float32 of shape (batch_size, 3, 8, 24), and captions, int64 of shape
    (9, batch_size): indices into :data:`CAPTION_VOCAB`, each caption followed by ``<end>``
    and padded with ``<pad>`` (index 0). ``caption_text`` turns a column back into words.
    """
    rng = np.random.default_rng(rng)
    _check_size("shape_captions", "batch_size", batch_size)
    masks, kinds = _shape_masks(), [(c, s) for c in _COLOURS for s in _SHAPES]
    images = noise * rng.standard_normal((batch_size, 3, _SLOT, 3 * _SLOT))
    captions = np.zeros((9, batch_size), np.int64)
    for b in range(batch_size):
        if rng.random() < 0.5:  # one kind, one to three times
            groups = [(kinds[rng.integers(len(kinds))], int(rng.integers(1, 4)))]
        else:  # two kinds, at most three shapes in all
            first, second = rng.choice(len(kinds), 2, replace=False)
            counts = ((1, 1), (1, 2), (2, 1))[rng.integers(3)]
            groups = [(kinds[first], counts[0]), (kinds[second], counts[1])]
        slots = iter(np.sort(rng.choice(3, sum(n for _, n in groups), replace=False)))
        words = []
        for (colour, shape), count in groups:
            for _ in range(count):
                top, left = rng.integers(0, _SLOT - _SIZE + 1, 2)
                left += next(slots) * _SLOT
                window = images[b, :, top:top + _SIZE, left:left + _SIZE]
                window[:, masks[shape]] += np.array(_COLOURS[colour], float)[:, None]
            words += (["left", "of"] if words else []) + [("a", "two", "three")[count - 1], colour,
                                                          shape + ("s" if count > 1 else "")]
        captions[:len(words) + 1, b] = [CAPTION_VOCAB.index(w) for w in words + ["<end>"]]
    return images.astype(np.float32), captions


def caption_text(ids):
    """The words of one caption (a sequence of :data:`CAPTION_VOCAB` indices) up to ``<end>``."""
    words = []
    for i in np.asarray(ids).tolist():
        if CAPTION_VOCAB[i] in ("<end>", "<pad>"):
            break
        words.append(CAPTION_VOCAB[i])
    return " ".join(words)


def _pick(rng, words):
    return words[rng.integers(len(words))]


def _check_size(owner, name, value, minimum=1):
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be at least {minimum}, got {value}")
