"""nn.RNNCell/LSTMCell/GRUCell and nn.RNN/LSTM/GRU.

With PyTorch installed, every cell and layer is compared with PyTorch's on identical weights:
outputs, final states and the gradients of every parameter, of the input and of the initial
states, to 1e-5 in float32 and 1e-10 in float64, over layers, directions, batch_first,
bias, unbatched input, initial states and ``lengths`` (against pack_padded_sequence).
Without PyTorch, the layers are still checked against a NumPy reference that unrolls each
sequence of the batch on its own, against central differences, and fused against composed.
"""

import re
import warnings

import numpy as np
import pytest

import nn
import tensorgrad as tg
from tensorgrad import viz

T, B, IN, H = 5, 3, 3, 4
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}

# kind: (class name, extra constructor arguments)
KINDS = {
    "rnn_tanh": ("RNN", {"nonlinearity": "tanh"}),
    "rnn_relu": ("RNN", {"nonlinearity": "relu"}),
    "lstm": ("LSTM", {}),
    "gru": ("GRU", {}),
}

# Layer options, plus: unbatched input, given initial states (hx) and lengths.
CONFIGS = {
    "1-layer": {},
    "2-layer-bidirectional-hx": {"num_layers": 2, "bidirectional": True, "hx": True},
    "3-layer-batch_first-nobias": {"num_layers": 3, "batch_first": True, "bias": False},
    "3-layer-bidirectional-hx": {"num_layers": 3, "bidirectional": True, "hx": True},
    "unbatched-bidirectional-hx": {"bidirectional": True, "unbatched": True, "hx": True},
    "unbatched-2-layer-batch_first": {"num_layers": 2, "unbatched": True, "batch_first": True},
    "lengths": {"lengths": [5, 2, 4]},
    "lengths-2-layer-bidirectional-batch_first-hx": {
        "num_layers": 2, "bidirectional": True, "batch_first": True, "hx": True, "lengths": [3, 5, 1]},
    "lengths-3-layer-bidirectional-nobias": {
        "num_layers": 3, "bidirectional": True, "bias": False, "lengths": [1, 4, 5]},
    "lengths-full-bidirectional": {"bidirectional": True, "lengths": [5, 5, 5]},
}


def is_lstm(kind):
    return kind == "lstm"


def layer_options(config):
    return {k: v for k, v in config.items() if k not in ("hx", "unbatched", "lengths")}


def make_layer(kind, dtype=np.float32, **options):
    name, extra = KINDS[kind]
    model = getattr(nn, name)(IN, H, **extra, **options)
    return model.to(dtype)


