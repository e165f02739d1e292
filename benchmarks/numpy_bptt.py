"""A character-level language model in plain NumPy, with backpropagation through time by hand.

The yardstick of ``train_step.py``: the model of ``nn.CharRNN`` with one recurrent layer
(embedding → RNN, LSTM or GRU → linear to the vocabulary at every step), its softmax
cross-entropy, gradient clipping and Adam, written as a NumPy programmer writes them for
speed, with no autograd:

- the input projection of all T steps is one matmul over T·B rows, and so are the output
  layer and its gradients;
- the loop over time does only what must be sequential, the recurrent matmul and the cell's
  elementwise work, in place in arrays allocated once for the whole sequence;
- backward keeps δₜ, the gradient at the gates of every step, so that the weight gradients
  are one matmul over the sequence each: ∂L/∂W_hh = Σₜ δₜᵀ hₜ₋₁ and ∂L/∂W_ih = Σₜ δₜᵀ xₜ.

Parameters are named, shaped and ordered as PyTorch's (and tensorgrad's ``CharRNN``), so the
engines of the benchmark start from one state dict. Gates are in PyTorch's order: LSTM
i, f, g, o; GRU r, z, n.
"""

import math

import numpy as np

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def constant(value, like):
    """``value`` as a 0-d array of ``like``'s dtype. NumPy turns a Python scalar operand into an
    array at every call (0.3-0.5 µs, as long as a subtraction of (32, 64) arrays takes), so the
    loops over time make their constants once."""
    return np.asarray(value, like.dtype)


def sigmoid(x, half, out=None):
    """σ(x) = ½ tanh(x/2) + ½ (never overflows), into ``out`` (which may be ``x``); ``half`` is
    ½ as a constant."""
    out = np.multiply(x, half, out=out)
    np.tanh(out, out=out)
    out *= half
    out += half
    return out


# ----------------------------------------------------------------------------- cells
# Each forward takes A (T, B, G·H), the input side xₜ W_ihᵀ + b_ih of every step, W_hhᵀ
# (copied into C order once, for more than a few steps of a batch: BLAS multiplies a thin hₜ
# by it up to twice as fast as by the transposed view W_hh.T), b_hh and the initial state;
# it returns hs (T+1, B, H) (h₀ first), the values its backward needs and the final state.
# Each backward takes ∂L/∂hₜ from the layer above, (T, B, H), and returns the gradients at
# the input side A and at the hidden side hₜ₋₁ W_hhᵀ + b_hh of the gates, both (T, B, G·H),
# and the gradient of the initial state.

def rnn_forward(A, W_hh_t, b_hh, state):
    """hₜ = tanh(aₜ + hₜ₋₁ W_hhᵀ + b_hh)."""
    (h0,) = state
    A += b_hh
    hs = np.empty((len(A) + 1,) + h0.shape, A.dtype)
    hs[0] = h0
    for t in range(len(A)):
        h = np.matmul(hs[t], W_hh_t, out=hs[t + 1])
        h += A[t]
        np.tanh(h, out=h)
    return hs, (), (hs[-1],)


def rnn_backward(dhs, hs, cache, W_hh):
    """δₜ = ∂L/∂hₜ ⊙ (1 - hₜ²), where ∂L/∂hₜ sums the layer above's and δₜ₊₁ W_hh."""
    delta = np.empty_like(dhs)
    dh = np.zeros_like(dhs[0])
    one = constant(1, dhs)
    for t in reversed(range(len(dhs))):
        dh += dhs[t]
        d = np.multiply(hs[t + 1], hs[t + 1], out=delta[t])
        np.subtract(one, d, out=d)
        d *= dh
        np.matmul(d, W_hh, out=dh)
    return delta, delta, (dh,)


