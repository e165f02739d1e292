"""`tensorgrad train --model wavenet` beyond what tests/test_cli.py checks for every model: the
receptive field is stated, the characters carried across windows are saved, and `sample` is
sample_text on the checkpoint's CharWaveNet."""

import os

import numpy as np

import nn
from nn.cli import main
from nn.data import CharVocab
from tests.test_cli import MODEL_OPTIONS, corpus, train  # noqa: F401 - corpus is a fixture

WAVENET = MODEL_OPTIONS["wavenet"]  # 3 blocks: receptive field 8


def test_wavenet_states_its_receptive_field_and_saves_its_context(tmp_path, corpus, capsys):  # noqa: F811
    code, out = train(tmp_path, corpus, *WAVENET, "--steps", "5")
    assert code == 0
    printed = capsys.readouterr().out
    assert "WAVENET" in printed and "each prediction sees the last 8 characters" in printed
    saved = nn.load(os.path.join(out, "checkpoint.npz"))
    # What crosses a window edge is the last receptive_field - 1 input characters (batch 4), saved.
    assert [a.shape for a in saved["carried"].values()] == [(7, 4)]


def test_wavenet_sample_is_sample_text(tmp_path, corpus, capsys):  # noqa: F811
    """`sample` prints what sample_text draws from the checkpoint's CharWaveNet with that seed."""
    _, out = train(tmp_path, corpus, *WAVENET, "--steps", "5")
    checkpoint = os.path.join(out, "checkpoint.npz")
    capsys.readouterr()
    command = ["sample", "--checkpoint", checkpoint, "--length", "60", "--seed", "1", "--prime", "the "]
    assert main(command) == 0
    printed = capsys.readouterr().out.rstrip("\n")
    saved = nn.load(checkpoint)
    model = nn.CharWaveNet(len(str(saved["vocab"])), 16, 3)
    model.load_state_dict(saved["model"])
    vocab = CharVocab.from_chars(str(saved["vocab"]))
    expected = nn.sample_text(model, vocab, 60, prime="the ", temperature=0.8, rng=np.random.default_rng(1))
    assert printed == expected and len(expected) == 64
