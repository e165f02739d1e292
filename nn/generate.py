"""Generating from models: sampling the next token (temperature, top-k), and greedy and beam-search
decoding of an encoder–decoder."""

import numpy as np

import tensorgrad as tg
from tensorgrad import random
from tensorgrad.modes import warn_if_traced
from tensorgrad.variable import data_of


def next_token_probabilities(logits, temperature=1.0, top_k=None):
    """The distribution the next token is drawn from, in float64, over the last axis of ``logits``.

        p = softmax(z / temperature)   with z = logits, where only the ``top_k`` largest
                                       logits are kept (ties with the k-th are kept too)

    A temperature below 1 sharpens the distribution, above 1 flattens it.
    """
    if not temperature > 0:
        raise ValueError(f"sample_next: temperature must be > 0, got {temperature}")
    z = np.array(data_of(logits), dtype=np.float64)
    if z.ndim == 0 or z.shape[-1] == 0:
        raise ValueError(f"sample_next: logits must have a non-empty last axis, got shape {z.shape}")
    if np.isnan(z).any():
        raise ValueError("sample_next: the logits contain NaN")
    z /= temperature
    if top_k is not None:
        if int(top_k) != top_k or top_k < 1:
            raise ValueError(f"sample_next: top_k must be an integer >= 1, got {top_k}")
        k = min(int(top_k), z.shape[-1])
        kth_largest = np.partition(z, -k, axis=-1)[..., [-k]]
        z[z < kth_largest] = -np.inf
    largest = z.max(axis=-1, keepdims=True)
    if not np.isfinite(largest).all():
        raise ValueError("sample_next: the logits hold +inf, or only -inf, so they give no distribution")
    p = np.exp(z - largest)
    p /= p.sum(axis=-1, keepdims=True)
    return p


def sample_next(logits, temperature=1.0, top_k=None, rng=None):
    """Draw the next token id from ``logits`` (a Variable or array of shape (C,) or (..., C)).

    The draw follows :func:`next_token_probabilities`; it is an int for logits of shape (C,),
    else an int64 array of the leading shape (one draw per row). ``rng`` is a
    ``numpy.random.Generator`` (default: tensorgrad's, seeded by ``tg.manual_seed``), so a
    seeded generator gives the same samples every run.
    """
    p = next_token_probabilities(logits, temperature, top_k)
    rng = random.generator() if rng is None else rng
    cdf = np.cumsum(p, axis=-1)
    # Scaling u by the total (≈ 1) keeps it below the last cdf value despite rounding, and
    # counting cdf ≤ u never lands on a token of probability zero.
    u = rng.random(p.shape[:-1] + (1,)) * cdf[..., -1:]
    ids = (cdf <= u).sum(axis=-1)
    return int(ids) if ids.ndim == 0 else ids.astype(np.int64)


@tg.no_grad()
def greedy_decode(model, source, lengths, *, bos, eos, max_length):
    """Decode a batch by feeding back the most probable token at every step.

    ``model`` is an encoder–decoder with ``encode(source, lengths) -> state`` and
    ``decode_step(previous (N,), state) -> (logits (N, V), state, weights)`` (as
    :class:`nn.seq2seq.Seq2Seq`). Returns one list of token ids per source, each ending
    before its first ``eos`` (or after ``max_length`` tokens).

    The tokens fed back and the ends are decided in Python from the logits' values, so the
    decoding runs eagerly: traced by ``tg.jit`` it gives a :class:`tg.TraceWarning` (a plan
    would keep the traced tokens).
    """
    warn_if_traced("greedy_decode (the tokens it feeds back)")
    state = model.encode(source, lengths)
    batch = len(np.asarray(lengths))
    previous = np.full(batch, bos, dtype=np.int64)
    outputs, done = [[] for _ in range(batch)], np.zeros(batch, dtype=bool)
    for _ in range(max_length):
        logits, state, _ = model.decode_step(previous, state)
        previous = logits.data.argmax(axis=-1)
        for b in np.flatnonzero(~done):
            if previous[b] == eos:
                done[b] = True
            else:
                outputs[b].append(int(previous[b]))
        if done.all():
            break
    return outputs


@tg.no_grad()
def beam_search(model, source, lengths, *, bos, eos, max_length, beam_size=4, length_penalty=1.0):
    """Decode each source with a beam search, keeping the ``beam_size`` best partial outputs.

    At every step each of the k = ``beam_size`` hypotheses y_1..y_t is extended by every
    token and the k best extensions by log P(y_1..y_{t+1} | x) = Σ log p(y_i | y_<i, x) are
    kept; one that emits ``eos`` is finished. Finished hypotheses are ranked by

        score = log P(y | x) / |y|^α       (α = ``length_penalty``; |y| counts the eos)

    since an unnormalised sum favours short outputs (α = 0: no normalisation). The search
    stops when k hypotheses are finished or after ``max_length`` steps. ``model`` is as for
    :func:`greedy_decode`, and the search runs eagerly as it does. Returns (one list of token
    ids per source, without eos; their scores).
    """
    if int(beam_size) != beam_size or beam_size < 1:
        raise ValueError(f"beam_search: beam_size must be an integer >= 1, got {beam_size}")
    warn_if_traced("beam_search (the tokens it feeds back)")
    source, lengths = data_of(source), data_of(lengths)
    results, scores = [], []
    for b in range(len(lengths)):
        tokens, score = _beam_search_one(model, source[:, b:b + 1], lengths[b:b + 1], bos, eos, max_length,
                                         int(beam_size), length_penalty)
        results.append(tokens)
        scores.append(score)
    return results, scores


def _beam_search_one(model, source, lengths, bos, eos, max_length, k, alpha):
    state = model.encode(source, lengths)
    hypotheses, log_probs = [[]], np.zeros(1)  # the alive beams and their log P
    finished = []  # (normalised score, tokens)
    for step in range(1, max_length + 1):
        previous = np.array([h[-1] if h else bos for h in hypotheses], dtype=np.int64)
        logits, state, _ = model.decode_step(previous, state)
        z = logits.data.astype(np.float64)
        candidates = log_probs[:, None] + z - _logsumexp_rows(z)  # (beams, V): log P of each extension
        # The 2k best extensions: those among the first k that end are finished, and the k
        # best that do not end stay alive, so the beam keeps k hypotheses.
        best = np.argsort(candidates, axis=None, kind="stable")[::-1][:2 * k]
        keep = []
        for rank, (row, token) in enumerate(zip(*np.unravel_index(best, candidates.shape))):
            if token == eos:
                if rank < k:
                    finished.append((candidates[row, token] / step ** alpha, hypotheses[row]))
            elif len(keep) < k:
                keep.append((row, token))
        if len(finished) >= k or not keep:
            break
        rows = np.array([row for row, _ in keep])
        hypotheses = [hypotheses[row] + [int(token)] for row, token in keep]
        log_probs = np.array([candidates[row, token] for row, token in keep])
        state = state.select(rows)
    if not finished:  # nothing ended within max_length: rank the unfinished ones
        finished = [(lp / len(h) ** alpha, h) for lp, h in zip(log_probs, hypotheses)]
    score, tokens = max(finished, key=lambda item: item[0])
    return tokens, float(score)


def _logsumexp_rows(z):
    m = z.max(axis=-1, keepdims=True)
    return m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True))
