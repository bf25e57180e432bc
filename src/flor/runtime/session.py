"""The run context inside the user's process: buffers, loop stack, flushing, run lifecycle.

A run starts at the first flor call (not at import, which must stay cheap). Logs go into
an in-memory deque (`flor.log` is O(1)); a background thread flushes it at least every
half second, and loop boundaries, `flor.commit` and exit flush it too, so a SIGKILL
loses at most about one second of logs.

A flush the store refuses is kept for the next one. When the store still takes writes but
not some rows, the batch is split to find them; a row refused `QUARANTINE_STRIKES` times
(or still unwritten at exit) goes to `<store>/quarantine/<run_id>.jsonl` with the reason,
and the run's note and a warning say how many: one bad value never stops later logging.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from flor.errors import FlorError, StoreError
from flor.runtime.args import cast, parse_kwargs
from flor.store.backend import describe
from flor.store.backend import errors as store_errors
from flor.store.location import db_path, ensure_home, find_repo_root, home_dir
from flor.store.values import encode
from flor.store.writer import LOG_COLUMNS, StoreWriter

FLUSH_INTERVAL_S = 0.5
QUARANTINE_STRIKES = 3


def _now_tstamp() -> str:
    return datetime.now().isoformat(sep=" ", timespec="milliseconds")


def _process_start() -> float:
    """When this process started (so durations include imports), else now."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


def _script_path() -> Path | None:
    main = sys.modules.get("__main__")
    file = getattr(main, "__file__", None)
    return Path(file).resolve() if file else None


def _loop_value(index: int, value: Any) -> str | None:
    """The iteration value worth a `<loop>_value` column: scalars other than the index."""
    kind = type(value)
    if kind is int:
        return None if value == index else str(value)
    if kind is str or kind is float or kind is bool:
        return json.dumps(value)
    return None


def captured(value: Any) -> Any:
    """A copy of a mutable logged value as it is at the `flor.log` call (arrays, tensors,
    containers), so changing it in place afterwards does not change what is stored."""
    detach = getattr(value, "detach", None)
    if callable(detach) and callable(getattr(value, "clone", None)):
        return detach().clone()  # torch: asynchronous on a GPU, no sync on the hot path
    if type(value).__module__ == "numpy" and callable(getattr(value, "copy", None)):
        return value.copy()
    if isinstance(value, (list, dict, set, tuple)):
        import copy

        try:
            return copy.deepcopy(value)
        except Exception:  # noqa: BLE001 - an uncopyable element: keep the reference
            return value
    return value


def fail(error: FlorError) -> None:
    """Stop the user's script the way argparse does: one line on stderr, exit status."""
    print(f"flor: error: {error}", file=sys.stderr)
    if _session is not None:
        _session.status, _session.error = "failed", str(error)
    raise SystemExit(error.exit_code)


class LoopObserver(Protocol):
    """Told about outermost-loop boundaries: where checkpoints are taken."""

    def loop_started(self, name: str) -> None: ...

    def iteration_ended(self, index: int, ctx_id: int, seconds: float) -> None: ...

    def loop_ended(self, exhausted: bool) -> None: ...


