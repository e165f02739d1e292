"""Continue training a tensorgrad character model in PyTorch, data-parallel over processes.

Prototype with tensorgrad, export the weights, and go on in PyTorch on as many processes
(and machines) as you have::

    tensorgrad train --steps 500
    tensorgrad export runs/charlm/checkpoint.npz --out model.safetensors
    torchrun --nproc_per_node 2 examples/continue_in_pytorch.py model.safetensors --steps 1000

On several machines, start the same command on each with torchrun's ``--nnodes``,
``--node_rank`` and ``--master_addr``. Every process runs the same model
(``DistributedDataParallel`` over the gloo backend, which works on CPUs) on its share of the
batch's rows; the gradients are averaged over the processes before each step, so a step is
the step one process would take on the whole batch: the same stream of windows, the same
loss, the same clipping as ``tensorgrad train``. What does not carry over: the Adam moments
(the optimizer starts afresh) and the hidden state carried between windows (the first window
starts from zeros).

The weights load as they are because tensorgrad's parameter names, shapes and gate order
are PyTorch's; the exported file's metadata holds the configuration, vocabulary and step.
The result, written by the first process, is a .safetensors file that ``nn.load`` reads
back into tensorgrad's ``nn.CharRNN``.
"""

import argparse
import json
import math

import numpy as np
import torch
import torch.distributed as dist
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel

RECURRENT_LAYERS = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}


class CharRNN(torch.nn.Module):
    """PyTorch's twin of tensorgrad's ``nn.CharRNN``, with the same parameter names:
    ids (T, B) → embedding (T, B, H) → recurrent layers → linear head → logits (T, B, V)."""

    def __init__(self, vocab_size, hidden_size, num_layers=1, model="lstm"):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab_size, hidden_size)
        self.rnn = RECURRENT_LAYERS[model](hidden_size, hidden_size, num_layers)
        self.head = torch.nn.Linear(hidden_size, vocab_size)

    def forward(self, ids, state=None):
        output, state = self.rnn(self.embedding(ids), state)
        return self.head(output), state


def training_stream(config, vocab, batch):
    """The training part of the text (its first 90%) as ``batch`` rows side by side:
    an int64 array (steps, batch), column b continuing row b, as tensorgrad's StreamBatcher."""
    if config["text"]:
        with open(config["text"], encoding="utf-8") as file:
            text = file.read()
    else:
        from nn.corpus import default_corpus  # the built-in corpus, read from this machine

        text = default_corpus()
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    alphabet = np.frombuffer(vocab.encode("utf-32-le"), dtype=np.uint32)  # sorted characters
    ids = np.searchsorted(alphabet, codes)
    if (alphabet[np.minimum(ids, len(alphabet) - 1)] != codes).any():
        raise SystemExit("the text has characters the model's vocabulary does not have")
    train = ids[:len(ids) * 9 // 10]
    steps = len(train) // batch
    return np.ascontiguousarray(train[:steps * batch].reshape(batch, steps).T)


def detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", help="a .safetensors file written by `tensorgrad export`")
    parser.add_argument("--steps", type=int, default=100, help="optimizer steps to take")
    parser.add_argument("--lr", type=float, default=None, help="Adam's learning rate (default: the run's)")
    parser.add_argument("--out", default="pytorch_model.safetensors", help="where to write the weights")
    args = parser.parse_args()

    dist.init_process_group("gloo")  # torchrun sets the rank, the world size and the address
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    with safe_open(args.weights, framework="pt") as file:
        metadata = file.metadata()
    config, vocab = json.loads(metadata["tensorgrad.config"]), metadata["tensorgrad.vocab"]
    first_step = int(metadata["tensorgrad.step"])
    if config["batch"] % world:
        raise SystemExit(f"the batch of {config['batch']} rows does not split over {world} processes")

    model = CharRNN(len(vocab), config["hidden"], config["layers"], config["model"])
    model.load_state_dict(load_file(args.weights))
    parallel = DistributedDataParallel(model)  # averages the gradients over the processes
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr or config["lr"])

    stream = training_stream(config, vocab, config["batch"])
    share = config["batch"] // world
    rows = slice(rank * share, (rank + 1) * share)  # this process's rows of every window
    seq_len = config["seq_len"]
    windows = math.ceil((len(stream) - 1) / seq_len)
    state = None
    for step in range(first_step, first_step + args.steps):
        window = step % windows
        if window == 0:
            state = None  # a new pass over the text starts from a zero state
        start = window * seq_len
        stop = min(start + seq_len, len(stream) - 1)
        inputs = torch.from_numpy(stream[start:stop, rows])
        targets = torch.from_numpy(stream[start + 1:stop + 1, rows])
        logits, state = parallel(inputs, state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, len(vocab)), targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config["clip"])
        optimizer.step()
        state = detach(state)
        total = loss.detach().clone()
        dist.all_reduce(total)  # the mean over equal shares is the loss of the whole batch
        if rank == 0:
            print(f"step {step + 1}: window {window}, loss {total.item() / world:.7f} nats", flush=True)

    if rank == 0:
        metadata = {"tensorgrad.config": metadata["tensorgrad.config"], "tensorgrad.vocab": vocab,
                    "tensorgrad.step": str(first_step + args.steps)}  # not the old weights' checksums
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, args.out, metadata=metadata)
        print(f"wrote {args.out}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
