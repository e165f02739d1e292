"""nn.TBPTT: truncated BPTT with separate k1 (steps per update) and k2 (steps back-propagated).

k1 = k2 is checked against the plain StreamBatcher loop (same parameters after training
with an optimizer, step for step); k2 > k1 against a hand-unrolled computation that runs
the model over the last k2 steps of each update, from the state the stream reached there.
"""

import numpy as np
import pytest

import nn
import tensorgrad as tg
from nn.data import StreamBatcher, detach_state

VOCAB, HIDDEN, BATCH = 5, 4, 2


def make_model(kind="lstm", seed=0):
    tg.manual_seed(seed)
    return nn.CharRNN(VOCAB, HIDDEN, num_layers=2, model=kind).double()


def loss_fn(logits, targets):
    return nn.softmax_cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))


def stream(length=41, seed=1):
    return np.random.default_rng(seed).integers(0, VOCAB, length)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_k1_equal_to_k2_is_the_plain_stream_batcher_loop(kind):
    k = 4
    batches = StreamBatcher(stream(), BATCH, seq_len=k)
    plain, ours = make_model(kind), make_model(kind)
    plain_optimizer = nn.optim.Adam(plain.parameters(), lr=0.05)
    ours_optimizer = nn.optim.Adam(ours.parameters(), lr=0.05)
    tbptt = nn.TBPTT(ours, loss_fn, k1=k, k2=k)

    state, plain_losses, losses = None, [], []
    for inputs, targets in batches:
        logits, state = plain(inputs, state)
        state = detach_state(state)
        loss = loss_fn(logits, targets)
        plain_optimizer.zero_grad()
        loss.backward()
        plain_optimizer.step()
        plain_losses.append(loss.item())

        ours_optimizer.zero_grad()
        losses.append(tbptt.forward_backward(inputs, targets))
        ours_optimizer.step()

    assert len(losses) == len(batches) > 3 and len(batches[-1][0]) < k  # a shorter last window too
    assert losses == plain_losses
    for (name, p), q in zip(plain.named_parameters(), ours.parameters(), strict=True):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def state_after(model, ids, steps):
    """The state of ``model`` after the first ``steps`` columns of ``ids`` (None for none)."""
    if steps == 0:
        return None
    with tg.no_grad():
        return detach_state(model(ids[:steps])[1])


def hand_unrolled(model, ids, targets, start, stop, window):
    """The loss of steps [stop - window, stop) and its parameter gradients, back-propagated
    through the steps [start, stop) from the state the stream reached at ``start``."""
    logits, _ = model(ids[start:stop], state_after(model, ids, start))
    loss = loss_fn(logits[len(logits) - window:], targets[stop - window:stop])
    return loss.item(), tg.grad(loss, list(model.parameters()))


@pytest.mark.parametrize("k1, k2", [(2, 5), (3, 6), (3, 4), (1, 3)])
def test_k2_beyond_k1_back_propagates_into_earlier_windows(k1, k2):
    model = make_model()
    batches = StreamBatcher(stream(), BATCH, seq_len=k1)
    ids, targets = batches.data[:-1], batches.data[1:]
    tbptt = nn.TBPTT(model, loss_fn, k1, k2)
    stop = 0
    for inputs, window_targets in batches:  # the parameters stay fixed: gradients only
        window = len(inputs)
        stop += window
        model.zero_grad()
        loss = tbptt.forward_backward(inputs, window_targets)

        start = max(0, stop - window - (k2 - k1))
        expected_loss, expected = hand_unrolled(model, ids, targets, start, stop, window)
        assert loss == pytest.approx(expected_loss, rel=1e-12)
        for (name, p), g in zip(model.named_parameters(), expected, strict=True):
            np.testing.assert_allclose(p.grad.data, g.data, rtol=1e-9, atol=1e-12, err_msg=name)
        for ours, theirs in zip(tbptt.state, state_after(model, ids, stop), strict=True):
            np.testing.assert_allclose(ours.data, theirs.data, rtol=1e-12, atol=1e-14)
        if start < stop - window:  # the earlier steps change the gradient: the test can fail
            _, truncated = hand_unrolled(model, ids, targets, stop - window, stop, window)
            assert not np.allclose(truncated[0].data, expected[0].data)
    assert stop == len(ids)


@pytest.mark.parametrize("k1, k2", [(3, 3), (2, 5)])
def test_jitted_windows_give_exactly_the_eager_losses_and_gradients(k1, k2):
    batches = StreamBatcher(stream(), BATCH, seq_len=k1)
    results = []
    for jit in (True, False):
        model = make_model()
        optimizer = nn.optim.Adam(model.parameters(), lr=0.05)
        tbptt = nn.TBPTT(model, loss_fn, k1, k2, jit=jit)
        losses = []
        for inputs, targets in batches:
            optimizer.zero_grad()
            losses.append(tbptt.forward_backward(inputs, targets))
            optimizer.step()
        results.append((losses, [p.data for p in model.parameters()]))
    (jitted, jitted_params), (eager, eager_params) = results
    assert jitted == eager
    for a, b in zip(jitted_params, eager_params, strict=True):
        np.testing.assert_array_equal(a, b)


def test_reset_starts_a_new_stream():
    model = make_model()
    ids = stream(9).reshape(-1, 1)
    tbptt = nn.TBPTT(model, loss_fn, k1=2, k2=4)
    first = tbptt.forward_backward(ids[:2], ids[1:3])
    tbptt.forward_backward(ids[2:4], ids[3:5])
    tbptt.reset()
    assert tbptt.state is None
    assert tbptt.forward_backward(ids[:2], ids[1:3]) == first


@pytest.mark.parametrize("arguments, message", [
    ((0,), "TBPTT: k1 must be a positive integer, got 0"),
    ((2.0, 4), "TBPTT: k1 must be a positive integer, got 2.0"),
    ((4, 3), r"TBPTT: k2 must be at least k1 .*, got k1=4 and k2=3"),
])
def test_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        nn.TBPTT(make_model(), loss_fn, *arguments)


def test_a_window_longer_than_k1_is_an_error_and_changes_nothing():
    model = make_model()
    tbptt = nn.TBPTT(model, loss_fn, k1=2, k2=3)
    ids = stream(8).reshape(-1, 1)
    with pytest.raises(ValueError, match=r"TBPTT: a window of 3 steps does not fit k1=2 \(expected 1 to 2"):
        tbptt.forward_backward(ids[:3], ids[1:4])
    assert tbptt.state is None and all(p.grad is None for p in model.parameters())