class Session:
    """One recorded (or replayed) run of a script."""

    def __init__(
        self,
        writer: StoreWriter,
        run_id: str,
        home: Path,
        root: Path | None,
        filename: str,
        projid: str,
        argv: list[str],
    ) -> None:
        self.writer = writer
        self.run_id = run_id
        self.row_id = run_id
        self.home = home
        self.root = root
        self.filename = filename
        self.projid = projid
        self.argv = argv
        self.tstamp = _now_tstamp()
        self.replay_id: str | None = None
        self.writer_id = ""  # the logs key's `writer` column: '' while recording
        self.replace_names: tuple[str, ...] = ()
        self.logs: deque[tuple[int | None, str, Any]] = deque()
        self.loops: deque[tuple[Any, ...]] = deque()
        self.timings: deque[tuple[float, int]] = deque()
        self.ctx: int | None = None
        self.depth = 0
        self._ctx_ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._kwargs = parse_kwargs(argv[1:])
        self.args: dict[str, Any] = {}
        self.status = "running"
        self.error: str | None = None
        self._closed = False
        self._flush_failed = False
        self._held: list[tuple[Any, ...]] = []  # encoded rows a failed flush keeps
        self._strikes: dict[int, int] = {}  # seq -> refusals while the store took other rows
        self.quarantined = 0
        self._flush_lock = threading.Lock()
        self._commits = 0
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_forever, name="flor-flush", daemon=True)
        self.observers: list[LoopObserver] = []
        self.checkpointer: Any = None

    # -- lifecycle -------------------------------------------------------------------------

    def begin(self, snapshot: str | None, base: str | None, branch: str | None) -> None:
        now = time.time()
        self.writer.insert_run(
            {
                "run_id": self.run_id,
                "projid": self.projid,
                "filename": self.filename,
                "tstamp": self.tstamp,
                "status": "running",
                "mode": "record",
                "snapshot": snapshot,
                "base_commit": base,
                "branch": branch,
                "argv": json.dumps(self.argv),
                "cwd": os.getcwd(),
                "args": "{}",
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started": min(now, _process_start()),
                "heartbeat": now,
            }
        )
        self._record_commit(snapshot)
        self._flusher.start()

    def _record_commit(self, snapshot: str | None) -> None:
        self.writer.record_commit(self.run_id, self.tstamp, snapshot)

    def _flush_forever(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL_S):
            self.flush()

    def flush(self) -> None:
        """Move everything buffered into the store in one transaction."""
        if self._closed:
            return
        with self._flush_lock:  # one flush at a time keeps seq in logging order
            self._flush()

    def _flush(self) -> None:
        logs = [self.logs.popleft() for _ in range(len(self.logs))]
        loops = [self.loops.popleft() for _ in range(len(self.loops))]
        timings = [self.timings.popleft() for _ in range(len(self.timings))]
        rows, self._held = self._held, []
        for ctx, name, value in logs:
            text, kind = encode(value)
            rows.append(
                (
                    self.run_id,
                    self.tstamp,
                    ctx,
                    str(name),
                    text,
                    kind,
                    next(self._seq),
                    self.replay_id,
                    self.writer_id,
                )
            )
        now = time.time()
        try:
            self.writer.write_batch(self.row_id, loops, rows, timings, now, self.replace_names)
            return
        except Exception as exc:  # noqa: BLE001 - never let a store hiccup kill training
            error = exc
        except BaseException:  # Ctrl-C or SIGTERM mid-write: the exit's flush writes it
            self._keep(loops, rows, timings)
            raise
        try:  # does the store refuse everything, or only some rows?
            self.writer.write_batch(self.row_id, loops, (), timings, now)
        except Exception:  # noqa: BLE001 - the store is down or locked: keep it all for later
            self._keep(loops, rows, timings)
            if not self._flush_failed:
                self._flush_failed = True
                print(
                    f"flor: warning: could not write logs yet ({describe(error)}); retrying",
                    file=sys.stderr,
                )
            return
        self._write_apart(rows)

    def _keep(
        self,
        loops: list[tuple[Any, ...]],
        rows: list[tuple[Any, ...]],
        timings: list[tuple[float, int]],
    ) -> None:
        """Put a batch the store did not take back in front of what came since."""
        self.loops.extendleft(reversed(loops))
        self.timings.extendleft(reversed(timings))
        self._held = rows + self._held

    def _write_apart(self, rows: list[tuple[Any, ...]]) -> None:
        """Write what the store takes, halving the batch to find the rows it refuses."""
        try:
            self.writer.write_batch(self.row_id, (), rows, (), time.time(), self.replace_names)
        except Exception as exc:  # noqa: BLE001 - a bad row must not stop the others
            if len(rows) > 1:
                middle = len(rows) // 2
                self._write_apart(rows[:middle])
                self._write_apart(rows[middle:])
                return
            row = rows[0]
            strikes = self._strikes.pop(row[6], 0) + 1
            if strikes < QUARANTINE_STRIKES:
                self._strikes[row[6]] = strikes
                self._held.append(row)
            else:
                self._quarantine(row, describe(exc))

    def quarantine_path(self) -> Path:
        return self.home / "quarantine" / f"{self.row_id}.jsonl"

    def _quarantine(self, row: tuple[Any, ...], reason: str) -> None:
        """Keep a row the store will not take beside the store, never drop it."""
        path = self.quarantine_path()
        record = json.dumps(dict(zip(LOG_COLUMNS, row, strict=True)) | {"error": reason})
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as f:
                f.write(record + "\n")
        except OSError as exc:  # the disk is full too: stderr is the last place left
            print(f"flor: warning: could not keep {record} in {path} ({exc})", file=sys.stderr)
        if not self.quarantined:
            print(
                f"flor: warning: the store refused the value of {row[3]!r} ({reason}): "
                f"kept in {path}",
                file=sys.stderr,
            )
        self.quarantined += 1

    def commit(self) -> None:
        """Flush, snapshot the sources again and start a new tstamp."""
        self.flush()
        previous = self.tstamp
        tstamp = _now_tstamp()
        self.tstamp = tstamp if tstamp > previous else previous + "1"
        self._record_commit(self._snapshot_now())

    def _snapshot_now(self) -> str | None:
        if self.root is None or self.replay_id is not None:
            return None
        from flor import vcs

        self._commits += 1
        ref = f"{self.run_id}-{self._commits}"
        return vcs.snapshot(self.root, ref, self.filename).commit

    def close(self, status: str | None = None) -> None:
        if self._closed:
            return
        self._stop.set()
        self.flush()
        with self._flush_lock:
            for _ in range(QUARANTINE_STRIKES):  # rows refused once get their last chances
                if not self._held:
                    break
                self._flush()
            for row in self._held:
                self._quarantine(row, "the store did not take it before the run ended")
            self._held = []
        final = status or ("finished" if self.status == "running" else self.status)
        fields: dict[str, Any] = {}
        if self.quarantined:
            fields["note"] = (
                f"{self.quarantined} logged values are not in the store: the store refused "
                f"them; they are in {self.quarantine_path()}"
            )
            print(f"flor: warning: {fields['note']}", file=sys.stderr)
        try:
            self.writer.update_run(
                self.row_id,
                status=final,
                ended=time.time(),
                heartbeat=time.time(),
                error=self.error,
                args=json.dumps(self.args, default=repr),
                **fields,
            )
        except Exception as exc:  # noqa: BLE001 - at exit: one line, not a traceback
            print(
                f"flor: warning: could not mark run {self.row_id} {final} ({describe(exc)})",
                file=sys.stderr,
            )
        self._closed = True

    def note(self, text: str) -> None:
        """Attach a remark to the run (e.g. why it has no checkpoints)."""
        self.writer.update_run(self.row_id, note=text)

    def make_checkpointer(
        self, objects: dict[str, Any], budget: float, allow_pickle: bool | None, frame: Any
    ) -> LoopObserver:
        from flor.runtime.checkpointing import Checkpointer

        return Checkpointer(self, objects, budget, allow_pickle, frame)

    # -- instrumentation -------------------------------------------------------------------

    def arg(self, name: str, default: Any) -> Any:
        value = cast(name, self._kwargs[name], default) if name in self._kwargs else default
        self.args[name] = value
        self.logs.append((None, name, value))
        return value

    def check_kwargs(self) -> None:
        """Unread `--kwargs` names are typos: refuse them before training starts."""
        unknown = sorted(set(self._kwargs) - set(self.args))
        if unknown:
            from flor.errors import ArgError

            known = ", ".join(sorted(self.args)) or "none"
            raise ArgError(
                f"--kwargs {', '.join(unknown)} named no flor.arg read before the first "
                f"flor.loop (known: {known}): fix the name or read it with flor.arg"
            )

    def loop(self, name: str, iterable: Iterable[Any]) -> Iterator[Any]:
        parent = self.ctx
        outer = self.depth == 0
        observers: list[LoopObserver] = []
        if outer:
            try:
                self.check_kwargs()
            except FlorError as exc:
                fail(exc)
            # a run killed later (SIGKILL) never reaches close(): keep its args replayable
            self.writer.update_run(self.row_id, args=json.dumps(self.args, default=repr))
            observers = list(self.observers)
            for observer in observers:
                observer.loop_started(name)
        self.depth += 1
        exhausted = False
        try:
            for index, value in enumerate(iterable):
                ctx = next(self._ctx_ids)
                self.loops.append(
                    (self.run_id, ctx, parent, name, index, _loop_value(index, value))
                )
                self.ctx = ctx
                started = time.perf_counter()
                yield value
                self.ctx = parent
                if outer:
                    seconds = time.perf_counter() - started
                    self.timings.append((seconds, ctx))
                    for observer in observers:
                        observer.iteration_ended(index, ctx, seconds)
            exhausted = True
        finally:
            self.depth -= 1
            self.ctx = parent
            if outer:
                for observer in observers:
                    observer.loop_ended(exhausted)
                self.flush()

    @contextmanager
    def iteration(self, name: str, index: int | None, value: Any) -> Iterator[None]:
        parent = self.ctx
        ctx = next(self._ctx_ids)
        position = ctx if index is None else index
        self.loops.append((self.run_id, ctx, parent, name, position, _loop_value(position, value)))
        self.ctx = ctx
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            self.ctx = parent
            self.flush()


