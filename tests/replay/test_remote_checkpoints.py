"""Replay reading checkpoints from a `FLOR_CHECKPOINTS` URL (file://, as a stand-in for s3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitutil import git

import flor
from flor.replay import execute, plan

SCRIPT = """\
import numpy as np
import flor

np.random.seed(flor.arg("seed", 0))
w = np.zeros(3)
with flor.checkpointing(weights=w):
    for epoch in flor.loop("epoch", range(4)):
        for step in flor.loop("step", range(3)):
            w -= 0.1 * np.random.randn(3)
        flor.log("w0", float(w[0]))
"""
ANCHOR = '        flor.log("w0", float(w[0]))\n'
HINDSIGHT = '        flor.log("w1", float(w[1]))\n'


@pytest.fixture
def shared(repo: Path, script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:  # type: ignore[no-untyped-def]
    """Two runs recorded with their checkpoints at a file:// URL, then a hindsight statement."""
    folder = tmp_path / "shared-ckpt"
    monkeypatch.setenv("FLOR_CHECKPOINTS", folder.as_uri())
    monkeypatch.setenv("FLOR_CKPT_BUDGET", "1")
    train = script("train.py", SCRIPT)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    for seed in (0, 1):
        train.run("--kwargs", f"seed={seed}")
    monkeypatch.delenv("FLOR_CKPT_BUDGET")
    train.path.write_text(SCRIPT.replace(ANCHOR, ANCHOR + HINDSIGHT))
    assert not (repo / ".flor" / "checkpoints").exists()
    return folder


def test_replay_restores_from_checkpoints_at_a_file_url(shared: Path) -> None:
    the_plan = plan(["w1"], jobs=2, verify=["w0"])
    assert {r.strategy for r in the_plan.runs} == {"outer"}
    assert all(r.checkpointed == 5 and not r.reason for r in the_plan.runs)  # found at the URL
    summary = execute(the_plan)
    assert not summary.failed, [r.tail for r in summary.failed]
    assert summary.verified == 8 and not summary.mismatches
    assert summary.values_written == 16  # w1 and the verified w0, 4 epochs x 2 runs
    assert flor.dataframe("w1")["w1"].notna().sum() == 8


def test_checkpoints_unreadable_from_a_worker_fail_each_run_with_one_line(
    shared: Path, repo: Path
) -> None:
    the_plan = plan(["w1"], jobs=2)
    shared.rename(shared.with_name("moved"))  # the planner saw them, the workers do not
    summary = execute(the_plan)
    assert len(summary.failed) == len(summary.results) == 2 and summary.values_written == 0
    for failure in summary.failed:
        assert len(failure.tail.splitlines()) == 1
        assert f"is missing from {shared.as_uri()} (on worker " in failure.tail
        assert f"give every worker read access to {shared.as_uri()}" in failure.tail
