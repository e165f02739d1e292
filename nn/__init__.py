"""nn: networks built from tensorgrad Functions, with PyTorch's names, shapes and semantics."""

from nn import data, diagnostics, generate, optim, tasks, utils
from nn.attention import BahdanauAttention, MultiheadAttention
from nn.captioning import Captioner
from nn.cells import GRUCell, LSTMCell, RNNCell
from nn.char_transformer import CharTransformer
from nn.charlm import CharRNN, sample_text
from nn.checkpoint import load, save
from nn.clip import clip_grad_norm, clip_grad_value
from nn.conv import CausalConv1d, Conv1d
from nn.generic_recurrent import Recurrent
from nn.layers import Dropout, Embedding, LayerNorm, Linear, ModuleList, Sequential
from nn.losses import MSELoss, SoftmaxCrossEntropy, mse_loss, softmax_cross_entropy
from nn.module import Module, Parameter
from nn.positional import (
    LearnedPositionalEncoding,
    SinusoidalPositionalEncoding,
    generate_square_subsequent_mask,
)
from nn.recurrent import GRU, LSTM, RNN
from nn.seq2seq import Seq2Seq
from nn.tbptt import TBPTT
from nn.threads import set_num_threads
from nn.transformer import TransformerEncoder, TransformerEncoderLayer
from nn.wavenet import CharWaveNet, WaveNet

__all__ = [
    "Module", "Parameter", "Linear", "Embedding", "Dropout", "LayerNorm", "Sequential", "ModuleList",
    "softmax_cross_entropy", "mse_loss", "SoftmaxCrossEntropy", "MSELoss", "clip_grad_norm",
    "clip_grad_value", "save", "load", "optim", "data", "diagnostics", "generate", "tasks",
    "RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU", "CharRNN", "sample_text", "set_num_threads",
    "TBPTT", "Recurrent", "utils",
    "MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder", "BahdanauAttention", "Seq2Seq",
    "CharTransformer", "SinusoidalPositionalEncoding", "LearnedPositionalEncoding",
    "generate_square_subsequent_mask",
    "Conv1d", "CausalConv1d", "WaveNet", "CharWaveNet", "Captioner",
]
