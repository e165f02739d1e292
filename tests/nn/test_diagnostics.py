"""nn.diagnostics: gradient norms through time (tensor hooks), step Jacobians and gate saturation.

‖∂L/∂hₜ‖ is checked against a NumPy BPTT of a tanh RNN and, with ‖∂L/∂cₜ‖, against PyTorch's
autograd on an LSTM written out step by step; the Jacobians against their closed form for
the RNN and PyTorch's ``jacobian`` of one LSTM step; the saturation against gates computed
in NumPy.
"""

import numpy as np
import pytest

import nn
import tensorgrad as tg
from nn import diagnostics

T, B, IN, H = 5, 2, 3, 4


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def make(kind, seed=0, **options):
    tg.manual_seed(seed)
    return getattr(nn, kind)(IN, H, **options).double()


def inputs(seed=1):
    return np.random.default_rng(seed).standard_normal((T, B, IN))


def weighted_loss(seed=2):
    """L = Σ w ⊙ output + Σ v ⊙ h_n for fixed random w, v; and (w, v)."""
    rng = np.random.default_rng(seed)
    weights = {}

    def loss_fn(output, final):
        h_n = final[0] if isinstance(final, tuple) else final
        if not weights:
            weights["w"], weights["v"] = rng.standard_normal(output.shape), rng.standard_normal(h_n.shape)
        return (output * weights["w"]).sum() + (h_n * weights["v"]).sum()

    return loss_fn, weights


def test_gradient_norms_match_a_numpy_bptt_of_a_tanh_rnn():
    model = make("RNN")
    x = inputs()
    loss_fn, weights = weighted_loss()
    flow = diagnostics.gradient_flow(model, x, loss_fn)

    W_ih, W_hh = model.weight_ih_l0.data, model.weight_hh_l0.data
    b = model.bias_ih_l0.data + model.bias_hh_l0.data
    h, hs = np.zeros((B, H)), []
    for t in range(T):
        h = np.tanh(x[t] @ W_ih.T + h @ W_hh.T + b)
        hs.append(h)
    expected = np.zeros(T)
    delta = weights["w"][-1] + weights["v"][0]
    for t in reversed(range(T)):
        if t < T - 1:
            delta = weights["w"][t] + (delta * (1 - hs[t + 1] ** 2)) @ W_hh
        expected[t] = np.linalg.norm(delta)
    assert flow.grad_h.shape == (1, T) and flow.grad_c is None
    np.testing.assert_allclose(flow.grad_h[0], expected, rtol=1e-10)
    assert flow.loss == pytest.approx(sum((y * w).sum() for y, w in zip(hs, weights["w"], strict=True))
                                      + (hs[-1] * weights["v"][0]).sum(), rel=1e-12)
    assert all(p.grad is None for p in model.parameters())  # tg.grad: the model's .grad untouched


def torch_lstm(torch, model, x, hx):
    """PyTorch's LSTM equations written out step by step (one layer): every hₜ, cₜ kept for .grad."""
    p = {k: torch.tensor(v) for k, v in model.state_dict().items()}
    h, c = (torch.tensor(s[0], requires_grad=True) for s in hx)
    hs, cs = [], []
    for t in range(len(x)):
        z = (torch.tensor(x[t]) @ p["weight_ih_l0"].T + p["bias_ih_l0"]
             + h @ p["weight_hh_l0"].T + p["bias_hh_l0"])
        i, f, g, o = z.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        h.retain_grad()
        c.retain_grad()
        hs.append(h)
        cs.append(c)
    return hs, cs


def test_gradient_norms_of_h_and_c_match_pytorch(torch):
    model = make("LSTM")
    x = inputs()
    loss_fn, weights = weighted_loss()
    flow = diagnostics.gradient_flow(model, x, loss_fn)

    hx = [np.zeros((1, B, H))] * 2
    hs, cs = torch_lstm(torch, model, x, hx)
    loss = sum((h * torch.tensor(w)).sum() for h, w in zip(hs, weights["w"], strict=True))
    (loss + (hs[-1] * torch.tensor(weights["v"][0])).sum()).backward()
    np.testing.assert_allclose(flow.grad_h[0], [h.grad.norm().item() for h in hs], rtol=1e-10)
    np.testing.assert_allclose(flow.grad_c[0], [c.grad.norm().item() for c in cs], rtol=1e-10)


