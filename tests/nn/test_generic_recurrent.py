"""nn.Recurrent: a user's own cell as a recurrent layer, against a hand-unrolled loop over each
sequence alone, and (an Elman cell) against PyTorch's RNN with the same weights."""

import math

import numpy as np
import pytest
from user_cells import MinimalGatedUnit

import nn
import tensorgrad as tg
import tensorgrad.functions as F
from nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from tensorgrad.viz import make_dot


class PeepholeLSTM(nn.Module):
    """The notes' peephole LSTM, by hand: a tuple state (h, c); the gates i, f see cₜ₋₁ and o sees cₜ."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.gates = nn.Linear(input_size + hidden_size, 4 * hidden_size)
        self.peephole = nn.Parameter(np.full((3, hidden_size), 0.1, np.float32))

    def forward(self, x, state):
        zeros = np.zeros((x.shape[0], self.hidden_size), x.dtype)
        h, c = (zeros, zeros) if state is None else state
        i, f, g, o = F.split(self.gates(F.concat([x, h], axis=1)), 4, axis=1)
        c = F.sigmoid(f + self.peephole[1] * c) * c + F.sigmoid(i + self.peephole[0] * c) * F.tanh(g)
        return F.sigmoid(o + self.peephole[2] * c) * F.tanh(c), c


class Elman(nn.Module):
    """h' = tanh(x Wᵢₕᵀ + bᵢₕ + h Wₕₕᵀ + bₕₕ), PyTorch's RNN cell, with its parameter names."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(np.zeros((hidden_size, input_size), np.float32))
        self.weight_hh = nn.Parameter(np.zeros((hidden_size, hidden_size), np.float32))
        self.bias_ih = nn.Parameter(np.zeros(hidden_size, np.float32))
        self.bias_hh = nn.Parameter(np.zeros(hidden_size, np.float32))
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            p.data = nn.init.uniform(p.shape, bound, p.dtype)

    def forward(self, x, h):
        pre = F.linear(x, self.weight_ih, self.bias_ih)
        return F.tanh(pre + (self.bias_hh if h is None else F.linear(h, self.weight_hh, self.bias_hh)))


def unrolled(cells, x, lengths, num_layers, directions):
    """The reference: each sequence alone, over its own steps, a plain loop per layer and direction."""
    outputs, finals = [], []
    for b, n in enumerate(lengths):
        layer_input = [x[t, b:b + 1] for t in range(n)]
        last = []
        for layer in range(num_layers):
            per_direction = []
            for d in range(directions):
                cell, state = cells[layer * directions + d], None
                hs = [None] * n
                for t in (reversed(range(n)) if d else range(n)):
                    state = cell(layer_input[t], state)
                    hs[t] = state if isinstance(state, tg.Variable) else state[0]
                per_direction.append(hs)
                last.append(state)
            layer_input = [F.concat([hs[t] for hs in per_direction], axis=1) for t in range(n)]
        padding = np.zeros((x.shape[0] - n, 1, layer_input[0].shape[1]))
        outputs.append(F.concat([F.stack(layer_input), padding]) if len(padding) else F.stack(layer_input))
        finals.append(last)
    out = F.concat(outputs, axis=1)
    if isinstance(finals[0][0], tuple):
        h_n = tuple(F.concat([F.stack([s[i] for s in f]) for f in finals], axis=1) for i in range(2))
    else:
        h_n = F.concat([F.stack(f) for f in finals], axis=1)
    return out, h_n


def flat(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("cell_type", [MinimalGatedUnit, PeepholeLSTM])
@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, True)])
def test_a_user_cell_matches_the_hand_unrolled_loop(rng, cell_type, num_layers, bidirectional):
    tg.manual_seed(0)
    hidden, directions = 4, 2 if bidirectional else 1
    cells = [cell_type(3 if k < directions else directions * hidden, hidden).double()
             for k in range(num_layers * directions)]
    layer = nn.Recurrent(cells, num_layers=num_layers, bidirectional=bidirectional)
    x = rng.standard_normal((5, 3, 3))
    lengths = [5, 2, 4]
    out, h_n = layer(x, lengths=lengths)
    ref, ref_h = unrolled(cells, x, lengths, num_layers, directions)
    np.testing.assert_allclose(out.data, ref.data, rtol=1e-12, atol=1e-14)
    for s, r in zip(flat(h_n), flat(ref_h), strict=True):
        np.testing.assert_allclose(s.data, r.data, rtol=1e-12, atol=1e-14)

    weights = rng.standard_normal(out.shape)
    grads = []
    for result, state in [(out, h_n), (ref, ref_h)]:
        layer.zero_grad()
        ((result * weights).sum() + sum(s.sum() for s in flat(state))).backward()
        grads.append([p.grad.data.copy() for p in layer.parameters()])
    for g, r in zip(*grads, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-12)


