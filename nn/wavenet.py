"""WaveNet: a stack of causal dilated convolutions, the dilation doubled at every layer.

From the notes: "the dilation rate is doubled for each layer; the lower layers may identify
short-term patterns, while the higher layers may identify long-term patterns; causal
padding: padding the layer's input with zeros in the front". Each layer is a residual block
with WaveNet's gated activation (van den Oord et al., 2016):

    z = tanh(W_f ∗ x) ⊙ σ(W_g ∗ x)          (∗ a causal convolution with dilation d)
    x ← x + W_r z,      skip += W_s z        (W_r, W_s 1×1 convolutions)

With kernel size k and dilations d₁, ..., d_n, one output sees the last
receptive_field = 1 + (k - 1)·Σᵢ dᵢ inputs (2ⁿ for k = 2 and dᵢ = 1, 2, 4, ..., 2ⁿ⁻¹).
"""

import numpy as np

import tensorgrad as tg
import tensorgrad.functions as F
from nn.conv import CausalConv1d, Conv1d
from nn.layers import Embedding
from nn.module import Module


class ResidualBlock(Module):
    """One WaveNet layer: (B, C, L) → (x + W_r z, W_s z) with z = tanh(W_f ∗ x) ⊙ σ(W_g ∗ x).

    W_f and W_g are the two halves of one causal convolution to 2C channels (one matmul).
    The last block of a stack feeds no further block: built with ``residual=False`` it has
    no W_r and returns None in place of x + W_r z.
    """

    def __init__(self, channels, skip_channels, kernel_size=2, dilation=1, residual=True):
        super().__init__()
        self.dilated = CausalConv1d(channels, 2 * channels, kernel_size, dilation=dilation)
        self.residual = Conv1d(channels, channels, 1) if residual else None
        self.skip = Conv1d(channels, skip_channels, 1)

    @property
    def receptive_field(self):
        return self.dilated.receptive_field

    def forward(self, x):
        filter_, gate = F.split(self.dilated(x), 2, axis=-2)
        z = F.tanh(filter_) * F.sigmoid(gate)
        return (x + self.residual(z) if self.residual is not None else None), self.skip(z)


class WaveNet(Module):
    """``num_layers`` residual blocks with dilations 1, 2, 4, ..., 2^(num_layers-1).

    ``forward(x)`` maps (B, channels, L) to the sum of the blocks' skip outputs,
    (B, skip_channels, L); the output at t depends on x[..., t - receptive_field + 1 .. t] only.
    """

    def __init__(self, channels, num_layers, kernel_size=2, skip_channels=None):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"WaveNet: num_layers must be at least 1, got {num_layers}")
        self.num_layers = num_layers
        skip_channels = channels if skip_channels is None else skip_channels
        for i in range(num_layers):
            self.add_module(str(i), ResidualBlock(channels, skip_channels, kernel_size, dilation=2 ** i,
                                                  residual=i < num_layers - 1))

    @property
    def receptive_field(self):
        """1 + Σ over layers of (receptive field of its dilated convolution - 1)."""
        return 1 + sum(block.receptive_field - 1 for block in self.children())

    def forward(self, x):
        skips = None
        for name, block in self.named_children():
            with tg.scope(f"wavenet.{name}"):
                x, skip = block(x)
                skips = skip if skips is None else skips + skip
        return skips

    def extra_repr(self):
        return f"receptive_field={self.receptive_field}"


class CharWaveNet(Module):
    """P(next character | the last ``receptive_field`` characters), one distribution per step.

    ids (T, B) → embeddings → WaveNet → ReLU → 1×1 conv → ReLU → 1×1 conv → logits (T, B, V),
    the same interface as :class:`nn.CharRNN`. A WaveNet has no recurrent state: the
    ``context`` it takes and returns is the last receptive_field - 1 input ids themselves,
    so that a window (or one sampled character) can be continued where the previous ended.
    """

    def __init__(self, vocab_size, hidden_size=128, num_layers=6, kernel_size=2):
        super().__init__()
        self.embedding = Embedding(vocab_size, hidden_size)
        self.wavenet = WaveNet(hidden_size, num_layers, kernel_size)
        self.hidden = Conv1d(hidden_size, hidden_size, 1)
        self.head = Conv1d(hidden_size, vocab_size, 1)

    @property
    def receptive_field(self):
        return self.wavenet.receptive_field

    def forward(self, ids, context=None):
        """Logits (T, B, V) for integer ``ids`` (T, B) following ``context`` (ids (≤ R-1, B) or None),
        and the context for what comes next."""
        ids = np.asarray(getattr(ids, "data", ids))
        if context is not None:
            ids_seen = np.concatenate([np.asarray(getattr(context, "data", context)), ids])
        else:
            ids_seen = ids
        x = self.embedding(ids_seen).transpose(1, 2, 0)  # (B, H, T'): time is the convolved axis
        features = self.wavenet(x)[..., ids_seen.shape[0] - ids.shape[0]:]
        with tg.scope("head"):
            logits = self.head(F.relu(self.hidden(F.relu(features))))
        kept = ids_seen[max(ids_seen.shape[0] - (self.receptive_field - 1), 0):]
        return logits.transpose(2, 0, 1), tg.Variable(kept, requires_grad=False)
