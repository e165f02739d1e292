"""`tensorgrad export`: a trained character model's weights as a .safetensors file for PyTorch.

The file holds the CharRNN's state dict under PyTorch's names (``embedding.weight``,
``rnn.weight_ih_l0``, ..., ``head.weight``, ``head.bias``), which an equivalent PyTorch
module (``torch.nn.Embedding``, then ``torch.nn.LSTM``/``GRU``/``RNN``, then
``torch.nn.Linear``, registered under those three names) loads with
``load_state_dict(safetensors.torch.load_file(path))``. The header's metadata carries what
rebuilds that module and its data: the training configuration (JSON), the vocabulary and
the step reached.
"""

import json

from nn.checkpoint import load
from nn.safetensors_io import save_file

METADATA_KEYS = ("tensorgrad.config", "tensorgrad.vocab", "tensorgrad.step")


def export_checkpoint(checkpoint, out):
    """Write the model weights of the train checkpoint ``checkpoint`` to ``out``; return their names."""
    saved = load(checkpoint)
    missing = [k for k in ("model", "config", "vocab", "step") if k not in saved]
    if missing:
        raise ValueError(f"{checkpoint} is not a tensorgrad train checkpoint (no {', '.join(missing)})")
    values = (json.dumps(saved["config"]), str(saved["vocab"]), str(int(saved["step"])))
    save_file(saved["model"], out, metadata=dict(zip(METADATA_KEYS, values, strict=True)))
    return list(saved["model"])
