"""The harness of benchmarks/train_step.py and compare_checkouts.py (benchmarks/step_children.py)
asks every engine for the same number of steps per round, so that their losses compare at the
same step, and reports each round's time per step."""

import os
import sys

import pytest

HERE = os.path.join(os.path.dirname(__file__), os.pardir)
sys.path.insert(0, os.path.join(HERE, "benchmarks"))
from step_children import rounds, start  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the harness reads /proc")


def test_two_children_of_one_engine_take_the_same_steps_in_every_round():
    spec = ["TensorgradLM", "lstm", 8, 4, 10, 1]  # (mode, H, B, T, threads): about a millisecond a step
    children = {name: start(os.path.abspath(HERE), spec, keep_freed_memory=False) for name in ("a", "b")}
    answers, blas = rounds(children, repeats=3)
    a, b = answers["a"], answers["b"]
    assert a["loss"] == b["loss"]  # bit for bit: the same weights, batch and number of steps
    assert len(a["loss"]) == 3
    assert a["loss"][2] < a["loss"][1] < a["loss"][0]  # each burst trained on, from where the last stopped
    assert all(0 < s < 1 for s in a["seconds"] + b["seconds"])
    assert all(f >= 0 for f in a["faults"] + b["faults"])
    assert blas["a"] == blas["b"]
