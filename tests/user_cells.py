"""A user's own recurrent cell, shared by the tests of nn.Recurrent and of its drawings."""

import numpy as np

import nn
import tensorgrad.functions as F


class MinimalGatedUnit(nn.Module):
    """The ten-line user cell: f = σ(W_f[x, h] + b_f), ĥ = tanh(W_h[x, f⊙h] + b_h), h' = (1-f)⊙h + f⊙ĥ."""

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.forget = nn.Linear(input_size + hidden_size, hidden_size)
        self.candidate = nn.Linear(input_size + hidden_size, hidden_size)

    def forward(self, x, h):
        h = np.zeros((x.shape[0], self.hidden_size), x.dtype) if h is None else h
        f = F.sigmoid(self.forget(F.concat([x, h], axis=1)))
        return (1 - f) * h + f * F.tanh(self.candidate(F.concat([x, f * h], axis=1)))
