"""The way out to PyTorch: `tensorgrad export`, then examples/continue_in_pytorch.py under
torchrun with two processes on this machine (127.0.0.1 only, gloo), whose first loss is
tensorgrad's on the same window."""

import json
import os
import pathlib
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

import nn
from nn.cli import main
from nn.corpus import default_corpus
from nn.losses import softmax_cross_entropy
from nn.safetensors_io import read_metadata
from nn.trainer import TrainConfig, Trainer

pytest.importorskip("safetensors")
ROOT = pathlib.Path(__file__).parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def trained(tmp_path):
    """A checkpoint of a tiny LSTM trained for a few steps on a slice of the built-in corpus."""
    text = tmp_path / "text.py"
    text.write_text(default_corpus(20_000), encoding="utf-8")
    config = TrainConfig(text=str(text), hidden=16, layers=2, seq_len=16, batch=4, steps=5,
                         sample_every=1000, out=str(tmp_path / "run"))
    os.makedirs(config.out)
    Trainer(config, log=lambda *_: None, progress=False).run()
    return tmp_path, config


def test_export_writes_pytorch_names_and_what_rebuilds_the_model(trained, capsys):
    tmp_path, config = trained
    out = tmp_path / "model.safetensors"
    assert main(["export", str(tmp_path / "run" / "checkpoint.npz"), "--out", str(out)]) == 0
    assert "model.load_state_dict(safetensors.torch.load_file(" in capsys.readouterr().out
    weights = nn.load(out)
    assert list(weights)[:2] == ["embedding.weight", "rnn.weight_ih_l0"] and "rnn.weight_hh_l1" in weights
    checkpoint = nn.load(tmp_path / "run" / "checkpoint.npz")
    for name, value in checkpoint["model"].items():
        np.testing.assert_array_equal(weights[name], value)
    metadata = read_metadata(out)
    assert json.loads(metadata["tensorgrad.config"])["hidden"] == 16
    assert metadata["tensorgrad.vocab"] == checkpoint["vocab"] and metadata["tensorgrad.step"] == "5"
    assert main(["export", str(tmp_path / "run" / "checkpoint.npz"), "--out", str(tmp_path / "m.npz")]) == 2
    assert main(["export", str(out), "--out", str(tmp_path / "again.safetensors")]) == 2  # not a checkpoint
    assert "not a tensorgrad train checkpoint" in capsys.readouterr().err


def test_continue_in_pytorch_with_two_processes(torch, trained):
    tmp_path, config = trained
    weights, result = tmp_path / "model.safetensors", tmp_path / "continued.safetensors"
    assert main(["export", str(tmp_path / "run" / "checkpoint.npz"), "--out", str(weights)]) == 0
    env = dict(os.environ, PYTHONPATH=str(ROOT), GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
               "--master-addr=127.0.0.1", f"--master-port={free_port()}",
               str(ROOT / "examples" / "continue_in_pytorch.py"), str(weights), "--steps", "3",
               "--out", str(result)]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    if run.returncode != 0 and "terminate called without an active exception" in run.stderr:
        # A rank aborting inside PyTorch's C++ (gloo), seen once on a busy 2-CPU VM in a run whose
        # Python raised nothing: PyTorch's flake, not the example's; run again, once.
        run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    losses = [float(x) for x in re.findall(r"^step \d+: window \d+, loss ([\d.]+) nats$", run.stdout, re.M)]
    assert len(losses) == 3, run.stdout

    # tensorgrad's loss on the window the run continues with, from a zero state
    trainer = Trainer(TrainConfig(out=config.out), resume=True, progress=False)
    inputs, targets = trainer.train_batches[trainer.step % len(trainer.train_batches)]
    logits, _ = trainer.model(inputs)
    ours = softmax_cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)).item()
    assert losses[0] == pytest.approx(ours, rel=1e-5)

    continued = nn.load(result)  # and the weights come back into tensorgrad, trained further
    model = nn.CharRNN(len(trainer.vocab), config.hidden, config.layers, config.model)
    model.load_state_dict(continued)
    assert read_metadata(result)["tensorgrad.step"] == "8"
    assert not np.array_equal(continued["head.weight"], trainer.model.head.weight.data)