def lstm_forward(A, W_hh_t, b_hh, state):
    """With [zᵢ, z_f, z_g, z_o] = aₜ + hₜ₋₁ W_hhᵀ + b_hh:

        i, f, o = σ(zᵢ), σ(z_f), σ(z_o),  g = tanh(z_g)
        cₜ = f ⊙ cₜ₋₁ + i ⊙ g,            hₜ = o ⊙ tanh(cₜ)

    The activated gates overwrite A.
    """
    h0, c0 = state
    T, H = len(A), h0.shape[-1]
    A += b_hh
    hs = np.empty((T + 1,) + h0.shape, A.dtype)
    cs = np.empty_like(hs)
    tanh_cs = np.empty_like(hs[1:])
    hs[0], cs[0] = h0, c0
    hidden = np.empty_like(A[0])
    half = constant(0.5, A)
    for t in range(T):
        z = A[t]
        z += np.matmul(hs[t], W_hh_t, out=hidden)
        sigmoid(z[:, :2 * H], half, out=z[:, :2 * H])
        np.tanh(z[:, 2 * H:3 * H], out=z[:, 2 * H:3 * H])
        sigmoid(z[:, 3 * H:], half, out=z[:, 3 * H:])
        i, f, g, o = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
        c = np.multiply(f, cs[t], out=cs[t + 1])
        c += i * g
        np.multiply(o, np.tanh(c, out=tanh_cs[t]), out=hs[t + 1])
    return hs, (A, cs, tanh_cs), (hs[-1], cs[-1])


def lstm_backward(dhs, hs, cache, W_hh):
    """With δc = ∂L/∂cₜ + ∂L/∂hₜ ⊙ o ⊙ (1 - tanh²cₜ) the whole gradient at cₜ:

        δzᵢ = δc ⊙ g ⊙ i(1 - i),   δz_f = δc ⊙ cₜ₋₁ ⊙ f(1 - f),
        δz_g = δc ⊙ i ⊙ (1 - g²),  δz_o = ∂L/∂hₜ ⊙ tanh cₜ ⊙ o(1 - o),
        ∂L/∂cₜ₋₁ = δc ⊙ f,         ∂L/∂hₜ₋₁ = (layer above) + δz W_hh
    """
    gates, cs, tanh_cs = cache
    H = dhs.shape[-1]
    delta = np.empty_like(gates)
    dh = np.zeros_like(dhs[0])
    dc = np.zeros_like(dh)
    work = np.empty_like(dh)
    one = constant(1, dhs)
    for t in reversed(range(len(dhs))):
        dh += dhs[t]
        z, d, tanh_c = gates[t], delta[t], tanh_cs[t]
        i, f, g, o = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
        di, df, dg, do = d[:, :H], d[:, H:2 * H], d[:, 2 * H:3 * H], d[:, 3 * H:]
        np.multiply(tanh_c, tanh_c, out=work)
        np.subtract(one, work, out=work)
        work *= o
        work *= dh
        dc += work
        np.subtract(one, o, out=do)
        do *= o
        do *= tanh_c
        do *= dh
        np.subtract(one, i, out=di)
        di *= i
        di *= g
        di *= dc
        np.subtract(one, f, out=df)
        df *= f
        df *= cs[t]
        df *= dc
        np.multiply(g, g, out=dg)
        np.subtract(one, dg, out=dg)
        dg *= i
        dg *= dc
        dc *= f
        np.matmul(d, W_hh, out=dh)
    return delta, delta, (dh, dc)


def gru_forward(A, W_hh_t, b_hh, state):
    """With [aᵣ, a_z, aₙ] = aₜ and [bᵣ, b_z, bₙ] = hₜ₋₁ W_hhᵀ + b_hh:

        r = σ(aᵣ + bᵣ),  z = σ(a_z + b_z),  n = tanh(aₙ + r ⊙ bₙ)
        hₜ = (1 - z) ⊙ n + z ⊙ hₜ₋₁

    The gates r, z, n overwrite A; bₙ is kept for backward.
    """
    (h0,) = state
    T, H = len(A), h0.shape[-1]
    hs = np.empty((T + 1,) + h0.shape, A.dtype)
    hs[0] = h0
    b_ns = np.empty_like(hs[1:])
    hidden = np.empty_like(A[0])
    half = constant(0.5, A)
    for t in range(T):
        np.matmul(hs[t], W_hh_t, out=hidden)
        hidden += b_hh
        a = A[t]
        rz = a[:, :2 * H]
        rz += hidden[:, :2 * H]
        sigmoid(rz, half, out=rz)
        r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
        b_n = b_ns[t]
        b_n[...] = hidden[:, 2 * H:]
        n += np.multiply(r, b_n, out=hidden[:, 2 * H:])
        np.tanh(n, out=n)
        h = np.subtract(hs[t], n, out=hs[t + 1])
        h *= z
        h += n
    return hs, (A, b_ns), (hs[-1],)


