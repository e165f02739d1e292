"""The fast paths of recurrent layers: step arrays, deferred weight gradients, the fused loss.

``tensorgrad.steps`` lays out the arrays of a sequence's steps as slices of one array, so
that stacking them is a view and a weight's gradient over the steps is one matmul
(``SumOfProducts``). These tests check that every such shortcut gives what the plain
computation gives (values, first and second derivatives against central differences in
float64), whatever the order, gaps or mixture of the pieces, and that nothing handed out is
overwritten later.
"""

import numpy as np
import pytest

import nn
import tensorgrad as tg
import tensorgrad.functions as F
from nn.losses import CrossEntropy
from tensorgrad import steps
from tensorgrad.autograd import SumOfProducts
from tensorgrad.functions.neural import add_rows
from tensorgrad.steps import StepArrays, blocks, joined, step_index


def test_a_slot_is_handed_out_once_and_consecutive_slots_join_into_a_view():
    arrays = StepArrays(4)
    slots = [arrays.slot("h", t, (2, 3), np.float64) for t in range(4)]
    assert all(s.base is slots[0].base for s in slots)
    view = joined(slots[1:3])
    assert view.shape == (2, 2, 3) and np.shares_memory(view, slots[1])
    assert joined(slots[2:0:-1]) is None  # out of order
    assert joined([slots[0], slots[2]]) is None  # a gap
    assert joined(slots[:1]) is None  # one array: nothing to join
    assert joined([slots[0], slots[1].copy()]) is None
    again = arrays.slot("h", 2, (2, 3), np.float64)  # asked for again: a fresh array
    assert not np.shares_memory(again, slots[2])
    assert arrays.slot("h", 3, (2, 3), np.float32).dtype == np.float32


@pytest.mark.parametrize("seed", range(4))
def test_blocks_sum_to_the_sum_of_products_in_any_order_and_mixture(seed):
    rng = np.random.default_rng(seed)
    arrays = StepArrays(6)
    lefts = [arrays.slot("g", t, (2, 4), np.float64) for t in range(6)]
    rights = [arrays.slot("x", t, (2, 3), np.float64) for t in range(6)]
    for a in lefts + rights:
        a[...] = rng.standard_normal(a.shape)
    pairs = [(lefts[t], rights[t - 1]) for t in range(1, 6)]  # step t's input is step t-1's output
    pairs += [(rng.standard_normal((2, 4)), rights[5]), (lefts[0], rng.standard_normal((2, 3)))]
    pairs = [pairs[i] for i in rng.permutation(len(pairs))][:5 + seed % 3]
    ls, rs = [p[0] for p in pairs], [p[1] for p in pairs]
    expected = sum(left.T @ right for left, right in pairs)
    found = blocks(ls, rs)
    assert len(found) < len(pairs)  # consecutive steps were joined
    np.testing.assert_allclose(sum(left.T @ right for left, right in found), expected, rtol=1e-12)
    row_sums = blocks(ls)
    np.testing.assert_allclose(sum(left.sum(axis=0) for left, _ in row_sums), sum(ls).sum(axis=0),
                               rtol=1e-12)


def test_sum_of_products_merges_and_equals_the_recorded_gradient():
    rng = np.random.default_rng(0)
    W = tg.Variable(rng.standard_normal((3, 3)))
    b = tg.Variable(rng.standard_normal(3))
    xs = [tg.Variable(rng.standard_normal((2, 3))) for _ in range(3)]
    arrays = StepArrays(3)

    def loss():
        h = xs[0]
        total = (W * W).sum()  # a use of W that is not a product: its gradient is added to the sums
        for t in range(3):
            y = F.rnn_cell(xs[t], h, W, b, step=arrays.step(t) if t else None)
            total = total + (F.tanh(y) * xs[t].sum()).sum()
            h = F.linear(y, W.T)  # W again, transposed: a product of another shape
        return total

    unrecorded = tg.grad(loss(), [W, b] + xs)
    recorded = tg.grad(loss(), [W, b] + xs, create_graph=True)
    for u, r in zip(unrecorded, recorded, strict=True):
        assert not u.requires_grad
        np.testing.assert_allclose(u.data, r.data, rtol=1e-12)


