"""The recurrent layers' options beyond PyTorch: peephole and layer-normalised cells, the GRU's
reset-before form, forget_bias, variational dropout and return_all_states.

Every variant is checked against a NumPy reference that unrolls each sequence of the batch
on its own (the equations of tensorgrad.functions.cells written out again), against central
differences in float64 (inputs, initial states and the variant's own parameters), and,
where a PyTorch form exists, against PyTorch: with the options off the modules are
PyTorch's, and every step's cell state matches PyTorch's run over each prefix.
"""

import numpy as np
import pytest

import nn
import tensorgrad as tg

T, B, IN, H = 4, 3, 3, 4
EPS = 1e-5


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def gate_norm(v, gates):
    """Each gate's slice of v (gates·H,) normalised on its own."""
    v = v.reshape(gates, -1)
    v = (v - v.mean(axis=-1, keepdims=True)) / np.sqrt(v.var(axis=-1, keepdims=True) + EPS)
    return v.reshape(-1)


def project(p, side, v, rows=slice(None)):
    """One side of the gates (the rows of some of them), each gate normalised on its own with layer_norm."""
    y = p[f"weight_{side}"][rows] @ v
    if f"ln_weight_{side}" in p:
        y = gate_norm(y, len(y) // H) * p[f"ln_weight_{side}"][rows]
    return y + p.get(f"bias_{side}", np.zeros(len(p[f"weight_{side}"])))[rows]


def reference_step(kind, p, x, state, h_mask=1.0):
    """(next state, gates) of one sequence's step; p holds the cell's parameters without suffix."""
    h = state[0]
    if kind == "lstm":
        z = project(p, "ih", x) + project(p, "hh", h * h_mask)
        z_i, z_f, z_g, z_o = np.split(z, 4)
        c = state[1]
        i = sigmoid(z_i + p.get("weight_ci", 0) * c)
        f = sigmoid(z_f + p.get("weight_cf", 0) * c)
        g = np.tanh(z_g)
        c_next = f * c + i * g
        o = sigmoid(z_o + p.get("weight_co", 0) * c_next)
        normed = c_next
        if "ln_weight_c" in p:
            normed = gate_norm(c_next, 1) * p["ln_weight_c"] + p["ln_bias_c"]
        return (o * np.tanh(normed), c_next), (i, f, g, o)
    if kind == "gru":
        a_r, a_z, a_n = np.split(project(p, "ih", x), 3)
        reset_after = p["reset_after"]
        b = project(p, "hh", h * h_mask, slice(None) if reset_after else slice(0, 2 * H))
        r, z = sigmoid(a_r + b[:H]), sigmoid(a_z + b[H:2 * H])
        if reset_after:
            n = np.tanh(a_n + r * b[2 * H:])
        else:
            n = np.tanh(a_n + project(p, "hh", r * h * h_mask, slice(2 * H, 3 * H)))
        return ((1 - z) * n + z * h,), (r, z, n)
    return (np.tanh(project(p, "ih", x) + project(p, "hh", h * h_mask)),), ()


def cell_parameters(model, suffix=""):
    params = {k[:-len(suffix)] if suffix else k: v for k, v in model.state_dict().items()
              if k.endswith(suffix) and (suffix or "_l" not in k)}
    params["reset_after"] = getattr(model, "reset_after", True)
    return params


def reference_layers(kind, model, x, lengths=None, hx=None, masks=None):
    """Output (T, B, D·H), final states, and per layer·direction k every step's states
    [k][t] and gates, of a zero-initial-state ``model`` unrolled for each sequence on its own.

    ``masks[k]`` = (input mask (B, in), hidden mask (B, H)) of variational dropout."""
    directions = 2 if model.bidirectional else 1
    count = 2 if kind == "lstm" else 1
    lengths = [T] * B if lengths is None else lengths
    stacked = model.num_layers * directions
    output = np.zeros((T, B, directions * H))
    finals = np.zeros((count, stacked, B, H))
    states = np.zeros((count, stacked, T, B, H))
    gates = {}
    for b in range(B):
        sequence = x[: lengths[b], b]
        for layer in range(model.num_layers):
            outputs = []
            for d, suffix in enumerate(["", "_reverse"][:directions]):
                k = layer * directions + d
                p = cell_parameters(model, f"_l{layer}{suffix}")
                x_mask, h_mask = (1.0, 1.0) if masks is None else (masks[k][0][b], masks[k][1][b])
                state = tuple(np.zeros(H) if hx is None else hx[i][k, b] for i in range(count))
                hs = [None] * len(sequence)
                order = range(len(sequence))
                for t in reversed(order) if suffix else order:
                    state, step_gates = reference_step(kind, p, sequence[t] * x_mask, state, h_mask)
                    hs[t] = state[0]
                    states[:, k, t, b] = state
                    for name, gate in zip("ifgo" if kind == "lstm" else "rzn", step_gates, strict=False):
                        gates.setdefault(name, np.zeros((stacked, T, B, H)))[k, t, b] = gate
                outputs.append(np.array(hs))
                finals[:, k, b] = state
            sequence = np.concatenate(outputs, axis=1)
        output[: lengths[b], b] = sequence
    return output, finals, states, gates


def make(kind, dtype=np.float64, seed=0, **options):
    tg.manual_seed(seed)
    name = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[kind]
    return getattr(nn, name)(IN, H, **options).to(dtype)


def randomise(model, *prefixes, seed=1):
    """Draw the parameters starting with ``prefixes`` (peephole weights, gains) away from their init."""
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if name.startswith(prefixes):
            p.data[...] = rng.uniform(0.5, 1.5, p.shape) * rng.choice([-1, 1], p.shape)


def as_tuple(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def check_parameter_gradients(model, run, names, *inputs):
    """gradcheck of ``run(*inputs)`` with respect to the inputs and the parameters ``names``."""
    params = [getattr(model, name) for name in names]

    def fn(*values):
        for name, value in zip(names, values[len(inputs):], strict=True):
            object.__setattr__(model, name, value)  # the checked Variable stands in for the parameter
        return run(*values[:len(inputs)])

    try:
        assert tg.gradcheck(fn, *inputs, *params)
    finally:
        for name, param in zip(names, params, strict=True):
            object.__setattr__(model, name, param)


VARIANTS = {
    # id: (kind, options, the variant's own parameters (prefixes) to draw at random)
    "lstm-peephole": ("lstm", {"peephole": True}, ("weight_c",)),
    "lstm-layer_norm": ("lstm", {"layer_norm": True}, ("ln_",)),
    "lstm-peephole-layer_norm": ("lstm", {"peephole": True, "layer_norm": True}, ("weight_c", "ln_")),
    "gru-reset_before": ("gru", {"reset_after": False}, ()),
    "gru-layer_norm": ("gru", {"layer_norm": True}, ("ln_",)),
    "gru-reset_before-layer_norm": ("gru", {"reset_after": False, "layer_norm": True}, ("ln_",)),
}


# ------------------------------------------------------------------------- variants
@pytest.mark.parametrize("options", [{}, {"num_layers": 2, "bidirectional": True, "bias": False}],
                         ids=["1-layer", "2-layer-bidirectional-nobias"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_matches_a_hand_unrolled_reference(variant, options):
    kind, variant_options, drawn = VARIANTS[variant]
    model = make(kind, **variant_options, **options)
    randomise(model, *drawn)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, IN))
    hx = [rng.standard_normal((model.num_layers * (1 + model.bidirectional), B, H))
          for _ in range(2 if kind == "lstm" else 1)]
    lengths = [4, 1, 3]
    out, final = model(x, hx if kind == "lstm" else hx[0], lengths=lengths)
    expected_out, expected_final, _, _ = reference_layers(kind, model, x, lengths, hx)
    np.testing.assert_allclose(out.data, expected_out, rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(as_tuple(final), expected_final, strict=True):
        np.testing.assert_allclose(ours.data, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_gradcheck(variant):
    kind, variant_options, drawn = VARIANTS[variant]
    model = make(kind, num_layers=2, bidirectional=True, **variant_options)
    randomise(model, *drawn)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, IN))
    hx = tuple(rng.standard_normal((4, 2, H)) for _ in range(2 if kind == "lstm" else 1))

    def layer(x):
        out, final = model(x, hx if kind == "lstm" else hx[0], lengths=[3, 2])
        return (out, *as_tuple(final))

    names = [n for n, _ in model.named_parameters() if n.startswith(drawn) and n.endswith("_l0_reverse")]
    names += ["bias_hh_l1"]
    check_parameter_gradients(model, layer, names, x)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_cell_is_one_step_of_the_layer(variant):
    kind, options, drawn = VARIANTS[variant]
    layer = make(kind, **options)
    randomise(layer, *drawn)
    cell = getattr(nn, type(layer).__name__ + "Cell")(IN, H, **options).double()
    cell.load_state_dict({name[:-3]: value for name, value in layer.state_dict().items()})
    rng = np.random.default_rng(4)
    x = rng.standard_normal((T, B, IN))
    out, _ = layer(x)
    state = None
    for t in range(T):
        state = cell(x[t], state)
        np.testing.assert_allclose(as_tuple(state)[0].data, out.data[t], rtol=1e-12, atol=1e-14)

    def step(x, *state):
        return cell(x, tuple(state) if kind == "lstm" else state[0])

    names = [name for name, _ in cell.named_parameters() if name.startswith(drawn)] + ["weight_hh"]
    states = [rng.standard_normal((2, H)) for _ in range(2 if kind == "lstm" else 1)]
    check_parameter_gradients(cell, step, names, rng.standard_normal((2, IN)), *states)


def test_variants_register_their_parameters_after_pytorchs():
    tg.manual_seed(0)
    model = nn.LSTM(IN, H, num_layers=2, bidirectional=True, peephole=True, layer_norm=True)
    plain = nn.LSTM(IN, H, num_layers=2, bidirectional=True)
    names = [name for name, _ in model.named_parameters()]
    assert [n for n in names if n.startswith(("weight_ih", "weight_hh", "bias"))] == list(plain.state_dict())
    extras = ["weight_ci", "weight_cf", "weight_co",
              "ln_weight_ih", "ln_weight_hh", "ln_weight_c", "ln_bias_c"]
    for layer in range(2):
        for suffix in (f"_l{layer}", f"_l{layer}_reverse"):
            start = names.index("bias_hh" + suffix) + 1
            assert names[start:start + len(extras)] == [e + suffix for e in extras]
    shapes = dict((name, p.shape) for name, p in model.named_parameters())
    assert shapes["weight_ci_l1"] == shapes["ln_weight_c_l0_reverse"] == (H,)
    assert shapes["ln_weight_ih_l1"] == shapes["ln_weight_hh_l0"] == (4 * H,)
    bound = 1 / np.sqrt(H)
    peepholes = np.concatenate([p.data for n, p in model.named_parameters() if n.startswith("weight_c")])
    assert np.abs(peepholes).max() <= bound and peepholes.std() > bound / 4
    assert all((p.data == (0 if "bias" in n else 1)).all() for n, p in model.named_parameters()
               if n.startswith("ln_"))
    assert all(p.dtype == np.float32 for p in model.parameters())
    cell = nn.GRUCell(IN, H, layer_norm=True, reset_after=False)
    assert [(n, p.shape) for n, p in cell.named_parameters()] == [
        ("weight_ih", (3 * H, IN)), ("weight_hh", (3 * H, H)), ("bias_ih", (3 * H,)), ("bias_hh", (3 * H,)),
        ("ln_weight_ih", (3 * H,)), ("ln_weight_hh", (3 * H,))]


@pytest.mark.parametrize("kind, off", [("lstm", {"peephole": False, "layer_norm": False}),
                                       ("gru", {"reset_after": True, "layer_norm": False})])
def test_options_off_are_pytorchs_layer(torch, kind, off):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind.upper())(IN, H, num_layers=2)
    ours = getattr(nn, kind.upper())(IN, H, num_layers=2, **off)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(5).standard_normal((T, B, IN)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x))[0].numpy()
    np.testing.assert_allclose(ours(x)[0].data, expected, rtol=1e-5, atol=1e-6)
    tg.manual_seed(3)
    first = getattr(nn, kind.upper())(IN, H, **off).state_dict()
    tg.manual_seed(3)
    second = getattr(nn, kind.upper())(IN, H).state_dict()
    assert all(np.array_equal(first[k], second[k]) for k in second) and first.keys() == second.keys()