def make_pair(torch, kind, dtype, cell=False, **options):
    """(ours, PyTorch's) with PyTorch's weights copied into ours."""
    name, extra = KINDS[kind]
    if cell:
        name += "Cell"
    torch.manual_seed(0)
    theirs = getattr(torch.nn, name)(IN, H, **extra, **options)
    ours = getattr(nn, name)(IN, H, **extra, **options)
    if dtype == np.float64:
        theirs.double()
        ours.double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def as_tuple(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def shapes(config):
    """Shapes of x and of each initial state for a layer ``config``."""
    stacked = config.get("num_layers", 1) * (2 if config.get("bidirectional") else 1)
    if config.get("unbatched"):
        return (T, IN), (stacked, H)
    return ((B, T, IN) if config.get("batch_first") else (T, B, IN)), (stacked, B, H)


def random_inputs(kind, config, dtype, rng):
    x_shape, h_shape = shapes(config)
    x = rng.standard_normal(x_shape).astype(dtype)
    hx = None
    if config.get("hx"):
        hx = [rng.standard_normal(h_shape).astype(dtype) for _ in range(2 if is_lstm(kind) else 1)]
    return x, hx


def state_argument(kind, states):
    if states is None:
        return None
    return tuple(states) if is_lstm(kind) else states[0]


def assert_close(ours, theirs, dtype, what):
    tolerance = TOLERANCE[dtype]
    np.testing.assert_allclose(ours, theirs, rtol=tolerance, atol=tolerance, err_msg=what)


def run_torch(torch, theirs, x, hx, kind, config, weights):
    """PyTorch's outputs and gradients; outputs padded with zeros when ``lengths`` are given."""
    tx = torch.tensor(x, requires_grad=True)
    thx = None if hx is None else [torch.tensor(h, requires_grad=True) for h in hx]
    batch_first = config.get("batch_first", False)
    lengths = config.get("lengths")
    if lengths is None:
        out, final = theirs(tx, state_argument(kind, thx))
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(tx, lengths, batch_first=batch_first,
                                                         enforce_sorted=False)
        out, final = theirs(packed, state_argument(kind, thx))
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    results = (out, *as_tuple(final))
    loss = sum((y * torch.tensor(w)).sum() for y, w in zip(results, weights, strict=True))
    loss.backward()
    grads = {name: p.grad.numpy() for name, p in theirs.named_parameters()}
    grads["input"] = tx.grad.numpy()
    for i, h in enumerate(thx or []):
        grads[f"hx[{i}]"] = h.grad.numpy()
    return [y.detach().numpy() for y in results], grads


def run_ours(ours, x, hx, kind, config, weights=None, rng=None):
    """Our outputs and gradients for the same loss (random weights drawn if not given)."""
    vx = tg.Variable(x)
    vhx = None if hx is None else [tg.Variable(h) for h in hx]
    out, final = ours(vx, state_argument(kind, vhx), lengths=config.get("lengths"))
    results = (out, *as_tuple(final))
    if weights is None:
        weights = [rng.standard_normal(y.shape).astype(x.dtype) for y in results]
    loss = sum(((y * w).sum() for y, w in zip(results, weights, strict=True)), start=0.0)
    loss.backward()
    grads = {name: p.grad.data for name, p in ours.named_parameters()}
    grads["input"] = vx.grad.data
    for i, h in enumerate(vhx or []):
        grads[f"hx[{i}]"] = h.grad.data
    return [y.data for y in results], grads, weights


# ------------------------------------------------------------------------- against PyTorch
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("kind", KINDS)
def test_layer_matches_pytorch(torch, kind, config, dtype):
    ours, theirs = make_pair(torch, kind, dtype, **layer_options(config))
    rng = np.random.default_rng(0)
    x, hx = random_inputs(kind, config, dtype, rng)
    results, grads, weights = run_ours(ours, x, hx, kind, config, rng=rng)
    expected, expected_grads = run_torch(torch, theirs, x, hx, kind, config, weights)
    assert [y.shape for y in results] == [y.shape for y in expected]
    assert all(y.dtype == dtype for y in results)
    for name, ours_y, theirs_y in zip(["output", "h_n", "c_n"], results, expected, strict=False):
        assert_close(ours_y, theirs_y, dtype, name)
    assert grads.keys() == expected_grads.keys()
    for name, g in expected_grads.items():
        assert grads[name].dtype == dtype
        assert_close(grads[name], g, dtype, f"gradient of {name}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("batched, with_hx", [(True, True), (True, False), (False, True), (False, False)],
                         ids=["batched-hx", "batched", "unbatched-hx", "unbatched"])
@pytest.mark.parametrize("kind", KINDS)
def test_cell_matches_pytorch(torch, kind, batched, with_hx, bias, dtype):
    ours, theirs = make_pair(torch, kind, dtype, cell=True, bias=bias)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, IN) if batched else (IN,)).astype(dtype)
    states = [rng.standard_normal((B, H) if batched else (H,)).astype(dtype)
              for _ in range(2 if is_lstm(kind) else 1)] if with_hx else None

    vx = tg.Variable(x)
    vstates = None if states is None else [tg.Variable(s) for s in states]
    results = as_tuple(ours(vx, state_argument(kind, vstates)))
    weights = [rng.standard_normal(y.shape).astype(dtype) for y in results]
    sum((y * w).sum() for y, w in zip(results, weights, strict=True)).backward()

    tx = torch.tensor(x, requires_grad=True)
    tstates = None if states is None else [torch.tensor(s, requires_grad=True) for s in states]
    expected = as_tuple(theirs(tx, state_argument(kind, tstates)))
    sum((y * torch.tensor(w)).sum() for y, w in zip(expected, weights, strict=True)).backward()

    for y, ty in zip(results, expected, strict=True):
        assert y.shape == tuple(ty.shape)
        assert_close(y.data, ty.detach().numpy(), dtype, "output")
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        assert_close(p.grad.data, tp.grad.numpy(), dtype, f"gradient of {name}")
    assert_close(vx.grad.data, tx.grad.numpy(), dtype, "gradient of the input")
    for v, t in zip(vstates or [], tstates or [], strict=True):
        assert_close(v.grad.data, t.grad.numpy(), dtype, "gradient of the state")