def gru_backward(dhs, hs, cache, W_hh):
    """With g = ∂L/∂hₜ and δn = g ⊙ (1 - z) ⊙ (1 - n²) the gradient at n's pre-activation:

        δaᵣ = δbᵣ = δn ⊙ bₙ ⊙ r(1 - r),  δa_z = δb_z = g ⊙ (hₜ₋₁ - n) ⊙ z(1 - z),
        δaₙ = δn,  δbₙ = δn ⊙ r,          ∂L/∂hₜ₋₁ = (layer above) + g ⊙ z + δb W_hh
    """
    gates, b_ns = cache
    H = dhs.shape[-1]
    delta_a = np.empty_like(gates)
    delta_b = np.empty_like(gates)
    dh = np.zeros_like(dhs[0])
    work = np.empty_like(dh)
    back = np.empty_like(dh)
    one = constant(1, dhs)
    for t in reversed(range(len(dhs))):
        dh += dhs[t]
        a, da, db = gates[t], delta_a[t], delta_b[t]
        r, z, n = a[:, :H], a[:, H:2 * H], a[:, 2 * H:]
        dr, dz, dn = da[:, :H], da[:, H:2 * H], da[:, 2 * H:]
        np.multiply(n, n, out=dn)
        np.subtract(one, dn, out=dn)
        np.subtract(one, z, out=work)
        dn *= work
        dn *= dh
        work *= z
        np.subtract(hs[t], n, out=dz)
        dz *= work
        dz *= dh
        np.subtract(one, r, out=dr)
        dr *= r
        dr *= b_ns[t]
        dr *= dn
        db[:, :2 * H] = da[:, :2 * H]
        np.multiply(dn, r, out=db[:, 2 * H:])
        dh *= z
        dh += np.matmul(db, W_hh, out=back)
    return delta_a, delta_b, (dh,)


FORWARD = {"rnn": rnn_forward, "lstm": lstm_forward, "gru": gru_forward}
BACKWARD = {"rnn": rnn_backward, "lstm": lstm_backward, "gru": gru_backward}


# ----------------------------------------------------------------------------- loss, clipping, Adam
def softmax_cross_entropy(logits, targets):
    """ℓ = mean over the N rows of -log softmax(z)ₜ, and ∂ℓ/∂z = (softmax(z) - onehot(t)) / N.

    Overwrites ``logits`` with the gradient.
    """
    rows = np.arange(len(targets))
    logits -= logits.max(axis=1, keepdims=True)
    picked = logits[rows, targets]
    np.exp(logits, out=logits)
    total = logits.sum(axis=1, keepdims=True)
    loss = float(np.mean(np.log(total[:, 0]) - picked))
    logits /= total
    logits[rows, targets] -= 1
    logits /= len(targets)
    return loss, logits


