"""Multi-head attention (PyTorch's ``nn.MultiheadAttention``) and additive (Bahdanau) attention."""

import math

import numpy as np

import tensorgrad.functions as F
from nn import init
from nn.layers import Linear
from nn.module import Module, Parameter
from tensorgrad import ShapeError, as_variable
from tensorgrad.functions.attention import attention, attention_mask, mask_input
from tensorgrad.variable import data_of


def _each_once(function, arrays):
    """``function`` of each of ``arrays``, once per distinct object: one input given as query, key
    and value (self-attention) stays one Variable, so that it takes the one-matmul in-projection
    whether the caller passed an array, a Variable, time-major or batch-first."""
    results = {}
    for a in arrays:
        if id(a) not in results:
            results[id(a)] = function(a)
    return tuple(results[id(a)] for a in arrays)


class MultiheadAttention(Module):
    """Attention with ``num_heads`` heads of size d = embed_dim / num_heads, as in PyTorch:

        Qₕ = q W_qₕᵀ + b_qₕ,  Kₕ = k W_kₕᵀ + b_kₕ,  Vₕ = v W_vₕᵀ + b_vₕ
        headₕ = softmax(Qₕ Kₕᵀ / √d + M) Vₕ
        output = concat(head₁, ..., head_H) W_oᵀ + b_o

    Parameters: ``in_proj_weight`` (3·embed_dim, embed_dim), the rows of W_q, W_k and W_v
    one after the other (Xavier-uniform), ``in_proj_bias`` (3·embed_dim,) (zeros) and
    ``out_proj`` (a Linear with zero bias). Inputs are (L, B, E), or (B, L, E) with
    ``batch_first``, or unbatched (L, E).

    Masks follow PyTorch's module convention, the opposite of
    :func:`F.scaled_dot_product_attention`'s for booleans: a boolean ``attn_mask``
    ((L, S) or (B·num_heads, L, S)) or ``key_padding_mask`` ((B, S)) is True where
    attention is NOT allowed; a floating one is added to the scores. ``is_causal=True``
    without an ``attn_mask`` applies the causal mask (query i sees keys 0..i); with one, as
    in PyTorch, it is only a hint and the given mask is used. A query left with no key to
    attend to is an error (PyTorch gives NaN there).

    ``forward`` returns (output, weights): the weights (B, L, S) averaged over the heads,
    or (B, num_heads, L, S) with ``average_attn_weights=False``, or None without
    ``need_weights``. The weights returned are those after dropout, as PyTorch's.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False):
        super().__init__()
        if embed_dim < 1 or num_heads < 1 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim={embed_dim} must be a positive multiple "
                             f"of num_heads={num_heads}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1], got {dropout}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout, self.batch_first = dropout, batch_first
        self.in_proj_weight = Parameter(init.uniform((3 * embed_dim, embed_dim),
                                                     math.sqrt(6 / (4 * embed_dim))))
        self.register_parameter(
            "in_proj_bias", Parameter(np.zeros(3 * embed_dim, dtype=np.float32)) if bias else None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias)
        if bias:
            self.out_proj.bias.data[...] = 0

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        query, key, value = _each_once(as_variable, (query, key, value))
        unbatched = query.ndim == 2
        self._check_inputs(query, key, value, unbatched)
        if unbatched:  # as one batch of one
            query, key, value = _each_once(lambda a: a.reshape(a.shape[0], 1, a.shape[1]),
                                           (query, key, value))
        elif self.batch_first:
            query, key, value = _each_once(lambda a: a.transpose(1, 0, 2), (query, key, value))
        (L, B, E), S = query.shape, key.shape[0]
        if is_causal and attn_mask is None:
            attn_mask = ~np.tril(np.ones((L, S), dtype=bool))
        mask = self._masks(attn_mask, key_padding_mask, B, L, S, query.dtype, unbatched)

        H, d = self.num_heads, self.head_dim
        q, k, v = self._project(query, key, value)
        # (length, B, E) → (B, H, length, d): one batch of B·H heads for the matmuls.
        q, k, v = (a.reshape(a.shape[0], B, H, d).transpose(1, 2, 0, 3) for a in (q, k, v))
        heads, weights = attention(q, k, v, mask, self.dropout if self.training else 0.0)
        output = self.out_proj(heads.transpose(2, 0, 1, 3).reshape(L, B, E))
        if unbatched:
            output = output.reshape(L, E)
        elif self.batch_first:
            output = output.transpose(1, 0, 2)
        if not need_weights:
            return output, None
        if average_attn_weights:
            weights = weights.mean(axis=1)
        return output, (weights.reshape(weights.shape[1:]) if unbatched else weights)

    def _project(self, query, key, value):
        """q W_qᵀ + b_q, k W_kᵀ + b_k, v W_vᵀ + b_v with the packed in_proj_weight and bias."""
        if query is key and key is value:  # self-attention: one matmul for all three
            return F.split(F.linear(query, self.in_proj_weight, self.in_proj_bias), 3, axis=-1)
        weights = F.split(self.in_proj_weight, 3, axis=0)
        biases = (None,) * 3 if self.in_proj_bias is None else F.split(self.in_proj_bias, 3, axis=0)
        return tuple(F.linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))

    def _check_inputs(self, query, key, value, unbatched):
        op, E = "MultiheadAttention", self.embed_dim
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ShapeError(f"{op}: query, key and value must all be 3-d (batched) or 2-d (unbatched), "
                             f"got shapes {query.shape}, {key.shape} and {value.shape}")
        if query.shape[-1] != E or key.shape[-1] != E or value.shape[-1] != E:
            raise ShapeError(f"{op}: the last axis of query, key and value must be embed_dim={E}, got "
                             f"shapes {query.shape}, {key.shape} and {value.shape}")
        batch_axis = 0 if self.batch_first else 1
        if key.shape[:-1] != value.shape[:-1] or (
                not unbatched and query.shape[batch_axis] != key.shape[batch_axis]):
            layout = "(L, E)" if unbatched else "(B, L, E)" if self.batch_first else "(L, B, E)"
            raise ShapeError(f"{op}: query {query.shape}, key {key.shape} and value {value.shape} do not "
                             f"fit the layout {layout} with one batch size and key and value of one length")

    def _masks(self, attn_mask, key_padding_mask, B, L, S, dtype, unbatched):
        """attn_mask and key_padding_mask as :func:`attention`'s mask of shape (B, H, L, S), or None."""
        op, H = "MultiheadAttention", self.num_heads
        masks = []
        if attn_mask is not None:
            attn_mask = data_of(attn_mask)
            if attn_mask.shape not in ((L, S), (B * H, L, S)):
                raise ShapeError(f"{op}: attn_mask must have shape (L, S) = {(L, S)} or "
                                 f"(B·num_heads, L, S) = {(B * H, L, S)}, got {attn_mask.shape}")
            masks.append((mask_input(op, attn_mask), (B, H, L, S) if attn_mask.ndim == 3 else None, False))
        if key_padding_mask is not None:
            kpm = data_of(key_padding_mask)
            expected = (S,) if unbatched else (B, S)
            if kpm.shape != expected:
                raise ShapeError(f"{op}: key_padding_mask must have shape {expected} (batch, key length), "
                                 f"got {kpm.shape}")
            masks.append((mask_input(op, kpm, "key_padding_mask"), (B, 1, 1, S), False))
        if not masks:
            return None
        return attention_mask(masks, (B, H, L, S), dtype, dead_row_error=(
            f"{op}: the masks leave query {{query}} of sequence {{sequence}} no key to attend to "
            "(key_padding_mask hides a whole sequence, or attn_mask a whole row); PyTorch gives NaN there"))


