"""The running example of backpropagation through time, by hand and by autograd.

An Elman cell unrolled for three steps:

    s_t = tanh(x_t W_x + s_{t-1} W_s),   y_t = softmax(s_t W_y),   E_3 = -Σ_k t_k log y_3,k

The gradient of E_3 with respect to W_s sums over every path from W_s to E_3:

    ∂E₃/∂W_s = ∂E₃/∂y₃ · ∂y₃/∂s₃ · (∂s₃/∂W_s + ∂s₃/∂s₂ · ∂s₂/∂W_s + ∂s₃/∂s₂ · ∂s₂/∂s₁ · ∂s₁/∂W_s)

where each ∂s_t/∂W_s holds s_{t-1} fixed. Below, every factor is an explicit Jacobian
matrix in NumPy, and the product must equal what ``backward`` computes on the unrolled graph.
"""

import numpy as np

import tensorgrad as tg
import tensorgrad.functions as F

D, H, C = 3, 4, 5  # input, hidden and output sizes


def test_bptt_by_hand_equals_autograd():
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((1, D)) for _ in range(3)]
    s0 = rng.standard_normal((1, H))  # a non-zero initial state, so that every path counts
    Wx, Ws, Wy = (rng.standard_normal(shape) * 0.7 for shape in [(D, H), (H, H), (H, C)])
    target = np.eye(C)[[2]]

    # Autograd on the unrolled graph.
    W_s = tg.Variable(Ws, name="W_s")
    s = tg.Variable(s0, requires_grad=False)
    for x in xs:
        s = F.tanh(x @ tg.Variable(Wx, requires_grad=False) + s @ W_s)
    y3 = F.softmax(s @ tg.Variable(Wy, requires_grad=False))
    E3 = -(target * F.log(y3)).sum()
    E3.backward()

    # By hand: the forward pass again in NumPy, keeping every state (row vectors of shape (H,)).
    states = [s0[0]]
    for x in xs:
        states.append(np.tanh(x[0] @ Wx + states[-1] @ Ws))
    z = states[3] @ Wy
    y = np.exp(z - z.max())
    y /= y.sum()

    dE_dy = -target[0] / y                                  # (C,)
    dy_ds3 = (np.diag(y) - np.outer(y, y)) @ Wy.T           # (C, H): softmax Jacobian · ∂z/∂s₃

    def ds_dprev(t):                                        # ∂s_t/∂s_{t-1}: (H, H)
        return np.diag(1 - states[t] ** 2) @ Ws.T

    def ds_dWs(t):                                          # ∂s_t/∂W_s with s_{t-1} fixed: (H, H·H)
        # s_t,j depends on W_s[i, k] only for k = j, through s_{t-1,i}.
        return np.einsum("j,jk,i->jik", 1 - states[t] ** 2, np.eye(H), states[t - 1]).reshape(H, H * H)

    paths = ds_dWs(3) + ds_dprev(3) @ ds_dWs(2) + ds_dprev(3) @ ds_dprev(2) @ ds_dWs(1)
    by_hand = (dE_dy @ dy_ds3 @ paths).reshape(H, H)

    np.testing.assert_allclose(E3.data, -np.log(y[2]), rtol=1e-12)
    np.testing.assert_allclose(W_s.grad.data, by_hand, rtol=0, atol=1e-12)
    # Each of the three paths matters: dropping the longest one changes the gradient.
    shortened = (dE_dy @ dy_ds3 @ (ds_dWs(3) + ds_dprev(3) @ ds_dWs(2))).reshape(H, H)
    assert np.abs(shortened - by_hand).max() > 1e-3