@pytest.mark.parametrize("cell", [False, True], ids=["layer", "cell"])
@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_round_trip_with_pytorch(torch, kind, cell):
    options = {} if cell else {"num_layers": 2, "bidirectional": True}
    ours, theirs = make_pair(torch, kind, np.float32, cell=cell, **options)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [p.shape for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]

    torch.manual_seed(1)
    back = type(theirs)(IN, H, **KINDS[kind][1], **options)
    back.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x = torch.randn(B, IN) if cell else torch.randn(T, B, IN)
    with torch.no_grad():
        expected, returned = as_tuple(theirs(x)), as_tuple(back(x))
    for y, ty in zip(returned, expected, strict=True):
        for a, b in zip(as_tuple(y), as_tuple(ty), strict=True):
            assert torch.equal(a, b)
    ours_out = as_tuple(ours(x.numpy()))
    assert_close(ours_out[0].data, expected[0].numpy(), np.float32, "output")


# ------------------------------------------------------------------------- without PyTorch
def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference_step(kind, weights, x, state):
    """One step of PyTorch's equations for one sequence; state is (h,) or (h, c)."""
    w_ih, w_hh, b_ih, b_hh = weights
    a = w_ih @ x + b_ih
    b = w_hh @ state[0] + b_hh
    if kind == "lstm":
        i, f, g, o = np.split(a + b, 4)
        c = sigmoid(f) * state[1] + sigmoid(i) * np.tanh(g)
        return sigmoid(o) * np.tanh(c), c
    if kind == "gru":
        (a_r, a_z, a_n), (b_r, b_z, b_n) = np.split(a, 3), np.split(b, 3)
        r, z = sigmoid(a_r + b_r), sigmoid(a_z + b_z)
        n = np.tanh(a_n + r * b_n)
        return ((1 - z) * n + z * state[0],)
    return (np.tanh(a + b) if kind == "rnn_tanh" else np.maximum(a + b, 0),)


def reference_layers(kind, model, x, lengths):
    """Outputs (T, B, D·H) and final states of ``model`` (zero initial state), unrolled by hand
    for each sequence of the batch on its own, over its own length only."""
    params = model.state_dict()
    directions = 2 if model.bidirectional else 1
    count = 2 if kind == "lstm" else 1
    output = np.zeros((T, B, directions * H))
    finals = np.zeros((count, model.num_layers * directions, B, H))
    for b in range(B):
        sequence = x[: lengths[b], b]
        for layer in range(model.num_layers):
            outputs = []
            for d, suffix in enumerate(["", "_reverse"][:directions]):
                weights = [params.get(f"{n}_l{layer}{suffix}", 0.0)
                           for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
                state = (np.zeros(H),) * count
                hs = [None] * len(sequence)
                order = range(len(sequence))
                for t in reversed(order) if suffix else order:
                    state = reference_step(kind, weights, sequence[t], state)
                    hs[t] = state[0]
                outputs.append(np.array(hs))
                finals[:, layer * directions + d, b] = state
            sequence = np.concatenate(outputs, axis=1)
        output[: lengths[b], b] = sequence
    return output, finals


@pytest.mark.parametrize("options", [{}, {"num_layers": 2, "bidirectional": True, "bias": False}],
                         ids=["1-layer", "2-layer-bidirectional-nobias"])
@pytest.mark.parametrize("kind", KINDS)
def test_layer_matches_a_hand_unrolled_reference(kind, options):
    tg.manual_seed(0)
    model = make_layer(kind, np.float64, **options)
    lengths = [4, 5, 1]
    x = np.random.default_rng(2).standard_normal((T, B, IN))
    out, final = model(x, lengths=lengths)
    expected_out, expected_final = reference_layers(kind, model, x, lengths)
    np.testing.assert_allclose(out.data, expected_out, rtol=1e-12, atol=1e-14)
    for ours, theirs in zip(as_tuple(final), expected_final, strict=True):
        np.testing.assert_allclose(ours.data, theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", KINDS)
def test_layer_gradcheck(kind):
    tg.manual_seed(0)
    model = make_layer(kind, np.float64, num_layers=2, bidirectional=True)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, IN))
    states = [rng.standard_normal((4, 2, H)) for _ in range(2 if is_lstm(kind) else 1)]

    def layer(x, *states):
        out, final = model(x, state_argument(kind, states), lengths=[3, 2])
        return (out, *as_tuple(final))

    assert tg.gradcheck(layer, x, *states)


