"""CharVocab, StreamBatcher and detach_state: encoding, the windows of truncated BPTT, and a
carried state whose value flows across the window edge while its gradient stops there."""

import numpy as np
import pytest

import nn
import tensorgrad as tg
import tensorgrad.functions as F
from nn.data import CharVocab, StreamBatcher, detach_state


# ------------------------------------------------------------------------- CharVocab
def test_vocab_is_the_sorted_unique_characters():
    vocab = CharVocab("hello, wörld 🙂!")
    assert vocab.chars == "".join(sorted(set("hello, wörld 🙂!")))
    assert len(vocab) == 12  # h e l o , space w ö r d 🙂 !
    ids = vocab.encode("wörld 🙂")
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(ids, [vocab.chars.index(c) for c in "wörld 🙂"])
    assert vocab.decode(ids) == "wörld 🙂"
    assert vocab.decode(list(ids)) == "wörld 🙂"
    assert vocab.decode(tg.Variable(ids)) == "wörld 🙂"
    assert vocab.encode("").shape == (0,) and vocab.decode([]) == ""


def test_vocab_saves_as_its_characters():
    vocab = CharVocab("the quick brown fox")
    restored = CharVocab.from_chars(vocab.chars)
    assert restored.chars == vocab.chars
    np.testing.assert_array_equal(restored.encode("quick fox"), vocab.encode("quick fox"))
    with pytest.raises(ValueError, match="sorted and without repeats"):
        CharVocab.from_chars("ba")


def test_vocab_bad_input():
    vocab = CharVocab("abc")
    with pytest.raises(ValueError, match="character 'z' is not in the vocabulary"):
        vocab.encode("abzc")
    with pytest.raises(ValueError, match=r"character '\\n' is not in the vocabulary"):
        vocab.encode("a\n")
    with pytest.raises(IndexError, match="id 3 is out of range for a vocabulary of 3 characters"):
        vocab.decode([0, 3])
    with pytest.raises(IndexError, match="id -1 is out of range"):
        vocab.decode([-1])
    with pytest.raises(TypeError, match="ids must be integers"):
        vocab.decode(np.array([0.0]))
    with pytest.raises(ValueError, match="empty"):
        CharVocab("")


# ------------------------------------------------------------------------- StreamBatcher
def test_windows_targets_and_contiguous_rows():
    ids = np.arange(100, 126)  # 26 tokens in 3 rows of 8: 2 tokens dropped
    batches = StreamBatcher(ids, batch_size=3, seq_len=3)
    windows = list(batches)
    assert len(batches) == len(windows) == 3  # 7 input steps per row: windows of 3, 3 and 1
    assert [inputs.shape for inputs, _ in windows] == [(3, 3), (3, 3), (1, 3)]
    for inputs, targets in windows:
        assert inputs.dtype == targets.dtype == np.int64
        np.testing.assert_array_equal(targets, inputs + 1)  # the next token of the same row
    for b in range(3):  # column b of the windows, one after the other, is row b of the stream
        row = np.concatenate([inputs[:, b] for inputs, _ in windows] + [windows[-1][1][-1:, b]])
        np.testing.assert_array_equal(row, ids[b * 8:(b + 1) * 8])
    np.testing.assert_array_equal(windows[1][0][0], [103, 111, 119])
    for k in (0, 1, 2, -1):
        for got, expected in zip(batches[k], windows[k], strict=True):
            np.testing.assert_array_equal(got, expected)
    with pytest.raises(IndexError, match="window 3 is out of range for 3 windows"):
        batches[3]
    with pytest.raises(ValueError, match="read-only"):
        windows[0][0][0, 0] = 0


def test_window_count_when_the_windows_fit_exactly():
    batches = StreamBatcher(np.arange(14), batch_size=2, seq_len=3)  # 6 input steps per row
    assert len(batches) == 2 and [i.shape[0] for i, _ in batches] == [3, 3]
    assert len(StreamBatcher(np.arange(4), batch_size=1, seq_len=10)) == 1


def test_stream_batcher_bad_input():
    with pytest.raises(ValueError, match="5 tokens are too few for 3 rows"):
        StreamBatcher(np.arange(5), batch_size=3, seq_len=2)
    with pytest.raises(TypeError, match="1-d integer array"):
        StreamBatcher(np.zeros(10), batch_size=2, seq_len=2)
    with pytest.raises(TypeError, match="1-d integer array"):
        StreamBatcher(np.zeros((2, 10), np.int64), batch_size=2, seq_len=2)
    with pytest.raises(ValueError, match="at least 1"):
        StreamBatcher(np.arange(10), batch_size=2, seq_len=0)


