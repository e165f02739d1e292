"""The synthetic sequence tasks produce what their docstrings promise: shapes, dtypes, labels
recomputed independently, the stated baselines, and reproducible draws."""

import re
import string

import numpy as np
import pytest

from nn import tasks


# ------------------------------------------------------------------------- adding problem
def test_adding_problem_has_two_markers_and_their_sum_as_target(rng):
    x, y = tasks.adding_problem(rng, batch_size=50, seq_len=11)
    assert x.shape == (11, 50, 2) and x.dtype == np.float32
    assert y.shape == (50, 1) and y.dtype == np.float32
    values, markers = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert set(np.unique(markers)) == {0.0, 1.0}
    assert (markers.sum(axis=0) == 2).all()
    assert (markers[:5].sum(axis=0) == 1).all() and (markers[5:].sum(axis=0) == 1).all()  # one per half
    for b in range(50):
        marked = np.flatnonzero(markers[:, b])
        assert y[b, 0] == pytest.approx(values[marked, b].sum(), abs=1e-6)


def test_guessing_one_has_mse_one_sixth(rng):
    _, y = tasks.adding_problem(rng, batch_size=40_000, seq_len=4)
    # Var(u + u') = 2/12 with u, u' ~ U(0, 1); the standard error of the mean here is 0.001.
    assert np.mean((y - 1.0) ** 2) == pytest.approx(1 / 6, abs=0.005)


def test_adding_problem_shortest_sequence(rng):
    x, _ = tasks.adding_problem(rng, batch_size=3, seq_len=2)
    assert (x[..., 1] == 1).all()
    with pytest.raises(ValueError, match="adding_problem: seq_len must be at least 2, got 1"):
        tasks.adding_problem(rng, 3, 1)


# ------------------------------------------------------------------------- word detection
def _occurrence_ends(text, word):
    """The indices where an occurrence of word ends in text, overlapping ones included."""
    return {m.start() + len(word) - 1 for m in re.finditer(f"(?={re.escape(word)})", text)}


def test_word_detection_labels_every_occurrence_and_nothing_else(rng):
    ids, labels = tasks.word_detection(rng, batch_size=40, seq_len=60, word="cat", rate=0.1)
    assert ids.shape == labels.shape == (60, 40)
    assert ids.dtype == labels.dtype == np.int64
    assert ids.min() >= 0 and ids.max() < 26
    decoys = 0
    for b in range(40):
        text = "".join(string.ascii_lowercase[i] for i in ids[:, b])
        np.testing.assert_array_equal(np.flatnonzero(labels[:, b]), sorted(_occurrence_ends(text, "cat")))
        decoys += sum(text.count(d) for d in ("act", "atc", "cta", "tac", "tca"))
    assert labels.sum() > 40  # the word is planted (by chance it would appear about 0.13 times)
    assert decoys > 40        # and so are its anagrams


def test_word_detection_finds_overlapping_occurrences_and_short_streams():
    ids, labels = tasks.word_detection(0, batch_size=200, seq_len=30, word="aba", alphabet="ab", rate=0.3)
    for b in range(200):
        text = "".join("ab"[i] for i in ids[:, b])
        np.testing.assert_array_equal(np.flatnonzero(labels[:, b]), sorted(_occurrence_ends(text, "aba")))
    _, labels = tasks.word_detection(0, batch_size=4, seq_len=2, word="cat", rate=1.0)
    assert labels.shape == (2, 4) and not labels.any()


def test_word_detection_bad_input():
    with pytest.raises(ValueError, match="word_detection: the word 'dog!'"):
        tasks.word_detection(0, 2, 10, word="dog!")
    with pytest.raises(ValueError, match="rate must be in"):
        tasks.word_detection(0, 2, 10, rate=1.5)


# ------------------------------------------------------------------------- sentiment
def _reference_sentiment(words):
    """The label by the task's rule, read off the words: the last clause, flipped by "not"."""
    last = " ".join(words).split(" but ")[-1].split()
    return int((last[-1] in ("good", "great", "fine")) != ("not" in last))


def test_sentiment_phrases_follow_the_grammar_and_the_rule(rng):
    ids, lengths, labels = tasks.sentiment_phrases(rng, batch_size=300)
    assert ids.dtype == lengths.dtype == labels.dtype == np.int64
    assert ids.shape == (lengths.max(), 300) and lengths.shape == labels.shape == (300,)
    clause = re.compile(r"the (film|plot|acting) (was|is)( not)?( really| quite)? "
                        r"(good|great|fine|bad|awful|dull)")
    for b in range(300):
        assert (ids[:lengths[b], b] != 0).all() and (ids[lengths[b]:, b] == 0).all()
        words = [tasks.SENTIMENT_VOCAB[i] for i in ids[:lengths[b], b]]
        assert all(clause.fullmatch(part) for part in " ".join(words).split(" but "))
        assert labels[b] == _reference_sentiment(words)
    assert 0.4 < labels.mean() < 0.6
    assert 0.4 < (ids == tasks.SENTIMENT_VOCAB.index("but")).any(axis=0).mean() < 0.6  # two clauses


