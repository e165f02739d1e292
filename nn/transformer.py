"""The Transformer encoder (PyTorch's ``nn.TransformerEncoderLayer`` and ``nn.TransformerEncoder``)."""

import copy

import tensorgrad as tg
import tensorgrad.functions as F
from nn.attention import MultiheadAttention
from nn.layers import Dropout, LayerNorm, Linear, ModuleList
from nn.module import Module
from tensorgrad import as_variable

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class TransformerEncoderLayer(Module):
    """Self-attention then a position-wise feed-forward network, each with a residual connection
    and layer normalisation, as in PyTorch. With x of shape (T, B, d_model) (or (B, T, d_model)
    with ``batch_first``):

        post-norm (default):  x = norm1(x + SA(x));  x = norm2(x + FF(x))
        norm_first=True:      x = x + SA(norm1(x));  x = x + FF(norm2(x))

    where SA is multi-head self-attention followed by dropout, and
    FF(x) = dropout(linear2(dropout(activation(linear1(x))))). ``src_mask`` and
    ``src_key_padding_mask`` are :class:`MultiheadAttention`'s ``attn_mask`` and
    ``key_padding_mask`` (boolean True = not allowed, or floating added to the scores);
    ``is_causal=True`` without ``src_mask`` applies the causal mask.

    Parameters carry PyTorch's names (``self_attn.in_proj_weight``, ``linear1.weight``,
    ``norm1.weight``, ...), so state dicts move both ways.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"TransformerEncoderLayer: activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {activation!r}")
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = activation

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        x = as_variable(src)
        if self.norm_first:
            with tg.scope("self_attn"):
                x = x + self._self_attention(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            with tg.scope("feed_forward"):
                x = x + self._feed_forward(self.norm2(x))
        else:
            with tg.scope("self_attn"):
                x = self.norm1(x + self._self_attention(x, src_mask, src_key_padding_mask, is_causal))
            with tg.scope("feed_forward"):
                x = self.norm2(x + self._feed_forward(x))
        return x

    def _self_attention(self, x, mask, key_padding_mask, is_causal):
        output, _ = self.self_attn(x, x, x, key_padding_mask=key_padding_mask, need_weights=False,
                                   attn_mask=mask, is_causal=is_causal)
        return self.dropout1(output)

    def _feed_forward(self, x):
        hidden = self.dropout(ACTIVATIONS[self.activation](self.linear1(x)))
        return self.dropout2(self.linear2(hidden))


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` applied in turn, then ``norm`` (if given).

    As in PyTorch, the copies start from the same weights as ``encoder_layer`` (deep
    copies), under the names ``layers.0.…``, ``layers.1.…``; ``norm`` is ``norm.…``.
    ``forward(src, mask=None, src_key_padding_mask=None, is_causal=False)`` passes the masks
    to every layer; each layer is drawn as one cluster (scope ``layers.i``).
    """

    def __init__(self, encoder_layer, num_layers, norm=None):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"TransformerEncoder: num_layers must be at least 1, got {num_layers}")
        self.layers = ModuleList(copy.deepcopy(encoder_layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=False):
        x = as_variable(src)
        for i, layer in enumerate(self.layers):
            with tg.scope(f"layers.{i}"):
                x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        if self.norm is not None:
            with tg.scope("norm"):
                x = self.norm(x)
        return x