def test_jacobian_norms_of_a_tanh_rnn_have_their_closed_form():
    """hₜ = tanh(zₜ) with zₜ = ... + Wₕₕ hₜ₋₁: ∂hₜ/∂hₜ₋₁ = diag(1 - hₜ²) Wₕₕ (Wₕₕ of the reverse
    direction for it, where the step comes from hₜ₊₁)."""
    model = make("RNN", bidirectional=True)
    flow = diagnostics.gradient_flow(model, inputs(), weighted_loss()[0])
    output, _ = model(inputs())
    for k, (suffix, h) in enumerate([("_l0", output.data[..., :H]), ("_l0_reverse", output.data[..., H:])]):
        W_hh = getattr(model, "weight_hh" + suffix).data
        jacobians = (1 - h ** 2)[..., None] * W_hh  # (T, B, H, H)
        np.testing.assert_allclose(flow.jacobian_norm[k], np.linalg.norm(jacobians, 2, axis=(-2, -1)),
                                   rtol=1e-10)


def test_step_jacobians_of_an_lstm_match_pytorch(torch):
    """∂hₜ/∂hₜ₋₁ with cₜ₋₁ fixed, per sample, against torch.autograd.functional.jacobian of one step."""
    model = make("LSTM", num_layers=2)
    x = inputs()
    hx = (tg.Variable(np.zeros((2, B, H))), tg.Variable(np.zeros((2, B, H))))  # so that t = 0 has one too
    _, _, states = model(x, hx, return_all_states=True)
    jacobians = diagnostics.step_jacobians(states)
    assert jacobians.shape == (2, T, B, H, H)
    p = {k: torch.tensor(v) for k, v in model.state_dict().items()}
    layer_input = x
    for layer in range(2):
        s = f"_l{layer}"
        for t in range(T):
            h_prev = np.zeros((B, H)) if t == 0 else states.h.data[layer, t - 1]
            c_prev = torch.tensor(np.zeros((B, H)) if t == 0 else states.c.data[layer, t - 1])
            for b in range(B):
                def step(h, b=b, t=t, c_prev=c_prev, s=s, layer_input=layer_input):
                    z = (torch.tensor(layer_input[t, b]) @ p["weight_ih" + s].T + p["bias_ih" + s]
                         + h @ p["weight_hh" + s].T + p["bias_hh" + s])
                    i, f, g, o = z.chunk(4)
                    c = torch.sigmoid(f) * c_prev[b] + torch.sigmoid(i) * torch.tanh(g)
                    return torch.sigmoid(o) * torch.tanh(c)

                expected = torch.autograd.functional.jacobian(step, torch.tensor(h_prev[b])).numpy()
                np.testing.assert_allclose(jacobians[layer, t, b], expected, rtol=1e-10, atol=1e-12)
        layer_input = states.h.data[layer]
    norms = diagnostics.jacobian_norms(states, ord="fro")
    np.testing.assert_allclose(norms, np.sqrt((jacobians ** 2).sum(axis=(-2, -1))), rtol=1e-12)


def test_a_constant_initial_state_gives_the_first_step_no_jacobian():
    model = make("GRU")
    _, _, states = model(inputs(), return_all_states=True)
    norms = diagnostics.jacobian_norms(states)
    assert np.isnan(norms[0, 0]).all() and np.isfinite(norms[0, 1:]).all()


def test_gate_saturation_counts_the_gates_near_0_and_1():
    model = make("LSTM", forget_bias=8.0)  # f = σ(> 7) > 0.999 everywhere
    x = inputs() * 3
    flow = diagnostics.gradient_flow(model, x, weighted_loss()[0], jacobians=False, threshold=0.1)
    assert flow.jacobian_norm is None
    assert list(flow.saturation) == ["i", "f", "g", "o"]
    np.testing.assert_array_equal(flow.saturation["f"], np.ones((1, T)))

    p = {k: v for k, v in model.state_dict().items()}
    h, c = np.zeros((B, H)), np.zeros((B, H))
    for t in range(T):
        z = x[t] @ p["weight_ih_l0"].T + p["bias_ih_l0"] + h @ p["weight_hh_l0"].T + p["bias_hh_l0"]
        i, f, g, o = np.split(z, 4, axis=-1)
        i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
        c = f * c + i * g
        h = o * np.tanh(c)
        for name, gate, low, high in [("i", i, 0.1, 0.9), ("o", o, 0.1, 0.9), ("g", g, -0.8, 0.8)]:
            assert flow.saturation[name][0, t] == ((gate < low) | (gate > high)).mean()
    assert 0 < flow.saturation["g"].max()  # the test can see a partly saturated gate


