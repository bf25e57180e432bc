"""Warm task processes: a replay task forks from an interpreter that has already imported
the script's libraries, instead of starting Python and importing torch again.

One fork server serves one environment (interpreter, this file's version and the
variables, which include the BLAS/OpenMP thread settings: libraries read them when they
load, so a server started under other settings could compute different floats; and how
those threads wait, passively when a replay's tasks would outnumber the cores with them).
flor's per-replay settings (where the checkpoints are, the store for scripts that read it)
are not part of the environment: they come with each task. A server imports the modules the
tasks' scripts import from outside their projects (torch, numpy, ...), then forks one child
per task, several at a time; the child takes the task's variables, folder and arguments and runs
the script as `python SCRIPT ARGS` would, under `__main__`. Only imports happen before a
fork: no thread pools are running, and each child starts from the same state.

Replays reach their environment's server through a Unix socket in a folder only this user
may open (whoever can connect can run code as its owner). A server outlives the replay that
started it by `FLOR_WARM_IDLE_S` seconds without work (default 600; with 0 each replay has
a server of its own, its child, ending with it), so the next replay forks at once. What it
imported, including what tasks imported lazily (torch imports torch._dynamo when an
optimizer is made), is listed beside its socket, and the environment's next server imports
it as soon as it starts. A task ends with its replay: when a replay's connection closes
(its process ended, even by SIGKILL, or it stopped on Ctrl-C) the server kills that
replay's tasks, each with the processes it started (a task is a process group of its own),
and each task gets SIGKILL when the server dies (Linux's parent-death signal). Being its
own group, a task never sees the terminal's Ctrl-C: the replaying process alone stops it,
so a script or library that catches or loses that KeyboardInterrupt cannot keep a stopped
replay waiting.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import importlib
import importlib.machinery
import itertools
import json
import os
import runpy
import select
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# tasks run on this machine, forked from its warm servers (no joblib workers)
LOCAL_BACKENDS = ("loky", "threading")
IDLE_ENV = "FLOR_WARM_IDLE_S"
DEFAULT_IDLE_S = 600.0
SOCKET_PATH_MAX = 107  # bytes in a Unix socket's path (Linux)

# Set by dask's nanny for its workers' own memory (distributed.nanny.pre-spawn-environ).
# Inherited by a training script, it sends every freed tensor buffer back to the kernel:
# torch ran 1.4x slower on dask workers than under loky until tasks stopped inheriting it.
# The thread limits are set by joblib/loky in its workers (cores / jobs): a task with fewer
# BLAS/OpenMP threads than the recording computes different float sums, so a task gets
# the replaying process's own thread settings instead, as its recording did.
THREAD_SETTINGS = (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS",
)  # fmt: skip
# How idle BLAS/OpenMP threads wait. By default OpenMP runtimes (GNU's, which torch and its
# MKL use; LLVM's; Intel's) spin at every barrier before they sleep, and OpenBLAS's threads
# spin for work: harmless while a process's threads have the cores to themselves, ruinous
# when tasks x threads outnumber them (two 2-thread torch tasks on 2 cores: their OpenMP
# threads spent 90 % of their time spinning in libgomp, the replay took 3-10x longer than
# one task at a time). Passive waiting changes no float: the threads split the work as
# before, they only sleep instead of spinning while they wait.
WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OPENBLAS_THREAD_TIMEOUT")
PASSIVE_WAITING = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}
# joblib's import sets KMP_INIT_AT_FORK in the process that imports it: the recording had
# no such setting, and a server found before and after that import must be the same one.
_WORKER_ONLY = ("MALLOC_TRIM_THRESHOLD_", "KMP_INIT_AT_FORK", *THREAD_SETTINGS)

_servers: dict[str, ForkServer] = {}
_lock = threading.Lock()


def server_environment(env: dict[str, str]) -> dict[str, str]:
    """A warm server's environment: the worker's own without flor settings and the worker's
    tuning, plus the replaying process's settings except flor's, which come with each task
    (so one server serves every replay under the same settings)."""
    own = {
        k: v for k, v in os.environ.items() if not k.startswith("FLOR_") and k not in _WORKER_ONLY
    }
    return {**own, **{k: v for k, v in env.items() if not k.startswith("FLOR_")}}


def local_environment(jobs: int) -> dict[str, str]:
    """The environment of this machine's warm server for this process's replays with `jobs`
    tasks at a time: its own, with the thread settings the recording had."""
    return server_environment({"PYTHONUNBUFFERED": "1", **local_thread_settings(jobs)})


def local_thread_settings(jobs: int) -> dict[str, str]:
    """The thread settings of tasks run `jobs` at a time on this machine: this process's own
    (the recording's: fewer threads would change float sums), and passive waiting when the
    tasks' threads would outnumber the cores, unless the user chose how threads wait."""
    own = {k: v for k, v in os.environ.items() if k in THREAD_SETTINGS}
    chosen = any(k in os.environ for k in WAIT_SETTINGS)
    if chosen or jobs * threads_per_task(own) <= usable_cores():
        return own
    return {**own, **PASSIVE_WAITING}


def threads_per_task(settings: dict[str, str]) -> int:
    """How many threads a task's OpenMP/BLAS pools run: OMP_NUM_THREADS (its outermost
    level, as in `4,2`), else one per core, as OpenMP, OpenBLAS and torch default to."""
    first = settings.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(first) if first.isdigit() and int(first) > 0 else usable_cores()


def usable_cores() -> int:
    """The cores this process may run on (its affinity: `taskset`, a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


class ForkServer:
    """This process's connection to the warm interpreter of one environment, running any
    number of tasks at once. A shared server is found by the environment's socket (started
    when none runs) and outlives this process; a private one is this process's child and
    ends with it (a cluster's worker: its tasks must stay inside it)."""

    def __init__(self, env: dict[str, str], *, shared: bool = False) -> None:
        # FLOR_WARM_IDLE_S=0: a server of the replay's own, ending with it
        folder = _shared_folder() if shared and idle_seconds() > 0 else None
        self.asked = shared
        self.shared = folder is not None
        self.process: subprocess.Popen[bytes] | None = None
        self.private_folder: str | None = None
        if folder is not None:
            self.socket = _connect(env, folder)
        else:
            self.socket, self.process, self.private_folder = _private(env)
        self.stale = False  # the environment's installed modules changed since it started
        self._ids = itertools.count()
        self._write = threading.Lock()
        self._waiting: dict[int, tuple[threading.Event, dict[str, Any]]] = {}
        self._pid = 0
        self._stopped = False  # `stop` was called: no task starts on this connection again
        self._greeted = threading.Event()
        self._ended = threading.Event()
        self._replies = threading.Thread(target=self._read_replies, daemon=True)
        self._replies.start()

    @property
    def alive(self) -> bool:
        return not self._ended.is_set()

    @property
    def pid(self) -> int:
        """The server's process id (0 if it ended before greeting this connection)."""
        self._greeted.wait()
        return self._pid

    def preload(self, names: list[str]) -> None:
        """Import `names` in the server now, before the tasks that need them arrive."""
        self._send({"preload": names})

    def run(
        self,
        command: list[str],
        cwd: Path,
        env: dict[str, str],
        preload: list[str],
        logs: Path,
        project: Path,
        stop: threading.Event | None = None,
    ) -> tuple[int, str, str]:
        """Run `command` (interpreter, script, arguments) in a fresh fork: (exit status,
        stdout, stderr). Modules it imports from outside `project` are preloaded for the
        next task. Raises `Stopped` once `stop` is set or the connection stopped."""
        out, err = logs / "stdout", logs / "stderr"
        done, reply = threading.Event(), dict[str, Any]()
        with self._write:  # `stop` takes this lock too: a task starts before it or never
            if self._stopped or (stop is not None and stop.is_set()):
                raise Stopped("the replay was stopped before this task started")
            task = next(self._ids)
            self._waiting[task] = (done, reply)
        request = {
            "id": task, "script": command[1], "argv": command[2:], "cwd": str(cwd),
            "env": env, "preload": preload, "stdout": str(out), "stderr": str(err),
            "project": str(project),
        }  # fmt: skip
        if not self.alive:
            self._wake_all()
        self._send(request)
        done.wait()
        if "returncode" not in reply:
            if self._stopped:
                raise Stopped("the replay was stopped while this task ran")
            raise OSError("the warm replay process ended unexpectedly")
        self.stale = self.stale or bool(reply.get("stale"))
        return int(reply["returncode"]), read_text(out), read_text(err)

    def _send(self, message: dict[str, Any]) -> None:
        with self._write, contextlib.suppress(OSError):
            # the server ended: the reader wakes the waiting tasks
            self.socket.sendall((json.dumps(message) + "\n").encode())

    def _read_replies(self) -> None:
        with (
            contextlib.suppress(ValueError, KeyError, OSError),  # garbled: drop the server
            self.socket.makefile("r", encoding="utf-8") as replies,
        ):
            for line in replies:
                reply = json.loads(line)
                if "id" not in reply:
                    self._pid = int(reply["pid"])
                    self._greeted.set()
                    continue
                with self._write:
                    done, slot = self._waiting.pop(reply["id"])
                slot.update(reply)
                done.set()
        with contextlib.suppress(OSError):  # the server kills this connection's tasks
            self.socket.shutdown(socket.SHUT_RDWR)
        self._ended.set()
        self._greeted.set()
        self._wake_all()

    def _wake_all(self) -> None:
        with self._write:
            waiting, self._waiting = self._waiting, {}
        for done, _ in waiting.values():
            done.set()

    def stop(self) -> None:
        """Kill this connection's tasks now (the server kills a connection's tasks when it
        closes; a private server is told with SIGTERM, as it may be busy importing) and
        wake the threads waiting for them; no task starts on it again."""
        with self._write:
            self._stopped = True
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)
        self._end_private()
        self._wake_all()

    def close(self) -> None:
        """End this connection (and its tasks); a shared server lives on for the next
        replay, a private one ends with its only connection: at once, even mid-import (a
        replay interrupted while planning must not wait for torch to load)."""
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_WR)
        self._end_private()
        self._replies.join()
        self.socket.close()
        if self.process is not None:
            self.process.wait()
        if self.private_folder is not None:  # once its server, which writes there, ended
            _remove_tree(self.private_folder)

    def _end_private(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)  # it kills and reaps its tasks first


