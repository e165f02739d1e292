"""The primitive differentiable Functions, imported as ``import tensorgrad.functions as F``."""

from tensorgrad.functions.arithmetic import (
    AsType, Add, Div, Linear, MatMul, Mul, Neg, Pow, Sub,
    add, astype, div, linear, matmul, mul, neg, pow, sub,
)
from tensorgrad.functions.elementwise import (
    Clip, Exp, Log, Mask, Maximum, ReLU, Sigmoid, Sqrt, Tanh, Where,
    clip, exp, log, maximum, relu, sigmoid, sqrt, tanh, where,
)
from tensorgrad.functions.neural import Embedding, EmbeddingGrad, dropout, embedding
from tensorgrad.functions.reductions import (
    LogSoftmax, LogSumExp, Max, Mean, Softmax, Sum,
    log_softmax, logsumexp, max, mean, softmax, sum,
)
from tensorgrad.functions.shape import (
    BroadcastTo, Concat, GetItem, GetItemGrad, Reshape, Split, Stack, SumTo, Transpose,
    broadcast_to, concat, getitem, reshape, split, stack, sum_to, transpose,
)

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "matmul", "linear", "astype",
    "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "clip", "maximum", "where",
    "sum", "mean", "max", "logsumexp", "softmax", "log_softmax",
    "reshape", "transpose", "broadcast_to", "sum_to", "getitem", "concat", "stack", "split",
    "embedding", "dropout",
    "Add", "Sub", "Mul", "Div", "Neg", "Pow", "MatMul", "Linear", "AsType",
    "Exp", "Log", "Sqrt", "Tanh", "Sigmoid", "ReLU", "Clip", "Maximum", "Where", "Mask",
    "Sum", "Mean", "Max", "LogSumExp", "Softmax", "LogSoftmax",
    "Reshape", "Transpose", "BroadcastTo", "SumTo", "GetItem", "GetItemGrad", "Concat",
    "Stack", "Split", "Embedding", "EmbeddingGrad",
]