def test_a_plain_rnn_has_no_gates_and_bad_thresholds_are_errors():
    model = make("RNN")
    _, _, states = model(inputs(), return_all_states=True)
    assert diagnostics.gate_saturation(states) == {}
    with pytest.raises(ValueError, match=r"gate_saturation: threshold must lie in \(0, 0.5\), got 0.5"):
        diagnostics.gate_saturation(states, 0.5)


def test_gradients_vanish_through_a_contracting_rnn():
    """With ‖Wₕₕ‖₂ < 1 and the loss on the last step only, ‖∂L/∂hₜ‖ shrinks going back in time."""
    model = make("RNN", num_layers=2)
    for name in ("weight_hh_l0", "weight_hh_l1"):
        W = getattr(model, name).data
        W *= 0.5 / np.linalg.norm(W, 2)
    flow = diagnostics.gradient_flow(model, inputs(), lambda output, h_n: output[-1].sum())
    assert (np.diff(flow.grad_h, axis=1) > 0).all()
    assert (flow.jacobian_norm < 0.5 + 1e-12).all()


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_the_probe_rides_along_an_ordinary_backward_pass(kind):
    model = make(kind, num_layers=2, bidirectional=True)
    _, _, states = model(inputs(), return_all_states=True)
    probe = diagnostics.GradientProbe(states)
    loss = states.h[:, 2].sum()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    variables = [v for steps in states.steps for state in steps for v in state]
    grads = tg.grad(loss, variables)
    expected = np.array([np.linalg.norm(g.data) for g in grads]).reshape(4, T, -1)
    np.testing.assert_allclose(probe.grad_h, expected[..., 0], rtol=1e-12)
    if kind == "LSTM":
        np.testing.assert_allclose(probe.grad_c, expected[..., 1], rtol=1e-12)
    assert probe.grad_h[2, 2] > 0 and (probe.grad_h[2, 3:] == 0).all()  # layer 1 forward: not after t=2
    probe.remove()
    assert all(not v._hooks for v in variables)


def test_plot_draws_every_layer_and_gate(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    model = make("LSTM", num_layers=2)
    flow = diagnostics.gradient_flow(model, inputs(), weighted_loss()[0])
    figure = diagnostics.plot(flow, title="LSTM")
    grads, jacobians, saturation = figure.axes
    assert len(grads.lines) == 2 * 2  # h and c of each layer
    assert len(jacobians.lines) == 2 + 1  # each layer, and the line at 1
    assert len(saturation.lines) == 4 * 2
    figure.savefig(tmp_path / "flow.png")
    assert (tmp_path / "flow.png").stat().st_size > 0
    import matplotlib.pyplot as plt
    plt.close(figure)


def test_gradient_flow_takes_the_lengths_of_a_padded_batch():
    """A sequence of length 3 padded to T: its first 3 steps get the gradients it gets alone."""
    model = make("LSTM")
    x = inputs()[:, :1]
    rng = np.random.default_rng(3)
    w, v = rng.standard_normal((3, 1, H)), rng.standard_normal((1, 1, H))

    def loss_fn(output, final):
        return (output[:3] * w).sum() + (final[0] * v).sum()

    padded = diagnostics.gradient_flow(model, x, loss_fn, lengths=[3])
    alone = diagnostics.gradient_flow(model, x[:3], loss_fn)
    np.testing.assert_allclose(padded.grad_h[:, :3], alone.grad_h, rtol=1e-12)
    np.testing.assert_allclose(padded.grad_c[:, :3], alone.grad_c, rtol=1e-12)
    assert padded.loss == pytest.approx(alone.loss, rel=1e-12)
