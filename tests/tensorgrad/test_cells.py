"""The fused recurrent cell Functions (``F.rnn_cell``, ``F.lstm_cell``, ``F.gru_cell``).

Each fused cell is checked against its composed form built from primitive Functions
(``fused=False``: values and gradients), against NumPy transcriptions of PyTorch's
equations, and against central differences in float64 (``tg.gradcheck``); second
derivatives (``tg.gradgradcheck``) go through the create_graph path, which differentiates
the composed form.
"""

import numpy as np
import pytest

import tensorgrad as tg
import tensorgrad.functions as F

H = 3


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def hidden_side(h, W, b=None):
    return h @ W.T + (0 if b is None else b)


def rnn_tanh_reference(a, h, W, b=None):
    return (np.tanh(a + hidden_side(h, W, b)),)


def rnn_relu_reference(a, h, W, b=None):
    return (np.maximum(a + hidden_side(h, W, b), 0),)


def lstm_reference(a, h, c, W, b=None):
    i, f, g, o = np.split(a + hidden_side(h, W, b), 4, axis=-1)
    c_next = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c_next), c_next


def gru_reference(a, h, W, b=None):
    a_r, a_z, a_n = np.split(a, 3, axis=-1)
    b_r, b_z, b_n = np.split(hidden_side(h, W, b), 3, axis=-1)
    r, z = sigmoid(a_r + b_r), sigmoid(a_z + b_z)
    n = np.tanh(a_n + r * b_n)
    return ((1 - z) * n + z * h,)


def rnn(nonlinearity):
    def cell(a, h, W, b=None, *, fused=True):
        return F.rnn_cell(a, h, W, b, nonlinearity, fused=fused)
    return cell


# name: (function of (a, h, [c,] W[, b], fused=), gates, has a cell state, NumPy reference)
CELLS = {
    "rnn_tanh": (rnn("tanh"), 1, False, rnn_tanh_reference),
    "rnn_relu": (rnn("relu"), 1, False, rnn_relu_reference),
    "lstm": (F.lstm_cell, 4, True, lstm_reference),
    "gru": (F.gru_cell, 3, False, gru_reference),
}


def inputs(name, batch_shape=(2,), dtype=np.float64, seed=0, bias=True):
    """Random float Variables (a, h[, c], W[, b]) for cell ``name``, away from relu's kink."""
    _, gates, has_c, _ = CELLS[name]
    rng = np.random.default_rng(seed)
    state = [batch_shape + (H,)] * (2 if has_c else 1)
    shapes = [batch_shape + (gates * H,)] + state + [(gates * H, H)] + ([(gates * H,)] if bias else [])
    names = ["a", "h"] + (["c"] if has_c else []) + ["W", "b"]
    arrays = [rng.uniform(0.2, 1.5, s) * rng.choice([-1, 1], s) / 2 for s in shapes]
    return [tg.Variable(x.astype(dtype), name=n) for x, n in zip(arrays, names, strict=False)]