def test_zero_peepholes_are_the_plain_lstm():
    model = make("lstm", num_layers=2, bidirectional=True, peephole=True)
    plain = make("lstm", num_layers=2, bidirectional=True)
    plain.load_state_dict(model.state_dict(), strict=False)
    for name, p in model.named_parameters():
        if name.startswith("weight_c"):
            p.data[...] = 0
    x = np.random.default_rng(6).standard_normal((T, B, IN))
    (out, (h, c)), (expected, (eh, ec)) = model(x), plain(x)
    for ours, theirs in [(out, expected), (h, eh), (c, ec)]:
        np.testing.assert_allclose(ours.data, theirs.data, rtol=1e-12, atol=1e-14)


def test_layer_norm_makes_the_cell_invariant_to_the_scale_of_its_weights():
    model = make("lstm", layer_norm=True)
    randomise(model, "ln_")
    x = np.random.default_rng(7).standard_normal((T, B, IN))
    outputs = []
    for scale in (10.0, 10.0):  # N(s·y) = N(y) up to N's eps, negligible once the weights are large
        model.weight_ih_l0.data *= scale
        model.weight_hh_l0.data *= scale
        outputs.append(model(x)[0].data)
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-3, atol=1e-4)
    assert np.abs(outputs[0]).max() > 0.1


