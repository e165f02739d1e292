"""tg.jit: a traced plan replays the eager run's values, gradients and dtypes."""

import collections
import sys
import threading
import tracemalloc
import warnings
import weakref

import numpy as np
import pytest
from replays import assert_replays_as_eager

import nn
import tensorgrad as tg
import tensorgrad.functions as F
from nn.charlm import CharRNN
from nn.utils.rnn import pack_padded_sequence


def mlp(dtype, rng, sizes=(4, 8, 3)):
    layers = [nn.Linear(a, b) for a, b in zip(sizes, sizes[1:], strict=False)]
    model = nn.Sequential(layers[0], *[m for layer in layers[1:] for m in (Relu(), layer)]).to(dtype)

    def loss(x, y):
        out = model(x)
        return ((F.sigmoid(out) - y) ** 2).mean(), out

    return model, loss


class Relu(nn.Module):
    def forward(self, x):
        return F.relu(x)


def run(fn, model, batches, *, lr=0.1):
    """Each batch's (loss value, output, parameter gradients), with an SGD step after each."""
    optimizer = nn.optim.SGD(list(model.parameters()), lr)
    results = []
    for args in batches:
        optimizer.zero_grad()
        loss, out = fn(*args)
        loss.backward()
        results.append((loss.data.copy(), out.data.copy(), [p.grad.data.copy() for p in model.parameters()]))
        optimizer.step()
    return results


def assert_same(eager, jitted, exact=True):
    for (l1, o1, g1), (l2, o2, g2) in zip(eager, jitted, strict=True):
        for a, b in [(l1, l2), (o1, o2), *zip(g1, g2, strict=True)]:
            assert a.dtype == b.dtype and a.shape == b.shape
            if exact:
                np.testing.assert_array_equal(a, b)
            else:
                np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_an_mlp_replays_values_gradients_and_dtypes_bit_for_bit(dtype, rng):
    batches = [(rng.standard_normal((5, 4)).astype(dtype), rng.random((5, 3)).astype(dtype))
               for _ in range(4)]
    model, loss = mlp(dtype, rng)
    state = model.state_dict()
    eager = run(loss, model, batches)
    model.load_state_dict(state)
    jitted_loss = tg.jit(loss)
    jitted = run(jitted_loss, model, batches)
    assert_same(eager, jitted)
    assert jitted_loss.traces == 1  # the later calls replayed the plan, after SGD changed the weights


def test_a_replay_makes_one_node_and_gradients_reach_array_arguments_that_need_them(rng):
    W = tg.Variable(rng.standard_normal((3, 3)))

    def f(x, scale):
        return (F.tanh(x @ W) * scale).sum()

    jf = tg.jit(f)
    for _ in range(3):
        x = tg.Variable(rng.standard_normal((2, 3)))
        W.cleargrad()
        expected = f(x, 2.0)
        expected.backward()
        gx, gW = x.grad.data.copy(), W.grad.data.copy()
        x.cleargrad()
        W.cleargrad()
        y = jf(x, 2.0)
        y.backward()
        np.testing.assert_array_equal(y.data, expected.data)
        np.testing.assert_array_equal(x.grad.data, gx)
        np.testing.assert_array_equal(W.grad.data, gW)
    assert type(y.creator).__name__ == "_Replayed"
    assert {id(v) for v in y.creator.inputs} == {id(x), id(W)}


RECURRENT = [
    ("RNN", {}), ("RNN", {"nonlinearity": "relu", "num_layers": 2}), ("LSTM", {}),
    ("LSTM", {"num_layers": 2, "bidirectional": True}),
    ("LSTM", {"peephole": True, "layer_norm": True}), ("GRU", {}), ("GRU", {"bidirectional": True}),
    ("GRU", {"reset_after": False}), ("LSTM", {"batch_first": True}),
]


@pytest.mark.parametrize("kind, options", RECURRENT)
@pytest.mark.parametrize("exact", [True, False])
def test_every_recurrent_layer_replays_as_eager(kind, options, exact):
    rng = np.random.default_rng(1)
    try:
        layer = getattr(nn, kind)(3, 5, **options)
    except TypeError:
        pytest.skip(f"{kind} has no {options}")
    head = nn.Linear((options.get("proj_size") or 5) * (2 if options.get("bidirectional") else 1), 2)

    def loss(x, hx):
        out, state = layer(x, hx)
        out = head(out)
        return (out * out).mean(), out

    holder = nn.Module()
    holder.layer, holder.head = layer, head
    shape = (6, 4, 3) if not options.get("batch_first") else (4, 6, 3)
    batches = [(rng.standard_normal(shape).astype(np.float32), None) for _ in range(3)]
    state = holder.state_dict()
    eager = run(loss, holder, batches)
    holder.load_state_dict(state)
    jitted_loss = tg.jit(loss, sum_weight_gradients=not exact)
    jitted = run(jitted_loss, holder, batches)
    fused = not options.get("peephole") and options.get("reset_after", True)
    layers = options.get("num_layers", 1) * (2 if options.get("bidirectional") else 1)
    assert recurrences(jitted_loss.plan) == (layers if fused else 0)  # each layer's cells: one loop
    # ... which writes its outputs, and in backward the gradients of its input side, as the rows
    # of one array, in time order or reversed, instead of the layer's stacks of them
    plan = jitted_loss.plan
    assert all(step.stacked is not None for step in plan.forward + plan.backward if hasattr(step, "stacked"))
    stacks = [step for step in jitted_loss.plan.backward if type(getattr(step, "function", None)) is F.Stack]
    assert (not stacks) if fused else stacks
    if not exact and fused:
        assert weight_gradients_summed(jitted_loss.plan)
    assert_same(eager, jitted, exact=exact)