class Stopped(OSError):
    """A task was not run, or not run to its end, because its replay was stopped."""


def read_text(path: Path) -> str:
    """A file a task wrote (empty if it wrote none)."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def idle_seconds() -> float:
    """How long a server waits for the next replay (FLOR_WARM_IDLE_S)."""
    text = os.environ.get(IDLE_ENV, "")
    try:
        value = float(text) if text else DEFAULT_IDLE_S
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"{IDLE_ENV} must be a number of seconds >= 0, got {text!r}")
    return value


def _key(env: dict[str, str]) -> str:
    """The environment's name: interpreter, this file's text (a server speaks its own
    version's requests) and variables."""
    own = Path(__file__).read_bytes()
    described = json.dumps([sys.executable, sorted(env.items())]).encode()
    return hashlib.sha256(own + b"\0" + described).hexdigest()[:24]


def _shared_folder() -> Path | None:
    """Where shared servers' sockets are: a folder of this user's that no one else may
    open (None if there is none, or its socket paths would be too long)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    folder = Path(base) / f"flor-warm-{os.getuid()}"
    if len(str(folder)) > SOCKET_PATH_MAX - 30:  # the socket's name: 24 digits and .sock
        return None
    with contextlib.suppress(OSError):
        folder.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(folder)
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077:
            return folder
    return None


def _remove_tree(folder: str) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _end_then_remove(process: subprocess.Popen[bytes], folder: str) -> None:
    """At exit, a private server not closed (its replay ended otherwise): end it first, then
    remove its folder, which it writes in as it ends (removed before, the folder stayed)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # it kills and reaps its tasks first
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
    _remove_tree(folder)


def _connect(env: dict[str, str], folder: Path) -> socket.socket:
    """A connection to the environment's shared server, started first if none runs. Under
    the socket's lock: a server stops listening only while holding it."""
    name = _key(env)
    path = str(folder / f"{name}.sock")
    with open(folder / f"{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            client.connect(path)
            return client
        except (FileNotFoundError, ConnectionRefusedError):
            client.close()  # none runs (or one died without removing its socket)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        # returns once the server has detached itself; in a session of its own: the
        # terminal's Ctrl-C is for the replay, not for it
        started = _listening(path, env, [str(idle_seconds()), "detach"], start_new_session=True)
        if started.wait():
            raise subprocess.CalledProcessError(started.returncode, started.args)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)
        return client


def _listening(
    path: str, env: dict[str, str], args: list[str], **popen: Any
) -> subprocess.Popen[bytes]:
    """A server process started on a socket bound at `path` (`args`: its idle seconds and
    whether it detaches)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(64)
        return subprocess.Popen(
            [sys.executable, __file__, str(listener.fileno()), *args],
            pass_fds=(listener.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd="/",
            **popen,
        )


def _private(env: dict[str, str]) -> tuple[socket.socket, subprocess.Popen[bytes], str]:
    """A server of this process's own, listening in a folder of its own (only this user
    may open it) under the first base short enough for a socket path: a dask worker's
    TMPDIR can be longer than a Unix socket's path may be."""
    bases = [os.environ.get("XDG_RUNTIME_DIR"), tempfile.gettempdir(), "/tmp"]
    base = next(b for b in bases if b and len(b) <= SOCKET_PATH_MAX - 40)
    folder = tempfile.mkdtemp(prefix="flor-warm-", dir=base)
    path = os.path.join(folder, "server.sock")
    try:
        process = _listening(path, env, ["0"])
    except BaseException:
        _remove_tree(folder)
        raise
    atexit.register(_end_then_remove, process, folder)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    return client, process, folder