def test_reset_before_differs_from_reset_after_on_the_same_weights():
    after = make("gru")
    before = make("gru", reset_after=False)
    assert list(before.state_dict()) == list(after.state_dict())
    before.load_state_dict(after.state_dict())
    x = np.random.default_rng(8).standard_normal((T, B, IN))
    assert not np.allclose(before(x)[0].data, after(x)[0].data)


@pytest.mark.parametrize("kind, options, ops", [
    ("lstm", {}, {"lstm_cell"}),
    ("lstm", {"variational_dropout": 0.3}, {"lstm_cell"}),
    ("gru", {}, {"gru_cell"}),
    ("lstm", {"peephole": True}, {"sigmoid", "tanh"}),
    ("lstm", {"layer_norm": True}, {"sigmoid", "tanh"}),
    ("gru", {"layer_norm": True}, {"sigmoid", "tanh"}),
    ("gru", {"reset_after": False}, {"sigmoid", "tanh"}),
    ("gru", {"variational_dropout": 0.3}, {"sigmoid", "tanh"}),  # z ⊙ h needs h unmasked
])
def test_fused_cells_where_the_variant_allows(kind, options, ops):
    model = make(kind, np.float32, **options)
    out, _ = model(np.ones((T, B, IN), np.float32))
    seen, stack = set(), [out.creator]
    while stack:
        function = stack.pop()
        if function is not None and function not in seen:
            seen.add(function)
            stack.extend(x.creator for x in function.inputs)
    assert ops <= {f.op for f in seen}
    assert ("lstm_cell" in ops or "gru_cell" in ops) == ("sigmoid" not in {f.op for f in seen})