_session: Session | None = None
_start_lock = threading.Lock()


def current() -> Session:
    """The process's session, started on first use."""
    global _session
    if _session is not None:
        return _session
    with _start_lock:
        if _session is None:
            try:
                _session = _start()
            except FlorError as exc:
                fail(exc)
            except store_errors() as exc:
                fail(StoreError(f"cannot record into the flor store: {exc}"))
    assert _session is not None
    return _session


def _start() -> Session:
    # taken out of the environment: a child process (a DataLoader worker, another flor
    # script) must not start a second replay of this task, deleting what this one wrote
    spec = os.environ.pop("FLOR_REPLAY", "")
    if spec:
        from flor.runtime.replaying import start_replay

        session: Session = start_replay(spec)
        _install_exit_handlers(session)
        return session
    script = _script_path()
    start_dir = script.parent if script else Path.cwd()
    root = find_repo_root(start_dir)
    if root is None:
        print(
            f"flor: warning: {start_dir} is not inside a git repository: this run is recorded "
            "without a code snapshot and cannot be replayed (run `git init` to fix)",
            file=sys.stderr,
        )
    home = ensure_home(home_dir(start_dir, required=False))
    if script and root and script.is_relative_to(root):
        filename = script.relative_to(root).as_posix()
    else:
        filename = script.name if script else _interactive_name()
    projid = os.environ.get("FLOR_PROJID") or (root or start_dir).name
    session = Session(
        StoreWriter(db_path(home)),
        uuid.uuid4().hex[:12],
        home,
        root,
        filename,
        projid,
        list(sys.argv),
    )
    snapshot = base = branch = None
    if root is not None:
        from flor import vcs

        snap = vcs.snapshot(root, session.run_id, f"flor run {session.run_id}: {filename}")
        snapshot, base, branch = snap.commit, snap.base_commit, snap.branch
    session.begin(snapshot, base, branch)
    _install_exit_handlers(session)
    from flor.runtime import notebook

    notebook.install(session)
    return session


def _interactive_name() -> str:
    return os.environ.get("FLOR_NOTEBOOK") or "<interactive>"


def _install_exit_handlers(session: Session) -> None:
    atexit.register(session.close)
    previous_hook = sys.excepthook

    def record_failure(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        session.status = "killed" if issubclass(kind, KeyboardInterrupt) else "failed"
        session.error = f"{kind.__name__}: {exc}"
        previous_hook(kind, exc, tb)

    sys.excepthook = record_failure
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:

        def on_sigterm(signum: int, frame: object) -> None:
            session.status = "killed"
            session.error = "SIGTERM"
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, on_sigterm)
    os.register_at_fork(after_in_child=_forget_in_child)


def _forget_in_child() -> None:
    """A forked worker (e.g. a DataLoader process) must not write as the parent run."""
    global _session
    if _session is not None:
        _session._closed = True