@pytest.mark.parametrize("config", ["2-layer-bidirectional-hx", "unbatched-bidirectional-hx",
                                    "lengths-2-layer-bidirectional-batch_first-hx"])
@pytest.mark.parametrize("kind", KINDS)
def test_fused_layer_matches_composed(kind, config):
    config = CONFIGS[config]
    tg.manual_seed(0)
    fused = make_layer(kind, np.float64, **layer_options(config))
    composed = make_layer(kind, np.float64, fused=False, **layer_options(config))
    composed.load_state_dict(fused.state_dict())
    x, hx = random_inputs(kind, config, np.float64, np.random.default_rng(4))
    results, grads, weights = run_ours(fused, x, hx, kind, config, rng=np.random.default_rng(5))
    expected, expected_grads, _ = run_ours(composed, x, hx, kind, config, weights)
    for ours, theirs in zip(results, expected, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)
    for name, g in expected_grads.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-12, atol=1e-14, err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
def test_fused_cell_module_matches_composed(kind):
    name, extra = KINDS[kind]
    tg.manual_seed(0)
    fused = getattr(nn, name + "Cell")(IN, H, **extra).double()
    composed = getattr(nn, name + "Cell")(IN, H, **extra, fused=False).double()
    composed.load_state_dict(fused.state_dict())
    x = np.random.default_rng(6).standard_normal((B, IN))
    outputs = []
    for model in (fused, composed):
        outputs.append(as_tuple(model(x)))
        sum(y.sum() for y in outputs[-1]).backward()
    for y, z in zip(*outputs, strict=True):
        np.testing.assert_allclose(y.data, z.data, rtol=1e-12, atol=1e-14)
    for p, q in zip(fused.parameters(), composed.parameters(), strict=True):
        np.testing.assert_allclose(p.grad.data, q.grad.data, rtol=1e-12, atol=1e-14)


def recorded_functions(*outputs):
    seen, stack = set(), [y.creator for y in outputs if y.creator is not None]
    while stack:
        function = stack.pop()
        if function not in seen:
            seen.add(function)
            stack.extend(x.creator for x in function.inputs if x.creator is not None)
    return seen


def test_steps_are_scoped_and_fused():
    """Each layer and direction projects its inputs in one matmul (in the layer's scope), then
    records one fused cell per step, in the step's scope, and nothing else in a step."""
    model = nn.LSTM(IN, H, num_layers=2, bidirectional=True)
    out, (h_n, c_n) = model(np.zeros((T, B, IN), np.float32))
    functions = recorded_functions(out, h_n, c_n)
    cells = [f for f in functions if f.op == "lstm_cell"]
    layer_scopes = [f"lstm.l{k}{r}" for k in range(2) for r in ("", ".reverse")]
    assert sorted(f.scope for f in cells) == sorted(f"{s}/t={t}" for s in layer_scopes for t in range(T))
    projections = sorted(f.scope for f in functions if f.op == "linear" and "/" not in (f.scope or ""))
    assert projections == sorted(layer_scopes)
    in_steps = [f for f in functions if "/" in (f.scope or "")]
    assert sorted(in_steps, key=id) == sorted(cells, key=id)
    weights = {id(getattr(model, f"weight_hh_l{k}{r}")) for k in range(2) for r in ("", "_reverse")}
    assert all(id(cell.inputs[3]) in weights for cell in cells)  # the cell multiplies by W_hh itself