def server_for(
    env: dict[str, str], *, shared: bool | None = None, stop: threading.Event | None = None
) -> ForkServer:
    """This process's connection to the fork server for `env`, made on first use (again if
    it ended or its environment's installed modules changed); `shared` as the last one
    for `env` unless given (default: private). Raises `Stopped` once `stop` is set."""
    key = _key(env)
    with _lock:  # `stop_tasks` takes this lock too: no server is made after it ran
        if stop is not None and stop.is_set():
            raise Stopped("the replay was stopped before this task started")
        server = _servers.get(key)
        if server is None or not server.alive or server.stale or shared not in (None, server.asked):
            if server is not None:
                threading.Thread(target=server.close, daemon=True).start()
            keep = shared if shared is not None else server is not None and server.asked
            server = _servers[key] = ForkServer(env, shared=keep)
        return server


def warm_up(jobs: int) -> ForkServer:
    """Connect to this machine's warm server for the replay's tasks (`jobs` at a time),
    starting it when none runs: call it first (before importing what planning needs, before
    planning) so its imports overlap the replay's own work. This module imports nothing
    heavy."""
    from flor.errors import UsageError

    try:
        return server_for(local_environment(jobs), shared=True)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def preload_early(env: dict[str, str], names: set[str]) -> None:
    """Have the environment's server import `names` now, if this process is connected to
    it (`flor replay` connects before it plans): the imports overlap the rest of planning
    and archiving. Never starts a server (a dry run or the web UI's plan starts none)."""
    with _lock:
        server = _servers.get(_key(env))
    if server is not None and server.alive and names:
        server.preload(sorted(names))