def test_linear_hands_the_engine_deferred_weight_gradients_only_when_not_recording():
    x, W, b = (tg.Variable(np.ones(s)) for s in [(2, 3), (4, 3), (4,)])
    y = F.linear(x, W, b)
    gy = tg.Variable(np.ones((2, 4)), requires_grad=False)
    with tg.no_grad():
        _, gW, gb = y.creator.backward(gy)
    assert isinstance(gW, SumOfProducts) and isinstance(gb, SumOfProducts)
    np.testing.assert_array_equal(gW.value().data, np.full((4, 3), 2.0))
    np.testing.assert_array_equal(gb.value().data, np.full(4, 2.0))
    assert all(isinstance(g, tg.Variable) for g in y.creator.backward(gy))  # recorded: Variables


def test_a_cell_with_a_transposed_weight_and_a_step_slot():
    rng = np.random.default_rng(1)
    a, h, c = rng.standard_normal((2, 12)), rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    W, b = rng.standard_normal((12, 3)), rng.standard_normal(12)
    operands = [tg.Variable(v) for v in (a, h, c, W, b)]
    expected = F.lstm_cell(*operands)
    found = F.lstm_cell(*operands, weight_t=np.ascontiguousarray(W.T), step=StepArrays(2).step(1))
    assert step_index(found[0].data)[1] == 1 and step_index(found[1].data)[1] == 1  # its step's slices
    for e, f in zip(expected, found, strict=True):
        np.testing.assert_allclose(f.data, e.data, rtol=1e-12)


CELLS = {
    "rnn": (1, lambda a, s, W, b, **layout: (F.rnn_cell(a, s[0], W, b, **layout),)),
    "lstm": (4, lambda a, s, W, b, **layout: F.lstm_cell(a, s[0], s[1], W, b, **layout)),
    "gru": (3, lambda a, s, W, b, **layout: (F.gru_cell(a, s[0], W, b, **layout),)),
}


def unrolled(kind, x, W_ih, W_hh, b, h0, steps):
    """A hand-unrolled layer of ``kind`` over x (T, B, in), with ``steps`` (StepArrays and
    Wₕₕᵀ laid out in C order) or without."""
    cell = CELLS[kind][1]
    arrays = StepArrays(len(x)) if steps else None
    weight_t = np.ascontiguousarray(W_hh.data.T) if steps else None
    inputs = F.unbind(F.linear(x, W_ih))
    state, outputs = (h0, h0), []
    for t in range(len(x)):
        step = None if arrays is None else arrays.step(t)
        state = cell(inputs[t], state, W_hh, b, weight_t=weight_t, step=step)
        state = state if len(state) == 2 else (state[0], state[0])
        outputs.append(state[0])
    return F.stack(outputs), state[1]


@pytest.mark.parametrize("kind", CELLS)
def test_cells_at_steps_match_the_plain_ones_and_central_differences(kind):
    gates = CELLS[kind][0]
    rng = np.random.default_rng(2)
    T, B, IN, H = 4, 2, 3, 3
    x = rng.standard_normal((T, B, IN))
    W_ih, W_hh = rng.standard_normal((gates * H, IN)) / 2, rng.standard_normal((gates * H, H)) / 2
    b, h0 = rng.standard_normal(gates * H) / 2, rng.standard_normal((B, H)) / 2
    weights = rng.standard_normal((T, B, H))

    def loss(steps, *args):
        output, c = unrolled(kind, *args, steps=steps)
        return (output * weights).sum() + c.sum()

    leaves = [tg.Variable(a) for a in (x, W_ih, W_hh, b, h0)]
    fast = tg.grad(loss(True, *leaves), leaves)
    plain = tg.grad(loss(False, *leaves), leaves)
    for f, p in zip(fast, plain, strict=True):
        np.testing.assert_allclose(f.data, p.data, rtol=1e-12, atol=1e-14)
    assert tg.gradcheck(lambda *args: loss(True, *args), x, W_ih, W_hh, b, h0)
    assert tg.gradgradcheck(lambda *args: loss(True, *args), x, W_ih, W_hh, b, h0, atol=1e-4)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_gradients_handed_out_by_one_pass_survive_the_next(kind):
    """Each backward pass over the same graph writes the steps' gradients into new arrays."""
    model = getattr(nn, kind)(3, 4, bidirectional=True).double()
    output, _ = model(np.random.default_rng(3).standard_normal((5, 2, 3)))
    loss = (output * output).sum()
    cells = [f for f in tg.autograd.reachable_functions([loss]) if f.op.endswith("_cell")]
    input_gates = [f.inputs[0] for f in cells]
    first = tg.grad(loss, input_gates)
    assert all(step_index(g.data)[0] is not None for g in first)  # slices of step arrays
    kept = [g.data.copy() for g in first]
    second = tg.grad(loss * 3.0, input_gates)
    for g, k, g3 in zip(first, kept, second, strict=True):
        np.testing.assert_array_equal(g.data, k)
        np.testing.assert_allclose(g3.data, 3 * k, rtol=1e-12)


