"""Tasks whose threads would outnumber the cores wait passively (OpenMP, OpenBLAS): spinning
threads of two tasks took turns on two cores and a replay ran 3-10x longer than with one
task at a time. Asserted on the environment each real replay task starts with, not on time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from gitutil import git
from test_task_environment import TRAIN

import flor
from flor.replay import execute, plan, warm

# how the task's threads wait: in the variables the script sees, and in those its process
# started with, which the libraries the warm server preloaded read when they loaded
SEEN = (
    '        flor.log("total", state["total"])\n',
    '        flor.log("policy", os.environ.get("OMP_WAIT_POLICY", "unset"))\n'
    '        flor.log("loaded_with", next((v[16:].decode() for v in open("/proc/self/environ", '
    '"rb").read().split(b"\\0") if v.startswith(b"OMP_WAIT_POLICY=")), "unset"))\n',
)
CORES = len(os.sched_getaffinity(0))


def _replayed_policy(repo: Path, script, jobs: int) -> tuple[set[str], set[str]]:  # type: ignore[no-untyped-def]
    train = script("train.py", TRAIN)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "train")
    train.run()
    train.run()
    anchor, lines = SEEN
    train.path.write_text(TRAIN.replace(anchor, anchor + lines))
    replay = plan(["policy", "loaded_with"], jobs=jobs)
    assert len(replay.active) == 2, [r.declined for r in replay.runs]
    summary = execute(replay)
    assert not summary.failed, [r.tail for r in summary.failed]
    assert summary.runs_replayed == 2
    frame = flor.dataframe("policy", "loaded_with")
    assert len(frame) == 6
    return set(frame["policy"]), set(frame["loaded_with"])


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize(
    ("jobs", "variables", "expected"),
    [
        # two tasks of one thread per core each (OpenMP's and torch's default)
        (2, {}, "PASSIVE"),
        # one task: it keeps the cores to itself, and spins as its recording did
        (1, {}, "unset"),
        # a task per core, each of one thread
        (CORES, {"OMP_NUM_THREADS": "1"}, "unset"),
        # the user chose how threads wait
        (2, {"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE"),
        (2, {"GOMP_SPINCOUNT": "1000"}, "unset"),
    ],
)
def test_tasks_wait_passively_when_their_threads_would_outnumber_the_cores(
    repo: Path,
    script,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    jobs: int,
    variables: dict[str, str],
    expected: str,
) -> None:
    for name in ("OMP_NUM_THREADS", *warm.WAIT_SETTINGS):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert _replayed_policy(repo, script, jobs) == ({expected}, {expected})