def retire(env: dict[str, str]) -> int | None:
    """Ask the environment's shared server, if one runs, to end once its tasks are done
    (what it learned stays listed): its pid, else None."""
    folder = _shared_folder()
    if folder is None:
        return None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        try:
            client.connect(str(folder / f"{_key(env)}.sock"))
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        with client.makefile("r", encoding="utf-8") as replies:
            greeting = replies.readline()
            if not greeting:
                return None  # it was ending
            pid = int(json.loads(greeting)["pid"])
            client.sendall(b'{"preload": [], "retire": true}\n')
            client.shutdown(socket.SHUT_WR)
            replies.read()  # the server closes this connection
    return pid


@dataclass
class Readiness:
    """What the environment's shared server has imported and what imports cost there: a
    task's start-up is the part of its script's start its server has not already paid."""

    seconds: dict[str, float] = field(default_factory=dict)  # module -> import seconds
    running: bool = False  # a server runs and forks its tasks
    loaded: set[str] = field(default_factory=set)  # what it has imported
    importing: set[str] = field(default_factory=set)  # what it imports now,
    importing_since: float = 0.0  # since when
    queued: set[str] = field(default_factory=set)  # what a new server would import first
    # a script's own start-up in its last replay's tasks (fork -> first replayed iteration)
    startups: dict[str, float] = field(default_factory=dict)

    def imports(
        self, packages: set[str], now: float | None = None
    ) -> tuple[float, float, set[str]]:
        """For a script importing `packages` (top-level names): what importing them costs,
        how long the server will import before it can fork the script's first task (from
        `now`), and the packages no server of this environment ever imported (nothing
        measured them)."""
        mine = {m: s for m, s in self.seconds.items() if m.partition(".")[0] in packages}
        underway = waiting = 0.0
        if self.running:  # its current imports, then what the script needs that it lacks
            underway = sum(self.seconds.get(m, 0.0) for m in self.importing)
            waiting = sum(s for m, s in mine.items() if m not in self.loaded | self.importing)
        else:  # a new server imports what the last one had, then what the script needs
            waiting = sum(self.seconds.get(m, 0.0) for m in self.queued)
            waiting += sum(s for m, s in mine.items() if m not in self.queued)
        unknown = packages - {m.partition(".")[0] for m in mine}
        return sum(mine.values()), waiting + max(0.0, underway - self.spent(now)), unknown

    def spent(self, now: float | None = None) -> float:
        """How long the running server has been importing what it imports now."""
        if not (self.running and self.importing):
            return 0.0
        return max(0.0, (time.time() if now is None else now) - self.importing_since)