class BahdanauAttention(Module):
    """Additive attention (Bahdanau, Cho & Bengio, 2015) of a decoder state over encoder outputs:

        e_j = vᵀ tanh(W s + U h_j + b)     for each encoder output h_j, j = 1..S
        α = softmax(e)                     the alignment, over the source positions
        c = Σ_j α_j h_j                    the context vector

    s (B, query_size) is the decoder's state, h (S, B, key_size) the encoder's outputs.
    ``W`` is ``query_proj`` (no bias), ``U`` and b ``key_proj``, v ``score`` (no bias), all
    initialised as Linear layers. U h does not depend on the decoder step: compute it once per
    source with :meth:`project_keys` and pass it to every step. ``key_padding_mask`` (B, S) is
    True at padding, which gets no weight.
    """

    def __init__(self, query_size, key_size, attention_size):
        super().__init__()
        self.query_proj = Linear(query_size, attention_size, bias=False)
        self.key_proj = Linear(key_size, attention_size)
        self.score = Linear(attention_size, 1, bias=False)

    def project_keys(self, keys):
        """U h + b for encoder outputs ``keys`` (S, B, key_size): (S, B, attention_size)."""
        return self.key_proj(keys)

    def forward(self, query, keys, projected_keys=None, key_padding_mask=None):
        """(context (B, key_size), weights (B, S)) for query (B, query_size) and keys (S, B, key_size)."""
        query, keys = as_variable(query), as_variable(keys)
        if query.ndim != 2 or keys.ndim != 3 or query.shape[0] != keys.shape[1]:
            raise ShapeError(f"BahdanauAttention: query must be (B, query_size) and keys (S, B, key_size), "
                             f"got {query.shape} and {keys.shape}")
        projected = self.project_keys(keys) if projected_keys is None else projected_keys
        energies = self.score(F.tanh(projected + self.query_proj(query))).reshape(keys.shape[:2])  # (S, B)
        energies = energies.T  # (B, S)
        if key_padding_mask is not None:
            mask = data_of(key_padding_mask)
            if mask.shape != energies.shape or mask.dtype != bool:
                raise ShapeError(f"BahdanauAttention: key_padding_mask must be boolean of shape (B, S) = "
                                 f"{energies.shape}, got {mask.dtype} {mask.shape}")
            hidden_all = "BahdanauAttention: key_padding_mask hides every position of sequence {sequence}"
            blocked, _, _ = attention_mask(  # checked by a Function: at every call of a tg.jit replay too
                [(mask_input("BahdanauAttention", mask, "key_padding_mask"), None, False)], energies.shape,
                energies.dtype, hidden_all)
            energies = F.where(blocked, np.asarray(-np.inf, dtype=energies.dtype), energies)
        weights = F.softmax(energies, axis=-1)
        context = (weights.T.reshape(keys.shape[0], keys.shape[1], 1) * keys).sum(axis=0)
        return context, weights
