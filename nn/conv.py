"""Convolution over time: ``Conv1d`` (PyTorch's) and ``CausalConv1d`` (zeros in front only)."""

import math

import numpy as np

import tensorgrad.functions as F
from nn import init
from nn.module import Module, Parameter

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class Conv1d(Module):
    """y[b, o, t] = bias[o] + Σ_c Σ_j weight[o, c, j] · x_pad[b, c, t·stride + j·dilation]

    on x of shape (B, in_channels, L) or unbatched (in_channels, L); ``F.conv1d`` explains the
    arguments. ``weight`` has shape (out_channels, in_channels/groups, kernel_size) and
    ``bias`` (out_channels,); both start from U(-1/√fan_in, 1/√fan_in) with
    fan_in = in_channels/groups · kernel_size, as in PyTorch (its kaiming_uniform with a = √5
    gives exactly that bound).

    ``padding_mode`` is PyTorch's: ``'zeros'``, or ``'reflect'`` (x₂ x₁ | x₀ x₁ ...),
    ``'replicate'`` (x₀ x₀ | x₀ x₁ ...) or ``'circular'`` (x_{L-2} x_{L-1} | x₀ x₁ ...), the
    padded input gathered by index so that its gradient flows back to the positions it copies.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros"):
        super().__init__()
        name = type(self).__name__
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must both be divisible by groups ({groups})")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")
        self.padding_amounts = F.conv1d_padding(padding, kernel_size, stride, dilation, owner=name)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.groups, self.padding_mode = dilation, groups, padding_mode
        fan_in = in_channels // groups * kernel_size
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        self.weight = Parameter(init.uniform((out_channels, in_channels // groups, kernel_size), bound))
        self.register_parameter("bias", Parameter(init.uniform((out_channels,), bound)) if bias else None)

    def output_length(self, length):
        """L_out = ⌊(L + 2·padding - dilation·(kernel_size - 1) - 1)/stride⌋ + 1."""
        span = self.dilation * (self.kernel_size - 1) + 1
        return (length + sum(self.padding_amounts) - span) // self.stride + 1

    def forward(self, x):
        if self.padding_mode == "zeros":
            return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        x = F.getitem(x, (Ellipsis, padded_positions(x.shape[-1], *self.padding_amounts, self.padding_mode)))
        return F.conv1d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        text += f", stride={self.stride}"
        for name, default in (("padding", 0), ("dilation", 1), ("groups", 1), ("padding_mode", "zeros")):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)!r}"
        return text + ("" if self.bias is not None else ", bias=False")


def padded_positions(length, before, after, mode):
    """The input position that each position of the padded input copies, for ``mode`` 'reflect',
    'replicate' or 'circular' (as PyTorch pads), checked against the input ``length``."""
    if mode == "reflect" and max(before, after) >= length:
        raise ValueError(f"Conv1d: reflect padding of {max(before, after)} must be less than the input "
                         f"length {length}")
    if mode == "circular" and max(before, after) > length:
        raise ValueError(f"Conv1d: circular padding of {max(before, after)} must not exceed the input "
                         f"length {length}")
    p = np.arange(-before, length + after)
    if mode == "reflect":
        return np.where(p < 0, -p, np.where(p >= length, 2 * (length - 1) - p, p))
    if mode == "replicate":
        return np.clip(p, 0, length - 1)
    return p % length


class CausalConv1d(Conv1d):
    """A convolution whose output at t sees only x[t - receptive_field + 1], ..., x[t]:

        y = conv1d(pad(x, (dilation·(kernel_size - 1), 0)), weight, bias, dilation=dilation)
          = F.causal_conv1d(x, weight, bias, dilation)

    "Causal padding: padding the layer's input with zeros in the front" (the notes, on
    WaveNet), so the output is as long as the input and never looks ahead.
    """

    def __init__(self, in_channels, out_channels, kernel_size, dilation=1, groups=1, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation, groups=groups, bias=bias)

    @property
    def receptive_field(self):
        """How many steps of input reach one output: dilation·(kernel_size - 1) + 1."""
        return self.dilation * (self.kernel_size - 1) + 1

    def output_length(self, length):
        return length

    def forward(self, x):
        return F.causal_conv1d(x, self.weight, self.bias, dilation=self.dilation, groups=self.groups)

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        text += f", dilation={self.dilation}"
        text += "" if self.groups == 1 else f", groups={self.groups}"
        text += "" if self.bias is not None else ", bias=False"
        return text + f", receptive_field={self.receptive_field}"