def readiness(env: dict[str, str]) -> Readiness:
    """The state the environment's shared server published (nothing known when no shared
    server ever ran here, or replays have servers of their own: FLOR_WARM_IDLE_S=0)."""
    try:
        folder = _shared_folder() if idle_seconds() > 0 else None
    except ValueError:  # a bad FLOR_WARM_IDLE_S: the replay itself says so
        folder = None
    if folder is None:
        return Readiness()
    name = _key(env)
    state = _state(folder / f"{name}.modules.json")
    seconds = {str(k): float(v) for k, v in state.get("seconds", {}).items()}
    startups = {str(k): float(v) for k, v in _state(folder / f"{name}.startups.json").items()}
    pid = int(state.get("pid", 0))
    if not (state.get("forks") and pid and _alive(pid) and (folder / f"{name}.sock").exists()):
        # none runs (or its tasks start new interpreters): a new one imports the list
        return Readiness(seconds, queued=set(state.get("modules", [])), startups=startups)
    return Readiness(
        seconds,
        startups=startups,
        running=True,
        loaded=set(state.get("loaded", [])),
        importing=set(state.get("importing", [])),
        importing_since=float(state.get("importing_since", 0.0)),
    )


def remember_startups(env: dict[str, str], startups: dict[str, float]) -> None:
    """Keep each script's measured start-up for the next replay's estimate (beside the
    environment's shared server's socket; nothing without one)."""
    try:
        folder = _shared_folder() if idle_seconds() > 0 and startups else None
    except ValueError:
        folder = None
    if folder is None:
        return
    path = folder / f"{_key(env)}.startups.json"
    known = {**_state(path), **startups}
    draft = path.with_name(f"{path.name}.{os.getpid()}")
    with contextlib.suppress(OSError):
        draft.write_text(json.dumps(known), encoding="utf-8")
        os.replace(draft, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_tasks(stop: threading.Event) -> None:
    """Set `stop` and kill every task this process's connections run (an interrupted
    replay): their threads return at once, and no task starts after this."""
    with _lock:
        stop.set()
        servers = list(_servers.values())
    for server in servers:
        server.stop()


@atexit.register
def close_all() -> None:
    """End this process's connections (a replay's, when it ends); the servers stay."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.close()


def external_imports(source: str, local: set[str]) -> list[str]:
    """Top-level modules `source` imports that are not files of its project: none named
    in `local` (the stems of the entries at the tree's top and in the script's folder), so
    an installed module never stands in for the project's own one of the same name."""
    import ast

    try:
        module = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in module.body:
        if isinstance(node, ast.Import):
            names += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module.split(".")[0])
    skip = {"flor", "__future__"} | local
    return sorted({n for n in names if n not in skip})


# -- inside the server -----------------------------------------------------------------------


