"""One run inside the user's process: buffers, loop coordinates, flushing, run lifecycle.

Logs go into an in-memory deque (`flor.log` is O(1)); a loop iteration buffers only its
coordinates: rows, values as text and iteration seconds are made at flush, off the
training path. A background thread flushes at least every half second, and at once when
an outermost loop (or a `flor.iteration`) ends: the training thread never writes to the
store itself (issue 14: it does not pay for SQLite; issue 13: a store locked by another
process never stalls it), and a SIGKILL loses at most about one second of logs.
`flor.commit`, reads in the same process (`flor.dataframe`, `flor.query`) and the exit
flush on the calling thread and wait for the store: they promise the values are stored.
Which session a process gets, and what ends it, is `flor.runtime.context`.

A flush the store refuses is kept for the next one. When the store still takes writes but
not some rows, the batch is split to find them; a row refused `QUARANTINE_STRIKES` times
(or still unwritten at exit) goes to `<store>/quarantine/<run_id>.jsonl` with the reason,
and the run's note and a warning say how many: one bad value never stops later logging.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from flor.runtime.args import cast, parse_kwargs
from flor.store.backend import describe
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


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def thread_settings() -> str:
    """The process's BLAS/OpenMP thread settings as JSON (the `runs.threads` column):
    float results can depend on them, so replay can report or reuse them. An unset
    variable is recorded as null; torch's count only if the script imported torch."""
    found: dict[str, Any] = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    torch = sys.modules.get("torch")  # never imported here: it takes seconds
    if torch is not None:
        with contextlib.suppress(Exception):  # a half-imported or stubbed torch
            found["torch.get_num_threads"] = int(torch.get_num_threads())
    return json.dumps(found)


# What `flor.log` buffers: (ctx_id, name, value as logged, or its copy).
LogEntry = tuple[int | None, str, object]

# Iteration values kept until flush for the `<loop>_value` column; others are dropped at
# once (a batch of tensors must not live on in the buffer).
_SCALARS = frozenset({int, str, float, bool})


def _loop_value(index: int, value: object) -> str | None:
    """The iteration value worth a `<loop>_value` column: scalars other than the index."""
    kind = type(value)
    if kind is int:
        return None if value == index else str(value)
    if kind is str or kind is float or kind is bool:
        return json.dumps(value)
    return None


class LoopObserver(Protocol):
    """Told about outermost-loop boundaries: where checkpoints are taken."""

    def loop_started(self, name: str) -> None: ...

    def iteration_ended(self, index: int, ctx_id: int, seconds: float) -> None: ...

    def loop_ended(self, exhausted: bool) -> None: ...


class CheckpointFactory(Protocol):
    """Builds the observer `flor.checkpointing` installs for the named objects."""

    def __call__(
        self,
        session: Session,
        objects: dict[str, Any],
        budget: float,
        allow_pickle: bool | None,
        frame: FrameType | None,
    ) -> Any: ...


@dataclass(frozen=True)
class Identity:
    """Whose values a session writes: given at construction, never changed afterwards.

    A recorded run writes its own `runs` row; a replay task writes its own row
    (`row_id`, the replay's id) but its values belong to the run it replays (`run_id`), at
    that run's `tstamp`, and replace earlier replays of `replace_names`.
    """

    run_id: str
    projid: str
    filename: str
    tstamp: str = field(default_factory=_now_tstamp)
    replay_id: str | None = None
    replace_names: tuple[str, ...] = ()

    @property
    def row_id(self) -> str:
        """The `runs` row this process writes: the replay task's, else the run's."""
        return self.replay_id or self.run_id

    @property
    def writer_id(self) -> str:
        """The logs key's `writer` column: '' while recording, else the replay's id."""
        return self.replay_id or ""


