"""`tensorgrad train --model wavenet` end to end: it learns, states its receptive field, resumes
exactly, and samples reproducibly."""

import os

import numpy as np

import nn
from nn.cli import main
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


def test_wavenet_sample_is_reproducible_with_a_seed(tmp_path, corpus, capsys):  # noqa: F811
    _, out = train(tmp_path, corpus, *WAVENET, "--steps", "5")
    capsys.readouterr()
    checkpoint = os.path.join(out, "checkpoint.npz")
    samples = []
    for seed in ("1", "1", "2"):
        assert main(["sample", "--checkpoint", checkpoint, "--length", "60", "--seed", seed,
                     "--prime", "the "]) == 0
        samples.append(capsys.readouterr().out)
    assert samples[0] == samples[1] != samples[2]
    assert samples[0].startswith("the ") and len(samples[0].rstrip("\n")) == 64