def test_gradcheck_through_the_layer(rng):
    tg.manual_seed(1)
    with pytest.raises(ValueError, match=r"layer 1 reads 1·3 = 3 inputs, but the cell copied for it has "
                                         r"input_size=2"):
        nn.Recurrent(MinimalGatedUnit(2, 3), num_layers=2)
    layer = nn.Recurrent([MinimalGatedUnit(2, 3), MinimalGatedUnit(3, 3)], num_layers=2).double()
    tg.gradcheck(lambda x, h: layer(x, h, lengths=[3, 1])[0], rng.standard_normal((3, 2, 2)),
                 rng.standard_normal((2, 2, 3)))


def test_one_cell_is_copied_and_reinitialised_for_each_direction():
    tg.manual_seed(2)
    layer = nn.Recurrent(MinimalGatedUnit(6, 3), num_layers=2, bidirectional=True)  # 6 = 2·3 inputs
    names = [n for n, _ in layer.named_parameters()]
    assert names[:2] == ["cell_l0.forget.weight", "cell_l0.forget.bias"]
    cells = ["cell_l0", "cell_l0_reverse", "cell_l1", "cell_l1_reverse"]
    assert [n.split(".")[0] for n in names[::4]] == cells
    weights = [getattr(layer, name).forget.weight.data for name in ("cell_l0", "cell_l0_reverse", "cell_l1")]
    assert not np.array_equal(weights[0], weights[1]) and not np.array_equal(weights[1], weights[2])
    assert layer.cell_l0_reverse.forget.weight is not layer.cell_l0.forget.weight
    assert repr(layer).startswith("Recurrent(\n  num_layers=2, bidirectional=True\n"
                                  "  (cell_l0): MinimalGatedUnit(")


def test_each_step_is_a_scope_and_drawn_as_a_cluster(rng):
    layer = nn.Recurrent(MinimalGatedUnit(2, 3), bidirectional=True)
    out, _ = layer(rng.standard_normal((3, 1, 2)).astype(np.float32))
    scopes = set()
    pending = [out.creator]
    while pending:
        function = pending.pop()
        scopes.add(function.scope)
        pending.extend(x.creator for x in function.inputs if x.creator is not None)
    for t in range(3):
        assert f"recurrent.l0/t={t}" in scopes and f"recurrent.l0.reverse/t={t}" in scopes
    assert make_dot(out).source.count("subgraph cluster") >= 6 + 2


def test_detect_anomaly_names_the_step_of_an_inf_in_the_input(rng):
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    x[3, 1, 0] = np.inf

    def message(layer, x):
        with tg.detect_anomaly(), np.errstate(invalid="ignore"), pytest.raises(tg.AnomalyError) as error:
            layer(x)
        return str(error.value)

    # time-major: the layer's unbind into steps sees it first, as its output 3 (step 3)
    assert message(nn.Recurrent(MinimalGatedUnit(3, 4)), x).startswith(
        "unbind: output 3 of shape (2, 3) contains NaN or Inf at index (1, 0); the Function was recorded at ")
    # batch_first: the change to time-major, recorded with time on axis 0, names the step
    assert message(nn.Recurrent(MinimalGatedUnit(3, 4), batch_first=True), x.transpose(1, 0, 2)).startswith(
        "transpose: output 0 of shape (5, 2, 3) contains NaN or Inf at index (3, 1, 0); the Function was "
        "recorded in scope recurrent.l0/t=3 at ")


def test_carried_state_continues_the_sequence(rng):
    layer = nn.Recurrent(PeepholeLSTM(2, 3)).double()
    x = rng.standard_normal((6, 2, 2))
    whole, h_whole = layer(x)
    first, h = layer(x[:4])
    second, h_end = layer(x[4:], tuple(s.detach() for s in h))
    np.testing.assert_allclose(np.concatenate([first.data, second.data]), whole.data, rtol=1e-12)
    for a, b in zip(h_end, h_whole, strict=True):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-12)


@pytest.mark.parametrize("cell_type", [MinimalGatedUnit, PeepholeLSTM])
def test_a_user_cell_layer_under_jit_is_the_eager_layer(rng, cell_type):
    """Windows of truncated BPTT through tg.jit: the replays give the eager values and gradients,
    bit for bit, with the state carried from one window to the next."""
    tg.manual_seed(3)
    layer = nn.Recurrent([cell_type(2, 3), cell_type(3, 3)], num_layers=2)

    def window(x, state):
        out, h = layer(x, state, lengths=[4, 2, 3])
        return (out * out).mean(), h

    jitted = tg.jit(window)
    xs = [rng.standard_normal((4, 3, 2)).astype(np.float32) for _ in range(3)]
    results = []
    for run in (window, jitted):
        state, losses, grads = None, [], []
        for x in xs:
            layer.zero_grad()
            loss, state = run(x, state)
            loss.backward()
            losses.append(loss.data)
            grads.append([p.grad.data.copy() for p in layer.parameters()])
            state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        results.append((losses, grads))
    assert jitted.traces == 2  # the first window (no state) and the second; the third is a replay
    (eager_losses, eager_grads), (jit_losses, jit_grads) = results
    for a, b in zip(eager_losses, jit_losses, strict=True):
        np.testing.assert_array_equal(a, b)
    for ga, gb in zip(eager_grads, jit_grads, strict=True):
        for a, b in zip(ga, gb, strict=True):
            np.testing.assert_array_equal(a, b)


