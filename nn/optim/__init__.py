"""Optimizers with PyTorch's names, defaults and update rules: ``nn.optim.Adam(model.parameters())``."""

from nn.optim.adagrad import Adagrad
from nn.optim.adam import Adam
from nn.optim.optimizer import Optimizer
from nn.optim.rmsprop import RMSprop
from nn.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam"]
