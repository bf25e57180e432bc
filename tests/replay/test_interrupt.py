"""Faults during a replay, through real recorded runs and `flor replay` subprocesses: Ctrl-C
(to the command alone, or to its process group as a terminal sends it), SIGTERM (a CI job
cancelled), a second signal, the warm server killed, stdout closed early, and Ctrl-C in the
library API. Each ends promptly, leaves no process behind, stores nothing partial, and a
rerun completes. Tasks wait at a gate file, so every signal lands at a known point."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from gated import HINDSIGHT, SCRIPT, record_gated_runs
from gitutil import git

import flor
from flor.paths import db_path, home_dir

REPLAY = [sys.executable, "-m", "flor", "replay", "g0", "--jobs", "2", "--yes"]
INTERRUPTED = "stopped 2 unfinished tasks; 0 runs were stored, 2 runs have nothing stored"


def _session(session: int) -> list[int]:
    """The processes of a session (the replay's: its warm server and tasks)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.getsid(int(entry)) == session and not _zombie(int(entry)):
                    found.append(int(entry))
    return found


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _tasks(session: int) -> list[int]:
    """The replay's task processes: those running in a flor-task- folder."""
    found = []
    for pid in _session(session):
        with contextlib.suppress(OSError):
            if "/flor-task-" in os.readlink(f"/proc/{pid}/cwd"):
                found.append(pid)
    return found


def _wait_for(replay: subprocess.Popen[str], condition) -> None:  # type: ignore[no-untyped-def]
    """Wait until `condition()` holds while the replay runs (pytest-timeout ends a hang)."""
    while not condition():
        assert replay.poll() is None, replay.communicate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            replay.wait(0.05)


def _g0_rows() -> int:
    return int(flor.query("SELECT COUNT(*) AS n FROM logs WHERE name = 'g0'")["n"].item())


def _task_statuses() -> list[str]:
    frame = flor.query("SELECT status FROM runs WHERE mode = 'replay' ORDER BY status")
    return [str(s) for s in frame["status"]]


def _rerun_completes() -> None:
    again = subprocess.run(REPLAY, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert _g0_rows() == 40  # both runs, 20 values each: nothing was counted as present


@pytest.fixture
def gate(repo: Path, script, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Two recorded runs, a hindsight statement added; the gate file, closed (missing)."""
    gate = tmp_path / "gate"
    record_gated_runs(repo, script, monkeypatch, gate)
    gate.unlink()
    return gate


@pytest.fixture
def start() -> Iterator:  # type: ignore[type-arg]
    """Start `flor replay` in a session of its own, with SIGINT as a terminal leaves it. On
    teardown, whatever happened: no process of that session may have outlived the test
    (checked, then killed so one failure cannot leak into the next test), pipes closed."""
    started: list[subprocess.Popen[str]] = []

    def run(command: list[str] = REPLAY, **kwargs) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
        options = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
        replay = subprocess.Popen(
            command,
            text=True,
            start_new_session=True,
            # a suite started in the background ignores SIGINT, and children inherit that
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            **options,
        )
        started.append(replay)
        return replay

    yield run
    survivors = []
    for replay in started:
        if replay.poll() is None:
            survivors.append(replay.pid)
        survivors += [p for p in _session(replay.pid) if p != replay.pid]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(replay.pid, signal.SIGKILL)
        for pid in _session(replay.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        replay.communicate()
    assert not survivors, f"processes outlived the test: {survivors}"


@pytest.mark.timeout(600)
def test_ctrl_c_to_the_replay_alone_stops_its_tasks_and_a_rerun_completes(
    gate: Path, start
) -> None:  # type: ignore[no-untyped-def]
    # Before the fix this hung for ever: the executor joined the threads waiting on tasks
    # that only die when the connection closes, which it did after the join.
    replay = start()
    _wait_for(replay, lambda: len(_tasks(replay.pid)) == 2)
    os.kill(replay.pid, signal.SIGINT)  # `kill -INT`: the tasks get nothing
    _out, err = replay.communicate(timeout=300)
    assert replay.returncode == 130, err
    assert f"Interrupted: {INTERRUPTED}" in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("Interrupted: ")
    assert _session(replay.pid) == []  # its warm server and both tasks ended with it
    assert _g0_rows() == 0
    assert _task_statuses() == ["killed", "killed"]
    gate.touch()
    _rerun_completes()


@pytest.mark.timeout(600)
def test_ctrl_c_during_a_replay_stores_nothing_and_a_rerun_completes(gate: Path, start) -> None:  # type: ignore[no-untyped-def]
    # A terminal's Ctrl-C signals the whole process group. Before the fix a task could lose
    # its KeyboardInterrupt (it landed in a C extension's import, which cleared it) and the
    # replay waited for it for ever; now tasks are groups of their own, stopped by the replay.
    replay = start()
    _wait_for(replay, lambda: len(_tasks(replay.pid)) == 2)
    os.killpg(replay.pid, signal.SIGINT)
    _out, err = replay.communicate(timeout=300)
    assert replay.returncode == 130, err
    assert f"Interrupted: {INTERRUPTED}" in err and "Traceback" not in err
    assert _session(replay.pid) == []
    assert _g0_rows() == 0
    gate.touch()
    _rerun_completes()


@pytest.mark.timeout(600)
def test_sigterm_stops_a_replay_as_ctrl_c_does_with_status_143(gate: Path, start) -> None:  # type: ignore[no-untyped-def]
    replay = start()
    _wait_for(replay, lambda: len(_tasks(replay.pid)) == 2)
    os.killpg(replay.pid, signal.SIGTERM)  # a CI runner cancelling the job
    _out, err = replay.communicate(timeout=300)
    assert replay.returncode == 143, err
    assert f"Terminated: {INTERRUPTED}" in err and "Traceback" not in err
    assert _session(replay.pid) == []
    assert _g0_rows() == 0
    assert _task_statuses() == ["killed", "killed"]
    gate.touch()
    _rerun_completes()


NOTEBOOK = """\
import os
import shutil
import sys
import tempfile
from pathlib import Path

from flor.replay import execute, plan

gate = Path(sys.argv[1])
try:
    execute(plan(["g0"], jobs=2))
except KeyboardInterrupt as exc:  # a notebook's interrupt button: SIGINT to the kernel
    print("interrupted:", exc, flush=True)
children = []
for entry in os.listdir("/proc"):
    try:
        fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        continue
    if int(fields[1]) == os.getpid() and fields[0] != "Z":
        children.append(entry)
print("children:", children, flush=True)
gate.touch()
summary = execute(plan(["g0"], jobs=2))  # the same kernel replays again
print("stored:", summary.values_written, flush=True)
"""


@pytest.mark.timeout(600)
def test_ctrl_c_in_the_library_api_leaves_no_process_and_the_next_replay_completes(
    gate: Path, start, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    kernel = tmp_path / "kernel.py"
    kernel.write_text(NOTEBOOK)
    replay = start([sys.executable, str(kernel), str(gate)])
    _wait_for(replay, lambda: len(_tasks(replay.pid)) == 2)
    os.kill(replay.pid, signal.SIGINT)
    out, err = replay.communicate(timeout=600)
    assert replay.returncode == 0, err
    assert f"interrupted: {INTERRUPTED}" in out
    assert "children: []" in out  # no task, no warm server: nothing outlives the interrupt
    assert "stored: 40" in out, out + err
    assert _g0_rows() == 40
    assert _task_statuses().count("killed") == 2


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.timeout(600)
def test_the_warm_server_killed_mid_replay_reruns_its_tasks_and_never_hangs(
    gate: Path, start
) -> None:  # type: ignore[no-untyped-def]
    replay = start()
    _wait_for(replay, lambda: len(_tasks(replay.pid)) == 2)
    first = set(_tasks(replay.pid))
    server = _parent(next(iter(first)))
    assert server != replay.pid
    os.kill(server, signal.SIGKILL)  # the OOM killer picks the server
    # its tasks die with it (parent-death signal); the runs' tasks start again elsewhere
    _wait_for(replay, lambda: not first & set(_tasks(replay.pid)))
    gate.touch()
    _out, err = replay.communicate(timeout=600)
    assert "Traceback" not in err
    stored = _g0_rows()
    assert stored in (0, 20, 40)  # a run is stored whole or not at all
    if stored == 40:
        assert replay.returncode == 0, err
    else:  # a run that could not be replayed again says why
        assert replay.returncode == 1 and "warm replay process ended" in err, err
    assert _session(replay.pid) == []
    _rerun_completes()


@pytest.mark.timeout(600)
def test_a_replay_whose_stdout_is_closed_completes_without_a_traceback(gate: Path, start) -> None:  # type: ignore[no-untyped-def]
    gate.touch()
    read, write = os.pipe()
    os.close(read)  # `flor replay ... | head -1`, with head already gone
    replay = start(stdout=write)
    os.close(write)
    _out, err = replay.communicate(timeout=600)
    assert replay.returncode == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert _g0_rows() == 40  # the replay does not depend on anyone reading its plan


# A library the replayed script imports from outside its project (the warm server preloads
# it), whose import waits for a second gate: the replay's task waits for its server.
HOLD = """\
import os
import time
from pathlib import Path

Path(os.environ["HOLD_STARTED"]).touch()
while not os.path.exists(os.environ["HOLD_GATE"]):
    time.sleep(0.01)
"""


@pytest.mark.timeout(600)
def test_ctrl_c_while_the_warm_server_is_busy_importing_ends_the_replay_at_once(
    repo: Path, script, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, start
) -> None:  # type: ignore[no-untyped-def]
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "holdlib.py").write_text(HOLD)
    release, started = tmp_path / "release", tmp_path / "started"
    release.touch()
    monkeypatch.setenv("PYTHONPATH", str(lib))
    monkeypatch.setenv("HOLD_GATE", str(release))
    monkeypatch.setenv("HOLD_STARTED", str(started))
    gate = tmp_path / "gate"
    gate.touch()
    monkeypatch.setenv("FLOR_CKPT_BUDGET", "1")
    source = SCRIPT.replace("GATE", repr(str(gate)))
    train = script("train.py", source.replace("import flor\n", "import flor\nimport holdlib\n"))
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    train.run("--kwargs", "seed=0")
    train.path.write_text(train.path.read_text().replace(HINDSIGHT[0], "".join(HINDSIGHT)))
    monkeypatch.delenv("FLOR_CKPT_BUDGET")
    release.unlink()
    started.unlink()
    replay = start([*REPLAY[:-2], "1", "--yes"])  # --jobs 1: one run, one task
    # the server imports holdlib and waits; the replay's task waits for the server
    _wait_for(replay, lambda: started.exists() and _task_statuses() == ["running"])
    os.kill(replay.pid, signal.SIGINT)
    _out, err = replay.communicate(timeout=300)
    assert replay.returncode == 130, err
    assert "Interrupted: stopped 1 unfinished tasks" in err and "Traceback" not in err
    assert _session(replay.pid) == []  # the server was stopped mid-import, not waited for
    assert _g0_rows() == 0 and _task_statuses() == ["killed"]


# A command that, once stopped, never finishes cleaning up: the second signal must end it.
STUCK = """\
import os
import time
from pathlib import Path

import click

from flor.cli import FlorGroup, stoppable


@click.group(cls=FlorGroup)
def main() -> None:
    pass


@main.command()
@stoppable
def work() -> None:
    try:
        Path(os.environ["WORKING"]).touch()
        while True:
            time.sleep(0.01)
    finally:
        Path(os.environ["CLEANING"]).touch()
        while True:
            time.sleep(0.01)


main(["work"])
"""


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_second_signal_exits_at_once_while_the_first_ones_cleanup_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start, signum: int, status: int
) -> None:  # type: ignore[no-untyped-def]
    working, cleaning = tmp_path / "working", tmp_path / "cleaning"
    monkeypatch.setenv("WORKING", str(working))
    monkeypatch.setenv("CLEANING", str(cleaning))
    (tmp_path / "stuck.py").write_text(STUCK)
    command = start([sys.executable, str(tmp_path / "stuck.py")])
    _wait_for(command, working.exists)
    os.kill(command.pid, signum)
    _wait_for(command, cleaning.exists)  # the first signal was handled: cleanup runs
    os.kill(command.pid, signum)
    _out, err = command.communicate(timeout=300)
    assert command.returncode == status, err
    assert err.strip() == "Stopping at once (second signal); the tasks end with this process."


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if _parent(int(entry)) == parent and not _zombie(int(entry)):
                    found.append(int(entry))
    return found


def _shared_server(runtime: str) -> int:
    """The pid a shared server in `runtime` published beside its socket (0: none yet)."""
    for state in Path(runtime).glob("flor-warm-*/*.modules.json"):
        with contextlib.suppress(OSError, ValueError):
            return int(json.loads(state.read_text())["pid"])
    return 0


@pytest.mark.timeout(600)
def test_ctrl_c_stops_the_tasks_of_a_shared_warm_server_which_serves_the_next_replay(
    gate: Path, start, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    runtime = tempfile.mkdtemp(prefix="fw-")  # pytest's folders are too long for a socket
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    monkeypatch.setenv("FLOR_WARM_IDLE_S", "600")  # the server outlives the replay
    replay = start()
    try:
        # the shared server runs in a session of its own: its tasks are its children
        _wait_for(replay, lambda: len(_children(_shared_server(runtime) or -1)) == 2)
        server = _shared_server(runtime)
        os.killpg(replay.pid, signal.SIGINT)
        _out, err = replay.communicate(timeout=300)
        assert replay.returncode == 130, err
        assert f"Interrupted: {INTERRUPTED}" in err and "Traceback" not in err
        while _children(server):  # it kills the tasks of a replay whose connection closed
            with contextlib.suppress(subprocess.TimeoutExpired):
                replay.wait(0.05)
        assert _g0_rows() == 0
        gate.touch()
        _rerun_completes()
        assert _shared_server(runtime) == server and not _zombie(server)  # it served the rerun
    finally:
        server = _shared_server(runtime)
        with contextlib.suppress(ProcessLookupError):
            if server:
                os.kill(server, signal.SIGTERM)
        shutil.rmtree(runtime, ignore_errors=True)


@pytest.mark.timeout(600)
def test_ctrl_c_after_the_tasks_ended_but_before_their_values_are_stored_stores_nothing(
    gate: Path, start, repo: Path
) -> None:  # type: ignore[no-untyped-def]
    replay = start()
    _wait_for(replay, lambda: len(_tasks(replay.pid)) == 2)
    store = sqlite3.connect(db_path(home_dir(repo)), isolation_level=None)
    try:
        store.execute("BEGIN IMMEDIATE")  # another writer: the replay waits to record them
        gate.touch()
        _wait_for(replay, lambda: not _tasks(replay.pid))  # both tasks ended, values handed back
        os.kill(replay.pid, signal.SIGINT)
    finally:
        store.execute("ROLLBACK")
        store.close()
    _out, err = replay.communicate(timeout=300)
    assert replay.returncode == 130, err
    assert "0 runs were stored, 2 runs have nothing stored" in err and "Traceback" not in err
    assert _g0_rows() == 0  # handed back, never stored: the runs count as missing
    assert _task_statuses() == ["killed", "killed"]
    _rerun_completes()


# A script that starts a process of its own (as a DataLoader starts its workers).
WITH_HELPER = (
    SCRIPT.replace(
        "import flor\n",
        "import flor\nimport subprocess\nimport sys\n\n"
        'helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])\n',
    )
    + "helper.kill()\nhelper.wait()\n"
)


@pytest.mark.timeout(600)
def test_ctrl_c_also_ends_the_processes_a_task_started(
    repo: Path, script, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, start
) -> None:  # type: ignore[no-untyped-def]
    gate = tmp_path / "gate"
    gate.touch()
    monkeypatch.setenv("FLOR_CKPT_BUDGET", "1")
    train = script("train.py", WITH_HELPER.replace("GATE", repr(str(gate))))
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    for seed in (0, 1):
        train.run("--kwargs", f"seed={seed}")
    train.path.write_text(train.path.read_text().replace(HINDSIGHT[0], "".join(HINDSIGHT)))
    monkeypatch.delenv("FLOR_CKPT_BUDGET")
    gate.unlink()
    replay = start()
    helpers = lambda: [c for t in _tasks(replay.pid) for c in _children(t)]  # noqa: E731
    _wait_for(replay, lambda: len(helpers()) == 2)  # each task started its helper
    os.kill(replay.pid, signal.SIGINT)
    _out, err = replay.communicate(timeout=300)
    assert replay.returncode == 130, err
    assert _session(replay.pid) == []  # the helpers too: a task is killed with its group
    assert _g0_rows() == 0


@pytest.mark.timeout(600)
def test_a_task_killed_by_the_oom_killer_leaves_whole_runs_and_no_process(
    gate: Path, start
) -> None:  # type: ignore[no-untyped-def]
    # Already handled before this branch (tests/replay/test_replay_kills.py); here with the
    # check that nothing of the replay outlives it.
    replay = start()
    _wait_for(replay, lambda: len(_tasks(replay.pid)) == 2)
    os.kill(_tasks(replay.pid)[0], signal.SIGKILL)
    gate.touch()
    _out, err = replay.communicate(timeout=600)
    assert "Traceback" not in err
    stored = _g0_rows()
    assert stored in (20, 40), err  # the other run is whole; the killed one re-run or refused
    assert replay.returncode == (0 if stored == 40 else 1), err
    assert _session(replay.pid) == []
    _rerun_completes()
