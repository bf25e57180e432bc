"""Replay on a real ray cluster: `ray start --head` on 127.0.0.1 with 2 CPUs, reached through
`flor replay --backend ray --address`, as a user would."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gated import record_gated_runs

import flor

RAY = str(Path(sys.executable).with_name("ray"))
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def ray_head() -> Iterator[tuple[str, int]]:
    """(address, session id of every process of the cluster); one cluster per module."""
    pytest.importorskip("ray")  # the dev extra installs it; `pip install 'flor[ray]'`
    # ray's socket paths must stay under 108 bytes: a short folder, not pytest's
    base = Path(tempfile.mkdtemp(prefix="flor-ray-"))
    port = _free_port()
    log = base / "head.log"
    with open(log, "wb") as out:
        head = subprocess.Popen(
            [RAY, "start", "--head", "--block", "--port", str(port), "--num-cpus", "2",
             "--include-dashboard=false", "--node-ip-address", "127.0.0.1",
             "--temp-dir", str(base / "t"), "--disable-usage-stats"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **RAY_ENV},
        )  # fmt: skip
    try:
        while "block forever" not in log.read_text(errors="replace"):
            assert head.poll() is None, log.read_text(errors="replace")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}", head.pid
    finally:
        with contextlib.suppress(ProcessLookupError):  # only what this fixture started
            os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        shutil.rmtree(base, ignore_errors=True)


def _replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flor", "replay", "g0", "--yes", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **RAY_ENV},
        timeout=600,
    )


def _g0() -> dict[str, list[float]]:
    df = flor.dataframe("g0").dropna(subset=["g0"])
    return {run: group["g0"].tolist() for run, group in df.groupby("runid")}


def _g0_rows() -> int:
    return int(flor.query("SELECT COUNT(*) AS n FROM logs WHERE name = 'g0'")["n"].item())


@pytest.fixture
def recorded(repo: Path, script, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Two recorded runs with a hindsight statement added; returns the gate file (open)."""
    gate = tmp_path / "gate"
    record_gated_runs(repo, script, monkeypatch, gate)
    return gate


@pytest.mark.timeout(900)
def test_ray_cluster_gives_the_values_of_one_local_job(ray_head, recorded) -> None:
    address, _ = ray_head
    local = _replay("--jobs", "1")
    assert local.returncode == 0, local.stderr
    expected = _g0()
    assert len(expected) == 2 and all(len(v) == 20 for v in expected.values())
    on_ray = _replay("--jobs", "2", "--backend", "ray", "--address", address)
    assert on_ray.returncode == 0, on_ray.stderr
    assert "0 tasks failed, 0 runs not confirmed" in on_ray.stderr
    assert _g0() == expected
    assert _g0_rows() == 40  # the ray replay replaced the local one's values


def _task_processes(session: int) -> dict[int, int]:
    """{pid: its ray worker's pid} of the replay tasks running on the cluster's workers: a
    task runs in a flor-task- folder, forked from its worker's warm server."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            in_task = "/flor-task-" in os.readlink(f"/proc/{entry}/cwd")
            in_cluster = os.getsid(int(entry)) == session
            server = _parent(int(entry))
            if in_cluster and in_task:
                found[int(entry)] = _parent(server)
        except (OSError, ProcessLookupError):
            continue
    return found


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.timeout(900)
def test_a_ray_worker_killed_mid_task_stores_nothing_wrong(ray_head, recorded) -> None:
    address, session = ray_head
    gate = recorded
    gate.unlink()  # every task now waits at its first step
    replay = subprocess.Popen(
        [sys.executable, "-m", "flor", "replay", "g0", "--yes", "--jobs", "2",
         "--backend", "ray", "--address", address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **RAY_ENV},
    )  # fmt: skip
    tasks: dict[int, int] = {}
    while not tasks:
        assert replay.poll() is None, replay.communicate()
        tasks = _task_processes(session)
        time.sleep(0.05)
    task, worker = next(iter(tasks.items()))
    os.kill(worker, signal.SIGKILL)  # the worker dies while its task runs
    gate.touch()
    out, err = replay.communicate(timeout=600)
    assert replay.returncode == 0, err
    assert "0 tasks failed, 0 runs not confirmed" in err
    killed_mid_task = _g0()
    assert len(killed_mid_task) == 2 and all(len(v) == 20 for v in killed_mid_task.values())
    assert _g0_rows() == 40  # nothing from the dead worker's task, nothing twice
    local = _replay("--jobs", "1")
    assert local.returncode == 0, local.stderr
    assert _g0() == killed_mid_task