def add_rows(ids, rows, n):
    """The (n, D) array whose row i sums the ``rows`` whose id is i: the embedding's gradient.

    Sorted by id, each run of equal ids is summed by one np.add.reduceat (np.add.at, one row
    at a time, is several times slower).
    """
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    total = np.zeros((n, rows.shape[1]), rows.dtype)
    total[ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return total


def clip_grad_norm(grads, max_norm):
    """Scale every gradient by max_norm / (‖g‖ + 1e-6) when the total 2-norm ‖g‖ is larger."""
    total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g *= scale
    return total


class Adam:
    """PyTorch's Adam: m ← β₁m + (1 - β₁)g, v ← β₂v + (1 - β₂)g²,
    θ ← θ - lr/(1 - β₁ᵗ) · m / (√v / √(1 - β₂ᵗ) + eps). Uses each gradient as scratch space."""

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m, self.v = {}, {}  # made at the first step, as PyTorch and tensorgrad do
        self.t = 0

    def step(self, params, grads):
        beta1, beta2 = self.betas
        if not self.m:
            self.m = {name: np.zeros_like(p) for name, p in params.items()}
            self.v = {name: np.zeros_like(p) for name, p in params.items()}
        self.t += 1
        step_size = self.lr / (1 - beta1 ** self.t)
        root_bias2 = math.sqrt(1 - beta2 ** self.t)
        for name, p in params.items():
            g, m, v = grads[name], self.m[name], self.v[name]
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            g *= g
            g *= 1 - beta2
            v += g
            denom = np.sqrt(v, out=g)
            denom /= root_bias2
            denom += self.eps
            np.divide(m, denom, out=denom)
            denom *= step_size
            p -= denom


# ----------------------------------------------------------------------------- the model
class CharLM:
    """The language model on a state dict ``params`` (copied) of a one-layer ``nn.CharRNN``.

    ``mode`` is "rnn" (tanh), "lstm" or "gru". ``step(ids, targets)`` is one training step;
    ``forward(ids, state)`` runs the model without keeping anything for backward.
    """

    def __init__(self, params, mode, lr=1e-3):
        self.mode = mode
        self.params = {name: np.array(value) for name, value in params.items()}
        self.optimizer = Adam(lr)
        self.hidden_size = self.params["rnn.weight_hh_l0"].shape[1]

    def initial_state(self, batch):
        h = np.zeros((batch, self.hidden_size), self.params["rnn.weight_hh_l0"].dtype)
        return (h, h) if self.mode == "lstm" else (h,)

    def _recurrent(self, ids, state):
        """The embeddings x, the input side A, and the recurrent layer's forward over ``ids``."""
        p = self.params
        T, B = ids.shape
        x = np.take(p["embedding.weight"], ids.reshape(-1), axis=0)
        A = x @ p["rnn.weight_ih_l0"].T
        A += p["rnn.bias_ih_l0"]
        A = A.reshape(T, B, -1)
        state = self.initial_state(B) if state is None else state
        W_hh = p["rnn.weight_hh_l0"]
        W_hh_t = np.ascontiguousarray(W_hh.T) if T >= 4 and B >= 4 else W_hh.T  # the copy pays off
        return x, A, FORWARD[self.mode](A, W_hh_t, p["rnn.bias_hh_l0"], state)

    def forward(self, ids, state=None):
        """Logits (T, B, V) for ``ids`` (T, B) and the state after them."""
        p = self.params
        _, _, (hs, _, final) = self._recurrent(ids, state)
        logits = hs[1:].reshape(-1, hs.shape[-1]) @ p["head.weight"].T
        logits += p["head.bias"]
        return logits.reshape(ids.shape + (-1,)), final

    def loss_and_grads(self, ids, targets):
        """The mean cross-entropy of predicting ``targets`` (T, B) from ``ids``, and its gradients."""
        p = self.params
        T, B = ids.shape
        x, A, (hs, cache, _) = self._recurrent(ids, None)
        outputs = hs[1:].reshape(T * B, -1)
        logits = outputs @ p["head.weight"].T
        logits += p["head.bias"]
        loss, d_logits = softmax_cross_entropy(logits, targets.reshape(-1))

        grads = {"head.weight": d_logits.T @ outputs, "head.bias": d_logits.sum(axis=0)}
        d_outputs = (d_logits @ p["head.weight"]).reshape(T, B, -1)
        delta_a, delta_b, _ = BACKWARD[self.mode](d_outputs, hs, cache, p["rnn.weight_hh_l0"])
        delta_a, delta_b = delta_a.reshape(T * B, -1), delta_b.reshape(T * B, -1)
        grads["rnn.weight_hh_l0"] = delta_b.T @ hs[:-1].reshape(T * B, -1)
        grads["rnn.bias_hh_l0"] = delta_b.sum(axis=0)
        grads["rnn.weight_ih_l0"] = delta_a.T @ x
        # RNN and LSTM add both biases to the same gates: one sum serves both.
        same = delta_a is delta_b
        grads["rnn.bias_ih_l0"] = grads["rnn.bias_hh_l0"].copy() if same else delta_a.sum(axis=0)
        grads["embedding.weight"] = add_rows(ids.reshape(-1), delta_a @ p["rnn.weight_ih_l0"],
                                             len(p["embedding.weight"]))
        return loss, grads

    def step(self, ids, targets, max_norm=5.0):
        """One training step: loss, gradients, clipping to ``max_norm``, Adam. Returns the loss."""
        loss, grads = self.loss_and_grads(ids, targets)
        clip_grad_norm(grads.values(), max_norm)
        self.optimizer.step(self.params, grads)
        return loss
