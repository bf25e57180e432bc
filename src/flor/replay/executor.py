"""Running a replay plan: each task is a subprocess of the patched old script in replay mode,
fanned out with joblib (loky by default; any joblib backend, e.g. dask, can be chosen).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flor import vcs
from flor.errors import CheckpointError, ReplayError, UsageError
from flor.replay import sandbox
from flor.replay.planner import Plan, RunPlan
from flor.runtime.checkpoint import BlobStore
from flor.store import reader
from flor.store.location import CHECKPOINTS_ENV, checkpoint_home
from flor.store.values import decode

TAIL_LINES = 12
CONNECT_TIMEOUT_S = 8


@dataclass
class TaskResult:
    run_id: str
    replay_id: str
    ok: bool
    seconds: float
    returncode: int
    tail: str


@dataclass
class Mismatch:
    run_id: str
    name: str
    ctx_id: int | None
    recorded: Any
    replayed: Any


@dataclass
class Summary:
    results: list[TaskResult]
    values_written: int
    seconds: float
    mismatches: list[Mismatch] = field(default_factory=list)
    verified: int = 0

    @property
    def failed(self) -> list[TaskResult]:
        return [r for r in self.results if not r.ok]

    @property
    def runs_replayed(self) -> int:
        by_run: dict[str, bool] = {}
        for r in self.results:
            by_run[r.run_id] = by_run.get(r.run_id, True) and r.ok
        return sum(by_run.values())


@dataclass
class Workspace:
    """Everything a worker needs to run a run's tasks, on this machine or another one:
    the snapshot travels as a tar archive, so workers need no access to the repository."""

    archive: bytes
    script: str
    patched: str
    cwd: str
    argv: list[str]
    data_root: str

    def materialize(self, base: Path) -> tuple[list[str], Path]:
        tree = vcs.extract(self.archive, base)
        (tree / self.script).write_text(self.patched, encoding="utf-8")
        cwd = sandbox.build(tree, Path(self.data_root), self.cwd)
        return [sys.executable, str(tree / self.script), *self.argv], cwd


# Set by dask's nanny for its workers' own memory (distributed.nanny.pre-spawn-environ).
# Inherited by a training script, it sends every freed tensor buffer back to the kernel:
# torch ran 1.4x slower on dask workers than under loky until tasks stopped inheriting it.
_WORKER_ONLY = ("MALLOC_TRIM_THRESHOLD_",)


def _worker_environment() -> dict[str, str]:
    """The worker's environment without flor settings, which come from the replaying process
    (a reused pool worker may have been started under other settings), and without the
    worker's own tuning."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith("FLOR_") and k not in _WORKER_ONLY
    }


def _unreadable_checkpoints(spec: dict[str, Any], location: str) -> str | None:
    """Why this worker cannot read the run's checkpoints, found before the script starts, so
    the task fails with one line rather than a traceback from inside the user's loop."""
    if spec["mode"] == "prefix" or not spec["checkpoints"]:
        return None
    first = spec["checkpoints"][min(spec["checkpoints"], key=int)]
    try:
        blobs = BlobStore(location)
        for digest in first.values():
            blobs.check_readable(digest)
    except CheckpointError as exc:
        return (
            f"{str(exc).rstrip('.')} (on worker {socket.gethostname()}): give every worker "
            f"read access to {location}, or set {CHECKPOINTS_ENV} to a location they share"
        )
    return None


def run_task(workspace: Workspace, spec_json: str, env: dict[str, str]) -> TaskResult:
    """One task: the patched script in replay mode, in its own process and folder."""
    started = time.perf_counter()
    spec = json.loads(spec_json)
    run_id, replay_id = spec["run_id"], spec["replay_id"]
    unreadable = _unreadable_checkpoints(spec, env[CHECKPOINTS_ENV])
    if unreadable is not None:
        elapsed = time.perf_counter() - started
        return TaskResult(run_id, replay_id, False, elapsed, CheckpointError.exit_code, unreadable)
    with tempfile.TemporaryDirectory(prefix="flor-task-") as tmp:
        try:
            command, cwd = workspace.materialize(Path(tmp))
            done = subprocess.run(
                command,
                cwd=cwd,
                capture_output=True,
                text=True,
                env={**_worker_environment(), **env, "FLOR_REPLAY": spec_json},
            )
        except (OSError, ReplayError) as exc:
            elapsed = time.perf_counter() - started
            return TaskResult(run_id, replay_id, False, elapsed, -1, str(exc))
    tail = "\n".join(done.stderr.strip().splitlines()[-TAIL_LINES:])
    elapsed = time.perf_counter() - started
    return TaskResult(run_id, replay_id, done.returncode == 0, elapsed, done.returncode, tail)


