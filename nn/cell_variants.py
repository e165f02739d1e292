"""The recurrent cells' equations composed from primitive Functions, variants included.

The fused cells (``tensorgrad.functions.lstm_cell`` and its siblings) compute PyTorch's
standard equations in one node per step. The variants here are composed instead, from
primitive Functions, because they change the inside of a step:

- the peephole LSTM, whose gates see the cell state (Gers & Schmidhuber, 2000);
- the layer-normalised cells (Ba, Kiros & Hinton, 2016), which normalise each gate's input
  and hidden projections and the LSTM's cell state before its output tanh;
- the GRU with the reset gate applied before the hidden matmul (Cho et al., 2014).

Each step returns its gate activations as well as the next state, so that a layer asked
for every step's state (``return_all_states=True``) can hand them out as Variables.
"""

import tensorgrad.functions as F
from nn.layers import layer_norm

LSTM_GATES = ("i", "f", "g", "o")  # in the order of the gates' rows in the weights, as in PyTorch
GRU_GATES = ("r", "z", "n")
GATE_NONLINEARITIES = {"i": "sigmoid", "f": "sigmoid", "g": "tanh", "o": "sigmoid",
                       "r": "sigmoid", "z": "sigmoid", "n": "tanh"}


def lstm_step(input_gates, hidden_gates, c, peephole=None, cell_norm=None):
    """One LSTM step. With [zᵢ, z_f, z_g, z_o] = a + b (a, b: the input and hidden sides of
    the gates) and peephole weights w_ci, w_cf, w_co (left out when ``peephole`` is None),

        i = σ(zᵢ + w_ci ⊙ c),  f = σ(z_f + w_cf ⊙ c),  g = tanh(z_g)
        c' = f ⊙ c + i ⊙ g
        o = σ(z_o + w_co ⊙ c'),  h' = o ⊙ tanh(N(c'))

    where N is ``cell_norm`` (the identity when None). The output gate sees the new cell
    state c', the other two the old one. Returns ((h', c'), (i, f, g, o)).
    """
    z_i, z_f, z_g, z_o = F.split(input_gates + hidden_gates, 4, axis=-1)
    if peephole is not None:
        w_ci, w_cf, w_co = peephole
        z_i = z_i + w_ci * c
        z_f = z_f + w_cf * c
    i, f, g = F.sigmoid(z_i), F.sigmoid(z_f), F.tanh(z_g)
    c_next = f * c + i * g
    if peephole is not None:
        z_o = z_o + w_co * c_next
    o = F.sigmoid(z_o)
    h_next = o * F.tanh(c_next if cell_norm is None else cell_norm(c_next))
    _name_gates(LSTM_GATES, (i, f, g, o))
    return (h_next, c_next), (i, f, g, o)


def gru_step(input_gates, hidden_gates, h, hidden_n=None):
    """One GRU step, from the input side a = [aᵣ, a_z, aₙ] of the gates:

        r = σ(aᵣ + bᵣ),  z = σ(a_z + b_z),  h' = (1 - z) ⊙ n + z ⊙ h, with

        n = tanh(aₙ + r ⊙ bₙ)           reset after the matmul (PyTorch's form), or
        n = tanh(aₙ + hidden_n(r ⊙ h))   reset before it, when ``hidden_n`` is given.

    ``hidden_gates`` is the hidden side [bᵣ, b_z, bₙ] = h Wₕₕᵀ + bₕₕ, or just [bᵣ, b_z] with
    ``hidden_n``, which maps r ⊙ h to its n-part (r ⊙ h) Wₕₙᵀ + bₕₙ. Returns ((h',), (r, z, n)).
    """
    a_r, a_z, a_n = F.split(input_gates, 3, axis=-1)
    if hidden_n is None:
        b_r, b_z, b_n = F.split(hidden_gates, 3, axis=-1)
    else:
        b_r, b_z = F.split(hidden_gates, 2, axis=-1)
    r = F.sigmoid(a_r + b_r)
    z = F.sigmoid(a_z + b_z)
    n = F.tanh(a_n + (r * b_n if hidden_n is None else hidden_n(r * h)))
    _name_gates(GRU_GATES, (r, z, n))
    return ((1 - z) * n + z * h,), (r, z, n)


def _name_gates(names, gates):
    """Name the gate Variables (i, f, g, o or r, z, n), as drawings of the graph label them."""
    for name, gate in zip(names, gates, strict=True):
        gate.name = name


def gate_norm(z, gates, eps=1e-5):
    """Each of the ``gates`` equal slices of z (..., gates·H) normalised on its own to zero
    mean and unit variance (layer normalisation without its affine part)."""
    hidden = z.shape[-1] // gates
    split_gates = z.reshape(z.shape[:-1] + (gates, hidden))
    return layer_norm(split_gates, (hidden,), eps=eps).reshape(z.shape)