# ------------------------------------------------------------------------- forget_bias
@pytest.mark.parametrize("make_module, names", [
    (lambda **o: nn.LSTM(IN, H, num_layers=2, **o), ["bias_ih_l0", "bias_ih_l1"]),
    (lambda **o: nn.LSTMCell(IN, H, **o), ["bias_ih"]),
])
def test_forget_bias_raises_the_forget_gate_bias_at_initialisation(make_module, names):
    tg.manual_seed(0)
    plain = make_module().state_dict()
    tg.manual_seed(0)
    shifted = make_module(forget_bias=1.0).state_dict()
    tg.manual_seed(0)
    zero = make_module(forget_bias=0.0).state_dict()
    assert all(np.array_equal(zero[k], plain[k]) for k in plain)
    for name, value in plain.items():
        expected = value.copy()
        if name in names:
            expected[H:2 * H] += 1.0
        np.testing.assert_array_equal(shifted[name], expected, err_msg=name)


def test_forget_bias_needs_the_biases():
    with pytest.raises(ValueError, match=r"LSTM: forget_bias=1.0 needs the biases \(bias=True\)"):
        nn.LSTM(IN, H, bias=False, forget_bias=1.0)
    with pytest.raises(TypeError, match="LSTMCell: forget_bias must be a number, got str"):
        nn.LSTMCell(IN, H, forget_bias="1")


