"""The progress of `tensorgrad train`: a bar redrawn in place on a terminal, plain lines every
PROGRESS_LINE_EVERY steps in a log file or CI."""

import io

import numpy as np
import pytest

from nn import trainer
from nn.trainer import TrainConfig, Trainer

pytest.importorskip("tqdm")


class Stream(io.StringIO):
    def __init__(self, terminal):
        super().__init__()
        self.terminal = terminal

    def isatty(self):
        return self.terminal


def train(tmp_path, monkeypatch, terminal, steps=12):
    rng = np.random.default_rng(0)
    text = tmp_path / "text.txt"
    text.write_text("\n".join(rng.choice(["ab cd", "cd", "efg ab"], size=400)), encoding="utf-8")
    stderr, logged = Stream(terminal), []
    monkeypatch.setattr("sys.stderr", stderr)
    monkeypatch.setattr(trainer, "PROGRESS_LINE_EVERY", 5)
    config = TrainConfig(text=str(text), hidden=8, batch=2, seq_len=8, steps=steps, sample_every=1000,
                         checkpoint_every=1000, out=str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    Trainer(config, log=logged.append).run()
    return stderr.getvalue(), [line for line in logged if line.startswith("step ")]


def test_a_terminal_gets_a_bar_redrawn_in_place(tmp_path, monkeypatch):
    shown, lines = train(tmp_path, monkeypatch, terminal=True)
    assert "\r" in shown and "12/12" in shown and "bpc=" in shown
    assert lines == []


def test_a_log_file_gets_a_line_every_few_steps_and_no_carriage_returns(tmp_path, monkeypatch):
    shown, lines = train(tmp_path, monkeypatch, terminal=False)
    assert "\r" not in shown and shown == ""
    assert [line.split(":")[0] for line in lines] == ["step 5/12", "step 10/12", "step 12/12"]
    assert all("nats" in line and "bpc" in line and "characters/s" in line for line in lines)