@contextmanager
def exclusive(home: Path) -> Iterator[None]:
    """One replay per store at a time: a second one is refused, not interleaved."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "replay.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ReplayError(
                f"another flor replay is running on the store in {home}: wait for it to finish"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _workspace(plan: Plan, run: RunPlan) -> Workspace:
    assert run.snapshot is not None
    cwd = "."
    if run.cwd:
        original = Path(run.cwd)
        is_inside = original.is_relative_to(plan.root)
        cwd = original.relative_to(plan.root).as_posix() if is_inside else str(original)
    return Workspace(
        vcs.archive(plan.root, run.snapshot),
        run.filename,
        run.patched,
        cwd,
        run.argv[1:],
        str(plan.root),
    )


def execute(
    plan: Plan, *, backend: str = "loky", scheduler: str | None = None, progress: bool = False
) -> Summary:
    from joblib import Parallel, delayed

    started = time.perf_counter()
    env = {
        **{k: v for k, v in os.environ.items() if k.startswith("FLOR_")},
        "FLOR_HOME": str(plan.home),
        CHECKPOINTS_ENV: checkpoint_home(plan.home),
        "PYTHONUNBUFFERED": "1",
        **_thread_limits(plan.jobs),
    }
    results: list[TaskResult] = []
    with exclusive(plan.home), engine(backend, plan.jobs, scheduler):
        jobs = [
            (_workspace(plan, run), task.to_json()) for run in plan.active for task in run.tasks
        ]
        bar = _progress(len(jobs)) if progress else None
        outcomes = Parallel(return_as="generator_unordered")(
            delayed(run_task)(workspace, spec, env) for workspace, spec in jobs
        )
        try:
            for result in outcomes:
                results.append(result)
                if bar is not None:
                    bar[0].advance(bar[1])
        finally:
            if bar is not None:
                bar[0].stop()
    replay_ids = [r.replay_id for r in results]
    summary = Summary(results, _count_values(replay_ids), time.perf_counter() - started)
    if plan.verify:
        _verify(plan, replay_ids, summary)
    return summary


@contextmanager
def engine(backend: str, jobs: int, scheduler: str | None = None) -> Iterator[None]:
    """joblib's configuration for the chosen backend; dask and ray attach to a cluster."""
    from joblib import parallel_config

    if backend == "dask":
        with _dask_client(jobs, scheduler), parallel_config(backend="dask", n_jobs=jobs):
            yield
        return
    if backend == "ray":
        try:
            from ray.util.joblib import register_ray
        except ImportError:
            raise UsageError(
                "the ray backend needs ray: pip install 'flor[ray]', or use --backend dask"
            ) from None
        register_ray()
        with parallel_config(backend="ray", n_jobs=jobs):
            yield
        return
    if scheduler:
        raise UsageError("--scheduler only applies to --backend dask or ray")
    with parallel_config(backend=backend, n_jobs=jobs):
        yield


@contextmanager
def _dask_client(jobs: int, scheduler: str | None) -> Iterator[Any]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UsageError(
            "the dask backend needs dask.distributed: pip install 'flor[dask]'"
        ) from None
    if scheduler is None:
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, dashboard_address=None)
        with cluster, Client(cluster) as client:
            yield client
        return
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise ReplayError(
            f"cannot reach the dask scheduler at {scheduler} within {CONNECT_TIMEOUT_S} s "
            f"({type(exc).__name__}): check the address and that `dask scheduler` runs"
        ) from None
    with client:
        yield client


def _thread_limits(jobs: int) -> dict[str, str]:
    """Share the cores between parallel tasks instead of oversubscribing them."""
    if jobs <= 1:
        return {}
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    return {name: threads for name in names if name not in os.environ}


def _progress(total: int) -> tuple[Any, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    bar.start()
    return bar, bar.add_task("replaying", total=total)


def _count_values(replay_ids: list[str]) -> int:
    if not replay_ids:
        return 0
    marks = ",".join("?" * len(replay_ids))
    frame = reader.query(
        f"SELECT COUNT(*) AS n FROM logs WHERE replay_id IN ({marks})", tuple(replay_ids)
    )
    return int(frame["n"].iloc[0])


def _verify(plan: Plan, replay_ids: list[str], summary: Summary) -> None:
    """Compare re-logged values of already recorded names with the recorded ones."""
    marks = ",".join("?" * len(replay_ids))
    names = ",".join("?" * len(plan.verify))
    frame = reader.query(
        f"SELECT run_id, ctx_id, name, value, type, replay_id IS NULL AS recorded FROM logs "
        f"WHERE name IN ({names}) AND (replay_id IS NULL OR replay_id IN ({marks})) "
        "ORDER BY seq",
        (*plan.verify, *replay_ids),
    )
    replayed_runs = {r.run_id for r in summary.results if r.ok}
    recorded: dict[tuple[str, Any, str], list[Any]] = {}
    replayed: dict[tuple[str, Any, str], list[Any]] = {}
    for run_id, ctx, name, value, kind, is_recorded in frame.itertuples(index=False):
        if run_id not in replayed_runs:
            continue
        key = (run_id, None if ctx != ctx else ctx, name)
        (recorded if is_recorded else replayed).setdefault(key, []).append(decode(value, kind))
    for key, values in replayed.items():
        original = recorded.get(key, [])
        for index, value in enumerate(values):
            summary.verified += 1
            if index >= len(original) or original[index] != value:
                old = original[index] if index < len(original) else None
                summary.mismatches.append(Mismatch(key[0], key[2], key[1], old, value))
