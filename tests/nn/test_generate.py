"""Sampling the next token: the distribution (temperature, top-k) against PyTorch, the draws'
frequencies, reproducibility with a seed, and bad input."""

import numpy as np
import pytest

import tensorgrad as tg
from nn.generate import next_token_probabilities, sample_next

LOGITS = np.array([[2.0, -1.0, 0.5, 3.0, 0.5, -4.0], [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]])


@pytest.mark.parametrize("temperature", [0.3, 1.0, 2.5])
@pytest.mark.parametrize("top_k", [None, 1, 3, 10])
def test_probabilities_match_torch(torch, temperature, top_k):
    z = torch.tensor(LOGITS) / temperature
    if top_k is not None:
        kth = torch.topk(z, min(top_k, z.shape[-1])).values[..., -1:]
        z = z.masked_fill(z < kth, float("-inf"))
    expected = torch.softmax(z, dim=-1).numpy()
    p = next_token_probabilities(LOGITS.astype(np.float32), temperature, top_k)
    assert p.dtype == np.float64
    np.testing.assert_allclose(p, expected, rtol=1e-6, atol=1e-12)


def test_top_k_keeps_ties_with_the_kth_largest():
    p = next_token_probabilities(LOGITS[0], top_k=3)  # 3.0, 2.0, then 0.5 twice
    assert (p > 0).tolist() == [True, False, True, True, True, False]


def test_draws_follow_the_distribution():
    logits = np.broadcast_to(LOGITS[0], (40000, 6))  # one draw per row
    ids = sample_next(logits, temperature=1.5, top_k=4, rng=np.random.default_rng(0))
    assert ids.dtype == np.int64 and ids.shape == (40000,)
    frequencies = np.bincount(ids, minlength=6) / len(ids)
    p = next_token_probabilities(LOGITS[0], 1.5, 4)
    np.testing.assert_allclose(frequencies, p, atol=0.01)
    assert frequencies[p == 0].sum() == 0  # filtered tokens never come


def test_draws_repeat_with_a_seed():
    def draws(rng):
        return [sample_next(LOGITS[1], temperature=2.0, rng=rng) for _ in range(30)]

    first = draws(np.random.default_rng(42))
    assert first == draws(np.random.default_rng(42))
    assert first != draws(np.random.default_rng(43))
    assert all(isinstance(i, int) and 0 <= i < 6 for i in first)
    tg.manual_seed(5)  # the default generator is tensorgrad's
    from_seed = draws(None)
    tg.manual_seed(5)
    assert draws(None) == from_seed


def test_low_temperature_and_top_1_pick_the_largest_logit():
    rng = np.random.default_rng(0)
    assert {sample_next(LOGITS[0], top_k=1, rng=rng) for _ in range(50)} == {3}
    assert {sample_next(LOGITS[0], temperature=1e-3, rng=rng) for _ in range(50)} == {3}
    np.testing.assert_array_equal(sample_next(tg.Variable(LOGITS), temperature=1e-3, rng=rng), [3, 5])


def test_masked_logits_are_never_drawn():
    logits = np.array([-np.inf, 0.0, -np.inf, 0.0])
    draws = {sample_next(logits, rng=np.random.default_rng(seed)) for seed in range(40)}
    assert draws == {1, 3}


def test_bad_input():
    with pytest.raises(ValueError, match="temperature must be > 0, got 0"):
        sample_next(LOGITS, temperature=0)
    with pytest.raises(ValueError, match="top_k must be an integer >= 1, got 0"):
        sample_next(LOGITS, top_k=0)
    with pytest.raises(ValueError, match="top_k must be an integer >= 1, got 1.5"):
        sample_next(LOGITS, top_k=1.5)
    with pytest.raises(ValueError, match="contain NaN"):
        sample_next(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="give no distribution"):
        sample_next(np.array([-np.inf, -np.inf]))
    with pytest.raises(ValueError, match="give no distribution"):
        sample_next(np.array([np.inf, 0.0]))
    with pytest.raises(ValueError, match="non-empty last axis"):
        sample_next(np.array(1.0))
