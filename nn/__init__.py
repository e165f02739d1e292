"""nn: networks built from tensorgrad Functions, with PyTorch's names, shapes and semantics."""

from nn.module import Module, Parameter

__all__ = ["Module", "Parameter"]
