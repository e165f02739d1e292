"""The classic long-memory tasks, the embedded Reber grammar and the copy task, produce what their
docstrings promise: strings of the grammar, the legal next symbols recomputed independently, the
copy task's layout and its memoryless baseline, and clear errors (reproducible draws and empty
batches are tested for every task in test_tasks.py)."""

import re

import numpy as np
import pytest

from nn import tasks

# Reber's grammar as a regular expression, read off its transition diagram independently of the
# generator's automaton. After B, T S* X reaches the node (4) left by S (to the end) or X T* V
# (to node 5); P T* V reaches node 5, left by V (to the end) or P (back to node 4).
REBER = re.compile(r"B(?:(?:TS*X|PT*VP)(?:XT*VP)*(?:S|XT*VV)|PT*VV)E")


def _strings(ids, targets):
    """The symbol strings of a batch: each column up to its last target plus one symbol."""
    lengths = (targets >= 0).sum(axis=0) + 1
    return ["".join(tasks.REBER_SYMBOLS[i] for i in ids[:n, b]) for b, n in enumerate(lengths)]


def _language(max_length):
    """Every embedded Reber string of at most max_length symbols: all words of the inner alphabet
    that the regular expression accepts, wrapped as B b (B ... E) b E."""
    inner = {s for s in _all_words("TSXPV", max_length - 6) if REBER.fullmatch("B" + s + "E")}
    return {f"B{b}B{s}E{b}E" for s in inner for b in "TP"}


def _all_words(alphabet, max_length):
    words, frontier = [""], [""]
    for _ in range(max_length):
        frontier = [w + a for w in frontier for a in alphabet]
        words += frontier
    return words


def test_the_regular_expression_is_reber_s_grammar():
    accepted = ["BTXSE", "BPVVE", "BTSSXXTVVE", "BPTVPXVVE", "BTXXVPSE", "BPVPXTTVPSE"]
    rejected = ["BTSE", "BPVE", "BTXXE", "BTXSSE", "BPTTVE", "BTXVVE"]
    assert all(REBER.fullmatch(s) for s in accepted)
    assert not any(REBER.fullmatch(s) for s in rejected)


def test_embedded_reber_strings_follow_the_grammar(rng):
    ids, targets, legal = tasks.embedded_reber(rng, batch_size=300)
    assert ids.dtype == targets.dtype == np.int64 and legal.dtype == bool
    assert ids.shape == targets.shape == legal.shape[:2] and legal.shape[2] == 7
    strings = _strings(ids, targets)
    for b, s in enumerate(strings):
        assert s[0] == "B" and s[-1] == "E" and s[1] == s[-2] and s[1] in "TP"
        assert REBER.fullmatch(s[2:-2]), s
        np.testing.assert_array_equal(targets[:len(s) - 1, b], ids[1:len(s), b])
        assert (targets[len(s) - 1:, b] == -100).all() and (ids[len(s):, b] == 0).all()
    assert 0.4 < np.mean([s[1] == "T" for s in strings]) < 0.6
    assert max(map(len, strings)) == ids.shape[0]


def test_embedded_reber_legal_next_symbols_are_those_of_the_language(rng):
    """legal[t] is exactly the set of symbols s for which prefix + s begins some string of the
    language, here enumerated up to 13 symbols. Every legal symbol after a prefix of p symbols
    has a completion within p + 6 (at most 3 more inner symbols to E, then b E), so prefixes
    up to max_length - 6 symbols are checked."""
    max_length = 13
    prefixes = {s[:k] for s in _language(max_length) for k in range(1, len(s) + 1)}
    ids, targets, legal = tasks.embedded_reber(rng, batch_size=400)
    checked = 0
    for b, s in enumerate(_strings(ids, targets)):
        for t in range(len(s) - 1):
            if t + 1 + 6 > max_length:
                break
            expected = {a for a in tasks.REBER_SYMBOLS if s[:t + 1] + a in prefixes}
            assert {tasks.REBER_SYMBOLS[i] for i in np.flatnonzero(legal[t, b])} == expected, (s, t)
            checked += 1
        assert not legal[len(s) - 1:, b].any()
        assert legal[np.arange(len(s) - 1), b, targets[:len(s) - 1, b]].all()  # the target is legal
    assert checked > 2000


def test_the_next_to_last_symbol_has_one_legal_value_the_second(rng):
    ids, targets, legal = tasks.embedded_reber(rng, batch_size=100)
    for b, s in enumerate(_strings(ids, targets)):
        n = len(s)
        assert legal[n - 3, b].sum() == 1 and legal[n - 3, b, tasks.REBER_SYMBOLS.index(s[1])]
        assert legal[0, b].sum() == 2  # after B: T or P


# ------------------------------------------------------------------------- copy task
def test_copy_task_layout(rng):
    ids, targets = tasks.copy_task(rng, batch_size=50, delay=7, length=4, num_symbols=5)
    assert ids.shape == targets.shape == (7 + 8, 50) and ids.dtype == targets.dtype == np.int64
    data = ids[:4]
    assert data.min() >= 1 and data.max() <= 5 and len(np.unique(data)) == 5
    assert (ids[4:4 + 6] == 0).all() and (ids[4 + 6] == 6).all() and (ids[4 + 7:] == 0).all()
    assert (targets[:4 + 7] == 0).all()
    np.testing.assert_array_equal(targets[4 + 7:], data)


def test_copy_task_memoryless_baseline_is_10_ln_8_over_T_plus_20(rng):
    """Blank until the delimiter, then uniform over the 8 symbols: cross-entropy length·ln 8 / T_total."""
    delay = 100
    ids, targets = tasks.copy_task(rng, batch_size=200, delay=delay)
    after_delimiter = np.cumsum(ids == 9, axis=0) - (ids == 9) > 0  # steps after the delimiter
    probabilities = np.where(after_delimiter[..., None], np.r_[0, np.full(8, 1 / 8)], np.eye(9)[0])
    p_target = np.take_along_axis(probabilities, targets[..., None], axis=-1)[..., 0]
    assert np.isclose(-np.log(p_target).mean(), 10 * np.log(8) / (delay + 20), rtol=1e-12)


def test_copy_task_bad_input(rng):
    with pytest.raises(ValueError, match="copy_task: delay must be at least 1, got 0"):
        tasks.copy_task(rng, 2, 0)
    with pytest.raises(ValueError, match="copy_task: num_symbols must be at least 1, got 0"):
        tasks.copy_task(rng, 2, 5, num_symbols=0)

