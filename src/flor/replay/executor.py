"""Running a replay plan: each task is a process of the patched old script in replay mode.
On this machine (the default) tasks fork from one warm interpreter per environment
(`flor.replay.warm`), which outlives the replay for the next one; on a cluster they are fanned
out with joblib (dask, ray) and fork from their worker's own warm interpreter.

A process unpacks each run's snapshot once, and tasks never open the store: the executor
writes the task rows and, once the guard has confirmed them, the values the tasks hand back.

Interrupted (Ctrl-C, or SIGTERM through `flor replay`), a replay kills its tasks first and
only then waits for the threads that ran them, so it ends at once whatever they were doing;
runs stored before stay, the others have nothing stored and their task rows say `killed`.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import io
import json
import os
import posixpath
import re
import shutil
import socket
import statistics
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flor import vcs
from flor.blobs import BlobStore
from flor.errors import CheckpointError, FlorError, ReplayError, UsageError
from flor.paths import CHECKPOINTS_ENV, checkpoint_home, db_path
from flor.replay import sandbox, warm
from flor.replay.planner import FULL, STRICTER, Plan, RunPlan, make_tasks, script_key
from flor.store import reads
from flor.store.backend import STORE_ENV
from flor.store.values import decode
from flor.store.writer import StoreWriter
from flor.taskspec import OUTPUT_ENV, SPEC_ENV, TaskSpec

TAIL_LINES = 12
CONNECT_TIMEOUT_S = 8


class ReplayInterrupted(KeyboardInterrupt):
    """The replay was interrupted: its tasks were stopped; says what was kept."""


@dataclass
class TaskResult:
    run_id: str
    replay_id: str
    ok: bool
    seconds: float
    returncode: int
    tail: str
    # what the task derived: {"logs": [...rows], "loops": [...rows]}, not yet stored
    values: dict[str, Any] = field(default_factory=dict)
    host: str = ""
    cwd: str = ""  # the folder the task ran in, on its worker
    # task start -> its first replayed iteration (None: it never reached one)
    startup_s: float | None = None
    # the script's own part of it: from its fork off the warm server (None: not forked)
    own_startup_s: float | None = None
    # it imported libraries the server had not: its start-up is not a warm task's
    importing: bool = False


@dataclass
class RunOutcome:
    """One run's replay: how it was replayed, what the guard saw, what was stored."""

    run_id: str
    strategy: str
    guard: str
    fallback: str = ""
    stored: int = 0
    ok: bool = True

    def line(self) -> str:
        text = f"run {self.run_id}: {self.strategy}, {self.guard}"
        if self.fallback:
            text += f"; {self.fallback}"
        return text + (f"; stored {self.stored} values" if self.ok else "; nothing stored")


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
    runs: list[RunOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[TaskResult]:
        return [r for r in self.results if not r.ok]

    @property
    def runs_replayed(self) -> int:
        return sum(r.ok for r in self.runs)

    @property
    def unconfirmed(self) -> list[RunOutcome]:
        return [r for r in self.runs if not r.ok]


@dataclass
class Workspace:
    """Everything a worker needs to run a run's tasks, on this machine or another one:
    the snapshot travels as a tar archive, so workers need no access to the repository."""

    snapshot: str
    archive: bytes
    script: str
    patched: str
    cwd: str
    argv: list[str]
    data_root: str
    # found once, where the workspace is made (ast.parse is not thread-safe on Python 3.11)
    imports: list[str]

    def materialize(self, base: Path) -> tuple[list[str], Path]:
        """The task's own tree (a copy of the run's unpacked snapshot, with the patched
        script), the command to run and the folder to run it in."""
        tree = base / "tree"
        shutil.copytree(_unpacked(self.snapshot, self.archive), tree, symlinks=True)
        (tree / self.script).write_text(self.patched, encoding="utf-8")
        cwd = sandbox.build(tree, Path(self.data_root), self.cwd)
        return [sys.executable, str(tree / self.script), *self.argv], cwd


def _outside_imports(archive: bytes, script: str, patched: str) -> list[str]:
    """The modules the script imports from outside its project: none named like an entry at
    the snapshot's top or beside the script, which would shadow it."""
    folders = {"", posixpath.dirname(script)}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = tar.getnames()
    local = {Path(name).name.split(".")[0] for name in names if posixpath.dirname(name) in folders}
    return warm.external_imports(patched, local)


# A process unpacks each run's snapshot once, however many of the run's tasks it runs.
_unpacked_trees: dict[str, Path] = {}
_unpacking = threading.Lock()


def _unpacked(snapshot: str, archive: bytes) -> Path:
    with _unpacking:
        tree = _unpacked_trees.get(snapshot)
        if tree is None or not tree.is_dir():
            folder = tempfile.mkdtemp(prefix="flor-snapshot-")
            atexit.register(shutil.rmtree, folder, True)
            tree = _unpacked_trees[snapshot] = vcs.extract(archive, Path(folder) / "tree")
        return tree


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


def run_task(
    workspace: Workspace,
    spec_json: str,
    env: dict[str, str],
    stop: threading.Event | None = None,
) -> TaskResult:
    """One task: the patched script in replay mode, in its own process and folder; on this
    machine, never started (or killed) once `stop` is set."""
    started = time.time()
    spec = json.loads(spec_json)
    run_id, replay_id = spec["run_id"], spec["replay_id"]
    host = socket.gethostname()
    unreadable = _unreadable_checkpoints(spec, env[CHECKPOINTS_ENV])
    if unreadable is not None:
        elapsed = time.time() - started
        return TaskResult(
            run_id, replay_id, False, elapsed, CheckpointError.exit_code, unreadable, host=host
        )
    with tempfile.TemporaryDirectory(prefix="flor-task-") as tmp:
        folder = Path(tmp)
        handback = folder / "handback"
        handback.mkdir()
        (handback / "spec.json").write_text(spec_json, encoding="utf-8")
        output = handback / "values.json"
        try:
            command, cwd = workspace.materialize(folder)
            base = warm.server_environment(env)
            handed = {SPEC_ENV: str(handback / "spec.json"), OUTPUT_ENV: str(output)}
            task_env = {**base, **env, **handed}
            server = warm.server_for(base, stop=stop)
            returncode, _, stderr = server.run(
                command, cwd, task_env, workspace.imports, handback, folder / "tree", stop
            )
            values = json.loads(output.read_text(encoding="utf-8")) if output.exists() else {}
            forked = float(warm.read_text(handback / "forked") or "nan")
            importing = warm.read_text(handback / "modules.json") not in ("", "[]")
        except (OSError, ValueError, ReplayError) as exc:
            elapsed = time.time() - started
            return TaskResult(run_id, replay_id, False, elapsed, -1, str(exc), host=host)
    tail = "\n".join(stderr.strip().splitlines()[-TAIL_LINES:])
    elapsed = time.time() - started
    ok = returncode == 0 and bool(values)
    if returncode == 0 and not values:
        tail = (tail + "\nthe task ended without handing back its values").strip()
    first = values.pop("first_iteration", None) if values else None
    startup = None if first is None else max(0.0, float(first) - started)
    own = None if first is None or forked != forked else max(0.0, float(first) - forked)
    return TaskResult(
        run_id, replay_id, ok, elapsed, returncode, tail, values, host, str(cwd), startup, own,
        importing,
    )  # fmt: skip


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
    archive = vcs.archive(plan.root, run.snapshot)
    return Workspace(
        run.snapshot,
        archive,
        run.filename,
        run.patched,
        cwd,
        run.argv[1:],
        str(plan.root),
        _outside_imports(archive, run.filename, run.patched),
    )


def execute(
    plan: Plan, *, backend: str = "loky", scheduler: str | None = None, progress: bool = False
) -> Summary:
    """Run the plan's tasks; store a run's values only once the guard has confirmed them,
    re-planning a run with the next stricter strategy when it does not."""

    started = time.perf_counter()
    local = backend in warm.LOCAL_BACKENDS
    env = _task_environment(plan.home, plan.jobs if local else None)
    summary = Summary([], 0, 0.0)
    if local:  # the warm server starts importing while the snapshots are archived
        server = warm.warm_up(plan.jobs)
    writer = StoreWriter(db_path(plan.home))
    running: set[str] = set()  # task rows that say `running`
    try:
        with exclusive(plan.home), engine(backend, plan.jobs, scheduler):
            contexts = {run.run_id: writer.loop_contexts(run.run_id) for run in plan.active}
            pending = list(plan.active)
            while pending:
                spaces = {run.run_id: _workspace(plan, run) for run in pending}
                if local:
                    server.preload(sorted({m for w in spaces.values() for m in w.imports}))
                run_envs = {run.run_id: _run_environment(plan.home, run, env) for run in pending}
                jobs = []
                for run in pending:
                    for task in run.tasks:
                        task.contexts = contexts[run.run_id]
                        running.add(task.replay_id)  # first: an interrupt may cut the insert
                        _task_started(writer, run, task)
                        jobs.append((spaces[run.run_id], task.to_json(), run_envs[run.run_id]))
                results = _run_all(jobs, writer, running, progress, plan.jobs if local else None)
                pending = _settle_all(plan, pending, results, summary)
    except KeyboardInterrupt as exc:
        writer.close()  # rolls back what the interrupt cut short
        stopped = _interrupted(plan.home, running)
        raise ReplayInterrupted(_interruption(plan, summary, stopped)) from exc
    finally:
        writer.close()
        warm.close_all()
    if local:
        warm.remember_startups(warm.local_environment(plan.jobs), _startups(plan, summary.results))
    summary.seconds = time.perf_counter() - started
    return summary


def _interrupted(home: Path, running: set[str]) -> int:
    """Mark the interrupted replay's unfinished task rows `killed`: how many there were.
    On a connection of its own, the replay's being closed (which rolls back what it held):
    SQLite's writer rolls back an interrupt anywhere in its transaction, but one landing
    inside psycopg's COMMIT or ROLLBACK leaves a PostgreSQL connection in an unknown state
    (psycopg then may close it), and a write on it could be lost or refused."""
    writer = StoreWriter(db_path(home))
    now = time.time()
    # a store that stays locked: the rows say running, and nothing was stored either way
    with contextlib.closing(writer), contextlib.suppress(FlorError):
        for replay_id in sorted(running):
            writer.update_run(
                replay_id, status="killed", ended=now, heartbeat=now, error="replay interrupted"
            )
    return len(running)


def _interruption(plan: Plan, summary: Summary, stopped: int) -> str:
    """One line: what the interrupted replay stopped, what it kept, how to resume."""
    kept = [r for r in summary.runs if r.ok]
    left = len(plan.active) - len(kept)
    what = f"stopped {stopped} unfinished tasks" if stopped else "stopped with no task running"
    return (
        f"{what}; {len(kept)} runs were stored, {left} runs have nothing stored: "
        "run the same command again to replay them"
    )


def _startups(plan: Plan, results: list[TaskResult]) -> dict[str, float]:
    """Each replayed script's own start-up in its forked tasks, for the next plan's
    estimate: the median of the tasks that found every library imported, else the
    fastest task (the others waited for imports a warm server will have done)."""
    runs = {r.run_id: r for r in plan.runs if r.context is not None}
    found: dict[str, list[tuple[bool, float]]] = {}
    for result in results:
        run = runs.get(result.run_id)
        if run is not None and run.context is not None and result.own_startup_s is not None:
            key = script_key(run.context.projid, run.filename)
            found.setdefault(key, []).append((result.importing, result.own_startup_s))
    startups = {}
    for key, measured in found.items():
        warm_tasks = [seconds for importing, seconds in measured if not importing]
        startups[key] = statistics.median(warm_tasks) if warm_tasks else min(s for _, s in measured)
    return startups


def _task_environment(home: Path, local_jobs: int | None) -> dict[str, str]:
    """What a task needs from the replaying process: where the checkpoints are and the
    thread settings the recording had (on this machine, with `local_jobs` tasks at a time:
    waiting passively if their threads would outnumber the cores). Nothing about the store
    (its location, its password): flor in the task never opens it."""
    if local_jobs is None:  # a cluster's workers: their cores are not this machine's
        threads = {k: v for k, v in os.environ.items() if k in warm.THREAD_SETTINGS}
    else:
        threads = warm.local_thread_settings(local_jobs)
    return {CHECKPOINTS_ENV: checkpoint_home(home), "PYTHONUNBUFFERED": "1", **threads}


# The script itself reads the store (a pipeline step choosing its model by its metrics).
_READS_STORE = re.compile(
    r"\bflor\s*\.\s*(?:dataframe|query|latest|load|utils)\b"
    r"|\bfrom\s+flor(?:\.utils)?\s+import\b[^\n]*\b(?:dataframe|query|latest|load)\b"
)


def _run_environment(home: Path, run: RunPlan, env: dict[str, str]) -> dict[str, str]:
    """A run's task environment: the store's location (and credentials) only for a
    version whose script reads the store itself."""
    if not _READS_STORE.search(run.patched):
        return env
    store = {k: v for k, v in os.environ.items() if k == STORE_ENV}
    return {**env, "FLOR_HOME": str(home), **store}


def _run_all(
    jobs: list[tuple[Workspace, str, dict[str, str]]],
    writer: StoreWriter,
    running: set[str],
    progress: bool,
    local_jobs: int | None,
) -> list[TaskResult]:
    """Run the tasks: `local_jobs` at a time from this process's warm servers, else through
    joblib's configured backend (a cluster)."""
    bar = _progress(len(jobs)) if progress else None
    results: list[TaskResult] = []
    stop = threading.Event()
    try:
        for result in _outcomes(jobs, local_jobs, stop):
            results.append(result)
            _task_ended(writer, result)
            running.discard(result.replay_id)
            if bar is not None:
                bar[0].advance(bar[1])
    except BaseException:
        warm.stop_tasks(stop)  # the generator's own cleanup may not have run yet
        raise
    finally:
        if bar is not None:
            bar[0].stop()
    return results


def _outcomes(
    jobs: list[tuple[Workspace, str, dict[str, str]]],
    local_jobs: int | None,
    stop: threading.Event,
) -> Iterator[TaskResult]:
    if local_jobs is not None:
        # each thread waits on its task's fork; there are no worker processes to leak
        pool = ThreadPoolExecutor(max_workers=local_jobs)
        try:
            futures = [pool.submit(run_task, *job, stop) for job in jobs]
            for future in as_completed(futures):
                yield future.result()
        except BaseException:  # Ctrl-C (or the caller's error): kill the tasks first,
            warm.stop_tasks(stop)  # or the threads waiting on them are never joined
            raise
        finally:  # stopped, the threads return at once and queued tasks never start
            pool.shutdown(wait=not stop.is_set(), cancel_futures=True)
        return
    from joblib import Parallel, delayed
    from joblib.parallel import get_active_backend

    # ray's joblib backend (a multiprocessing pool) cannot stream results
    streams = get_active_backend()[0].supports_return_generator
    yield from Parallel(return_as="generator_unordered" if streams else "list")(
        delayed(run_task)(workspace, spec, env) for workspace, spec, env in jobs
    )


def _settle_all(
    plan: Plan, pending: list[RunPlan], results: list[TaskResult], summary: Summary
) -> list[RunPlan]:
    """Store or refuse each run's values; returns the runs re-planned for another attempt."""
    retry = []
    for run in pending:
        mine = [r for r in results if r.run_id == run.run_id]
        order = {t.replay_id: i for i, t in enumerate(run.tasks)}
        mine.sort(key=lambda r: order.get(r.replay_id, 0))
        problem = _problem(plan, run, mine)
        if problem is not None and run.strategy in STRICTER:
            make_tasks(run, STRICTER[run.strategy], because=problem)
            retry.append(run)
            continue
        summary.results.extend(mine)  # the tasks of the attempt that counts
        summary.runs.append(_settle(plan, run, mine, problem, summary))
    return retry


def _task_started(writer: StoreWriter, run: RunPlan, task: TaskSpec) -> None:
    """The task's row (mode replay), so `flor runs` and the UI see it while it runs."""
    now = time.time()
    writer.insert_run(
        {
            "run_id": task.replay_id, "projid": task.projid, "filename": run.filename,
            "tstamp": run.tstamp, "status": "running", "mode": "replay",
            "replay_of": run.run_id, "argv": json.dumps(run.argv), "cwd": run.cwd,
            "args": json.dumps(task.args), "started": now, "heartbeat": now,
        }
    )  # fmt: skip


def _task_ended(writer: StoreWriter, result: TaskResult) -> None:
    now = time.time()
    writer.update_run(
        result.replay_id,
        status="finished" if result.ok else "failed",
        ended=now,
        heartbeat=now,
        host=result.host or None,
        **({"cwd": result.cwd} if result.cwd else {}),
        error=None if result.ok else (result.tail.strip().splitlines() or [""])[-1],
    )


def _problem(plan: Plan, run: RunPlan, results: list[TaskResult]) -> str | None:
    """Why the run's values cannot be trusted: a failed task, or a re-derived recorded
    value that differs from the record."""
    failed = [r for r in results if not r.ok]
    if failed:
        last = (failed[0].tail.strip().splitlines() or ["no output"])[-1]
        return f"a task failed (exit {failed[0].returncode}: {last})"
    return _guard(run, results)[1] or _probe(run, results)


def _probe(run: RunPlan, results: list[TaskResult]) -> str | None:
    """The probe task's values (full re-execution of the first iterations) against the
    cheap strategy's values for the same iterations, bit for bit."""
    probes = {t.replay_id for t in run.tasks if t.probe}
    exact: dict[tuple[Any, str], list[Any]] = {}
    cheap: dict[tuple[Any, str], list[Any]] = {}
    for result in results:
        side = exact if result.replay_id in probes else cheap
        for row in result.values.get("logs", []):
            if row[3] in run.names and row[2] is not None:
                side.setdefault((row[2], row[3]), []).append((row[4], row[5]))
    for key, values in exact.items():
        if cheap.get(key) != values:
            got = (cheap.get(key) or [(None,)])[0][0]
            return (
                f"probe: {key[1]} at loop context {key[0]} is {values[0][0]} when re-executed, "
                f"{got} with {run.strategy}"
            )
    return None


def _guard(run: RunPlan, results: list[TaskResult]) -> tuple[int, str | None]:
    """Compare the recorded values the tasks re-derived with the record, bit for bit:
    (values compared, the first difference). The probe is compared on its own."""
    if not run.check:
        return 0, None
    probes = {t.replay_id for t in run.tasks if t.probe}
    recorded: dict[tuple[Any, str], list[tuple[Any, str]]] | None = None
    compared = 0
    for group in (
        [r for r in results if r.replay_id not in probes],
        [r for r in results if r.replay_id in probes],
    ):
        derived: dict[tuple[Any, str], list[tuple[Any, str]]] = {}
        for result in group:
            for row in result.values.get("logs", []):
                if row[3] in run.check:
                    derived.setdefault((row[2], row[3]), []).append((row[4], row[5]))
        if not derived:
            continue
        if recorded is None:
            recorded = _recorded_values(run.run_id, run.check)
        for key, values in derived.items():
            compared += len(values)
            difference = _difference(values, recorded.get(key, []), loop_free=key[0] is None)
            if difference is not None:
                where = "outside loops" if key[0] is None else f"loop context {key[0]}"
                return compared, f"guard: recorded {key[1]} {where} {difference}"
    return compared, None


def _difference(
    values: list[tuple[Any, str]], original: list[tuple[Any, str]], *, loop_free: bool
) -> str | None:
    if values == original:
        return None
    n = len(values)
    # prefix or suffix tasks derive one end of the run's loop-free values
    if loop_free and (original[:n] == values or original[len(original) - n :] == values):
        return None
    for mine, theirs in zip(values, original, strict=False):
        if mine != theirs:
            return f"was {theirs[0]}, replay gave {mine[0]}"
    return f"has {len(original)} values, replay gave {n}"


def _recorded_values(run_id: str, names: list[str]) -> dict[tuple[Any, str], list[tuple[Any, str]]]:
    found: dict[tuple[Any, str], list[tuple[Any, str]]] = {}
    for ctx, name, value, kind in reads.recorded_values(run_id, names):
        found.setdefault((ctx, name), []).append((value, kind))
    return found


def _settle(
    plan: Plan, run: RunPlan, results: list[TaskResult], problem: str | None, summary: Summary
) -> RunOutcome:
    """Store a confirmed run's values, or nothing; say which and why."""
    outcome = RunOutcome(run.run_id, run.strategy, "", run.fallback)
    if problem is not None:
        outcome.ok = False
        outcome.guard = f"not confirmed ({problem})"
        if run.strategy == FULL and not any(not r.ok for r in results):
            outcome.guard += ": the run does not reproduce its own record"
        return outcome
    compared, _ = _guard(run, results)
    outcome.guard = (
        f"guard confirmed {compared} recorded values"
        if compared
        else "guard: no recorded values to compare in the replayed region"
    )
    probes = {t.replay_id for t in run.tasks if t.probe}
    if probes:
        outcome.guard += ", probe confirmed"
    names = set(run.names) | set(plan.verify)
    kept = [t for t in results if t.replay_id not in probes]
    logs = [tuple(r) for t in kept for r in t.values.get("logs", []) if r[3] in names]
    loops = [tuple(r) for t in kept for r in t.values.get("loops", [])]
    if plan.verify:
        _verify(plan, run, logs, summary)
    if logs or loops:
        writer = StoreWriter(db_path(plan.home))
        try:
            writer.write_batch(kept[-1].replay_id, loops, logs, [], time.time(), tuple(run.names))
        finally:
            writer.close()
    outcome.stored = len(logs)
    summary.values_written += outcome.stored
    return outcome


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
        # a task whose worker dies is run again on a restarted worker (a task is idempotent:
        # it hands its values back, the replaying process stores them)
        retried = {"max_restarts": -1, "max_task_retries": -1}
        with (
            _ray_connection(scheduler),
            parallel_config(backend="ray", n_jobs=jobs, ray_remote_args=retried),
        ):
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


@contextmanager
def _ray_connection(address: str | None) -> Iterator[None]:
    """Attach to the ray cluster at `address` (`--address`); without one, ray's pool starts
    a local cluster."""
    import ray

    if address is None or ray.is_initialized():
        yield
        return
    try:
        ray.init(address=address, log_to_driver=False)
    except (ConnectionError, ValueError) as exc:
        raise ReplayError(
            f"cannot reach the ray cluster at {address} ({type(exc).__name__}): check the "
            "address and that `ray start --head` runs"
        ) from None
    try:
        yield
    finally:
        ray.shutdown()


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


def _verify(plan: Plan, run: RunPlan, logs: list[tuple[Any, ...]], summary: Summary) -> None:
    """Compare re-logged values of already recorded names with the recorded ones."""
    recorded = _recorded_values(run.run_id, plan.verify)
    replayed: dict[tuple[Any, str], list[Any]] = {}
    for row in logs:
        if row[3] in plan.verify:
            replayed.setdefault((row[2], row[3]), []).append(decode(row[4], row[5]))
    for key, values in replayed.items():
        original = [decode(v, k) for v, k in recorded.get(key, [])]
        for index, value in enumerate(values):
            summary.verified += 1
            if index >= len(original) or original[index] != value:
                old = original[index] if index < len(original) else None
                summary.mismatches.append(Mismatch(run.run_id, key[1], key[0], old, value))
