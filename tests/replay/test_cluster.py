"""Replay on a real dask.distributed cluster: a scheduler and two workers on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gitutil import git

import flor
from flor.errors import ReplayError
from flor.replay import execute, plan

DASK = str(Path(sys.executable).with_name("dask"))
SLOW_SCRIPT = """\
import time
import numpy as np
import flor

np.random.seed(flor.arg("seed", 0))
w = np.zeros(3)
with flor.checkpointing(weights=w):
    for epoch in flor.loop("epoch", range(4)):
        for step in flor.loop("step", range(5)):
            grad = np.random.randn(3)
            w -= 0.1 * grad
            time.sleep(SLEEP)
        flor.log("w0", float(w[0]))
"""
DEPENDENT_SCRIPT = """\
import numpy as np
import flor
from featurize import scale

np.random.seed(flor.arg("seed", 0))
w = np.zeros(3)
with flor.checkpointing(weights=w):
    for epoch in flor.loop("epoch", range(3)):
        w += scale(np.random.randn(3))
        flor.log("w0", float(w[0]))
"""
ENV_SCRIPT = """\
import os
import flor

x = [0.0]
with flor.checkpointing(x=x):
    for epoch in flor.loop("epoch", range(3)):
        x[0] += 1.0
        flor.log("x", x)
"""
GATED = """\
import os
import time


def wait_for(gate):
    while not os.path.exists(gate):
        time.sleep(0.01)
"""
HINDSIGHT_W = (
    '        flor.log("w0", float(w[0]))\n',
    '        flor.log("w0", float(w[0]))\n        flor.log("w1", float(w[1]))\n',
)
HINDSIGHT = ("            w -= 0.1 * grad\n", '            flor.log("g0", float(grad[0]))\n')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_workers(address: str, count: int) -> None:
    from dask.distributed import Client

    with Client(address, timeout=30) as client:
        client.wait_for_workers(count, timeout=60)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = open(tmp_path / "cluster.log", "wb")  # noqa: SIM115 - closed below
    scheduler = subprocess.Popen(
        [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=logs,
        stderr=logs,
    )
    # Each worker's tasks unpack under its own TMPDIR, which shows where a task ran.
    for i in range(2):
        (tmp_path / f"worker{i}").mkdir()
    workers = [
        subprocess.Popen(
            [DASK, "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
             "--host", "127.0.0.1"],
            stdout=logs,
            stderr=logs,
            start_new_session=True,
            env={**os.environ, "TMPDIR": str(tmp_path / f"worker{i}")},
        )
        for i in range(2)
    ]  # fmt: skip
    try:
        _wait_for_workers(address, 2)
        yield address, workers
    finally:
        for proc in [*workers, scheduler]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*workers, scheduler]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        logs.close()


@pytest.fixture
def recorded(repo, script, monkeypatch):  # type: ignore[no-untyped-def]
    def record(sleep: float, gate: Path | None = None) -> list[str]:
        """Two runs; with a gate file, each step waits while the gate is missing."""
        monkeypatch.setenv("FLOR_CKPT_BUDGET", "1")
        source = SLOW_SCRIPT.replace("SLEEP", str(sleep))
        if gate is not None:
            gate.touch()
            step = "            time.sleep("
            waits = f"            wait_for({str(gate)!r})\n{step}"
            source = source.replace(step, waits).replace("import time\n", GATED)
        train = script("train.py", source)
        git(repo, "add", "train.py")
        git(repo, "commit", "-q", "-m", "v1")
        for seed in (0, 1):
            train.run("--kwargs", f"seed={seed}")
        anchor, line = HINDSIGHT
        train.path.write_text(train.path.read_text().replace(anchor, anchor + line))
        monkeypatch.delenv("FLOR_CKPT_BUDGET")
        return flor.query("SELECT run_id FROM runs ORDER BY started")["run_id"].tolist()

    return record


def _g0() -> dict[str, list[float]]:
    df = flor.dataframe("g0").dropna(subset=["g0"])
    return {run: group["g0"].tolist() for run, group in df.groupby("runid")}


def test_dask_cluster_gives_the_values_of_the_local_backend(cluster, recorded) -> None:
    address, _ = cluster
    runs = recorded(0.0)
    local = execute(plan(["g0"], jobs=2))
    assert not local.failed
    expected = _g0()
    assert sorted(expected) == sorted(runs) and all(len(v) == 20 for v in expected.values())
    on_cluster = execute(plan(["g0"], jobs=2), backend="dask", scheduler=address)
    assert not on_cluster.failed, [r.tail for r in on_cluster.failed]
    assert _g0() == expected
    count = flor.query("SELECT COUNT(*) AS n FROM logs WHERE name = 'g0'")["n"].item()
    assert count == 40  # the second replay replaced the first one's values


def test_tasks_are_spread_over_the_workers(cluster, recorded, tmp_path: Path) -> None:
    address, _ = cluster
    recorded(0.05)  # two runs whose tasks take seconds: both are running at once
    the_plan = plan(["g0"], jobs=2)
    assert sum(len(run.tasks) for run in the_plan.active) == 2
    summary = execute(the_plan, backend="dask", scheduler=address)
    assert not summary.failed, [r.tail for r in summary.failed]
    places = flor.query("SELECT cwd FROM runs WHERE mode = 'replay'")["cwd"]
    used = {i for i in range(2) for cwd in places if cwd.startswith(str(tmp_path / f"worker{i}"))}
    assert len(places) == 2 and used == {0, 1}  # one task on each worker


def _has_task(worker: subprocess.Popen[bytes]) -> bool:
    """Whether one of the worker's processes runs a replay task (the patched script)."""
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError, ProcessLookupError):
            mine = entry.isdigit() and os.getsid(int(entry)) == worker.pid
            # a task forks from its warm server: it is known by its folder, not its command
            if mine and "/flor-task-" in os.readlink(f"/proc/{entry}/cwd"):
                return True
    return False


