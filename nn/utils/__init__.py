"""Utilities for recurrent networks, as ``torch.nn.utils``: ``nn.utils.rnn``, for batches of
sequences of different lengths."""

from nn.utils import rnn

__all__ = ["rnn"]