def as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def weighted_gradients(fn, xs, seed=1):
    """Outputs and the gradients of Σ w ⊙ outputs (random w) with respect to xs."""
    outputs = as_tuple(fn(*xs))
    rng = np.random.default_rng(seed)
    loss = sum(((y * rng.standard_normal(y.shape)).sum() for y in outputs), start=0.0)
    return [y.data for y in outputs], [g.data for g in tg.grad(loss, xs)]


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("batch_shape", [(), (1,), (3,), (2, 2)], ids=str)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
def test_fused_matches_composed_and_reference(name, batch_shape, bias):
    fn, _, _, reference = CELLS[name]
    xs = inputs(name, batch_shape, bias=bias)
    fused_out, fused_grads = weighted_gradients(lambda *v: fn(*v, fused=True), xs)
    composed_out, composed_grads = weighted_gradients(lambda *v: fn(*v, fused=False), xs)
    expected = reference(*[x.data for x in xs])
    for ours, theirs, want in zip(fused_out, composed_out, expected, strict=True):
        np.testing.assert_allclose(ours, want, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(theirs, want, rtol=1e-12, atol=1e-14)
    for ours, theirs in zip(fused_grads, composed_grads, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", CELLS)
def test_fused_cell_is_one_node(name):
    fn = CELLS[name][0]
    xs = inputs(name)
    out = as_tuple(fn(*xs))
    assert {y.creator for y in out} == {out[0].creator}
    assert out[0].creator.inputs == tuple(xs)
    assert out[0].creator.op.endswith("_cell")


@pytest.mark.parametrize("name", CELLS)
def test_fused_cell_keeps_float32(name):
    fn = CELLS[name][0]
    xs = inputs(name, dtype=np.float32)
    outputs = as_tuple(fn(*xs))
    grads = tg.grad(sum((y.sum() for y in outputs), start=0.0), xs)
    assert all(y.dtype == np.float32 for y in outputs)
    assert all(g.dtype == np.float32 for g in grads)


@pytest.mark.parametrize("name", CELLS)
def test_fused_cell_with_a_float64_input_side_promotes_as_its_composed_form(name):
    """The fused cells add a into the hidden side's array only where both have one dtype."""
    fn = CELLS[name][0]
    xs = inputs(name, dtype=np.float32)
    xs[0] = tg.Variable(xs[0].data.astype(np.float64))
    fused, composed = as_tuple(fn(*xs)), as_tuple(fn(*xs, fused=False))
    for ours, theirs in zip(fused, composed, strict=True):
        assert ours.dtype == theirs.dtype == np.float64
        np.testing.assert_allclose(ours.data, theirs.data, rtol=1e-12)


@pytest.mark.parametrize("name", CELLS)
def test_fused_gradcheck(name):
    fn = CELLS[name][0]
    assert tg.gradcheck(fn, *inputs(name))


@pytest.mark.parametrize("name", ["rnn_tanh", "lstm", "gru"])
def test_fused_gradgradcheck(name):
    fn = CELLS[name][0]
    assert tg.gradgradcheck(fn, *inputs(name))


@pytest.mark.parametrize("name", CELLS)
def test_create_graph_path_gives_the_numpy_gradients(name):
    fn = CELLS[name][0]
    xs = inputs(name)
    outputs = as_tuple(fn(*xs))
    rng = np.random.default_rng(2)
    loss = sum(((y * rng.standard_normal(y.shape)).sum() for y in outputs), start=0.0)
    fast = tg.grad(loss, xs)
    recorded = tg.grad(loss, xs, create_graph=True)
    assert all(g.requires_grad for g in recorded) or name == "rnn_relu"  # relu's gradient is constant
    for f, r in zip(fast, recorded, strict=True):
        np.testing.assert_allclose(f.data, r.data, rtol=1e-12, atol=1e-14)


def test_gradgradcheck_through_a_chain_of_fused_cells():
    """Two steps sharing Wₕₕ and bₕₕ, second derivatives included."""
    a1, h, c, W, b = inputs("lstm", seed=3)
    a2 = tg.Variable(np.random.default_rng(4).normal(0, 0.5, a1.shape))

    def chain(a1, a2, h, c, W, b):
        h1, c1 = F.lstm_cell(a1, h, c, W, b)
        return F.lstm_cell(a2, h1, c1, W, b)

    assert tg.gradgradcheck(chain, a1, a2, h, c, W, b)


def test_create_graph_does_not_leave_the_graph_changed():
    xs = inputs("lstm")
    before = [x.creator for x in xs]
    h, c = F.lstm_cell(*xs)
    (g,) = tg.grad((h * h).sum() + c.sum(), [xs[0]], create_graph=True)
    assert [x.creator for x in xs] == before
    assert h.creator.op == "lstm_cell"
    (gg,) = tg.grad(g.sum(), [xs[0]])
    assert gg.shape == xs[0].shape


def test_create_graph_differentiates_only_the_cell():
    """The composed form's gradient stops at the cell's inputs: the network before the cell
    is differentiated once, by the outer backward pass, not again inside the cell's."""
    a, *rest = inputs("lstm")
    calls = []
    upstream = a * 2.0
    upstream.register_hook(lambda g: calls.append(g))
    h, c_next = F.lstm_cell(upstream, *rest)
    (h.sum() + c_next.sum()).backward(create_graph=True)
    assert len(calls) == 1
    np.testing.assert_allclose(a.grad.data, 2 * calls[0].data)


@pytest.mark.parametrize("name", CELLS)
def test_constant_operands_get_no_gradient(name):
    """A constant state (the zeros a layer starts from) or weight gets None, the others theirs."""
    fn = CELLS[name][0]
    xs = inputs(name)
    for k in range(1, len(xs)):
        operands = [x.detach() if i == k else x for i, x in enumerate(xs)]
        out = as_tuple(fn(*operands))
        grads = tg.grad(sum((y.sum() for y in out), start=0.0), operands)
        assert [g is None for g in grads] == [i == k for i in range(len(xs))]


@pytest.mark.parametrize("name, shapes, message", [
    ("lstm", [(2, 12), (2, 2), (2, 3), (12, 3)],
     r"lstm_cell: input gates \(2, 12\), h \(2, 2\), c \(2, 3\), weight_hh \(12, 3\) do not fit; "
     r"expected \(\.\.\., 4·H\), \(\.\.\., H\), \(\.\.\., H\), \(4·H, H\)"),
    ("lstm", [(2, 12), (2, 3), (2, 3), (12, 4)], r"lstm_cell: .*weight_hh \(12, 4\)"),
    ("lstm", [(2, 10), (2, 3), (2, 3), (10, 3)], r"lstm_cell"),
    ("gru", [(2, 9), (2, 3), (9, 3), (6,)], r"gru_cell: .*bias_hh \(6,\) do not fit; .*\(3·H,\)"),
    ("gru", [(2, 9), (3, 3), (9, 3)], r"gru_cell: input gates \(2, 9\), h \(3, 3\)"),
    ("rnn_tanh", [(2, 3), (2, 3), (3, 2)], r"rnn_cell: .*weight_hh \(3, 2\) do not fit; .*\(H, H\)"),
])
def test_shape_errors(name, shapes, message):
    fn = CELLS[name][0]
    with pytest.raises(tg.ShapeError, match=message):
        fn(*[tg.Variable(np.zeros(s)) for s in shapes])


def test_unknown_nonlinearity():
    a, h, W, _ = inputs("rnn_tanh")
    with pytest.raises(ValueError, match="rnn_cell: unknown nonlinearity 'sigmoid'"):
        F.rnn_cell(a, h, W, nonlinearity="sigmoid")