def test_batch_first_and_unbatched_inputs(rng):
    layer = nn.Recurrent(MinimalGatedUnit(2, 3), batch_first=True).double()
    x = rng.standard_normal((2, 4, 2))
    out, h = layer(x)
    ref, ref_h = nn.Recurrent([layer.cell_l0])(x.transpose(1, 0, 2))
    np.testing.assert_allclose(out.data, ref.data.transpose(1, 0, 2), rtol=1e-12)
    single, h_single = nn.Recurrent([layer.cell_l0])(x[0])
    assert single.shape == (4, 3) and h_single.shape == (1, 3)
    np.testing.assert_allclose(single.data, out.data[0], rtol=1e-12)


def torch_elman(torch, num_layers, bidirectional):
    torch.manual_seed(0)
    theirs = torch.nn.RNN(3, 4, num_layers, bidirectional=bidirectional).double()
    directions = 2 if bidirectional else 1
    cells = [Elman(3 if k < directions else 4 * directions, 4).double()
             for k in range(num_layers * directions)]
    ours = nn.Recurrent(cells, num_layers=num_layers, bidirectional=bidirectional)
    for name, value in theirs.state_dict().items():  # weight_ih_l1_reverse → cell_l1_reverse.weight_ih
        kind, layer = name.rsplit("_l", 1)
        getattr(ours, "cell_l" + layer).__getattribute__(kind).data = value.numpy().copy()
    return ours, theirs


@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, True)])
def test_an_elman_cell_is_pytorchs_rnn(torch, rng, num_layers, bidirectional):
    ours, theirs = torch_elman(torch, num_layers, bidirectional)
    x = rng.standard_normal((5, 3, 3))
    h0 = rng.standard_normal((num_layers * (2 if bidirectional else 1), 3, 4))
    xv, hv = tg.Variable(x), tg.Variable(h0)
    xt, ht = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    out, h_n = ours(xv, hv)
    ref, ref_h = theirs(xt, ht)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n.data, ref_h.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = rng.standard_normal(out.shape)
    ((out * w).sum() + h_n.sum()).backward()
    ((ref * torch.tensor(w)).sum() + ref_h.sum()).backward()
    np.testing.assert_allclose(xv.grad.data, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hv.grad.data, ht.grad.numpy(), rtol=1e-10, atol=1e-12)
    for name, p in theirs.named_parameters():
        kind, layer = name.rsplit("_l", 1)
        np.testing.assert_allclose(getattr(getattr(ours, "cell_l" + layer), kind).grad.data, p.grad.numpy(),
                                   rtol=1e-10, atol=1e-12)


def test_an_elman_cell_on_packed_and_padded_batches_is_pytorchs(torch, rng):
    ours, theirs = torch_elman(torch, 2, True)
    x = rng.standard_normal((5, 4, 3))
    lengths = [2, 5, 3, 4]
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    out, h_n = ours(packed)
    ref, ref_h = theirs(torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths),
                                                                enforce_sorted=False))
    np.testing.assert_allclose(out.data.data, ref.data.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(out.batch_sizes, ref.batch_sizes.numpy())
    np.testing.assert_allclose(h_n.data, ref_h.detach().numpy(), rtol=1e-10, atol=1e-12)
    padded, padded_h = ours(x, lengths=lengths)
    np.testing.assert_allclose(padded.data, pad_packed_sequence(out)[0].data, rtol=1e-12)
    np.testing.assert_allclose(padded_h.data, h_n.data, rtol=1e-12)


def test_bad_cells_and_states_are_clear_errors(rng):
    x = rng.standard_normal((3, 2, 2)).astype(np.float32)

    class NoReset(nn.Module):
        def forward(self, x, h):
            return x

    with pytest.raises(TypeError, match=r"NoReset has no reset_parameters\(\)"):
        nn.Recurrent(NoReset(), bidirectional=True)
    with pytest.raises(ValueError, match=r"3 cells given for 1 layer\(s\) × 2 direction\(s\); it takes "
                                         r"one cell or 2"):
        nn.Recurrent([NoReset()] * 3, bidirectional=True)

    class Grows(nn.Module):
        def forward(self, x, h):
            return F.concat([x, x], axis=1) if h is None else F.concat([h, x], axis=1)

    with pytest.raises(tg.ShapeError, match=r"Grows returned a state of shape\(s\) \[\(2, 6\)\] from one "
                                            r"of \[\(2, 4\)\]"):
        nn.Recurrent(Grows())(x)

    class Lists(nn.Module):
        def forward(self, x, h):
            return [x]

    with pytest.raises(TypeError, match=r"Lists.forward\(x, state\) must return the next state"):
        nn.Recurrent(Lists())(x)
    layer = nn.Recurrent(MinimalGatedUnit(2, 3))
    with pytest.raises(tg.ShapeError, match=r"hx of shape \(2, 2, 3\) does not fit; expected "
                                            r"\(1, batch, hidden_size\)"):
        layer(x, np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match=r"lengths must lie in 1\.\.3"):
        layer(x, lengths=[4, 1])
