"""One Transformer encoder layer in plain NumPy, forward and backward by hand: the yardstick of
``attention.py``.

The layer of ``nn.TransformerEncoderLayer`` with its defaults (post-norm, ReLU; dropout 0),
under a causal mask, written as a NumPy programmer writes it for speed, with no autograd.
With X the (T·B, E) input rows and the heads batched as (B, H, T, d):

    Q, K, V = split(X W_inᵀ + b_in)             A = softmax(Q Kᵀ / √d + M)
    O = concat_h(A V) W_oᵀ + b_o                 Y₁ = LN₁(X + O)
    F = relu(Y₁ W₁ᵀ + b₁) W₂ᵀ + b₂               Y = LN₂(Y₁ + F)

and the backward, given ∂L/∂Y, the chain rule through each line in reverse: the layer
norms' ∂x = (∂x̂ - mean(∂x̂) - x̂ · mean(∂x̂ ⊙ x̂)) / σ, the softmax's
∂S = A ⊙ (∂A - Σ_j ∂A ⊙ A), and every weight gradient one matmul over all T·B rows.
Parameters are PyTorch's (and tensorgrad's) names and shapes, so all engines start from one
state dict.
"""

import numpy as np


class EncoderLayer:
    def __init__(self, state, nhead, eps=1e-5):
        self.p = {name: np.array(value) for name, value in state.items()}
        self.H, self.eps = nhead, eps

    def forward(self, x):
        """y for x (T, B, E); keeps what the backward needs."""
        p, H = self.p, self.H
        T, B, E = x.shape
        d = E // H
        X = x.reshape(T * B, E)
        qkv = X @ p["self_attn.in_proj_weight"].T + p["self_attn.in_proj_bias"]
        q, k, v = (qkv[:, i * E:(i + 1) * E].reshape(T, B, H, d).transpose(1, 2, 0, 3) for i in range(3))
        scores = q @ k.transpose(0, 1, 3, 2) * d ** -0.5  # a Python float: keeps float32
        scores[..., np.triu(np.ones((T, T), dtype=bool), k=1)] = -np.inf
        scores -= scores.max(axis=-1, keepdims=True)
        A = np.exp(scores, out=scores)
        A /= A.sum(axis=-1, keepdims=True)
        heads = (A @ v).transpose(2, 0, 1, 3).reshape(T * B, E)
        attended = heads @ p["self_attn.out_proj.weight"].T + p["self_attn.out_proj.bias"]
        y1, ln1 = self._layer_norm(X + attended, "norm1")
        hidden = y1 @ p["linear1.weight"].T + p["linear1.bias"]
        np.maximum(hidden, 0, out=hidden)
        f = hidden @ p["linear2.weight"].T + p["linear2.bias"]
        y, ln2 = self._layer_norm(y1 + f, "norm2")
        self.cache = (x.shape, X, q, k, v, A, heads, y1, ln1, hidden, ln2)
        return y.reshape(T, B, E)

    def backward(self, dy):
        """(∂L/∂x, {name: ∂L/∂parameter}) for ∂L/∂y (T, B, E)."""
        p, H = self.p, self.H
        (T, B, E), X, q, k, v, A, heads, y1, ln1, hidden, ln2 = self.cache
        d = E // H
        g = {}
        dr2 = self._layer_norm_backward(dy.reshape(T * B, E), ln2, "norm2", g)
        g["linear2.weight"], g["linear2.bias"] = dr2.T @ hidden, dr2.sum(axis=0)
        dhidden = dr2 @ p["linear2.weight"]
        dhidden *= hidden > 0
        g["linear1.weight"], g["linear1.bias"] = dhidden.T @ y1, dhidden.sum(axis=0)
        dy1 = dr2 + dhidden @ p["linear1.weight"]
        dr1 = self._layer_norm_backward(dy1, ln1, "norm1", g)
        g["self_attn.out_proj.weight"], g["self_attn.out_proj.bias"] = dr1.T @ heads, dr1.sum(axis=0)
        dheads = (dr1 @ p["self_attn.out_proj.weight"]).reshape(T, B, H, d).transpose(1, 2, 0, 3)
        dA = dheads @ v.transpose(0, 1, 3, 2)
        dv = A.transpose(0, 1, 3, 2) @ dheads
        dA -= (dA * A).sum(axis=-1, keepdims=True)
        dS = dA * A * d ** -0.5
        dq, dk = dS @ k, dS.transpose(0, 1, 3, 2) @ q
        dqkv = np.concatenate([a.transpose(2, 0, 1, 3).reshape(T * B, E) for a in (dq, dk, dv)], axis=1)
        g["self_attn.in_proj_weight"], g["self_attn.in_proj_bias"] = dqkv.T @ X, dqkv.sum(axis=0)
        dX = dr1 + dqkv @ p["self_attn.in_proj_weight"]
        return dX.reshape(T, B, E), g

    def _layer_norm(self, r, name):
        mean = r.mean(axis=-1, keepdims=True)
        centred = r - mean
        inv_sigma = 1 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + self.eps)
        xhat = centred * inv_sigma
        return xhat * self.p[f"{name}.weight"] + self.p[f"{name}.bias"], (xhat, inv_sigma)

    def _layer_norm_backward(self, dy, cache, name, g):
        xhat, inv_sigma = cache
        g[f"{name}.weight"], g[f"{name}.bias"] = (dy * xhat).sum(axis=0), dy.sum(axis=0)
        dxhat = dy * self.p[f"{name}.weight"]
        return (dxhat - dxhat.mean(axis=-1, keepdims=True)
                - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)) * inv_sigma
