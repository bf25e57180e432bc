"""A training script whose tasks wait at their first step while a gate file is missing, so a
test can kill a replay task, its worker or the replay command mid-task whatever the load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gitutil import git

SCRIPT = """\
import os
import time
import numpy as np
import flor

np.random.seed(flor.arg("seed", 0))
w = np.zeros(3)
with flor.checkpointing(weights=w):
    for epoch in flor.loop("epoch", range(4)):
        for step in flor.loop("step", range(5)):
            while not os.path.exists(GATE):
                time.sleep(0.01)
            grad = np.random.randn(3)
            w -= 0.1 * grad
        flor.log("w0", float(w[0]))
"""
# The hindsight statement: (anchor line, anchor line + new statement).
HINDSIGHT = ("            w -= 0.1 * grad\n", '            flor.log("g0", float(grad[0]))\n')


def record_gated_runs(repo: Path, script: Any, monkeypatch: pytest.MonkeyPatch, gate: Path) -> None:
    """Two recorded runs (seeds 0 and 1, a checkpoint every iteration) through an open gate,
    then the hindsight statement written into the script."""
    gate.touch()
    monkeypatch.setenv("FLOR_CKPT_BUDGET", "1")
    train = script("train.py", SCRIPT.replace("GATE", repr(str(gate))))
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    for seed in (0, 1):
        train.run("--kwargs", f"seed={seed}")
    train.path.write_text(train.path.read_text().replace(HINDSIGHT[0], "".join(HINDSIGHT)))
    monkeypatch.delenv("FLOR_CKPT_BUDGET")
