"""The code stays ruff-clean (the configuration is in pyproject.toml)."""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parent.parent


def test_ruff_finds_nothing():
    if shutil.which("ruff") is None and not (pathlib.Path(sys.executable).parent / "ruff").exists():
        pytest.skip("ruff is not installed (it is in the dev extra)")
    ruff = shutil.which("ruff") or str(pathlib.Path(sys.executable).parent / "ruff")
    result = subprocess.run([ruff, "check", "."], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