# ------------------------------------------------------------------------- carried state
def run(xs, h, W, U):
    """A tanh recurrence h ← tanh(W x_t + U h) over the steps of ``xs`` (T, B, D)."""
    for t in range(xs.shape[0]):
        h = F.tanh(F.linear(xs[t], W) + F.linear(h, U))
    return h


def test_a_detached_carried_state_passes_its_value_but_stops_the_gradient():
    rng = np.random.default_rng(0)
    W, U = tg.Variable(rng.standard_normal((3, 2))), tg.Variable(rng.standard_normal((3, 3)) * 0.5)
    xs1, xs2 = tg.Variable(rng.standard_normal((4, 2, 2))), tg.Variable(rng.standard_normal((4, 2, 2)))
    h0 = np.zeros((2, 3))

    h1 = run(xs1, h0, W, U)  # window 1
    (h1 * h1).sum().backward()
    first_window_grad = xs1.grad.data.copy()
    W.cleargrad(), U.cleargrad()

    carried = detach_state(h1)  # window 2 starts from the state window 1 ended in
    assert carried.data is h1.data and not carried.requires_grad and carried.creator is None
    h2 = run(xs2, carried, W, U)
    loss = (h2 * h2).sum()
    loss.backward()

    np.testing.assert_array_equal(xs1.grad.data, first_window_grad)  # untouched by window 2
    assert carried.grad is None
    # The gradients are those of window 2 alone, started from a constant state...
    truncated = tg.grad((run(xs2, h1.data.copy(), W, U) ** 2).sum(), [W, U, xs2])
    for ours, expected in zip((W.grad, U.grad, xs2.grad), truncated, strict=True):
        np.testing.assert_allclose(ours.data, expected.data, rtol=1e-12)
    # ...which is not what full backpropagation through both windows gives,
    full = tg.grad((run(xs2, run(xs1, h0, W, U), W, U) ** 2).sum(), [W, xs1])
    assert not np.allclose(full[0].data, W.grad.data) and np.abs(full[1].data).max() > 1e-3
    # while the value still depends on the carried state.
    assert not np.isclose(loss.item(), (run(xs2, h0, W, U) ** 2).sum().item())


def test_detach_state_of_nested_tuples():
    h, c = tg.Variable(np.ones((2, 3))) * 2, tg.Variable(np.ones((2, 3))) * 3
    state = detach_state((h, [c, None]))
    assert isinstance(state, tuple) and isinstance(state[1], list) and state[1][1] is None
    assert all(not s.requires_grad and s.creator is None for s in (state[0], state[1][0]))
    np.testing.assert_array_equal(state[1][0].data, c.data)
    assert detach_state(None) is None
    with pytest.raises(TypeError, match="expected a Variable or a tuple of them, got ndarray"):
        detach_state(np.zeros(3))


def test_training_loop_over_windows_with_a_carried_state():
    """The loop of the StreamBatcher docstring, with a small hand-built recurrent model."""
    text = "abracadabra, the cat sat on the mat. " * 4
    vocab = CharVocab(text)
    tg.manual_seed(0)
    embed, cell, out = nn.Embedding(len(vocab), 4), nn.Linear(4 + 6, 6), nn.Linear(6, len(vocab))
    params = [*embed.parameters(), *cell.parameters(), *out.parameters()]
    optimizer = nn.optim.Adam(params, lr=0.05)
    batches = StreamBatcher(vocab.encode(text), batch_size=4, seq_len=8)
    losses = []
    for _ in range(5):
        state = None
        for inputs, targets in batches:
            h = tg.Variable(np.zeros((4, 6), np.float32), requires_grad=False) if state is None else state
            logits = []
            for x in embed(inputs):
                h = F.tanh(cell(F.concat([x, h], axis=1)))
                logits.append(out(h))
            state = detach_state(h)
            loss = nn.softmax_cross_entropy(F.stack(logits).reshape(-1, len(vocab)), targets.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    assert loss.dtype == np.float32
    assert np.mean(losses[-len(batches):]) < 0.7 * np.mean(losses[:len(batches)])  # it learns
