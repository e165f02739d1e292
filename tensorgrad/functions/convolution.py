"""Convolution over time: constant padding and the 1-D convolution, as one matmul over windows.

A 1-D convolution slides a kernel along one axis (time) and takes a dot product at every
position (PyTorch's ``conv1d`` is, like all deep-learning "convolutions", a cross-correlation):

    y[b, o, t] = bias[o] + Σ_c Σ_j  W[o, c, j] · x_pad[b, c, t·stride + j·dilation]

Unfolding the windows of x_pad into rows, one row of C·k values per output position, turns
the double sum into one matrix product, ``rows @ Wᵀ``; its backward is one matrix product
per gradient, and the gradient of the rows is folded back (scatter-added) onto the input.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tensorgrad.function import Function, ShapeError
from tensorgrad.functions.arithmetic import matmul
from tensorgrad.variable import as_variable


class Pad(Function):
    """y = x with ``value`` added before and after the last axes (PyTorch's pad order).

    ``pad = (left_last, right_last, left_second_last, right_second_last, ...)``; a negative
    amount crops instead. ∂L/∂x = pad(∂L/∂y, -pad): the padding cropped, a crop padded with 0.
    """

    op = "pad"

    def __init__(self, pad, value=0.0):
        self.pad = tuple(pad)
        self.value = value

    def forward(self, x):
        crop, widths = [slice(None)] * x.ndim, [(0, 0)] * x.ndim
        for i in range(len(self.pad) // 2):
            axis = x.ndim - 1 - i
            left, right = self.pad[2 * i], self.pad[2 * i + 1]
            crop[axis] = slice(max(-left, 0), x.shape[axis] - max(-right, 0))
            widths[axis] = (max(left, 0), max(right, 0))
        return np.pad(x[tuple(crop)], widths, constant_values=self.value)

    def backward(self, gy):
        return Pad(tuple(-p for p in self.pad))(gy)


class Unfold(Function):
    """The windows of a (B, C, L) input as a read-only view of shape (B, L_out, C, k):

        y[b, t, c, j] = x[b, c, t·stride + j·dilation],   L_out = ⌊(L - dilation·(k-1) - 1)/stride⌋ + 1

    ∂L/∂x is :class:`Fold` of ∂L/∂y: each window element's gradient added back where it was read.
    """

    op = "unfold"

    def __init__(self, kernel_size, stride=1, dilation=1):
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation

    def forward(self, x):
        span = self.dilation * (self.kernel_size - 1) + 1
        windows = sliding_window_view(x, span, axis=-1)[:, :, ::self.stride, ::self.dilation]
        return windows.transpose(0, 2, 1, 3)

    def backward(self, gy):
        x = self.inputs[0]
        return Fold(x.shape[-1], self.kernel_size, self.stride, self.dilation)(gy)


class Fold(Function):
    """The adjoint of :class:`Unfold`: windows (B, L_out, C, k) summed onto a (B, C, ``length``) array,

        y[b, c, t·stride + j·dilation] += x[b, t, c, j]   (a col2im add, one strided slice per j)

    Its backward is :class:`Unfold` of the gradient.
    """

    op = "fold"

    def __init__(self, length, kernel_size, stride=1, dilation=1):
        self.length = length
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation

    def forward(self, x):
        batch, steps, channels, k = x.shape
        y = np.zeros((batch, channels, self.length), dtype=x.dtype)
        last = self.stride * (steps - 1) + 1
        for j in range(k):
            start = j * self.dilation
            y[:, :, start:start + last:self.stride] += x[:, :, :, j].transpose(0, 2, 1)
        return y

    def backward(self, gy):
        return Unfold(self.kernel_size, self.stride, self.dilation)(gy)


def pad(x, pad, value=0.0):
    """``x`` padded with ``value`` as ``torch.nn.functional.pad(x, pad, mode="constant")``:
    ``pad`` holds (before, after) pairs, for the last axis first; negative amounts crop."""
    x = as_variable(x)
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ShapeError(f"pad: padding {pad} must hold one (before, after) pair per padded axis, "
                         f"at most {x.ndim} pairs for an input of shape {x.shape}")
    for i in range(len(pad) // 2):
        axis = x.ndim - 1 - i
        if x.shape[axis] + pad[2 * i] + pad[2 * i + 1] < 0:
            raise ShapeError(f"pad: padding {pad} crops axis {axis} of an input of shape {x.shape} "
                             f"below zero length")
    if not any(pad):
        return x
    return Pad(pad, value)(x)


def conv1d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """The 1-D convolution of ``torch.nn.functional.conv1d``.

    ``x`` (B, C_in, L) or unbatched (C_in, L); ``weight`` (C_out, C_in/groups, k); ``bias``
    (C_out,) or None. ``padding`` is a number of zeros on each side, ``'valid'`` (none) or
    ``'same'`` (the output as long as the input; stride 1 only). Each group of C_in/groups
    input channels feeds its own C_out/groups output channels. Returns (B, C_out, L_out) or
    (C_out, L_out), with L_out = ⌊(L + 2·padding - dilation·(k-1) - 1)/stride⌋ + 1.
    """
    x, weight = as_variable(x), as_variable(weight)
    _check_conv1d(x, weight, bias, stride, dilation, groups)
    left, right = conv1d_padding(padding, weight.shape[-1], stride, dilation)
    span = dilation * (weight.shape[-1] - 1) + 1
    length = x.shape[-1]
    if length + left + right < span:
        raise ShapeError(f"conv1d: padded input length {length + left + right} (length {length} + padding "
                         f"{left + right}) is shorter than the kernel's span {span} (kernel size "
                         f"{weight.shape[-1]}, dilation {dilation})")
    return _convolve(x, weight, bias, stride, (left, right), dilation, groups)


def conv1d_padding(padding, kernel_size, stride=1, dilation=1, owner="conv1d"):
    """conv1d's ``padding`` (an int, ``'valid'`` or ``'same'``) as (before, after) amounts, checked.

    'same' pads dilation·(k-1) in all, the odd one after, as PyTorch does; ``owner`` names the
    caller in the error.
    """
    if padding == "valid":
        return 0, 0
    if padding == "same":
        if stride != 1:
            raise ValueError(f"{owner}: padding='same' is not supported for strided convolutions "
                             f"(stride={stride})")
        total = dilation * (kernel_size - 1)
        return total // 2, total - total // 2
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool) and padding >= 0:
        return int(padding), int(padding)
    raise ValueError(f"{owner}: padding must be an integer >= 0, 'valid' or 'same', got {padding!r}")


def causal_conv1d(x, weight, bias=None, dilation=1, groups=1):
    """conv1d of ``x`` padded with dilation·(k-1) zeros in front only, so that the output is as
    long as the input and y[..., t] depends on x[..., t - dilation·(k-1)], ..., x[..., t] alone."""
    x, weight = as_variable(x), as_variable(weight)
    _check_conv1d(x, weight, bias, 1, dilation, groups)
    return _convolve(x, weight, bias, 1, (dilation * (weight.shape[-1] - 1), 0), dilation, groups)


def _convolve(x, weight, bias, stride, padding, dilation, groups):
    """conv1d on checked arguments, ``padding`` a (before, after) pair: pad, unfold, one matmul."""
    unbatched = x.ndim == 2
    if unbatched:
        x = x.reshape(1, *x.shape)
    batch = x.shape[0]
    out_channels, group_channels, k = weight.shape
    windows = Unfold(k, stride, dilation)(pad(x, padding))  # (B, L_out, C_in, k)
    steps = windows.shape[1]
    # One matrix product per group (a single one when groups == 1): (B·L_out, C_in/g·k) @ (C_in/g·k, C_out/g).
    rows = windows.reshape(batch * steps, groups, group_channels * k).transpose(1, 0, 2)
    kernels = weight.reshape(groups, out_channels // groups, group_channels * k).transpose(0, 2, 1)
    y = matmul(rows, kernels).transpose(1, 0, 2).reshape(batch, steps, out_channels).transpose(0, 2, 1)
    if bias is not None:
        y = y + as_variable(bias).reshape(out_channels, 1)
    return y.reshape(y.shape[1:]) if unbatched else y


def _check_conv1d(x, weight, bias, stride, dilation, groups):
    """A ShapeError or ValueError naming the numbers at fault, unless the arguments fit."""
    if x.ndim not in (2, 3):
        raise ShapeError(f"conv1d: expected a 2-d (C_in, L) or 3-d (B, C_in, L) input, got shape {x.shape}")
    if weight.ndim != 3:
        raise ShapeError(f"conv1d: expected a 3-d weight (C_out, C_in/groups, k), got shape {weight.shape}")
    for name, value, least in (("stride", stride, 1), ("dilation", dilation, 1), ("groups", groups, 1)):
        if int(value) != value or value < least:
            raise ValueError(f"conv1d: {name} must be an integer >= {least}, got {value}")
    out_channels, group_channels, _ = weight.shape
    channels = x.shape[-2]
    if out_channels % groups:
        raise ValueError(f"conv1d: the weight's {out_channels} output channels are not divisible by "
                         f"groups={groups}")
    if channels != group_channels * groups:
        raise ShapeError(f"conv1d: input of shape {x.shape} has {channels} channels, but the weight of "
                         f"shape {weight.shape} with groups={groups} expects {group_channels * groups}")
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ShapeError(f"conv1d: bias of shape {tuple(bias.shape)} does not fit {out_channels} "
                         f"output channels")