def test_a_recorded_recurrent_layer_stacks_its_outputs_without_a_copy():
    model = nn.GRU(3, 4)
    output, h_n = model(np.zeros((6, 2, 3), np.float32))
    steps = output.creator.inputs  # the steps' outputs, stacked
    assert np.shares_memory(output.data, steps[0].data)
    assert not np.shares_memory(h_n.data, output.data)  # the carried state owns its memory


@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 2)])
def test_cross_entropy_function_gradients(label_smoothing, shape):
    rng = np.random.default_rng(4)
    logits = rng.standard_normal(shape) * 2
    targets = rng.integers(0, shape[1], shape[:1] + shape[2:])
    counted = rng.random(targets.shape) > 0.3
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    q = np.full(shape, label_smoothing / shape[1])
    np.put_along_axis(q, np.expand_dims(targets, 1), 1 - label_smoothing + label_smoothing / shape[1], axis=1)
    expected = np.where(counted, -(q * log_p).sum(axis=1), 0)

    def loss(z):
        return CrossEntropy(-100, label_smoothing)(z, np.where(counted, targets, -100))

    np.testing.assert_allclose(loss(tg.Variable(logits)).data, expected, rtol=1e-12)
    assert tg.gradcheck(loss, logits)
    assert tg.gradgradcheck(loss, logits, atol=1e-4)


def test_add_rows_equals_add_at():
    rng = np.random.default_rng(5)
    ids = rng.integers(0, 6, 40)
    rows = rng.standard_normal((40, 3))
    expected = np.zeros((7, 3))
    np.add.at(expected, ids, rows)
    np.testing.assert_allclose(add_rows(ids, rows, 7), expected, rtol=1e-12)
    assert add_rows(ids[:0], rows[:0], 7).shape == (7, 3)


def test_arrays_of_a_finished_sequence_are_reused_only_when_nothing_refers_to_them():
    model = nn.LSTM(3, 4)
    x = np.ones((5, 2, 3), np.float32)
    kept, _ = model(x)
    again, _ = model(x)  # the first graph is alive: its arrays are not reused
    assert not np.shares_memory(kept.data, again.data)
    np.testing.assert_array_equal(kept.data, again.data)
    del kept, again  # both graphs are gone: their arrays wait in the pool
    pooled = {id(a) for a in steps._pool.free}
    assert steps._pool.free_bytes <= steps._pool.most_used_bytes
    third, _ = model(x)
    assert id(third.data.base) in pooled


def test_the_pool_skips_arrays_still_in_use():
    arrays = StepArrays(3)
    held = arrays.slot("a", 0, (2,), np.float64)  # a view that outlives its StepArrays
    arrays.slot("b", 0, (2,), np.float64)
    del arrays
    again = StepArrays(3)
    first, second = again.slot("a", 0, (2,), np.float64), again.slot("b", 0, (2,), np.float64)
    assert not np.shares_memory(first, held) and not np.shares_memory(second, held)
