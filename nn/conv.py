"""Convolution over time: ``Conv1d`` (PyTorch's) and ``CausalConv1d`` (zeros in front only)."""

import math

import tensorgrad.functions as F
from nn import init
from nn.module import Module, Parameter


class Conv1d(Module):
    """y[b, o, t] = bias[o] + Σ_c Σ_j weight[o, c, j] · x_pad[b, c, t·stride + j·dilation]

    on x of shape (B, in_channels, L) or unbatched (in_channels, L); ``F.conv1d`` explains the
    arguments. ``weight`` has shape (out_channels, in_channels/groups, kernel_size) and
    ``bias`` (out_channels,); both start from U(-1/√fan_in, 1/√fan_in) with
    fan_in = in_channels/groups · kernel_size, as in PyTorch (its kaiming_uniform with a = √5
    gives exactly that bound).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True):
        super().__init__()
        name = type(self).__name__
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) "
                             f"must both be divisible by groups ({groups})")
        if not (padding in ("valid", "same") or isinstance(padding, int) and padding >= 0):
            raise ValueError(f"{name}: padding must be an integer >= 0, 'valid' or 'same', got {padding!r}")
        if padding == "same" and stride != 1:
            raise ValueError(f"{name}: padding='same' is not supported for strided convolutions "
                             f"(stride={stride})")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.groups = dilation, groups
        fan_in = in_channels // groups * kernel_size
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        self.weight = Parameter(init.uniform((out_channels, in_channels // groups, kernel_size), bound))
        self.register_parameter("bias", Parameter(init.uniform((out_channels,), bound)) if bias else None)

    def output_length(self, length):
        """L_out = ⌊(L + 2·padding - dilation·(kernel_size - 1) - 1)/stride⌋ + 1."""
        span = self.dilation * (self.kernel_size - 1) + 1
        if self.padding == "same":
            return length
        padding = 0 if self.padding == "valid" else self.padding
        return (length + 2 * padding - span) // self.stride + 1

    def forward(self, x):
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        text += f", stride={self.stride}"
        for name, default in (("padding", 0), ("dilation", 1), ("groups", 1)):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)!r}"
        return text + ("" if self.bias is not None else ", bias=False")


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
