"""The basic layers: Linear, Embedding, Dropout, LayerNorm (and its functional form) and Sequential."""

import math
from collections import OrderedDict

import numpy as np

import tensorgrad.functions as F
from nn import init
from nn.checks import check_dtype, check_size
from nn.module import Module, Parameter
from tensorgrad import ShapeError, as_variable


class Linear(Module):
    """y = x Wᵀ + b, for x of shape (..., in_features) and y of shape (..., out_features).

    ``weight`` has shape (out_features, in_features) and ``bias`` (out_features,); both
    start from U(-1/√in_features, 1/√in_features), as in PyTorch.
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        check_size("Linear", "in_features", in_features, minimum=0)
        check_size("Linear", "out_features", out_features, minimum=0)
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(np.empty((out_features, in_features), np.float32))
        self.register_parameter("bias", Parameter(np.empty(out_features, np.float32)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self):
        """Draw the weight and bias again from U(-1/√in_features, 1/√in_features)."""
        bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
        for param in (self.weight, self.bias):
            if param is not None:
                param.data = init.uniform(param.shape, bound, param.dtype)

    def forward(self, x):
        x = as_variable(x)
        check_dtype("Linear", "input", x, self.weight.dtype)  # as PyTorch: no silent promotion to float64
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Embedding(Module):
    """A lookup table: ``forward(ids)`` returns the rows ``weight[ids]``, of shape ids.shape + (dim,).

    ``weight`` (num_embeddings, embedding_dim) starts from N(0, 1). The row ``padding_idx``
    (if given; negative counts from the end) starts at zero and never gets a gradient, so
    it stays the embedding of padding.
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None):
        super().__init__()
        check_size("Embedding", "num_embeddings", num_embeddings)
        check_size("Embedding", "embedding_dim", embedding_dim, minimum=0)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise IndexError(f"Embedding: padding_idx {padding_idx} is out of range for "
                                 f"{num_embeddings} embeddings")
            padding_idx %= num_embeddings
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.weight = Parameter(np.empty((num_embeddings, embedding_dim), np.float32))
        self.reset_parameters()

    def reset_parameters(self):
        """Draw the table again from N(0, 1), with the padding row at zero."""
        weight = init.normal(self.weight.shape, dtype=self.weight.dtype)
        if self.padding_idx is not None:
            weight[self.padding_idx] = 0
        self.weight.data = weight

    def forward(self, ids):
        return F.embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self):
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        return text if self.padding_idx is None else f"{text}, padding_idx={self.padding_idx}"


class Dropout(Module):
    """In training, zero each element with probability ``p`` and scale the rest by 1/(1-p).

    In evaluation mode (``.eval()``) it is the identity.
    """

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x):
        return F.dropout(as_variable(x), self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class LayerNorm(Module):
    """Normalise over the last axes, those of ``normalized_shape``:

        y = (x - E[x]) / √(Var[x] + eps) ⊙ weight + bias

    with the mean and the (biased) variance taken over those axes. ``weight`` starts at
    ones and ``bias`` at zeros; ``elementwise_affine=False`` leaves both out, ``bias=False``
    only the bias.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        if isinstance(normalized_shape, int | np.integer):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(n) for n in normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=np.float32))
            self.register_parameter(
                "bias", Parameter(np.zeros(self.normalized_shape, dtype=np.float32)) if bias else None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self):
        """Set the weight to ones and the bias to zeros again."""
        for param, value in ((self.weight, 1), (self.bias, 0)):
            if param is not None:
                param.data = np.full(param.shape, value, param.dtype)

    def forward(self, x):
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps, owner="LayerNorm")

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, *, owner="layer_norm"):
    """y = (x - E[x]) / √(Var[x] + eps) ⊙ weight + bias over the trailing axes ``normalized_shape``.

    The functional form of :class:`LayerNorm` (``torch.nn.functional.layer_norm``): the mean
    and the (biased) variance are taken over those axes; ``weight`` and ``bias`` (None to
    leave them out) have the shape ``normalized_shape``. ``owner`` names the caller in errors.
    """
    x = as_variable(x)
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if x.ndim < k or x.shape[x.ndim - k:] != normalized_shape:
        raise ShapeError(f"{owner}: input of shape {x.shape} does not end with the normalized "
                         f"shape {normalized_shape}")
    axes = tuple(range(x.ndim - k, x.ndim))
    centred = x - x.mean(axis=axes, keepdims=True)
    variance = (centred * centred).mean(axis=axes, keepdims=True)
    y = centred / F.sqrt(variance + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


class _Numbered(Module):
    """Children named "0", "1", ...: ``len``, iteration, indexing (a slice gives the same
    kind of container) and ``append``; what :class:`Sequential` and :class:`ModuleList` share."""

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return self._of(items[index])
        if not -len(items) <= index < len(items):
            raise IndexError(f"{type(self).__name__}: index {index} is out of range for {len(items)} modules")
        return items[index][1]


class Sequential(_Numbered):
    """Modules applied one after the other: ``Sequential(a, b)(x) == b(a(x))``.

    The children are named "0", "1", ... (or by the keys of one OrderedDict argument), so
    parameters get PyTorch's names such as ``"0.weight"``. Supports ``len``, iteration,
    indexing (a slice gives a Sequential) and ``append``.
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for module in modules:
                self.append(module)

    @staticmethod
    def _of(items):
        return Sequential(OrderedDict(items))

    def forward(self, x):
        for module in self:
            x = module(x)
        return x


class ModuleList(_Numbered):
    """Modules held in a list, as PyTorch's: registered (their parameters are the owner's, named
    ``"0.weight"``, ...), not called in turn — the owner's ``forward`` uses them. Its repr folds
    a run of identical children into one line, ``(0-5): 6 x Layer(...)``, as PyTorch's does."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    @staticmethod
    def _of(items):
        return ModuleList(module for _, module in items)

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def __repr__(self):
        runs = []  # [first index, last index, repr] of each run of equal reprs
        for i, child in enumerate(self):
            text = repr(child)
            if runs and runs[-1][2] == text:
                runs[-1][1] = i
            else:
                runs.append([i, i, text])
        if not runs:
            return "ModuleList()"
        lines = [f"({first}): {text}" if first == last else f"({first}-{last}): {last - first + 1} x {text}"
                 for first, last, text in runs]
        return "ModuleList(\n  " + "\n  ".join(line.replace("\n", "\n  ") for line in lines) + "\n)"