class Session:
    """One recorded (or replayed) run of a script.

    Hooks, set at construction or registered, instead of subclasses reaching in:
    `log_filter(name)` decides which values are kept (replay keeps only the requested
    names, only inside its share of the run); `commit_hooks` run after each commit with
    the tstamp it closed (notebooks record their cells); `observers` hear about outermost
    loop boundaries (checkpoints, artifacts); `checkpoint_factory` builds what
    `flor.checkpointing` installs (replay restores instead of capturing).
    """

    def __init__(
        self,
        writer: StoreWriter,
        identity: Identity,
        home: Path,
        root: Path | None,
        argv: list[str],
        *,
        log_filter: Callable[[str], bool] | None = None,
        checkpoint_factory: CheckpointFactory | None = None,
    ) -> None:
        self.writer = writer
        self.identity = identity
        self.run_id = identity.run_id
        self.row_id = identity.row_id
        self.replay_id = identity.replay_id
        self.home = home
        self.root = root
        self.filename = identity.filename
        self.projid = identity.projid
        self.argv = argv
        self.tstamp = identity.tstamp
        self.logs: deque[LogEntry] = deque()
        # `flor.log` appends here: the buffer itself, or the filter in front of it
        self.append_log: Callable[[LogEntry], None] = self.logs.append
        if log_filter is not None:
            self.append_log = self._filtered(log_filter)
        # (ctx_id, parent ctx_id, loop name, iteration, value if a scalar): rows at flush
        self.loops: deque[tuple[int, int | None, str, int, object]] = deque()
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
        self._held_loops: list[tuple[Any, ...]] = []  # and its loops rows
        self._strikes: dict[int, int] = {}  # seq -> refusals while the store took other rows
        self._written = 0  # values taken from the buffer so far
        self.quarantined = 0
        self._flush_lock = threading.Lock()
        self._commits = 0
        self._stop = threading.Event()
        self._wake = threading.Event()  # a loop ended: the flusher writes its rows now
        self._flusher = threading.Thread(target=self._flush_forever, name="flor-flush", daemon=True)
        self.observers: list[LoopObserver] = []
        self.commit_hooks: list[Callable[[str], None]] = []
        self.checkpoint_factory = checkpoint_factory
        self.checkpointer: Any = None

    def _filtered(self, keep: Callable[[str], bool]) -> Callable[[LogEntry], None]:
        append = self.logs.append

        def append_kept(item: LogEntry) -> None:
            if keep(item[1]):
                append(item)

        return append_kept

    @property
    def closed(self) -> bool:
        """True once the run has ended (or in a forked child, which must not write)."""
        return self._closed

    def forget(self) -> None:
        """Write nothing more (a forked child must not write as its parent's run)."""
        self._closed = True

    def values_logged(self) -> int:
        """How many values were logged so far (buffered ones included)."""
        with self._flush_lock:  # not while a flush has them neither buffered nor counted
            return self._written + len(self.logs)

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
                "cwd": str(Path.cwd()),
                "args": "{}",
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "started": min(now, _process_start()),
                "heartbeat": now,
                "threads": thread_settings(),
            }
        )
        self._record_commit(snapshot)
        self.start_flushing()

    def _record_commit(self, snapshot: str | None) -> None:
        self.writer.record_commit(self.run_id, self.tstamp, snapshot)

    def start_flushing(self) -> None:
        """Start the background thread that flushes every `FLUSH_INTERVAL_S`."""
        self._flusher.start()

    def _flush_forever(self) -> None:
        while True:
            self._wake.wait(FLUSH_INTERVAL_S)
            self._wake.clear()  # before draining: rows buffered after this wake it again
            if self._stop.is_set():
                return
            self.flush()

    def flush_soon(self) -> None:
        """Have the background flusher write what is buffered now, without waiting for it
        (a loop's end: the training thread goes on while the store is written)."""
        self._wake.set()

    def flush(self) -> None:
        """Move everything buffered into the store in one transaction (waiting for a flush
        in progress first: one flush at a time keeps seq in logging order)."""
        if self._closed:
            return
        with self._flush_lock:
            self._flush()

    def drain_logs(self) -> list[tuple[Any, ...]]:
        """Take the buffered values, encoded as `logs` rows (`LOG_COLUMNS`)."""
        logs = [self.logs.popleft() for _ in range(len(self.logs))]
        self._written += len(logs)
        run_id, tstamp, seq = self.run_id, self.tstamp, self._seq
        replay_id, writer_id = self.replay_id, self.identity.writer_id
        rows = []
        for ctx, name, value in logs:
            text, kind = encode(value)
            rows.append(
                (run_id, tstamp, ctx, str(name), text, kind, next(seq), replay_id, writer_id)
            )
        return rows

    def drain_loops(self) -> tuple[list[tuple[Any, ...]], list[tuple[float, int]]]:
        """Take the buffered loop iterations as `loops` rows, their values turned into text
        here, at flush, not on the training path. An iteration that ended since the last
        flush carries its seconds in its row; one whose row an earlier flush wrote (it was
        still running then) comes back as a `(seconds, ctx_id)` update."""
        # timings first: an iteration's coordinates are buffered before its timing
        seconds = {ctx: s for s, ctx in [self.timings.popleft() for _ in range(len(self.timings))]}
        entries = [self.loops.popleft() for _ in range(len(self.loops))]
        run_id, pop = self.run_id, seconds.pop
        rows = [
            (run_id, ctx, parent, name, index, _loop_value(index, value), pop(ctx, None))
            for ctx, parent, name, index, value in entries
        ]
        return rows, [(s, ctx) for ctx, s in seconds.items()]

    def _flush(self) -> None:
        loops, self._held_loops = self._held_loops, []
        drained, timings = self.drain_loops()
        loops += drained
        rows, self._held = self._held, []
        rows += self.drain_logs()
        now = time.time()
        try:
            self.writer.write_batch(
                self.row_id, loops, rows, timings, now, self.identity.replace_names
            )
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
        self._held_loops = loops + self._held_loops
        self.timings.extendleft(reversed(timings))
        self._held = rows + self._held

    def _write_apart(self, rows: list[tuple[Any, ...]]) -> None:
        """Write what the store takes, halving the batch to find the rows it refuses."""
        try:
            replace = self.identity.replace_names
            self.writer.write_batch(self.row_id, (), rows, (), time.time(), replace)
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
        """Flush, snapshot the sources again and start a new tstamp; then the commit hooks
        run with the tstamp just closed."""
        self.flush()
        closed = self.tstamp
        tstamp = _now_tstamp()
        self.tstamp = tstamp if tstamp > closed else closed + "1"
        self._record_commit(self._snapshot_now())
        for hook in self.commit_hooks:
            hook(closed)

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
        self._wake.set()
        self.flush()
        with self._flush_lock:
            for _ in range(QUARANTINE_STRIKES):  # rows refused once get their last chances
                if not self._held:
                    break
                self._flush()
            for row in self._held:
                self._quarantine(row, "the store did not take it before the run ended")
            self._held = []
        if self.replay_id is None:  # a long curve's summary, for flor ui (store/browse.py)
            from flor.store.browse import store_curves

            store_curves(self.writer, self.row_id)
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
                threads=thread_settings(),
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

    # -- instrumentation -------------------------------------------------------------------

    def arg(self, name: str, default: Any) -> Any:
        value = cast(name, self._kwargs[name], default) if name in self._kwargs else default
        self.args[name] = value
        self.append_log((None, name, value))
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
        """The iterator `flor.loop` returns; an outermost loop first checks `--kwargs`
        (raising `ArgError` here, before any iteration) and keeps the args replayable."""
        if self.depth:
            return self._inner_loop(name, iterable)
        self.check_kwargs()
        # a run killed later (SIGKILL) never reaches close(): keep its args replayable
        self.writer.update_run(
            self.row_id, args=json.dumps(self.args, default=repr), threads=thread_settings()
        )
        return self._outer_loop(name, iterable)

    # The two loops below run on every iteration of the user's training: each line costs.
    # An iteration appends its coordinates and nothing else (turned into rows at flush);
    # `self.ctx` is left as is after the body, since the next iteration or the loop's end
    # sets it before any other flor call can read it.

    def _inner_loop(self, name: str, iterable: Iterable[Any]) -> Iterator[Any]:
        parent, ids, append = self.ctx, self._ctx_ids, self.loops.append
        self.depth += 1
        try:
            for index, value in enumerate(iterable):
                self.ctx = ctx = next(ids)
                append((ctx, parent, name, index, value if type(value) in _SCALARS else None))
                yield value
        finally:
            self.depth -= 1
            self.ctx = parent

    def _outer_loop(self, name: str, iterable: Iterable[Any]) -> Iterator[Any]:
        parent, ids, append = self.ctx, self._ctx_ids, self.loops.append
        timed, clock = self.timings.append, time.perf_counter
        observers = list(self.observers)
        for observer in observers:
            observer.loop_started(name)
        self.depth += 1
        exhausted = False
        try:
            started = clock()
            for index, value in enumerate(iterable):
                self.ctx = ctx = next(ids)
                append((ctx, parent, name, index, value if type(value) in _SCALARS else None))
                yield value
                now = clock()
                timed((now - started, ctx))
                if observers:
                    for observer in observers:
                        observer.iteration_ended(index, ctx, now - started)
                    now = clock()  # checkpoint time is not the next iteration's
                started = now
            exhausted = True
        finally:
            self.depth -= 1
            self.ctx = parent
            for observer in observers:
                observer.loop_ended(exhausted)
            self.flush_soon()

    def note_iteration(
        self, ctx: int, parent: int | None, name: str, index: int, value: object
    ) -> None:
        """Buffer one loop iteration's coordinates (the loops above inline this)."""
        self.loops.append((ctx, parent, name, index, value if type(value) in _SCALARS else None))

    @contextmanager
    def iteration(self, name: str, index: int | None, value: object) -> Iterator[None]:
        parent = self.ctx
        ctx = next(self._ctx_ids)
        self.note_iteration(ctx, parent, name, ctx if index is None else index, value)
        self.ctx = ctx
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            self.ctx = parent
            self.flush_soon()