def test_a_worker_killed_mid_task_is_retried_and_nothing_is_written_twice(
    cluster, recorded, tmp_path: Path
) -> None:
    address, workers = cluster
    gate = tmp_path / "gate"
    recorded(0.0, gate)
    gate.unlink()  # every task waits at its first step until the gate is back
    the_plan = plan(["g0"], jobs=2)
    killed: list[subprocess.Popen[bytes]] = []
    replayed = threading.Event()

    def kill_mid_task() -> None:
        while not killed and not replayed.is_set():
            for worker in workers:
                if _has_task(worker):
                    os.killpg(worker.pid, signal.SIGKILL)
                    killed.append(worker)
                    break
            time.sleep(0.05)
        gate.touch()

    killer = threading.Thread(target=kill_mid_task)
    killer.start()
    try:
        summary = execute(the_plan, backend="dask", scheduler=address)
    finally:
        replayed.set()
        killer.join()
    victim = killed[0]
    assert victim.poll() is not None
    assert not summary.failed, [r.tail for r in summary.failed]
    values = _g0()
    assert len(values) == 2 and all(len(v) == 20 for v in values.values())
    count = flor.query("SELECT COUNT(*) AS n FROM logs WHERE name = 'g0'")["n"].item()
    assert count == 40


def test_an_unreachable_scheduler_is_a_clear_error_within_ten_seconds(recorded) -> None:
    recorded(0.0)
    the_plan = plan(["g0"])
    started = time.monotonic()
    with pytest.raises(ReplayError, match="cannot reach the dask scheduler at tcp://127.0.0.1"):
        execute(the_plan, backend="dask", scheduler=f"tcp://127.0.0.1:{_free_port()}")
    assert time.monotonic() - started < 10
    assert flor.query("SELECT COUNT(*) AS n FROM logs WHERE name = 'g0'")["n"].item() == 0


def test_cluster_workers_read_checkpoints_from_a_file_url(
    cluster, recorded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address, _ = cluster
    shared = tmp_path / "shared-ckpt"
    monkeypatch.setenv("FLOR_CHECKPOINTS", shared.as_uri())
    recorded(0.0)
    assert not (Path.cwd() / ".flor" / "checkpoints").exists()
    local = execute(plan(["g0"], jobs=2))
    assert not local.failed, [r.tail for r in local.failed]
    expected = _g0()
    # the workers were started without the setting: the replay passes it to each task
    on_cluster = execute(plan(["g0"], jobs=2), backend="dask", scheduler=address)
    assert not on_cluster.failed, [r.tail for r in on_cluster.failed]
    assert _g0() == expected and all(len(v) == 20 for v in expected.values())
    the_plan = plan(["g0"], jobs=2)
    shared.rename(shared.with_name("elsewhere"))  # as if the workers could not reach it
    unreadable = execute(the_plan, backend="dask", scheduler=address)
    assert len(unreadable.failed) == 2 and unreadable.values_written == 0
    assert all(
        f.tail.startswith("checkpoint blob ") and f"missing from {shared.as_uri()}" in f.tail
        for f in unreadable.failed
    )


def test_workers_without_a_dependency_report_its_import_error_per_run(
    cluster, script, repo: Path, tmp_path: Path
) -> None:
    address, _ = cluster
    extra = tmp_path / "site"  # on the recording machine's path, not on the workers'
    extra.mkdir()
    (extra / "featurize.py").write_text("def scale(x):\n    return 2 * x\n")
    train = script("train.py", DEPENDENT_SCRIPT)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    for seed in (0, 1):
        train.run("--kwargs", f"seed={seed}", env={**os.environ, "PYTHONPATH": str(extra)})
    train.path.write_text(train.path.read_text().replace(*HINDSIGHT_W))
    summary = execute(plan(["w1"], jobs=2), backend="dask", scheduler=address)
    assert len(summary.failed) == 2 and summary.values_written == 0
    assert all("No module named 'featurize'" in f.tail for f in summary.failed)


def test_tasks_do_not_inherit_the_dask_workers_malloc_tuning(cluster, script, repo: Path) -> None:
    from dask.distributed import Client

    address, _ = cluster
    with Client(address, timeout=30) as client:  # the nanny tunes its workers' malloc
        tuned = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert set(tuned.values()) == {"65536"}
    train = script("train.py", ENV_SCRIPT)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    train.run()
    anchor = '        flor.log("x", x)\n'
    hindsight = '        flor.log("trim", os.environ.get("MALLOC_TRIM_THRESHOLD_", "unset"))\n'
    train.path.write_text(train.path.read_text().replace(anchor, anchor + hindsight))
    summary = execute(plan(["trim"]), backend="dask", scheduler=address)
    assert not summary.failed, [r.tail for r in summary.failed]
    assert flor.dataframe("trim")["trim"].tolist() == ["unset"] * 3