def test_sentiment_word_counts_decide_the_label_only_13_times_in_16(rng):
    """The best classifier of the word counts, the majority label of each bag of words, is
    right 1/2 · 1 + 1/2 · 5/8 = 13/16 of the time. Only the words that carry sentiment count
    here (the others are drawn independently of the label), so that a sample sees each bag
    many times; the majorities are taken on one half of the sample and scored on the other."""
    ids, _, labels = tasks.sentiment_phrases(rng, batch_size=40_000)
    carriers = [tasks.SENTIMENT_VOCAB.index(w) for w in ("not", "but", "good", "great", "fine", "bad",
                                                         "awful", "dull")]
    counts = np.stack([(ids == word).sum(axis=0) for word in carriers], axis=1)
    _, bag = np.unique(counts, axis=0, return_inverse=True)
    fit, score = slice(0, 20_000), slice(20_000, None)
    positives = np.bincount(bag[fit], weights=labels[fit], minlength=bag.max() + 1)
    majority = positives > np.bincount(bag[fit], minlength=bag.max() + 1) / 2
    assert np.mean(majority[bag[score]] == labels[score]) == pytest.approx(13 / 16, abs=0.012)


# ------------------------------------------------------------------------- reverse digits
def test_reverse_digits(rng):
    source, target = tasks.reverse_digits(rng, batch_size=20, length=7, num_digits=5)
    assert source.shape == target.shape == (7, 20) and source.dtype == target.dtype == np.int64
    assert source.min() >= 0 and source.max() == 4
    np.testing.assert_array_equal(target, source[::-1])
    assert not np.shares_memory(source, target)
    with pytest.raises(ValueError, match="reverse_digits: length must be at least 1, got 0"):
        tasks.reverse_digits(rng, 20, 0)


# ------------------------------------------------------------------------- noisy sine
def test_noisy_sine_targets_are_the_clean_next_samples(rng):
    x, y = tasks.noisy_sine(rng, batch_size=30, seq_len=25, noise=0.0)
    assert x.shape == y.shape == (25, 30, 1) and x.dtype == y.dtype == np.float32
    np.testing.assert_allclose(x[1:], y[:-1], atol=1e-6)
    # Each sequence is a sine: s(t+1) + s(t-1) = 2 cos(ω) s(t), with one ω per sequence in the range.
    s = np.concatenate([x, y[-1:]])[..., 0].astype(np.float64)
    cos_omega = (s[2:] + s[:-2]) / (2 * s[1:-1])
    usable = np.abs(s[1:-1]) > 0.2
    spread = [np.ptp(cos_omega[usable[:, b], b]) for b in range(30)]
    assert max(spread) < 1e-4
    omega = np.arccos(np.nanmedian(np.where(usable, cos_omega, np.nan), axis=0))
    assert ((omega > 0.1 - 1e-3) & (omega < 0.3 + 1e-3)).all()


def test_noisy_sine_noise_and_the_last_value_baseline(rng):
    noise = 0.2
    x, y = tasks.noisy_sine(rng, batch_size=4000, seq_len=20, noise=noise, frequency=(0.5, 0.5))
    residual = x[1:] - y[:-1]
    assert residual.std() == pytest.approx(noise, rel=0.02)
    # Predicting the last observation: E[(s_{t+1} - s_t)^2] + noise^2, with E over the phase 1 - cos ω.
    assert np.mean((x - y) ** 2) == pytest.approx(1 - np.cos(0.5) + noise**2, rel=0.03)


def test_noisy_sine_bad_input(rng):
    with pytest.raises(ValueError, match="noisy_sine: noise must be non-negative"):
        tasks.noisy_sine(rng, 2, 5, noise=-0.1)
    with pytest.raises(ValueError, match="frequency"):
        tasks.noisy_sine(rng, 2, 5, frequency=(0.3, 0.1))


# ------------------------------------------------------------------------- next token
def test_next_token_targets_are_the_tokens_ahead(rng):
    ids, targets = tasks.next_token(rng, batch_size=8, seq_len=12, num_tokens=5, offset=3)
    assert ids.shape == (12, 8) and targets.shape == (9, 8) and ids.dtype == targets.dtype == np.int64
    assert ids.min() >= 0 and ids.max() == 4
    np.testing.assert_array_equal(targets, ids[3:])
    assert not np.shares_memory(ids, targets)
    with pytest.raises(ValueError, match="next_token: seq_len must be at least 4, got 3"):
        tasks.next_token(rng, 8, 3, 5, offset=3)


# ------------------------------------------------------------------------- every task
TASKS = {  # each makes a batch of ``batch`` sequences
    "adding_problem": lambda rng, batch: tasks.adding_problem(rng, batch, 10),
    "word_detection": lambda rng, batch: tasks.word_detection(rng, batch, 30),
    "sentiment_phrases": lambda rng, batch: tasks.sentiment_phrases(rng, batch),
    "reverse_digits": lambda rng, batch: tasks.reverse_digits(rng, batch, 6),
    "noisy_sine": lambda rng, batch: tasks.noisy_sine(rng, batch, 10),
    "next_token": lambda rng, batch: tasks.next_token(rng, batch, 10, 3),
    "embedded_reber": lambda rng, batch: tasks.embedded_reber(rng, batch),
    "copy_task": lambda rng, batch: tasks.copy_task(rng, batch, 10),
}


@pytest.mark.parametrize("name", TASKS)
def test_a_seed_reproduces_the_data_and_a_generator_moves_on(name):
    make = TASKS[name]
    first, again = make(7, 4), make(np.random.default_rng(7), 4)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    generator = np.random.default_rng(7)
    one, two = make(generator, 4), make(generator, 4)
    assert any(a.shape != b.shape or (a != b).any() for a, b in zip(one, two, strict=True))


@pytest.mark.parametrize("name", TASKS)
def test_an_empty_batch_is_an_error(name):
    with pytest.raises(ValueError, match=f"{name}: batch_size must be at least 1, got 0"):
        TASKS[name](0, 0)
