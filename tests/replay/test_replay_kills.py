"""kill -9 of a replay task, and of the `flor replay` command itself: no partial values are
counted as present, and a rerun completes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gated import record_gated_runs

import flor


@pytest.fixture
def gate(repo: Path, script, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Two recorded runs, a hindsight statement added; the gate file, closed (missing)."""
    gate = tmp_path / "gate"
    record_gated_runs(repo, script, monkeypatch, gate)
    gate.unlink()
    return gate


def _start_replay() -> subprocess.Popen[str]:
    """`flor replay` in a session of its own: its workers and tasks are found by session."""
    return subprocess.Popen(
        [sys.executable, "-m", "flor", "replay", "g0", "--jobs", "2", "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _session_processes(session: int) -> dict[int, list[bytes]]:
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.getsid(int(entry)) != session:
                continue
            found[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except (OSError, ProcessLookupError):
            continue
    return found


def _tasks(session: int) -> list[int]:
    """The replay's task processes: those running in a flor-task- folder (a task forks from
    its warm server, so its command line is the server's)."""
    return [pid for pid in _session_processes(session) if "/flor-task-" in _cwd(pid)]


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def _wait_for_tasks(replay: subprocess.Popen[str], count: int) -> list[int]:
    while len(tasks := _tasks(replay.pid)) < count:
        assert replay.poll() is None, replay.communicate()
        time.sleep(0.05)
    return tasks


def _g0() -> dict[str, list[float]]:
    df = flor.dataframe("g0").dropna(subset=["g0"])
    return {run: group["g0"].tolist() for run, group in df.groupby("runid")}


def _g0_rows() -> int:
    return int(flor.query("SELECT COUNT(*) AS n FROM logs WHERE name = 'g0'")["n"].item())


def _rerun_completes() -> dict[str, list[float]]:
    again = subprocess.run(
        [sys.executable, "-m", "flor", "replay", "g0", "--jobs", "2", "--yes"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr
    values = _g0()
    assert len(values) == 2 and all(len(v) == 20 for v in values.values())
    assert _g0_rows() == 40
    return values


@pytest.mark.timeout(600)
def test_a_task_killed_mid_run_stores_no_partial_values(gate: Path) -> None:
    replay = _start_replay()
    victim = _wait_for_tasks(replay, 1)[0]
    os.kill(victim, signal.SIGKILL)
    gate.touch()
    out, err = replay.communicate(timeout=600)
    assert "Traceback" not in err
    per_run = _g0()
    # a run is stored whole (its task re-run) or not at all, never in part
    assert all(len(v) == 20 for v in per_run.values()), per_run
    assert _g0_rows() == 20 * len(per_run)
    assert replay.returncode == (0 if len(per_run) == 2 else 1), err
    rerun = _rerun_completes()
    assert all(rerun[run] == values for run, values in per_run.items())


@pytest.mark.timeout(600)
def test_the_replay_command_killed_mid_run_stores_nothing_and_a_rerun_completes(
    gate: Path,
) -> None:
    replay = _start_replay()
    try:
        _wait_for_tasks(replay, 2)
        os.kill(replay.pid, signal.SIGKILL)
        replay.wait()
        while _tasks(replay.pid):  # the gate still holds them: they die with the command
            time.sleep(0.05)
        gate.touch()
        assert _g0_rows() == 0
        _rerun_completes()
    finally:  # joblib's workers outlive the killed command: end them (this test's only)
        for pid in _session_processes(replay.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        assert replay.stdout is not None and replay.stderr is not None
        replay.stdout.close()
        replay.stderr.close()
