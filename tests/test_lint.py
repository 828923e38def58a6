"""ruff (the version pinned in requirements-test.txt, its rules in pyproject.toml) finds nothing in the code."""
from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

pytest.importorskip("ruff")  # installed by the README's test command (requirements-test.txt)

CHECKED = ["animegan", "tests", "bench", "scripts", "app.py"]


def test_ruff_finds_nothing() -> None:
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", *CHECKED],
                         cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, f"ruff check {' '.join(CHECKED)}:\n{run.stdout[-6000:]}{run.stderr[-2000:]}"