# ------------------------------------------------------------------------- initialisation
@pytest.mark.parametrize("kind", KINDS)
def test_parameters_names_shapes_and_initialisation(kind):
    tg.manual_seed(0)
    model = make_layer(kind, num_layers=2, bidirectional=True)
    gates = {"lstm": 4, "gru": 3}.get(kind, 1) * H
    expected = []
    for layer, layer_input in enumerate([IN, 2 * H]):
        for suffix in ("", "_reverse"):
            s = f"_l{layer}{suffix}"
            expected += [(f"weight_ih{s}", (gates, layer_input)), (f"weight_hh{s}", (gates, H)),
                         (f"bias_ih{s}", (gates,)), (f"bias_hh{s}", (gates,))]
    assert [(name, p.shape) for name, p in model.named_parameters()] == expected
    assert all(p.dtype == np.float32 for p in model.parameters())
    values = np.concatenate([p.data.ravel() for p in model.parameters()])
    bound = 1 / np.sqrt(H)
    assert np.abs(values).max() <= bound
    assert abs(values.std() - bound / np.sqrt(3)) < 0.1 * bound  # U(-bound, bound) has std bound/√3
    cell = getattr(nn, KINDS[kind][0] + "Cell")(IN, H, bias=False)
    assert [(name, p.shape) for name, p in cell.named_parameters()] == [
        ("weight_ih", (gates, IN)), ("weight_hh", (gates, H))]
    assert cell.bias_ih is None and cell.bias_hh is None


def test_initialisation_follows_the_seed():
    tg.manual_seed(3)
    first = nn.GRU(IN, H).state_dict()
    tg.manual_seed(3)
    second = nn.GRU(IN, H).state_dict()
    assert all(np.array_equal(first[k], second[k]) for k in first)


# ------------------------------------------------------------------------- dropout
def test_dropout_between_layers_in_training_only():
    tg.manual_seed(0)
    model = nn.LSTM(IN, H, num_layers=3, dropout=0.5)
    plain = nn.LSTM(IN, H, num_layers=3)
    plain.load_state_dict(model.state_dict())
    x = np.random.default_rng(7).standard_normal((T, B, IN)).astype(np.float32)
    first, second = model(x)[0].data, model(x)[0].data
    assert not np.allclose(first, second)
    model.eval()
    np.testing.assert_array_equal(model(x)[0].data, model(x)[0].data)
    np.testing.assert_array_equal(model(x)[0].data, plain(x)[0].data)


def test_dropout_with_one_layer_warns_and_does_nothing():
    with pytest.warns(UserWarning, match="num_layers=1"):
        model = nn.GRU(IN, H, dropout=0.5)
    x = np.random.default_rng(8).standard_normal((T, B, IN)).astype(np.float32)
    train_out = model(x)[0].data
    np.testing.assert_array_equal(train_out, model.eval()(x)[0].data)