def recurrences(plan):
    """How many chains of fused cells ``plan`` runs as one loop each (a Recurrence step)."""
    return sum(type(step).__name__ == "Recurrence" for step in plan.forward)


def weight_gradients_summed(plan):
    """Whether ``plan`` computes a weight gradient over all steps in one matmul."""
    return any(type(step).__name__ == "WeightGradient" or getattr(step, "summed", False)
               for step in plan.backward)


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_summed_weight_gradient_when_only_the_hidden_weight_needs_one(mode):
    # The cells' numpy_backward then computes no input gradient, only ∂L/∂bₜ into the plan's
    # buffer for the sequence: the plan must keep them, and the sum must match eager mode.
    tg.manual_seed(0)
    layer = getattr(nn, mode)(3, 4)
    for name, p in layer.named_parameters():
        p.requires_grad = name == "weight_hh_l0"
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    layer.to(np.float64)

    def loss(x):
        return (layer(x)[0] ** 2).sum()

    loss(x).backward()
    eager = layer.weight_hh_l0.grad.data.copy()
    jf = tg.jit(loss, sum_weight_gradients=True)
    for _ in range(3):  # trace, first replay, compiled replay
        layer.zero_grad()
        jf(x).backward()
        np.testing.assert_allclose(layer.weight_hh_l0.grad.data, eager, rtol=1e-12, atol=1e-14)
    assert weight_gradients_summed(jf.plan)


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("summed", [False, True])
def test_a_recurrence_gives_the_initial_state_and_every_parameter_the_eager_gradients(mode, summed):
    # BPTT in one loop: ∂L/∂hₜ carried from step to step reaches h₀ (and c₀), and the states'
    # gradients from outside (every output hₜ feeds the loss) are added on the way.
    tg.manual_seed(0)
    layer = getattr(nn, mode)(3, 4, num_layers=2)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 2, 3)).astype(np.float32)
    shape = (2, 2, 4)
    state = [rng.standard_normal(shape).astype(np.float32) for _ in range(2 if mode == "LSTM" else 1)]

    def loss(x, *state):
        out, _ = layer(x, tuple(state) if mode == "LSTM" else state[0])
        return (out * out).sum() + out[-1].sum()

    def gradients(fn):
        layer.zero_grad()
        states = [tg.Variable(h, requires_grad=True) for h in state]
        fn(x, *states).backward()
        return [p.grad.data.copy() for p in layer.parameters()] + [h.grad.data.copy() for h in states]

    eager = gradients(loss)
    jitted = tg.jit(loss, sum_weight_gradients=summed)
    for _ in range(3):  # trace, first replay, compiled replay
        for a, b in zip(eager, gradients(jitted), strict=True):
            if summed:
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
            else:
                np.testing.assert_array_equal(a, b)
    assert recurrences(jitted.plan) == 2


@pytest.mark.parametrize("summed", [False, True])
def test_a_recurrence_takes_gradients_of_its_final_state_from_outside(summed):
    # h_n and c_n feed the loss beside the outputs: BPTT starts from ∂L/∂h_T and ∂L/∂c_T as given.
    tg.manual_seed(1)
    layer = nn.LSTM(3, 4, bidirectional=True)
    x = np.random.default_rng(6).standard_normal((5, 2, 3)).astype(np.float32)

    def loss(x):
        out, (h_n, c_n) = layer(x)
        return (out * out).mean() + (h_n * c_n).sum() + (c_n ** 2).sum()

    layer.zero_grad()
    expected = loss(x)
    expected.backward()
    eager = [p.grad.data.copy() for p in layer.parameters()]
    jitted = tg.jit(loss, sum_weight_gradients=summed)
    for _ in range(3):
        layer.zero_grad()
        replay = jitted(x)
        replay.backward()
        assert replay.item() == expected.item()
        for e, p in zip(eager, layer.parameters(), strict=True):
            if summed:
                np.testing.assert_allclose(p.grad.data, e, rtol=1e-5, atol=1e-6)
            else:
                np.testing.assert_array_equal(p.grad.data, e)
    assert recurrences(jitted.plan) == 2


def test_a_chain_whose_states_are_read_between_its_cells_stays_one_frame_per_cell(rng):
    W = tg.Variable(rng.standard_normal((4, 4)) * 0.5)
    a = rng.standard_normal((5, 2, 4))

    def loss(a):
        h, total = tg.Variable(np.zeros((2, 4))), 0
        for t in range(5):
            h = F.rnn_cell(a[t], h, W)
            total = total + (h * h).sum()  # reads hₜ before the next cell: not one loop
        return total

    jitted = tg.jit(loss)
    expected = loss(a)
    W.cleargrad()
    expected.backward()
    expected_grad = W.grad.data.copy()
    for _ in range(3):
        W.cleargrad()
        replay = jitted(a)
        replay.backward()
        assert replay.item() == expected.item()
        np.testing.assert_array_equal(W.grad.data, expected_grad)
    assert recurrences(jitted.plan) == 0 and jitted.plan.frames == 5


@pytest.mark.parametrize("read_outside", [False, True])
def test_a_recurrence_reads_the_rows_the_layer_unbinds_unless_another_step_reads_one(read_outside, rng):
    # The input side's unbind into a₀ … a_{T-1}, and forward's stack of the hₜ (whose backward
    # unbinds ∂L/∂h₁ … ∂L/∂h_T), become rows of one array each; a row read elsewhere keeps the unbind.
    W = tg.Variable(rng.standard_normal((4, 4)) * 0.5, requires_grad=True)
    x = rng.standard_normal((5, 2, 4))
    W_ih = tg.Variable(rng.standard_normal((4, 4)), requires_grad=True)

    def loss(x):
        a = F.unbind(F.linear(x, W_ih), 0)
        h, hs = tg.Variable(np.zeros((2, 4))), []
        for t in range(5):
            h = F.rnn_cell(a[t], h, W)
            hs.append(h)
        total = (F.stack(hs) ** 2).sum()
        return total + F.where(a[2] > 0, 0.0, 1.0).sum() if read_outside else total  # a₂ read, no gradient

    jitted = assert_replays_as_eager(loss, [(x,), (x * 2,), (x - 1,)], [W, W_ih])
    assert recurrences(jitted.plan) == 1
    unbinds = sum("unbind" in repr(step) for step in jitted.plan.forward + jitted.plan.backward)
    assert unbinds == (1 if read_outside else 0)


