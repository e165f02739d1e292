"""The `tensorgrad` command end to end, on a tiny corpus in a temporary directory."""

import os
import subprocess
import sys

import numpy as np
import pytest

import nn
from nn.cli import main

TINY = ["--hidden", "16", "--batch", "4", "--seq-len", "12", "--lr", "0.01", "--quiet",
        "--sample-every", "1000", "--checkpoint-every", "5"]
MODEL_OPTIONS = {"lstm": [], "transformer": ["--model", "transformer", "--heads", "2"],
                 "wavenet": ["--model", "wavenet", "--layers", "3"]}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "to", "it"]
    text = "\n".join(" ".join(rng.choice(words, size=8)) + "." for _ in range(150))
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def train(tmp_path, corpus, *extra, name="run"):
    out = str(tmp_path / name)
    code = main(["train", "--text", corpus, "--out", out, *TINY, *extra])
    return code, out


def one_line_error(capsys, code):
    err = capsys.readouterr().err
    assert code != 0
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("model", sorted(MODEL_OPTIONS))
def test_train_learns_and_writes_checkpoint_and_curve(tmp_path, corpus, capsys, model):
    code, out = train(tmp_path, corpus, "--steps", "60", *MODEL_OPTIONS[model])
    assert code == 0
    saved = nn.load(os.path.join(out, "checkpoint.npz"))
    losses = saved["history"]["loss"]
    assert len(losses) == 60
    assert losses[-10:].mean() < losses[:5].mean() - 0.5  # it learns the tiny language
    assert int(saved["step"]) == 60
    assert os.path.getsize(os.path.join(out, "loss.png")) > 1000
    printed = capsys.readouterr().out
    assert "bits" in printed and "validation" in printed


