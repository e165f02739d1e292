"""`tensorgrad train --model wavenet` end to end: it learns, states its receptive field, resumes
exactly, and samples reproducibly."""

import os

import numpy as np

import nn
from nn.cli import main
from nn.data import CharVocab
from tests.test_cli import corpus, train  # noqa: F401 - corpus is a fixture

WAVENET = ["--model", "wavenet", "--layers", "3"]


def test_wavenet_learns_and_states_its_receptive_field(tmp_path, corpus, capsys):  # noqa: F811
    code, out = train(tmp_path, corpus, *WAVENET, "--steps", "60")
    assert code == 0
    losses = nn.load(os.path.join(out, "checkpoint.npz"))["history"]["loss"]
    assert len(losses) == 60
    assert losses[-10:].mean() < losses[:5].mean() - 0.5
    printed = capsys.readouterr().out
    assert "WAVENET" in printed and "each prediction sees the last 8 characters" in printed


def test_wavenet_resume_continues_exactly(tmp_path, corpus):  # noqa: F811
    assert train(tmp_path, corpus, *WAVENET, "--steps", "12", name="straight")[0] == 0
    assert train(tmp_path, corpus, *WAVENET, "--steps", "5", name="split")[0] == 0
    assert main(["train", "--out", str(tmp_path / "split"), "--steps", "12", "--resume", "--quiet"]) == 0
    straight = nn.load(str(tmp_path / "straight" / "checkpoint.npz"))
    resumed = nn.load(str(tmp_path / "split" / "checkpoint.npz"))
    np.testing.assert_allclose(resumed["history"]["loss"], straight["history"]["loss"], rtol=1e-6)
    for name, value in straight["model"].items():
        np.testing.assert_allclose(resumed["model"][name], value, rtol=1e-5, atol=1e-6, err_msg=name)
    # What crosses a window edge is the last receptive_field - 1 input characters, saved with it.
    assert [a.shape for a in resumed["carried"].values()] == [(7, 4)]


def test_wavenet_sample_is_reproducible_and_is_sample_text(tmp_path, corpus, capsys):  # noqa: F811
    """`sample` prints what sample_text draws from the checkpoint's CharWaveNet with that seed."""
    _, out = train(tmp_path, corpus, *WAVENET, "--steps", "5")
    checkpoint = os.path.join(out, "checkpoint.npz")
    capsys.readouterr()
    printed = []
    for seed in (1, 1, 2):
        assert main(["sample", "--checkpoint", checkpoint, "--length", "60", "--seed", str(seed),
                     "--prime", "the "]) == 0
        printed.append(capsys.readouterr().out.rstrip("\n"))
    assert printed[0] == printed[1] != printed[2]
    saved = nn.load(checkpoint)
    model = nn.CharWaveNet(len(str(saved["vocab"])), 16, 3)
    model.load_state_dict(saved["model"])
    vocab = CharVocab.from_chars(str(saved["vocab"]))
    expected = nn.sample_text(model, vocab, 60, prime="the ", temperature=0.8, rng=np.random.default_rng(1))
    assert printed[0] == expected and len(expected) == 64
