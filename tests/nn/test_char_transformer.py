"""The character Transformer: sampling one character at a time equals reading the window, no
state crosses full windows, the future never changes the past, long inputs window by window.
(`tensorgrad train --model transformer` itself is tested in tests/test_cli.py.)"""

import numpy as np
import pytest

import tensorgrad as tg
from nn.char_transformer import CharTransformer


def test_one_character_at_a_time_equals_the_whole_window():
    """The carried characters give sampling the context that one forward over the window has."""
    tg.manual_seed(0)
    model = CharTransformer(7, d_model=8, num_layers=2, nhead=2, context=6)
    ids = np.random.default_rng(0).integers(0, 7, size=(9, 2))
    whole, _ = model(ids[:6])
    state, steps = None, []
    for t in range(6):
        logits, state = model(ids[t:t + 1], state)
        steps.append(logits.data[0])
    np.testing.assert_allclose(np.stack(steps), whole.data, rtol=1e-5, atol=1e-6)
    # Past the context, the window slides: the logits at t = 8 see ids 3..8.
    for t in range(6, 9):
        logits, state = model(ids[t:t + 1], state)
    np.testing.assert_allclose(logits.data[0], model(ids[3:9])[0].data[-1], rtol=1e-5, atol=1e-6)
    # A full window ignores what is carried: no state crosses windows in training.
    np.testing.assert_array_equal(model(ids[3:9], state)[0].data, model(ids[3:9])[0].data)


def test_future_characters_do_not_change_the_past():
    tg.manual_seed(0)
    model = CharTransformer(5, d_model=8, nhead=2, context=8, positions="sinusoidal")
    ids = np.random.default_rng(1).integers(0, 5, size=(8, 1))
    changed = ids.copy()
    changed[5:] = (changed[5:] + 1) % 5
    np.testing.assert_allclose(model(ids)[0].data[:5], model(changed)[0].data[:5], rtol=1e-6)
    assert not np.allclose(model(ids)[0].data[5:], model(changed)[0].data[5:])
    # A longer input is read window by window: its 9th position sees the 7 before it.
    longer = np.concatenate([ids, [[2]]])
    logits, _ = model(longer)
    np.testing.assert_allclose(logits.data[:8], model(ids)[0].data, rtol=1e-6)
    np.testing.assert_allclose(logits.data[8], model(longer[1:])[0].data[-1], rtol=1e-5, atol=1e-6)
    with pytest.raises(tg.ShapeError, match=r"ids must be \(T, B\) with T >= 1, got shape \(9,\)"):
        model(np.zeros(9, dtype=np.int64))
    with pytest.raises(tg.ShapeError, match=r"got shape \(0, 1\)"):
        model(np.zeros((0, 1), dtype=np.int64))