@pytest.mark.parametrize("model", sorted(MODEL_OPTIONS))
def test_resume_continues_exactly(tmp_path, corpus, model):
    assert train(tmp_path, corpus, "--steps", "20", *MODEL_OPTIONS[model], name="straight")[0] == 0
    assert train(tmp_path, corpus, "--steps", "10", *MODEL_OPTIONS[model], name="split")[0] == 0
    assert main(["train", "--out", str(tmp_path / "split"), "--steps", "20", "--resume", "--quiet"]) == 0
    straight = nn.load(str(tmp_path / "straight" / "checkpoint.npz"))
    resumed = nn.load(str(tmp_path / "split" / "checkpoint.npz"))
    np.testing.assert_allclose(resumed["history"]["loss"], straight["history"]["loss"], rtol=1e-6)
    for name, value in straight["model"].items():
        np.testing.assert_allclose(resumed["model"][name], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model", sorted(MODEL_OPTIONS))
def test_the_jitted_windows_give_exactly_the_eager_losses(tmp_path, corpus, model):
    assert train(tmp_path, corpus, "--steps", "12", *MODEL_OPTIONS[model], name="jit")[0] == 0
    assert train(tmp_path, corpus, "--steps", "12", "--no-jit", *MODEL_OPTIONS[model], name="eager")[0] == 0
    jitted = nn.load(str(tmp_path / "jit" / "checkpoint.npz"))
    eager = nn.load(str(tmp_path / "eager" / "checkpoint.npz"))
    np.testing.assert_array_equal(jitted["history"]["loss"], eager["history"]["loss"])
    for name, value in eager["model"].items():
        np.testing.assert_array_equal(jitted["model"][name], value, err_msg=name)
    assert bool(jitted["config"]["jit"]) and not bool(eager["config"]["jit"])


@pytest.mark.parametrize("jit", [[], ["--no-jit"]], ids=["jit", "eager"])
def test_a_text_without_newline_samples_after_its_first_character(tmp_path, capsys, jit):
    path = tmp_path / "one_line.txt"
    path.write_text("abc abd " * 200, encoding="utf-8")
    code = main(["train", "--text", str(path), "--out", str(tmp_path / "run"), *TINY, "--steps", "2", *jit])
    assert code == 0, capsys.readouterr().err
    sample = capsys.readouterr().out.split("sample:\n", 1)[1].split("\n---", 1)[0]
    assert sample.startswith("a") and len(sample) == 201 and set(sample) <= set("abcd ")


@pytest.mark.parametrize("model", sorted(MODEL_OPTIONS))
def test_sample_is_reproducible_with_a_seed(tmp_path, corpus, capsys, model):
    _, out = train(tmp_path, corpus, "--steps", "5", *MODEL_OPTIONS[model])
    capsys.readouterr()
    checkpoint = os.path.join(out, "checkpoint.npz")
    samples = []
    for seed in ("1", "1", "2"):
        assert main(["sample", "--checkpoint", checkpoint, "--length", "80", "--seed", seed,
                     "--prime", "the "]) == 0
        samples.append(capsys.readouterr().out)
    assert samples[0] == samples[1] != samples[2]
    assert samples[0].startswith("the ") and len(samples[0].rstrip("\n")) == 84


def test_transformer_positions_and_heads(tmp_path, corpus, capsys):
    options = [*MODEL_OPTIONS["transformer"], "--positions", "sinusoidal"]
    code, out = train(tmp_path, corpus, "--steps", "5", *options)
    saved = nn.load(os.path.join(out, "checkpoint.npz"))
    assert code == 0 and str(saved["config"]["positions"]) == "sinusoidal"
    assert not any(name.startswith("position.") for name in saved["model"])  # a fixed table: no parameters
    code, _ = train(tmp_path, corpus, "--steps", "5", "--model", "transformer", "--heads", "3", name="bad")
    assert "--hidden 16 must be a multiple of --heads 3" in one_line_error(capsys, code)


@pytest.mark.parametrize("content, message", [
    (None, "not found"), (b"", "empty"), (b"abc\x00def" * 100, "binary"),
    (b"\xff\xfe broken" * 100, "UTF-8"), (b"too short", "characters"),
])
def test_bad_text_files(tmp_path, capsys, content, message):
    path = tmp_path / "text.txt"
    if content is not None:
        path.write_bytes(content)
    code = main(["train", "--text", str(path), "--out", str(tmp_path / "out"), *TINY])
    assert message in one_line_error(capsys, code)


def test_unwritable_output_directory(tmp_path, corpus, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code = main(["train", "--text", corpus, "--out", str(blocker / "sub"), *TINY])
    assert "cannot write to output directory" in one_line_error(capsys, code)


def test_sample_rejects_bad_options_and_foreign_checkpoints(tmp_path, corpus, capsys):
    _, out = train(tmp_path, corpus, "--steps", "2")
    checkpoint = os.path.join(out, "checkpoint.npz")
    capsys.readouterr()
    code = main(["sample", "--checkpoint", checkpoint, "--temperature", "0"])
    assert "temperature" in one_line_error(capsys, code)
    code = main(["sample", "--checkpoint", checkpoint, "--prime", "XYZ"])
    assert "never seen" in one_line_error(capsys, code)
    code = main(["sample", "--checkpoint", str(tmp_path / "missing.npz")])
    one_line_error(capsys, code)
    # A checkpoint whose config names another model than its weights.
    saved = nn.load(checkpoint)
    saved["config"]["model"] = "gru"
    other = str(tmp_path / "other.npz")
    nn.save(saved, other)
    code = main(["sample", "--checkpoint", other])
    one_line_error(capsys, code)
    # A valid .npz that is no training checkpoint at all.
    foreign = str(tmp_path / "foreign.npz")
    np.savez(foreign, weights=np.zeros(3))
    code = main(["sample", "--checkpoint", foreign])
    assert "not a tensorgrad train checkpoint" in one_line_error(capsys, code)
    not_npz = tmp_path / "garbage.npz"
    not_npz.write_bytes(b"garbage")
    one_line_error(capsys, main(["sample", "--checkpoint", str(not_npz)]))


def test_resume_without_checkpoint(tmp_path, capsys):
    code = main(["train", "--out", str(tmp_path / "empty"), "--resume", "--quiet"])
    assert "no checkpoint" in one_line_error(capsys, code)


@pytest.mark.parametrize("model", ["lstm", "gru", "rnn", "wavenet"])
def test_graph_writes_dot_source(tmp_path, capsys, model):
    out = tmp_path / "g.dot"
    assert main(["graph", "--model", model, "--steps", "3", "--out", str(out)]) == 0
    source = out.read_text()
    assert source.count("cluster") >= 3 and "->" in source


def test_graph_renders_svg_with_dot(tmp_path):
    import shutil

    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed")
    out = tmp_path / "g.svg"
    assert main(["graph", "--steps", "2", "--out", str(out)]) == 0
    assert out.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_graph_window_folds_the_other_steps(tmp_path, capsys):
    out = tmp_path / "g.dot"
    assert main(["graph", "--model", "rnn", "--steps", "100", "--window", "48:50", "--time", "down",
                 "--out", str(out)]) == 0
    source = out.read_text()
    assert source.count('tooltip="rnn.l0/t=') == 2 + 2  # steps 48 and 49, and the two folded columns
    assert "t=0 … 47" in source and "t=50 … 99" in source and "rankdir=TB" in source
    assert "--window must be START:STOP" in one_line_error(capsys, main(["graph", "--window", "3",
                                                                         "--out", str(out)]))


def test_graph_without_dot_program_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` here
    code = main(["graph", "--out", str(tmp_path / "g.svg")])
    line = one_line_error(capsys, code)
    assert "dot" in line and "install" in line


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "nn", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "train" in result.stdout and "sample" in result.stdout and "graph" in result.stdout


@pytest.mark.parametrize("bug", [TypeError("internal"), KeyError("internal"), RuntimeError("internal")])
def test_a_library_bug_shows_its_traceback_instead_of_a_one_line_error(tmp_path, corpus, monkeypatch, bug):
    def broken(self):
        raise bug

    monkeypatch.setattr(nn.trainer.Trainer, "run", broken)
    with pytest.raises(type(bug), match="internal"):
        main(["train", "--text", corpus, "--out", str(tmp_path / "out"), *TINY])