class _Server:
    """The server's loop: takes replays' connections, forks their tasks' children, replies
    as each one ends, and ends after `idle` seconds without a replay or a task."""

    def __init__(self, listener: socket.socket, idle: float, *, private: bool = False) -> None:
        self.listener: socket.socket | None = listener
        self.private = private  # one replay's own server, in a folder of its own
        self.path = str(listener.getsockname())
        self.identity = os.stat(self.path).st_ino  # the socket file this server listens on
        self.lock = self.path.removesuffix(".sock") + ".lock"
        self.learned = Path(self.path.removesuffix(".sock") + ".modules.json")
        self.idle = idle
        self.connections: dict[int, tuple[socket.socket, bytearray]] = {}
        self.children: dict[int, tuple[dict[str, Any], int]] = {}  # pid -> request, connection
        self.own = os.getpid()
        self.wakeup, wakeup_w = os.pipe()
        os.set_blocking(wakeup_w, False)
        signal.set_wakeup_fd(wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the replaying process handles Ctrl-C
        signal.signal(signal.SIGTERM, self._terminate)
        self.installed = _installed(sys.path)
        self.stale = False
        self.imported: set[str] = set()  # passed on to the environment's next server
        self.loaded: set[str] = set()  # imported here, by preloads
        self.seconds: dict[str, float] = {}  # what importing each one cost
        self.importing: list[str] = []
        self.importing_since = 0.0
        self.reports: dict[int, int] = {}  # a child's pipe -> the child: modules it imports
        last = _state(self.learned)  # what the last server imported, and what it cost
        self.imported, self.seconds = set(last.get("modules", [])), last.get("seconds", {})
        # the scripts' own imports first, so each one's cost is measured under its name
        # (an earlier `functorch` would import all of torch)
        self.roots = set(last.get("roots", [])) & self.imported
        self.pending = sorted(self.roots) + sorted(self.imported - self.roots)

    def serve(self) -> None:
        retrying = False
        while True:
            busy = self.connections or self.children
            timeout = 0.05 if self.pending or retrying else None if busy else self.idle
            watched = [self.wakeup, *self.connections, *self.reports]
            if self.listener is not None:
                watched.append(self.listener.fileno())
            ready, _, _ = select.select(watched, [], [], timeout)
            if self.wakeup in ready:
                os.read(self.wakeup, 4096)
            self._reap()
            if self.listener is not None and self.listener.fileno() in ready:
                self._accept()
            for fd in ready:
                if fd in self.connections:
                    self._receive(fd)
                elif fd in self.reports:
                    self._learn(fd)
            if self.pending:  # after greeting the replay that started this server
                names, self.pending = self.pending, []
                self._preload(names)
                continue
            retrying = False
            if self.listener is not None and (self.stale or not (ready or busy)):
                retrying = not self._withdraw()
            if self.listener is None and not (self.connections or self.children):
                return

    def _terminate(self, signum: int, frame: Any) -> None:
        """SIGTERM (a stopped replay's own server, even mid-import): end now, and the
        tasks with it (each with its group, reaped before this process ends)."""
        if os.getpid() != self.own:  # a child, forked an instant ago: not the server
            os._exit(128 + signum)
        for pid in self.children:
            _kill_task(pid)
        for pid in self.children:
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
        self.leave()
        os._exit(128 + signum)

    def leave(self) -> None:
        """A private server's folder goes with it, however its replay ended (a replay
        that exits at once, by `os._exit` or a kill, removes nothing)."""
        if self.private:
            _remove_tree(os.path.dirname(self.path))

    def _accept(self) -> None:
        assert self.listener is not None
        connection, _ = self.listener.accept()
        connection.setblocking(True)
        self.connections[connection.fileno()] = (connection, bytearray())
        self._reply(connection.fileno(), {"pid": os.getpid()})

    def _withdraw(self) -> bool:
        """Stop taking replays (idle, or serving an outdated install): the socket goes, so
        the next replay starts a new server. Under the socket's lock, which a replay holds
        while it connects; False when one does."""
        assert self.listener is not None
        with open(self.lock, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            while select.select([self.listener], [], [], 0)[0]:
                self._accept()  # connected before the lock was taken: served to the end
            with contextlib.suppress(OSError):
                if os.stat(self.path).st_ino == self.identity:
                    os.unlink(self.path)
            self.listener.close()
            self.listener = None
        return True

    def _receive(self, fd: int) -> None:
        connection, buffer = self.connections[fd]
        try:
            chunk = connection.recv(65536)
        except OSError:
            chunk = b""
        if not chunk:  # the replay ended (or closed us): so do its tasks
            self._drop(fd)
            return
        buffer += chunk
        *lines, rest = bytes(buffer).split(b"\n")
        buffer[:] = rest
        try:
            for line in lines:
                self._handle(json.loads(line), fd)
        except (ValueError, KeyError):  # garbled: the connection ends
            self._drop(fd)

    def _drop(self, fd: int) -> None:
        for pid, (_, owner) in self.children.items():
            if owner == fd:
                _kill_task(pid)
        connection, _ = self.connections.pop(fd)
        connection.close()

    def _reply(self, fd: int, reply: dict[str, Any]) -> None:
        if fd not in self.connections:
            return  # its replay ended
        try:
            self.connections[fd][0].sendall((json.dumps(reply) + "\n").encode())
        except OSError:
            self._drop(fd)

    def _handle(self, request: dict[str, Any], fd: int) -> None:
        self.roots |= set(request["preload"])  # what scripts import (not what tasks learned)
        self._preload(request["preload"])
        if request.get("retire"):
            self.stale = True
        if "id" not in request:
            return
        if _installed(self.installed) != self.installed:
            # a package was installed or removed since the preloads: a fresh interpreter
            request["stale"] = self.stale = True
            pid = _cold(request)
        elif threading.active_count() > 1 or _shadowed(request["script"]):
            # a preloaded module started a thread (forking now could copy a held lock), or
            # the script has its own module of a preloaded name
            pid = _cold(request)
        else:
            report, reporting = os.pipe()
            pid = os.fork()
            if pid != 0:  # here too: the child may not have made its group yet
                with contextlib.suppress(OSError):
                    os.setpgid(pid, pid)
            if pid == 0:
                own = [self.wakeup, report, *self.connections, *self.reports]
                if self.listener is not None:
                    own.append(self.listener.fileno())
                _child(request, own, reporting, {n.partition(".")[0] for n in self.loaded})
            os.close(reporting)
            self.reports[report] = pid
        self.children[pid] = (request, fd)

    def _learn(self, fd: int) -> None:
        """A running child imports submodules of what this server preloaded (torch imports
        torch._dynamo when the first optimizer is made): import them now, alongside it,
        so the next task need not wait for them once this one ends."""
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            del self.reports[fd]
            os.close(fd)
            return
        self._preload([n for n in chunk.decode(errors="replace").split() if n])

    def _reap(self) -> None:
        for pid in list(self.children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == 0:
                continue
            request, fd = self.children.pop(pid)
            reply = {"id": request["id"], "returncode": os.waitstatus_to_exitcode(status)}
            if request.get("stale"):
                reply["stale"] = True
            else:
                # what the task imported later (torch imports torch._dynamo when an optimizer
                # is made) is preloaded for the next task
                learned = Path(request["stdout"]).with_name("modules.json")
                with contextlib.suppress(OSError, ValueError):
                    self._preload(json.loads(learned.read_text(encoding="utf-8")))
            self._reply(fd, reply)

    def _preload(self, names: list[str]) -> None:
        """Import `names`, timing each, and list them for the environment's next server
        (unless an import started a thread: that server could not fork, it must not pass
        that on). The list also says what this server has loaded and what each import cost,
        so a replay can estimate its tasks' start-up (`readiness`)."""
        todo = [n for n in names if n not in sys.modules]
        if todo and self.listener is not None:
            self.importing, self.importing_since = todo, time.time()
            self._publish()
        costs = _preload(todo)
        self.importing = []
        self.loaded |= set(costs)
        self.seconds.update(costs)
        if not self.stale and threading.active_count() == 1:
            self.imported |= set(costs)
        if costs and self.listener is not None:
            self._publish()

    def _publish(self) -> None:
        """Write what this server imported, is importing and what imports cost, beside its
        socket (only while it listens: a withdrawn server's state is nobody's)."""
        forks = not self.stale and threading.active_count() == 1
        state = {
            "pid": os.getpid(), "forks": forks, "loaded": sorted(self.loaded),
            "importing": self.importing, "importing_since": self.importing_since,
            "modules": sorted(self.imported), "roots": sorted(self.roots & self.imported),
            "seconds": self.seconds,
        }  # fmt: skip
        draft = self.learned.with_name(f"{self.learned.name}.{os.getpid()}")
        with contextlib.suppress(OSError):
            draft.write_text(json.dumps(state), encoding="utf-8")
            os.replace(draft, self.learned)


def _installed(folders: Any) -> dict[str, set[tuple[str, int]]]:
    """What is installed in each folder modules are imported from (entry names and when
    each last changed): installing, upgrading or removing a package changes its entries
    (e.g. its `.dist-info`). Compiled-bytecode caches are left out: importing writes them,
    which also changes the time of a package's folder (its `__pycache__` appears), so a
    package folder counts by its name alone."""
    found = {}
    for folder in folders:
        with contextlib.suppress(OSError), os.scandir(folder or ".") as entries:
            found[folder] = {(e.name, _changed(e)) for e in entries if e.name != "__pycache__"}
    return found


def _changed(entry: os.DirEntry[str]) -> int:
    """When an installed entry last changed (0 for a package's folder: see `_installed`)."""
    info = entry.stat(follow_symlinks=False)
    if stat.S_ISDIR(info.st_mode) and not entry.name.endswith((".dist-info", ".egg-info")):
        return 0
    return info.st_mtime_ns


def _preload(names: list[str]) -> dict[str, float]:
    """Import `names`: the seconds each one that is imported took (a name imported as
    part of an earlier one costs nothing)."""
    costs = {}
    for name in names:
        started = time.perf_counter()
        if name not in sys.modules:
            # a module that fails here fails again in the task, which reports it
            with contextlib.suppress(BaseException):
                importlib.import_module(name)
        if name in sys.modules:
            costs[name] = time.perf_counter() - started
    return costs


def _state(path: Path) -> dict[str, Any]:
    """A server's published state (empty if none, or unreadable)."""
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(state, dict):
            return state
    return {}


def _shadowed(script: str) -> bool:
    """Whether the script's folder has a module of a name the server has imported: the
    script, run afresh, would import its own one (Python looks in that folder first)."""
    folder = os.path.dirname(os.path.realpath(script))
    loaded = {name.partition(".")[0] for name in sys.modules}
    suffixes = importlib.machinery.all_suffixes()
    try:
        entries = os.listdir(folder)
    except OSError:
        return False
    for entry in entries:
        for suffix in suffixes:
            if entry.endswith(suffix) and entry[: -len(suffix)] in loaded:
                return True
        if entry in loaded and any(
            os.path.exists(os.path.join(folder, entry, "__init__" + s)) for s in suffixes
        ):
            return True
    return False


def _cold(request: dict[str, Any]) -> int:
    """The task in a new interpreter, as without a warm one: its pid."""
    out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        process = subprocess.Popen(
            [sys.executable, request["script"], *request["argv"]],
            cwd=request["cwd"],
            env=request["env"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            preexec_fn=_task_process,
        )
    finally:
        os.close(out)
        os.close(err)
    process.returncode = 0  # reaped by the server's loop, not by Popen
    return process.pid


def _kill_task(pid: int) -> None:
    """SIGKILL a task and the processes it started (its group: DataLoader workers...)."""
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):  # not yet its group's leader
        os.kill(pid, signal.SIGKILL)


def _task_process() -> None:
    """A task's own settings, before its script starts: a process group of its own (the
    terminal's Ctrl-C is for the replaying process, which stops its tasks itself), death
    with the server, and SIGINT as a fresh interpreter has it (the server ignores it)."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the server's handler


def _die_with_parent() -> None:
    """SIGKILL this process when its parent (the server) dies (Linux only)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _imported_since(before: set[str], project: str) -> list[str]:
    """Modules imported by the task from outside its project (and outside flor, whose
    import starts the task's sandbox)."""
    found = []
    for name, module in list(sys.modules.items()):
        if (
            name in before
            or name.startswith(("__main__", "__mp_main__", "flor."))
            or name == "flor"
        ):
            continue
        file = getattr(module, "__file__", None) or ""
        if file and os.path.realpath(file).startswith(project + os.sep):
            continue
        found.append(name)
    return found


def _child(request: dict[str, Any], servers: list[int], report: int, preloaded: set[str]) -> None:
    """Become `python SCRIPT ARGS` for the task, then exit without returning. Submodules of
    `preloaded` packages it imports are named on `report` as it imports them."""
    code = 1
    try:
        # when the script's own start began (the task's start-up, without the server's)
        Path(request["stdout"]).with_name("forked").write_text(repr(time.time()))
        _task_process()
        signal.set_wakeup_fd(-1)
        for fd in servers:  # the server's own pipe and sockets
            os.close(fd)
        os.set_blocking(report, False)  # never wait on a busy server: it learns at the end
        sys.addaudithook(_reporter(report, preloaded))
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        script = request["script"]
        sys.argv = [script, *request["argv"]]
        sys.path.insert(0, os.path.dirname(os.path.realpath(script)))
        before = set(sys.modules)
        code = _run(script)
        learned = _imported_since(before, os.path.realpath(request["project"]))
        Path(request["stdout"]).with_name("modules.json").write_text(json.dumps(learned))
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # exiting anyway
                stream.flush()
        os._exit(code)


def _reporter(fd: int, packages: set[str]) -> Any:
    """An audit hook naming, on `fd`, each module of `packages` the task starts to import
    (Python raises the `import` event only for a module not yet imported)."""

    def report(event: str, args: tuple[Any, ...]) -> None:
        if event == "import" and str(args[0]).partition(".")[0] in packages:
            with contextlib.suppress(OSError):  # the server ended: nothing to tell it
                os.write(fd, f"{args[0]}\n".encode())

    return report


def _run(script: str) -> int:
    """The script under `__main__`, with the interpreter's exit behaviour: SystemExit's
    status, a traceback and status 1 for an uncaught exception, then the atexit handlers."""
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = _exit_status(exc.code)
    except BaseException:  # noqa: BLE001 - reported as the interpreter would
        sys.excepthook(*sys.exc_info())
        code = 1
    atexit._run_exitfuncs()
    return code


def _exit_status(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    print(value, file=sys.stderr)
    return 1


def main() -> None:
    del sys.path[0]  # this file's folder: flor's own modules must not shadow the script's
    listener, idle = int(sys.argv[1]), float(sys.argv[2])
    shared = sys.argv[3:] == ["detach"]
    if shared and os.fork() != 0:
        os._exit(0)  # the replay that starts a server waits for this, not for the server
    server = _Server(socket.socket(fileno=listener), idle, private=not shared)
    server.serve()
    server.leave()


if __name__ == "__main__":
    main()