@pytest.mark.parametrize("summed", [False, True])
def test_a_weight_read_outside_its_chain_is_one_loop_only_when_its_gradient_is_summed(summed, rng):
    # Exact mode adds Wₕₕ's gradients in the eager engine's order; with a second use of Wₕₕ
    # (a penalty on it) that order interleaves with the cells', so the cells stay frames.
    tg.manual_seed(0)
    layer = nn.GRU(3, 4)
    x = rng.standard_normal((6, 2, 3)).astype(np.float32)

    def loss(x):
        return (layer(x)[0] ** 2).sum() + 0.1 * (layer.weight_hh_l0 ** 2).sum()

    layer.zero_grad()
    loss(x).backward()
    eager = [p.grad.data.copy() for p in layer.parameters()]
    jitted = tg.jit(loss, sum_weight_gradients=summed)
    for _ in range(2):
        layer.zero_grad()
        jitted(x).backward()
        for e, p in zip(eager, layer.parameters(), strict=True):
            if summed:
                np.testing.assert_allclose(p.grad.data, e, rtol=1e-5, atol=1e-6)
            else:
                np.testing.assert_array_equal(p.grad.data, e)
    assert recurrences(jitted.plan) == (1 if summed else 0)


@pytest.mark.parametrize("mode", ["RNN", "LSTM"])
def test_cells_whose_state_is_masked_between_steps_sum_their_weight_gradient_without_a_recurrence(mode):
    # Variational dropout multiplies h by one mask before every step: the cells are no chain
    # (a product sits between them), so each stays a frame, and with sum_weight_gradients the
    # plan still computes Wₕₕ's gradient over all steps in one matmul (WeightGradient).
    layer = getattr(nn, mode)(3, 4, variational_dropout=0.3)
    x = np.random.default_rng(3).standard_normal((6, 2, 3)).astype(np.float32)

    def loss(x):
        return (layer(x)[0] ** 2).sum()

    def gradients(fn, seed):
        tg.manual_seed(seed)
        layer.zero_grad()
        fn(x).backward()
        return [p.grad.data.copy() for p in layer.parameters()]

    jitted = tg.jit(loss, sum_weight_gradients=True)
    gradients(jitted, 0)  # the trace
    for seed in (1, 2):  # replays: the masks drawn from the seed, as in eager mode
        for a, b in zip(gradients(loss, seed), gradients(jitted, seed), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert recurrences(jitted.plan) == 0
    assert any(type(step).__name__ == "WeightGradient" for step in jitted.plan.backward)


def char_model_loss(model, V):
    def window(x, y, state):
        logits, state = model(x, state)
        return nn.softmax_cross_entropy(logits.reshape(-1, V), y.reshape(-1)), state
    return window


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_the_char_model_with_dropout_replays_the_eager_losses_for_one_seed(kind):
    V = 11
    tg.manual_seed(3)
    model = CharRNN(V, 8, num_layers=2, model=kind, dropout=0.4)
    state_dict = model.state_dict()
    rng = np.random.default_rng(2)
    windows = [(rng.integers(0, V, (5, 3)), rng.integers(0, V, (5, 3))) for _ in range(4)]

    def train(fn):
        tg.manual_seed(7)
        optimizer = nn.optim.Adam(list(model.parameters()), 1e-2)
        state, losses = None, []
        for x, y in windows:
            optimizer.zero_grad()
            loss, state = fn(x, y, state)
            loss.backward()
            optimizer.step()
            state = nn.data.detach_state(state)
            losses.append(loss.item())
        return losses

    eager = train(char_model_loss(model, V))
    model.load_state_dict(state_dict)
    assert train(tg.jit(char_model_loss(model, V))) == eager


def test_dropout_draws_new_masks_at_every_replay():
    x = tg.Variable(np.ones((200, 50), np.float32))
    jf = tg.jit(lambda x: F.dropout(x, 0.3))
    masks = [jf(x).data for _ in range(4)]
    assert jf.traces == 1
    for m in masks:
        assert set(np.unique(m)) == {np.float32(0), np.float32(1 / 0.7)}
        assert abs((m == 0).mean() - 0.3) < 0.02  # 10,000 draws: 5 standard deviations ≈ 0.023
    assert not any(np.array_equal(a, b) for i, a in enumerate(masks) for b in masks[i + 1:])


def test_a_change_of_signature_retraces_and_the_same_signature_replays():
    W = tg.Variable(np.ones((3, 3), np.float32))
    jf = tg.jit(lambda x, k: (x @ W * k).sum())
    x = np.ones((2, 3), np.float32)
    jf(x, 2.0)
    jf(x + 1, 2.0)
    assert jf.traces == 1
    calls = [
        (np.ones((4, 3), np.float32), 2.0),  # shape
        (np.ones((2, 3), np.float64), 2.0),  # dtype
        (tg.Variable(np.ones((2, 3), np.float32)), 2.0),  # a Variable requiring a gradient
        (tg.Variable(np.ones((2, 3), np.float32), requires_grad=False), 2.0),
        (x, 3.0),  # a non-array argument by value
    ]
    for i, args in enumerate(calls):
        jf(*args)
        assert jf.traces == 2 + i
    with tg.no_grad():  # the grad mode
        assert not jf(x, 2.0).requires_grad
    assert jf.traces == 2 + len(calls)
    W.requires_grad = False  # a leaf the function reads changed: its plan is stale
    jf(x, 2.0)
    assert jf.traces == 3 + len(calls)
    W.data = np.full((3, 3), 2.0, np.float32)  # new values (same shape): read by the replay
    assert jf(x, 2.0).item() == 2.0 * 2 * 3 * 2 * 3
    assert jf.traces == 3 + len(calls)


def test_float_arguments_are_a_signature_bit_for_bit():
    """0.0 == -0.0, but they divide apart: each has a plan; a NaN, equal to nothing, finds its plan."""
    jf = tg.jit(lambda x, s: (x / s).sum())
    x = tg.Variable(np.ones(2))
    with np.errstate(divide="ignore", invalid="ignore"):
        assert jf(x, 0.0).item() == np.inf
        assert jf(x, -0.0).item() == jf(x, np.float32(-0.0)).item() == -np.inf
        assert jf.traces == 3
        for _ in range(3):
            assert np.isnan(jf(x, float("nan")).item())
        assert jf(x, 2.0).item() == jf(x, 2.0).item() == 1.0  # equal floats still share a plan
        assert jf.traces == len(jf.plans) == 5
        jc = tg.jit(lambda x, s: (x / s.imag).sum())
        assert jc(x, complex(1, 0.0)).item() == np.inf and jc(x, complex(1, -0.0)).item() == -np.inf


def test_the_cache_keeps_the_most_recently_used_plans():
    jf = tg.jit(lambda x: x * 2.0, cache_size=2)
    for n in (1, 2, 3):
        jf(np.ones(n, np.float32))
    assert jf.traces == 3 and len(jf.plans) == 2
    jf(np.ones(3, np.float32))  # still cached
    assert jf.traces == 3
    jf(np.ones(1, np.float32))  # dropped: traced again
    assert jf.traces == 4
    assert tg.jit(lambda x: x).cache_size == tg.jit.__globals__["CACHE_SIZE"] == 8
    with pytest.raises(ValueError, match="cache_size must be at least 1"):
        tg.jit(lambda x: x, cache_size=0)
    for wrong in ("3", 1.5, True, None):
        with pytest.raises(TypeError, match=f"jit: cache_size must be an int, got {type(wrong).__name__}"):
            tg.jit(lambda x: x, cache_size=wrong)
        with pytest.raises(TypeError, match="jit: cache_size must be an int"):
            tg.jit(cache_size=wrong)  # as a decorator with options: at once


def test_create_graph_through_a_replay_is_an_error():
    x = tg.Variable(np.array([1.0, 2.0]))
    jf = tg.jit(lambda x: (x ** 3).sum())
    jf(x)
    y = jf(x)
    with pytest.raises(RuntimeError, match=r"jit\(<lambda>\): create_graph=True through a replayed function"):
        y.backward(create_graph=True)
    y = jf.eager(x)  # the eager function differentiates twice
    (gx,) = tg.grad(y, x, create_graph=True)
    np.testing.assert_allclose(gx.data, 3 * x.data ** 2)


def test_comparisons_are_replayed_on_each_calls_values():
    """x > 0 and the like are recorded (a Function without gradient), not frozen at the trace."""
    W = tg.Variable(np.array([[1.0, -2.0], [-3.0, 4.0]]))

    def loss(x):
        positive = (x > 0).astype(x.dtype)
        kept = W * (W.T <= x.sum()).astype(W.dtype)  # W compared before any other use of it
        return (x * positive).sum() + F.where(x != 1.0, x, 0.0).sum() + (kept @ x).sum()

    jf = tg.jit(loss)
    for values in ([1.0, -1.0], [-5.0, 3.0], [2.0, 1.0], [-1.0, -2.0]):
        x = tg.Variable(np.array(values))
        W.grad = None
        expected = loss(x)
        expected.backward()
        grads = (x.grad.data, W.grad.data)
        x.grad = W.grad = None
        replay = jf(x)
        replay.backward()
        assert replay.item() == expected.item()
        np.testing.assert_array_equal(x.grad.data, grads[0])
        np.testing.assert_array_equal(W.grad.data, grads[1])
    assert jf.traces == 1


def test_an_error_on_a_replays_values_names_the_operation_as_in_eager_mode():
    """Index checks run in the steps' forwards, so every replay checks its own ids and targets,
    the first replay (run step by step) and the later ones (the compiled plan) alike."""
    table = nn.Embedding(10, 3)
    jf = tg.jit(lambda ids, targets: nn.softmax_cross_entropy(table(ids), targets))
    good = np.array([1, 2]), np.array([0, 1])
    jf(*good)
    for _ in range(3):  # the first replay runs step by step, the next ones the compiled plan
        with pytest.raises(IndexError, match=r"jit\(<lambda>\): embedding: index -1 is out of range for 10 "
                                             r"embeddings"):
            jf(np.array([1, -1]), good[1])
        with pytest.raises(IndexError, match=r"jit\(<lambda>\): softmax_cross_entropy: target 3 is out of "
                                             r"range for 3 classes"):
            jf(good[0], np.array([0, 3]))
        np.testing.assert_array_equal(jf(*good).data, jf.eager(*good).data)  # and the plan still works
    assert jf.traces == 1


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_grad_inside_a_traced_function_is_replayed_through_the_cross_entropy(label_smoothing):
    """tg.grad in a traced function runs the recorded backwards (the trace sees every step), not
    the array-level ones: a penalty on ∂ℓ/∂z follows each call's logits and targets."""
    def penalized(z, targets):
        loss = nn.softmax_cross_entropy(z, targets, label_smoothing=label_smoothing)
        (grad_z,) = tg.grad(loss, [z])
        return loss + (grad_z * grad_z).sum()

    jf = tg.jit(penalized)
    rng = np.random.default_rng(0)
    for _ in range(4):
        z = tg.Variable(rng.standard_normal((4, 5)))
        targets = rng.integers(0, 5, 4)
        targets[1] = -100  # ignored
        np.testing.assert_allclose(jf(z, targets).item(), penalized(z, targets).item(), rtol=1e-13)
    assert jf.traces == 1


def test_backward_inside_a_traced_function_is_an_error():
    model = nn.Linear(3, 1).double()

    def step(x):
        loss = model(x).sum()
        loss.backward()  # a replay would not run it
        return loss

    with pytest.raises(tg.TraceError, match="backward: called inside a function that tg.jit is tracing"):
        tg.jit(step)(np.ones((2, 3)))


def test_inputs_no_gradient_reaches_get_none_as_in_eager_mode():
    """Backward from one of two outputs: the parameters only the other reaches get None, not
    zeros, so an optimizer with weight decay leaves them alone, as in eager mode."""
    a, b = nn.Linear(3, 1).double(), nn.Linear(3, 1).double()
    jf = tg.jit(lambda x: (a(x).sum(), b(x).sum()))
    x = np.ones((2, 3))
    for fn in (jf, jf, jf, jf.eager):
        for p in (*a.parameters(), *b.parameters()):
            p.grad = None
        loss_a, _ = fn(x)
        loss_a.backward()
        assert a.weight.grad is not None and b.weight.grad is None and b.bias.grad is None
    before = b.weight.data.copy()
    nn.optim.Adam(b.parameters(), weight_decay=0.1).step()
    np.testing.assert_array_equal(b.weight.data, before)


def test_a_function_that_enables_grad_inside_no_grad_replays_recorded():
    w = tg.Variable(np.array([1.0, 2.0]))

    def fn(x):
        with tg.enable_grad():
            return (w * x).sum()

    jf = tg.jit(fn)
    for _ in range(3):
        w.grad = None
        with tg.no_grad():
            y = jf(np.array([3.0, 4.0]))
        assert y.requires_grad
        y.backward()
        np.testing.assert_array_equal(w.grad.data, [3.0, 4.0])


def test_a_plan_keeps_no_array_a_forward_saved():
    """The templates of a plan's steps hold no arrays of the traced run, nor of an unrecorded
    replay (its Functions with numpy_backward run on frames of their own, dropped after)."""
    jf = tg.jit(lambda z, y: nn.softmax_cross_entropy(z, y))
    z, y = tg.Variable(np.ones((50, 40))), np.zeros(50, np.int64)
    jf(z, y).backward()
    with tg.no_grad():
        jf(z, y)
        jf(z, y)
    held = [(type(step.function).__name__, name) for step in jf.plan.forward
            for name, value in vars(step.function).items()
            if isinstance(value, np.ndarray | tuple) and np.size(value) >= 50]
    assert held == []


def test_replays_from_two_threads_are_each_right():
    table = nn.Embedding(100, 4)
    jf = tg.jit(lambda ids: table(ids).sum() * 1.0)
    batches = [np.arange(0, 50), np.arange(50, 100)]
    expected = [jf.eager(ids).item() for ids in batches]
    jf(batches[0])
    wrong = []

    def work(k):
        for _ in range(300):
            with tg.no_grad():
                if jf(batches[k]).item() != expected[k]:
                    wrong.append(k)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, inside the steps of a replay
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert wrong == []


def test_an_unrecorded_replay_runs_the_recurrence_and_keeps_nothing_per_step():
    """Under no_grad a layer's cells are one recurrence too, which then keeps no step's arrays:
    its peak memory stays below eager mode's, and its outputs are eager mode's."""
    lstm = nn.LSTM(16, 32)
    jf = tg.jit(lambda x: lstm(x)[0])
    x = np.random.default_rng(0).standard_normal((400, 8, 16)).astype(np.float32)
    with tg.no_grad():
        for _ in range(3):
            jf(x)
        assert any(type(step).__name__ == "Recurrence" for step in jf.plan.forward)
        peaks = []
        for fn in (jf, lstm):
            tracemalloc.start()
            y = fn(x)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            y = y[0] if isinstance(y, tuple) else y
            np.testing.assert_array_equal(y.data, lstm(x)[0].data)
    assert peaks[0] < peaks[1]


def test_an_arguments_ndarray_handed_to_a_function_is_read_from_its_slot():
    """F.where(m.data, ...) and F.embedding(ids.data, ...) hold the argument's very array (not
    a new array on its buffer), which the plan then reads at every call."""
    table = tg.Variable(np.arange(12.0).reshape(6, 2))

    def fn(x, m, ids):
        return F.where(m.data, x, 0.0).sum() + F.embedding(ids.data, table).sum()

    jf = tg.jit(fn)
    x = np.arange(4.0)
    for m, ids in [([True, False, True, True], [0, 1]), ([False, True, False, False], [5, 2])]:
        m, ids = np.array(m), np.array(ids)
        assert jf(x, m, ids).item() == fn(tg.Variable(x), tg.Variable(m), tg.Variable(ids)).item()
    assert jf.traces == 1


def test_a_second_backward_through_one_replay_is_an_error_and_a_new_replay_works():
    model = nn.LSTM(3, 4).double()
    x = tg.Variable(np.random.default_rng(0).standard_normal((5, 2, 3)), requires_grad=True)
    jf = tg.jit(lambda x: (model(x)[0] ** 2).sum())
    jf(x)
    y = jf(x)
    y.backward()
    first = x.grad.data.copy()
    with pytest.raises(RuntimeError, match=r"jit\(<lambda>\): backward through a replayed function a second "
                                           r"time.*fn.eager"):
        y.backward()
    x.grad = None
    jf(x).backward()  # a new replay has its own arrays
    np.testing.assert_array_equal(x.grad.data, first)


def test_what_the_trace_cannot_replay_is_an_error_at_trace_time():
    W = tg.Variable(np.ones((3, 3)))

    def rebuilt(x):  # a Variable made from a view of a traced array: outside the tape
        h = x @ W
        return (tg.Variable(h.data[0], requires_grad=False) * h).sum()

    with pytest.raises(tg.TraceError, match="built from the data of an array of the trace"):
        tg.jit(rebuilt)(np.ones((3, 3)))

    def numpy_targets(x, y):  # y used with NumPy only: its values would be frozen
        return (x @ W * float(y.data.sum())).sum()

    with pytest.raises(tg.TraceError, match="array argument 1 .* is not read by any operation"):
        tg.jit(numpy_targets)(np.ones((2, 3)), np.ones(2))
    with pytest.raises(tg.TraceError, match="returned a float"), pytest.warns(tg.TraceWarning):
        tg.jit(lambda x: (x @ W).sum().item())(np.ones((2, 3)))
    with pytest.raises(tg.TraceError, match=r"returned \[\[\], \[\]\], no Variable in it"):
        tg.jit(lambda x: [[] for row in x.data if row.sum() > 0])(np.ones((2, 3)))
    with pytest.raises(TypeError, match="neither an array nor hashable"):
        tg.jit(lambda x, options: x @ W)(np.ones((2, 3)), {1, 2})


def test_lengths_of_a_padded_batch_are_a_signature_by_value_and_an_array_of_them_is_refused():
    """A layer turns ``lengths`` into masks with NumPy: as a tuple they are part of the
    signature (a new tuple traces again); as an array the trace would freeze them."""
    layer = nn.GRU(3, 4)
    jf = tg.jit(lambda x, lengths: layer(x, lengths=lengths)[0].sum())
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    for lengths in [(5, 3), (5, 3), (4, 2)]:
        assert jf(x, lengths).item() == layer(x, lengths=lengths)[0].sum().item()
    assert jf.traces == 2
    with pytest.raises(tg.TraceError, match="array argument 1 .* is not read"):
        jf(x, np.array([5, 3]))


Batch = collections.namedtuple("Batch", "x k")
Result = collections.namedtuple("Result", "loss out")


def test_named_tuples_in_and_out_replay_as_eager(rng):
    W = tg.Variable(rng.standard_normal((3, 2)))
    jf = tg.jit(lambda s: Result((F.tanh(s.x @ W) * s.k).sum(), s.x @ W))
    for _ in range(3):
        x = rng.standard_normal((4, 3))
        runs = []
        for fn in (jf.eager, jf):
            W.cleargrad()
            result = fn(Batch(x, 2.0))
            result.loss.backward()
            runs.append((type(result), result.loss.data, result.out.data, W.grad.data))
        assert runs[1][0] is Result
        for a, b in zip(*runs, strict=True):
            np.testing.assert_array_equal(a, b)
    assert jf.traces == 1


def test_a_packed_sequence_is_data_and_a_signature_of_its_batch_sizes():
    """A PackedSequence in and out of nn.LSTM: its data is an array of the plan; its batch sizes
    and indices, which decide the layer's steps and gathers, are a signature by value."""
    tg.manual_seed(0)
    layer = nn.LSTM(3, 4)

    @tg.jit
    def lstm(sequence):
        out, (h, _) = layer(sequence)
        return out, h

    def run(fn, x, lengths):
        x = tg.Variable(x, requires_grad=True)
        layer.zero_grad()
        out, h = fn(pack_padded_sequence(x, lengths, enforce_sorted=False))
        ((out.data ** 2).sum() + h.sum()).backward()
        return [out.data.data, *out[1:], h.data, x.grad.data] + [p.grad.data for p in layer.parameters()]

    rng = np.random.default_rng(3)
    # the same batch sizes and order (replayed), a new order, new batch sizes with as many rows
    for lengths, traces in [((3, 5), 1), ((3, 5), 1), ((3, 5), 1), ((5, 3), 2), ((4, 4), 3), ((4, 4), 3)]:
        x = rng.standard_normal((5, 2, 3)).astype(np.float32)
        for a, b in zip(run(lstm.eager, x, lengths), run(lstm, x, lengths), strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        assert lstm.traces == traces


def test_overlapping_replays_keep_their_own_arrays():
    """Two windows forwarded before either backward: each replay's gradient is its own."""
    tg.manual_seed(0)
    layer = nn.LSTM(3, 4)
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((5, 2, 3)).astype(np.float32) for _ in range(3)]

    def loss(x):
        out, _ = layer(x)
        return (out * out).sum()

    jitted = tg.jit(loss)
    jitted(xs[2])  # the trace; the next calls replay
    for fn in (loss, jitted):
        first, second = fn(xs[0]), fn(xs[1])
        layer.zero_grad()
        second.backward()
        g_second = [p.grad.data.copy() for p in layer.parameters()]
        layer.zero_grad()
        first.backward()
        g_first = [p.grad.data.copy() for p in layer.parameters()]
        if fn is loss:
            expected = g_first, g_second, first.data, second.data
    for a, b in zip(expected[0] + expected[1], g_first + g_second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert first.data == expected[2] and second.data == expected[3]


def cell_loop(cell, W, b, h0):
    """The states h₁ … h_T, stacked, of ``cell`` run over the rows of the input side a."""
    def outputs(a):
        hs, h = [], h0
        for a_t in F.unbind(a):
            h = cell(a_t, h, W, b)
            hs.append(h)
        return F.stack(hs)

    return outputs


def hidden_side(gates, rng, hidden=4):
    W, b = (tg.Variable(rng.standard_normal(shape).astype(np.float32), requires_grad=True)
            for shape in ((gates * hidden, hidden), (gates * hidden,)))
    return W, b, np.zeros((2, hidden), np.float32)


@pytest.mark.parametrize("cell, gates", [(F.rnn_cell, 1), (F.gru_cell, 3)], ids=["rnn", "gru"])
def test_a_replay_fills_the_arrays_of_the_last_call_once_nothing_holds_them(cell, gates, rng):
    """A recurrence's rows hₜ (the output is a view of them) and ∂L/∂aₜ (what the input's gradient
    is copied from): the same arrays at every replay once the last one's results are dropped."""
    W, b, h0 = hidden_side(gates, rng)
    outputs = cell_loop(cell, W, b, h0)
    jitted = tg.jit(outputs)

    def run(fn, a):
        a = tg.Variable(a, requires_grad=True)
        W.grad = b.grad = None
        out = fn(a)
        (out * out).sum().backward()
        return out.data, a.grad.data, W.grad.data, b.grad.data

    previous = None
    for call in range(4):
        a = rng.standard_normal((5, 2, gates * 4)).astype(np.float32)
        got = run(jitted, a)
        for x, y in zip(run(outputs, a), got, strict=True):
            np.testing.assert_array_equal(x, y)
        if call >= 1:  # a replay (the first call is the eager trace)
            (backward,) = [s for s in jitted.plan.backward if type(s).__name__ == "RecurrenceBackward"]
            grad_a_rows = (backward.grad_a_buffer if gates == 3 else backward.grad_b_buffer).array
            np.testing.assert_array_equal(grad_a_rows, got[1])  # this call's ∂L/∂aₜ were written there
            arrays = (got[0].base, grad_a_rows)
            if call >= 2:
                assert all(x is ref() for x, ref in zip(arrays, previous, strict=True))
            previous = [weakref.ref(x) for x in arrays]
            del arrays, grad_a_rows
        del got
    assert recurrences(jitted.plan) == 1


def test_a_replay_never_writes_into_an_array_the_caller_still_holds(rng):
    """An output that is a view of a recurrence's rows hₜ, and an input gradient that is its
    rows ∂L/∂aₜ, kept by the caller, keep their values through the next calls."""
    outputs = cell_loop(F.rnn_cell, *hidden_side(1, rng))
    for fn in (outputs, tg.jit(outputs)):
        held = []
        for _ in range(4):
            a = tg.Variable(rng.standard_normal((5, 2, 4)).astype(np.float32), requires_grad=True)
            out = fn(a)
            (out * out).sum().backward()
            held.append((out, a.grad, out.data.copy(), a.grad.data.copy()))
        for out, grad, out_then, grad_then in held:
            np.testing.assert_array_equal(out.data, out_then)
            np.testing.assert_array_equal(grad.data, grad_then)
    assert recurrences(fn.plan) == 1


@pytest.mark.parametrize("convert", [lambda v: v.item(), float, int, bool],
                         ids=["item", "float", "int", "bool"])
def test_a_value_turned_into_python_inside_a_trace_warns_that_it_is_frozen(convert):
    """A Python number leaves the tape; an array does not warn (np.asarray of an argument, which
    the trace hands over as a Variable, is the argument's own array, read from its slot)."""
    def fn(x):
        convert(x.sum())
        return x * 2.0

    with pytest.warns(tg.TraceWarning, match="inside a function that tg.jit is tracing"):
        tg.jit(fn)(np.ones(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fn(tg.Variable(np.ones(2)))  # eager: no warning


def test_np_asarray_of_an_argument_replays_without_a_warning():
    table = nn.Embedding(10, 3)
    jf = tg.jit(lambda ids: table(np.asarray(ids)).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for ids in ([1, 2], [3, 9], [0, 0]):
            assert jf(np.array(ids)).item() == table(np.array(ids)).sum().item()
    assert jf.traces == 1


def test_value_branches_and_the_train_mode_are_frozen_in_the_trace():
    """The trace records operations: a Python decision on values is replayed as taken."""
    def clipped(x):
        total = (x * x).sum()
        if total.item() > 10:  # a value branch: decided once, at trace time
            return total * 0.0
        return total

    jf = tg.jit(clipped)
    small, large = np.ones(2), np.full(2, 10.0)
    with pytest.warns(tg.TraceWarning, match=r"item\(\) inside a function that tg.jit is tracing") as caught:
        assert jf(small).item() == 2.0  # traced: the small branch, with a warning at the user's line
    assert [w.filename for w in caught] == [__file__]
    assert jf(large).item() == 200.0  # replayed: still the small branch (eager gives 0)
    assert clipped(large).item() == 0.0

    dropout = nn.Dropout(0.5)
    jd = tg.jit(lambda x: dropout(x))
    x = np.ones((100, 100), np.float32)
    jd(x)  # traced in training mode
    dropout.eval()
    assert (jd(x).data == 0).any()  # the replay still drops: the mode was read at trace time
    assert not (dropout(x).data == 0).any()


def test_from_the_second_replay_on_the_plan_runs_as_compiled_source_with_the_eager_values(rng):
    cell = nn.LSTMCell(3, 4)  # a fused cell: its numpy_backward runs from a frame

    def f(x, c):
        h = F.tanh(x * c) + c
        h, _ = cell(h[:, :3])
        return (h * h).sum() + h.sum()  # h used twice: its gradients are summed

    jf = tg.jit(f)
    for call in range(5):
        x = tg.Variable(rng.standard_normal((2, 4)).astype(np.float32))
        c = rng.standard_normal((2, 4)).astype(np.float32)
        cell.zero_grad()
        expected = f(x, c)
        expected.backward()
        grads = [x.grad.data.copy()] + [p.grad.data.copy() for p in cell.parameters()]
        x.cleargrad()
        cell.zero_grad()
        got = jf(x, c)
        got.backward()
        np.testing.assert_array_equal(got.data, expected.data)
        for a, b in zip(grads, [x.grad.data] + [p.grad.data for p in cell.parameters()], strict=True):
            np.testing.assert_array_equal(a, b)
        assert (jf.plan.source == "") == (call < 2)  # traced, replayed step by step, then compiled
    source = jf.plan.source
    assert "numpy_backward(" in source and "frame.inputs = (" in source and "] += env[" in source
    assert source.count(" = f") >= len(jf.plan.forward) - 1  # a line per step (the cell's is a frame)


def test_a_replay_needs_no_more_memory_than_the_eager_run():
    tg.manual_seed(0)
    model = CharRNN(20, 32, num_layers=2)
    window = char_model_loss(model, 20)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 20, (30, 8)), rng.integers(0, 20, (30, 8))
    jitted = tg.jit(window)
    jitted(x, y, None)

    def peak(fn):
        tracemalloc.start()
        loss, _ = fn(x, y, None)
        loss.backward()
        del loss
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    eager, replay = peak(window), peak(jitted)
    assert replay <= eager, (replay, eager)
    jitted(x, y, None)[0].backward()  # the second replay compiles the plan (jit_code), once
    compiled = peak(jitted)
    assert compiled <= eager, (compiled, eager)


def test_a_jitted_method_gets_its_instance_and_has_its_eager_method_plans_and_traces():
    class Scaled(nn.Module):
        def __init__(self, k):
            super().__init__()
            self.weight = nn.Parameter(np.full((2, 2), k, np.float32))

        @tg.jit
        def forward(self, x):
            """x @ W."""
            return x @ self.weight

    a, b = Scaled(1.0), Scaled(2.0)
    x = np.ones((1, 2), np.float32)
    assert a.forward.plan is None and not a.forward.plans and a.forward.traces == 0
    for _ in range(2):
        assert a(x).data.tolist() == [[2.0, 2.0]] and b(x).data.tolist() == [[4.0, 4.0]]
    assert Scaled.forward.traces == 2  # one plan per instance, replayed the second time
    b(np.ones((3, 2), np.float32))
    assert (a.forward.traces, b.forward.traces, Scaled.forward.traces) == (1, 2, 3)
    assert (len(a.forward.plans), len(b.forward.plans), len(Scaled.forward.plans)) == (1, 2, 3)
    assert b.forward.plan is Scaled.forward.plan  # the most recently used
    assert a.forward.plan is next(iter(Scaled.forward.plans.values()))
    assert a.forward.eager.__self__ is a and a.forward.eager(x).data.tolist() == [[2.0, 2.0]]
    assert a.forward.__name__ == "forward" and a.forward.__doc__ == "x @ W."

    class Slotted:  # no weak reference to count its traces by: calls work, its count is an error
        __slots__ = ("k",)

        def __init__(self, k):
            self.k = k

        @tg.jit
        def scaled(self, x):
            return x * self.k

    s = Slotted(2.0)
    assert s.scaled(x).data.tolist() == s.scaled(x).data.tolist() == [[2.0, 2.0]]
    assert Slotted.scaled.traces == 1 and len(s.scaled.plans) == 1
    with pytest.raises(TypeError, match=r"traces of scaled are counted per instance.*Slotted.scaled.traces"):
        s.scaled.traces  # noqa: B018 - the property raises


def test_a_replay_under_no_grad_records_nothing(rng):
    W = tg.Variable(rng.standard_normal((3, 2)))
    jf = tg.jit(lambda x: F.tanh(x @ W))
    x = rng.standard_normal((4, 3))
    with tg.no_grad():
        first, second = jf(x), jf(x)
    assert jf.traces == 1 and second.creator is None and not second.requires_grad
    np.testing.assert_array_equal(first.data, second.data)


def test_make_dot_draws_a_plan_with_its_steps_slots_and_scopes():
    import tensorgrad.viz as viz

    layer = nn.LSTM(3, 4)
    jf = tg.jit(lambda x: (layer(x)[0] ** 2).mean())
    jf(np.ones((3, 2, 3), np.float32))
    source = viz.make_dot(jf.plan, params=dict(layer.named_parameters())).source
    # The three steps' cells are one loop of the plan, drawn once in the layer's cluster.
    assert source.count('label="lstm_cell × 3"') == 1 and "weight_hh_l0" in source
    assert 'label="lstm.l0"' in source and "t=0" not in source
    assert "BPTT" not in source
    with_backward = viz.make_plan_dot(jf.plan, backward=True).source
    assert with_backward.count('label="BPTT: lstm_cell × 3"') == 1 and "#f4cccc" in with_backward
    assert viz.make_dot(jf.plan, backward=True).source == with_backward
    with pytest.raises(TypeError, match="collapse, time apply to the tape's drawing, not to a plan's"):
        viz.make_dot(jf.plan, collapse=True, time="down")
    with pytest.raises(TypeError, match="backward=True draws a plan's backward steps"):
        viz.make_dot(jf(np.ones((3, 2, 3), np.float32)), backward=True)


def test_make_dot_draws_a_plan_without_steps_and_says_when_there_is_no_plan_yet():
    import tensorgrad.viz as viz

    identity = tg.jit(lambda x: x)
    with pytest.raises(TypeError, match=r"make_dot: got None.*\.plan is None until its first call traces it"):
        viz.make_dot(identity.plan)
    identity(tg.Variable(np.ones(2)))
    source = viz.make_dot(identity.plan).source  # the input, returned: no steps
    assert 's0 [label="s0 (2,) float64" shape=doubleoctagon' in source and "->" not in source
    pair = tg.jit(lambda x, y: (y, x * 2.0))
    pair(np.ones(2), np.ones(3))
    source = viz.make_dot(pair.plan).source
    assert source.count("doubleoctagon") == 2 and "s1 -> " not in source  # y is only returned
    nothing = tg.jit(lambda: None)
    nothing()
    assert "label" not in viz.make_dot(nothing.plan).source