# ------------------------------------------------------------------------- variational dropout
def test_variational_dropout_reuses_one_hidden_mask_at_every_step():
    """With Wₕₕ = I and no input, hₜ = tanh(hₜ₋₁ ⊙ m + b): a unit dropped at one step is dropped at all."""
    model = nn.RNN(IN, H, variational_dropout=0.5).double()
    model.weight_ih_l0.data[...] = 0
    model.weight_hh_l0.data[...] = np.eye(H)
    model.bias_ih_l0.data[...] = 0.5
    model.bias_hh_l0.data[...] = 0
    tg.manual_seed(0)
    batch = 64
    h = model(np.zeros((6, batch, IN)))[0].data
    mask = (h[1] != np.tanh(0.5)) * 2.0  # step 1 shows each unit's mask: tanh(0.5) where dropped
    assert 0 < mask.mean() < 2
    expected = [np.tanh(np.full((batch, H), 0.5))]
    for _ in range(5):
        expected.append(np.tanh(expected[-1] * mask + 0.5))
    np.testing.assert_allclose(h, np.array(expected), rtol=1e-12)


def test_variational_dropout_reuses_one_input_mask_at_every_step():
    model = nn.GRU(IN, H, variational_dropout=0.5).double()
    model.weight_hh_l0.data[...] = 0
    model.bias_hh_l0.data[...] = 0
    tg.manual_seed(1)
    x = np.broadcast_to(np.random.default_rng(9).standard_normal((1, 32, IN)), (T, 32, IN))
    out = model(x)[0].data
    # Without the hidden side, hₜ = (1 - z) ⊙ n + z ⊙ hₜ₋₁ with z and n of the (masked) input,
    # the same at every step: h₁ = (1 - z) n and h₂ = h₁ + z h₁ give z, then h₃ = h₁ + z h₂.
    z = (out[1] - out[0]) / out[0]
    np.testing.assert_allclose(out[2], out[0] + z * out[1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out[3], out[0] + z * out[2], rtol=1e-9, atol=1e-12)
    model.eval()
    assert not np.allclose(model(x)[0].data, out)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_variational_dropout_is_off_in_eval_and_new_for_every_sequence(kind):
    model = make(kind, num_layers=2, bidirectional=True, variational_dropout=0.4)
    plain = make(kind, num_layers=2, bidirectional=True)
    x = np.random.default_rng(10).standard_normal((T, B, IN))
    first, second = model(x)[0].data, model(x)[0].data
    assert not np.allclose(first, second)
    model.eval()
    np.testing.assert_array_equal(model(x)[0].data, plain(x)[0].data)


def masks_as_drawn(model, x_shape, seed):
    """The masks the layer draws after ``tg.manual_seed(seed)``: for each layer and direction in
    turn, the input mask, then the hidden mask."""
    tg.manual_seed(seed)
    masks, p = [], model.variational_dropout
    directions = 2 if model.bidirectional else 1
    for layer in range(model.num_layers):
        size = IN if layer == 0 else directions * H
        for _ in range(directions):
            masks.append(tuple(tg.functions.dropout_mask((B, n), p, np.float64).data for n in (size, H)))
    return masks


@pytest.mark.parametrize("kind, options", [("lstm", {}), ("gru", {"reset_after": False})])
def test_variational_dropout_matches_a_reference_with_its_masks(kind, options):
    model = make(kind, num_layers=2, bidirectional=True, variational_dropout=0.3, **options)
    x = np.random.default_rng(11).standard_normal((T, B, IN))
    masks = masks_as_drawn(model, x.shape, seed=5)
    tg.manual_seed(5)
    out, final = model(x)
    expected_out, expected_final, _, _ = reference_layers(kind, model, x, masks=masks)
    np.testing.assert_allclose(out.data, expected_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(as_tuple(final)[0].data, expected_final[0], rtol=1e-10, atol=1e-12)

    def layer(x):
        tg.manual_seed(5)
        out, final = model(x)
        return (out, *as_tuple(final))

    assert tg.gradcheck(layer, x)


# ------------------------------------------------------------------------- return_all_states
def time_major(states, batch_first):
    """h, c and the gates of ``states`` as arrays (L·D, T, B, H)."""
    arrays = {"h": states.h.data, **{name: g.data for name, g in states.gates.items()}}
    if states.c is not None:
        arrays["c"] = states.c.data
    return {name: a.transpose(0, 2, 1, 3) if batch_first else a for name, a in arrays.items()}


@pytest.mark.parametrize("options", [{}, {"num_layers": 2, "bidirectional": True},
                                     {"num_layers": 2, "batch_first": True}],
                         ids=["1-layer", "2-layer-bidirectional", "2-layer-batch_first"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_all_states_match_a_hand_unrolled_reference(kind, options):
    model = make(kind, **options)
    x = np.random.default_rng(12).standard_normal((T, B, IN))
    lengths = [4, 2, 3]
    layout = x.transpose(1, 0, 2) if model.batch_first else x
    out, final = model(layout, lengths=lengths)
    all_out, all_final, states = model(layout, lengths=lengths, return_all_states=True)
    for ours, theirs in zip((all_out, *as_tuple(all_final)), (out, *as_tuple(final)), strict=True):
        np.testing.assert_allclose(ours.data, theirs.data, rtol=1e-12, atol=1e-14)  # composed = fused

    stacked = model.num_layers * (2 if model.bidirectional else 1)
    assert states.h.shape == (stacked,) + all_out.shape[:-1] + (H,)
    assert (states.c is None) == (kind != "lstm")
    assert list(states.gates) == {"lstm": list("ifgo"), "gru": list("rzn"), "rnn": []}[kind]
    assert len(states.steps) == len(states.initial) == stacked and all(len(s) == T for s in states.steps)

    _, _, expected, expected_gates = reference_layers(kind, model, x, lengths)
    arrays = time_major(states, model.batch_first)
    valid = (np.arange(T)[:, None] < lengths)[None, :, :, None]
    np.testing.assert_allclose(arrays["h"], expected[0], rtol=1e-10, atol=1e-12)  # zero past the end
    if kind == "lstm":
        np.testing.assert_allclose(arrays["c"], expected[1], rtol=1e-10, atol=1e-12)
    for name in states.gates:
        np.testing.assert_allclose(np.where(valid, arrays[name], 0), expected_gates[name],
                                   rtol=1e-10, atol=1e-12)
    for k, steps in enumerate(states.steps):
        for t, state in enumerate(steps):
            np.testing.assert_array_equal(np.where(valid[0, t], state[0].data, 0), arrays["h"][k, t])
            assert states.previous(k, t) is (states.initial[k] if t == (T - 1 if k % 2 and model.bidirectional
                                                                            else 0)
                                             else steps[t + 1 if k % 2 and model.bidirectional else t - 1])
    outputs = out.data.transpose(1, 0, 2) if model.batch_first else out.data
    last = arrays["h"][-(2 if model.bidirectional else 1):]
    np.testing.assert_allclose(np.concatenate(list(last), axis=-1), outputs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_all_states_unbatched_and_without_lengths(kind):
    model = make(kind, num_layers=2, bidirectional=True)
    x = np.random.default_rng(13).standard_normal((T, IN))
    _, final, states = model(x, return_all_states=True)
    _, batched_final, batched = model(x[:, None], return_all_states=True)
    assert states.h.shape == (4, T, H)
    for name, value in time_major(batched, False).items():
        ours = getattr(states, name) if name in ("h", "c") else states.gates[name]
        np.testing.assert_array_equal(ours.data, value[:, :, 0])
    for ours, theirs in zip(as_tuple(final), as_tuple(batched_final), strict=True):
        np.testing.assert_array_equal(ours.data, theirs.data[:, 0])
        np.testing.assert_array_equal(ours.data[0::2], states.h.data[0::2, -1] if ours is as_tuple(final)[0]
                                      else states.c.data[0::2, -1])  # forward directions end at T - 1
        np.testing.assert_array_equal(ours.data[1::2], states.h.data[1::2, 0] if ours is as_tuple(final)[0]
                                      else states.c.data[1::2, 0])  # reverse ones at 0


def test_every_cell_state_matches_pytorch_over_each_prefix(torch):
    """PyTorch returns c_n only; run over the prefix x[:t+1], c_n is our cₜ (each layer)."""
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(IN, H, num_layers=2).double()
    ours = nn.LSTM(IN, H, num_layers=2).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(14).standard_normal((T, B, IN))
    _, _, states = ours(x, return_all_states=True)
    with torch.no_grad():
        for t in range(T):
            _, (h_n, c_n) = theirs(torch.from_numpy(x[:t + 1]))
            np.testing.assert_allclose(states.h.data[:, t], h_n.numpy(), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(states.c.data[:, t], c_n.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind, options", [("lstm", {"peephole": True}), ("gru", {})])
def test_all_states_gradcheck(kind, options):
    model = make(kind, num_layers=2, bidirectional=True, **options)
    x = np.random.default_rng(15).standard_normal((3, 2, IN))

    def layer(x):
        _, _, states = model(x, lengths=[3, 2], return_all_states=True)
        return (states.h, *([] if states.c is None else [states.c]), *states.gates.values())

    assert tg.gradcheck(layer, x)


def test_repr_shows_the_options():
    model = nn.LSTM(IN, H, peephole=True, layer_norm=True, forget_bias=1.0, variational_dropout=0.25)
    assert repr(model) == ("LSTM(3, 4, peephole=True, layer_norm=True, forget_bias=1.0, "
                           "variational_dropout=0.25)")
    assert repr(nn.GRUCell(IN, H, reset_after=False)) == "GRUCell(3, 4, reset_after=False)"
    assert repr(nn.GRU(IN, H)) == "GRU(3, 4)"


@pytest.mark.parametrize("make_module, error, message", [
    (lambda: nn.GRU(IN, H, variational_dropout=1.5), ValueError,
     r"GRU: variational_dropout must be a number in \[0, 1\], got 1.5"),
    (lambda: nn.RNN(IN, H, variational_dropout=True), ValueError,
     "RNN: variational_dropout must be a number"),
])
def test_bad_options(make_module, error, message):
    with pytest.raises(error, match=message):
        make_module()