# ------------------------------------------------------------------------- bad input
LAYER_ERRORS = [
    # (kind, layer options, input shape, hx shapes or a marker, lengths, error, message)
    ("lstm", {}, (T, B, IN + 1), None, None, tg.ShapeError,
     r"LSTM: input of shape \(5, 3, 4\) does not fit; expected \(seq_len, batch, 3\)"),
    ("gru", {"batch_first": True}, (B, T, IN + 1), None, None, tg.ShapeError,
     r"GRU: input of shape \(3, 5, 4\) does not fit; expected \(batch, seq_len, 3\)"),
    ("rnn_tanh", {}, (T, B, 1, IN), None, None, tg.ShapeError, r"RNN: input of shape \(5, 3, 1, 3\)"),
    ("rnn_tanh", {}, (IN,), None, None, tg.ShapeError, r"RNN: input of shape \(3,\)"),
    ("lstm", {}, (0, B, IN), None, None, tg.ShapeError, r"LSTM: input of shape \(0, 3, 3\)"),
    ("gru", {}, (T, B, IN), [(4, B + 1, H)], None, tg.ShapeError,
     r"GRU: h_0 has shape \(4, 4, 4\), expected \(4, 3, 4\)"),
    ("gru", {}, (T, IN), [(4, 1, H)], None, tg.ShapeError,
     r"GRU: h_0 has shape \(4, 1, 4\), expected \(4, 4\)"),
    ("lstm", {}, (T, B, IN), [(4, B, H), (2, B, H)], None, tg.ShapeError,
     r"LSTM: c_0 has shape \(2, 3, 4\), expected \(4, 3, 4\)"),
    ("lstm", {}, (T, B, IN), [(4, B, H)], None, TypeError, r"LSTM: hx must be a pair \(h_0, c_0\)"),
    ("gru", {}, (T, B, IN), [(4, B, H), (4, B, H)], None, TypeError, r"GRU: hx must be one array"),
    ("lstm", {}, (T, B, IN), None, [6, 2, 3], ValueError,
     r"LSTM: lengths must lie in 1\.\.5 \(the padded sequence length\), got \[6, 2, 3\]"),
    ("gru", {}, (T, B, IN), None, [5, 0, 3], ValueError, r"GRU: lengths must lie in 1\.\.5"),
    ("rnn_relu", {}, (T, B, IN), None, [5, 3], ValueError, r"RNN: 2 lengths for a batch of 3 sequences"),
    ("lstm", {"batch_first": True}, (B, T, IN), None, [5, 3, 2, 1], ValueError,
     r"LSTM: 4 lengths for a batch of 3"),
    ("lstm", {}, (T, B, IN), None, [5.0, 3.0, 2.0], TypeError,
     r"LSTM: lengths must be a 1-d sequence of integers"),
    ("gru", {}, (T, B, IN), None, [[5, 3, 2]], TypeError, r"GRU: lengths must be a 1-d sequence"),
]


@pytest.mark.parametrize("kind, options, x_shape, hx_shapes, lengths, error, message", LAYER_ERRORS)
def test_layer_bad_input_is_a_clear_error_and_changes_nothing(kind, options, x_shape, hx_shapes, lengths,
                                                              error, message):
    model = make_layer(kind, num_layers=2, bidirectional=True, **options)
    before = model.state_dict()
    x = tg.Variable(np.ones(x_shape, np.float32))
    hx = None
    if hx_shapes is not None:
        hx = [tg.Variable(np.ones(s, np.float32)) for s in hx_shapes]
        hx = tuple(hx) if len(hx) > 1 else hx[0]
    with pytest.raises(error, match=message):
        model(x, hx, lengths=lengths)
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert x.grad is None and x.creator is None


def test_layer_input_of_another_dtype_is_an_error():
    model = nn.LSTM(IN, H)
    with pytest.raises(TypeError, match="LSTM: input has dtype float64, but the parameters are float32"):
        model(np.zeros((T, B, IN)))
    with pytest.raises(TypeError, match="LSTM: h_0 has dtype float64"):
        model(np.zeros((T, B, IN), np.float32), (np.zeros((1, B, H)), np.zeros((1, B, H), np.float32)))


@pytest.mark.parametrize("kind, x_shape, hx_shapes, error, message", [
    ("lstm", (B, IN + 1), None, tg.ShapeError, r"LSTMCell: input of shape \(3, 4\) does not fit; expected "
                                                 r"\(batch, 3\) or \(3,\)"),
    ("gru", (1, B, IN), None, tg.ShapeError, r"GRUCell: input of shape \(1, 3, 3\)"),
    ("rnn_tanh", (B, IN), [(B + 1, H)], tg.ShapeError, r"RNNCell: h has shape \(4, 4\), expected \(3, 4\)"),
    ("rnn_tanh", (IN,), [(1, H)], tg.ShapeError, r"RNNCell: h has shape \(1, 4\), expected \(4,\)"),
    ("lstm", (B, IN), [(B, H), (B, H + 1)], tg.ShapeError,
     r"LSTMCell: c has shape \(3, 5\), expected \(3, 4\)"),
    ("lstm", (B, IN), [(B, H)], TypeError, r"LSTMCell: hx must be a pair \(h, c\)"),
])
def test_cell_bad_input_is_a_clear_error(kind, x_shape, hx_shapes, error, message):
    cell = getattr(nn, KINDS[kind][0] + "Cell")(IN, H)
    before = cell.state_dict()
    hx = None
    if hx_shapes is not None:
        hx = [np.ones(s, np.float32) for s in hx_shapes]
        hx = tuple(hx) if len(hx) > 1 else hx[0]
    with pytest.raises(error, match=message):
        cell(np.ones(x_shape, np.float32), hx)
    assert all(np.array_equal(v, cell.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("make, error, message", [
    (lambda: nn.RNN(IN, H, nonlinearity="sigmoid"), ValueError, "RNN: unknown nonlinearity 'sigmoid'"),
    (lambda: nn.RNNCell(IN, H, nonlinearity="gelu"), ValueError, "RNNCell: unknown nonlinearity 'gelu'"),
    (lambda: nn.LSTM(IN, 0), ValueError, "LSTM: hidden_size must be greater than zero, got 0"),
    (lambda: nn.GRU(IN, H, num_layers=0), ValueError, "GRU: num_layers must be greater than zero"),
    (lambda: nn.GRU(IN, 2.5), TypeError, "GRU: hidden_size must be an integer, got float"),
    (lambda: nn.LSTMCell(-1, H), ValueError, "LSTMCell: input_size must be greater than zero"),
    (lambda: nn.LSTM(IN, H, num_layers=2, dropout=1.5), ValueError,
     r"LSTM: dropout must be a number in \[0, 1\]"),
])
def test_bad_constructor_arguments(make, error, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(error, match=message):
            make()


def test_repr():
    assert repr(nn.LSTM(IN, H, num_layers=2, bidirectional=True)) == \
        "LSTM(3, 4, num_layers=2, bidirectional=True)"
    assert repr(nn.RNN(IN, H, nonlinearity="relu", batch_first=True, fused=False)) == \
        "RNN(3, 4, nonlinearity='relu', batch_first=True, fused=False)"
    assert repr(nn.GRUCell(IN, H, bias=False)) == "GRUCell(3, 4, bias=False)"


def test_states_are_named_for_drawings():
    """The initial state is named h_0 (c_0) as in PyTorch, each step's state h (c) and input
    side x W_ihᵀ + b, the composed cells' gates i, f, g, o: what a drawing labels them."""
    model = nn.LSTM(IN, H, num_layers=2)
    out, _, states = model(np.zeros((T, B, IN), np.float32), return_all_states=True)
    assert [v.name for v in states.initial[1]] == ["h_0", "c_0"]
    assert all([v.name for v in step] == ["h", "c"] for run in states.steps for step in run)
    cells = [f for f in recorded_functions(out) if f.op == "sigmoid"]
    assert {f.outputs[0]().name for f in cells} == {"i", "f", "o"}
    source = viz.make_dot(out).source
    assert 'label="h_0\\n' in source and 'label="h\\n' in source
    fused, _ = nn.GRU(IN, H)(np.zeros((T, B, IN), np.float32))
    cells = [f for f in recorded_functions(fused) if f.op == "gru_cell"]
    assert {cell.inputs[0].name for cell in cells} == {"x W_ihᵀ + b"}


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_gradients_handed_out_by_one_pass_survive_the_next(kind):
    """Each backward pass over the same graph hands out gradients of its own."""
    model = getattr(nn, kind)(3, 4, bidirectional=True).double()
    output, _ = model(np.random.default_rng(3).standard_normal((5, 2, 3)))
    loss = (output * output).sum()
    cells = [f for f in tg.autograd.reachable_functions([loss]) if f.op.endswith("_cell")]
    input_gates = [f.inputs[0] for f in cells]
    first = tg.grad(loss, input_gates)
    kept = [g.data.copy() for g in first]
    second = tg.grad(loss * 3.0, input_gates)
    for g, k, g3 in zip(first, kept, second, strict=True):
        np.testing.assert_array_equal(g.data, k)
        np.testing.assert_allclose(g3.data, 3 * k, rtol=1e-12)


def test_detect_anomaly_reports_an_inf_in_the_input_at_the_users_line_and_the_steps_scope():
    lstm = nn.LSTM(2, 3, num_layers=2)
    x = np.zeros((5, 1, 2), np.float32)
    h0 = np.zeros((2, 1, 3), np.float32)
    x[3, 0, 1] = np.inf
    with tg.detect_anomaly(), np.errstate(invalid="ignore"):
        with pytest.raises(tg.AnomalyError) as error:
            lstm(x)  # the line to report
        message = str(error.value)
        assert f"{__file__}:" in message and message.endswith("lstm(x)  # the line to report")
        # the input projection of the whole sequence, recorded in the layer's scope, reported in the
        # scope of the step whose row holds the Inf
        assert "linear: output 0 of shape (5, 1, 12)" in message and "at index (3, 0, " in message
        assert "in scope lstm.l0/t=3 at" in message
        h0[1, 0, 2] = np.inf  # the second layer's initial state, as the layer splits h_0 into layers
        with pytest.raises(tg.AnomalyError, match=r"^unbind: output 1 of shape \(1, 3\) .* at index \(0, 2\);"
                                                  r" the Function was recorded at .*: lstm\(np.zeros"):
            lstm(np.zeros((5, 1, 2), np.float32), (h0, h0))


def anomaly_message(model, x):
    """The message of the AnomalyError that running ``model(x)`` under detect_anomaly raises."""
    with tg.detect_anomaly(), np.errstate(invalid="ignore", over="ignore"):
        with pytest.raises(tg.AnomalyError) as error:
            model(x)
    return str(error.value)


def test_detect_anomaly_names_the_step_of_an_overflow_in_the_input_projection_with_batch_first():
    lstm = nn.LSTM(2, 3, batch_first=True)
    x = np.zeros((2, 5, 2), np.float32)  # (B, T, in)
    x[1, 3, 1] = np.inf
    # An Inf already in the input is first seen by the layout change to time-major, recorded in
    # layer 0's scope with time on axis 0: reported at step 3.
    message = anomaly_message(lstm, x)
    assert re.match(r"transpose: output 0 of shape \(5, 2, 2\) .* at index \(3, 1, 1\); the Function "
                    r"was recorded in scope lstm.l0/t=3 at ", message)
    # Unbatched (T, in): the reshape to (T, 1, in) likewise.
    assert re.match(r"reshape: output 0 of shape \(5, 1, 2\) .* at index \(3, 0, 1\); the Function "
                    r"was recorded in scope lstm.l0/t=3 at ", anomaly_message(lstm, x[1]))
    # A finite input that the projection (time-major: (T, B, 4H)) overflows at step 3 of sequence 1.
    lstm.weight_ih_l0.data[...] = 1e20
    x[1, 3, 1] = 1e20
    message = anomaly_message(lstm, x)
    assert message.startswith("linear: output 0 of shape (5, 2, 12) contains NaN or Inf at index (3, 1, 0);")
    assert "in scope lstm.l0/t=3 at" in message


def test_detect_anomaly_names_the_step_of_the_reverse_direction_by_its_time_index():
    gru = nn.GRU(2, 3, bidirectional=True)
    gru.weight_ih_l0_reverse.data[...] = 1e20  # only the reverse direction's projection overflows
    x = np.zeros((5, 2, 2), np.float32)
    x[3, 1, 0] = 1e20
    message = anomaly_message(gru, x)
    assert message.startswith("linear: output 0 of shape (5, 2, 9) contains NaN or Inf at index (3, 1, 0);")
    assert "in scope gru.l0.reverse/t=3 at" in message


def test_detect_anomaly_still_names_the_step_of_a_per_step_overflow():
    rnn = nn.RNN(1, 1, nonlinearity="relu", bias=False)
    rnn.weight_ih_l0.data[...] = rnn.weight_hh_l0.data[...] = 1e20
    # the projection is 1e20 at every step; h = 1e20 after t=0 and 1e20 + 1e40 = Inf at t=1
    assert "in scope rnn.l0/t=1 at" in anomaly_message(rnn, np.ones((5, 1, 1), np.float32))
