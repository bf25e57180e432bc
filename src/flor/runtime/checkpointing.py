"""`flor.checkpointing`: adaptive checkpoints at outermost-loop iteration boundaries.

A checkpoint labelled iteration `i` holds the state at the *start* of iteration `i` (the
end of iteration `i - 1`); the loop's start (`0`) and its end (`n`) are always taken.
In between, a checkpoint is taken only while the time spent checkpointing stays under a
budget (default 5 % of the loop's compute time): `FLOR_CKPT_BUDGET`, or `budget=`.
Capturing copies the state on the training thread; hashing, serializing and writing happen
on a background thread, and a checkpoint row is written only after its blobs are on disk.
A failure there (a full disk, a dropped or locked store) never stops training: flor warns
once, stops checkpointing the run, and the thread keeps draining the queue so neither
training, nor the block's exit, nor Ctrl-C/SIGTERM ever waits on it forever.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from flor.blobs import BlobStore
from flor.errors import CheckpointError, FlorError
from flor.paths import checkpoint_home, home_dir
from flor.runtime import context
from flor.runtime.checkpoint import Snapshot, capture, validate_objects
from flor.runtime.session import Session
from flor.store.backend import describe

DEFAULT_BUDGET = 0.05
_QUEUE_DEPTH = 1


def budget_from_env(explicit: float | None) -> float:
    if explicit is not None:
        value = explicit
    else:
        text = os.environ.get("FLOR_CKPT_BUDGET", "")
        try:
            value = float(text) if text else DEFAULT_BUDGET
        except ValueError:
            raise CheckpointError(
                f"FLOR_CKPT_BUDGET={text!r} is not a number: use a fraction such as 0.05"
            ) from None
    if not 0 <= value <= 1:
        raise CheckpointError(f"checkpoint budget {value} is outside 0..1: use e.g. 0.05")
    return value


@dataclass
class _Pending:
    iteration: int
    snapshot: Snapshot
    capture_seconds: float


@dataclass
class Checkpointer:
    """Decides when to checkpoint and writes checkpoints without blocking training long."""

    session: Session
    objects: dict[str, Any]
    budget: float
    allow_pickle: bool | None
    frame: FrameType | None
    loops_seen: int = 0
    spent: float = 0.0
    loop_time: float = 0.0
    taken: int = 0
    last_iteration: int = -1
    _last_taken: int = -1
    disabled: str | None = None
    _pending: queue.Queue[_Pending | None] = field(
        default_factory=lambda: queue.Queue(_QUEUE_DEPTH)
    )
    _thread: threading.Thread | None = None
    _bindings: dict[str, str] = field(default_factory=dict)
    _warned_rebind: bool = False

    def __post_init__(self) -> None:
        self.blobs = BlobStore(checkpoint_home(self.session.home))
        if self.frame is not None:
            scope = self.frame.f_locals
            for name, obj in self.objects.items():
                for variable, value in scope.items():
                    if value is obj:
                        self._bindings[name] = variable
                        break

    # -- LoopObserver ------------------------------------------------------------------------

    def loop_started(self, name: str) -> None:
        """Only the block's first outermost loop is checkpointed: replay's main loop."""
        self.loops_seen += 1
        if self.loops_seen == 1:
            self._take(0)

    def iteration_ended(self, index: int, ctx_id: int, seconds: float) -> None:
        if self.loops_seen != 1:
            return
        self.loop_time += seconds
        self.last_iteration = index
        if self.budget >= 1:
            self._take(index + 1)
            return
        average = self.spent / self.taken if self.taken else 0.0
        if self.spent + average <= self.budget * self.loop_time:
            self._take(index + 1)

    def loop_ended(self, exhausted: bool) -> None:
        """An exhausted loop's end state is always kept; a loop left early (break, an
        exception, Ctrl-C) does not wait here for a writer that may be stuck."""
        if self.loops_seen != 1 or not exhausted:
            return
        if self._last_taken != self.last_iteration + 1:
            self._take(self.last_iteration + 1)
        self.drain()

    # -- taking checkpoints -------------------------------------------------------------------

    def _take(self, iteration: int) -> None:
        if self.disabled is not None or self.budget == 0:
            return
        self._check_bindings()
        started = time.perf_counter()
        try:
            snapshot = capture(self.objects, allow_pickle=self.allow_pickle)
        except CheckpointError as exc:
            self._disable(str(exc))
            return
        elapsed = time.perf_counter() - started
        self.spent += elapsed
        self.taken += 1
        self._last_taken = iteration
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._write_forever, name="flor-ckpt", daemon=True
            )
            self._thread.start()
        self._pending.put(_Pending(iteration, snapshot, elapsed))

    def _write_forever(self) -> None:
        while True:
            item = self._pending.get()
            if item is None:
                self._pending.task_done()
                return
            try:
                self._write(item)
            except Exception as exc:  # noqa: BLE001 - any store error: stop checkpointing only
                self._disable(f"could not store a checkpoint ({describe(exc)})")
            finally:
                item = None  # do not hold a copy of the state while waiting for the next
                self._pending.task_done()

    def _write(self, item: _Pending) -> None:
        if self.disabled is not None:
            return
        started, cpu_started = time.perf_counter(), time.thread_time()
        with self.blobs.writing():  # `flor gc` never runs between the blobs and their rows
            try:
                parts = item.snapshot.iter_parts()
                stored = {name: self.blobs.put(data) for name, data in parts}
            except (CheckpointError, OSError) as exc:
                self._disable(str(exc))
                return
            seconds = item.capture_seconds + time.perf_counter() - started
            # Training pays for the writer's CPU time, not for its waits on the disk (fsync).
            self.spent += time.thread_time() - cpu_started
            run_id = self.session.run_id
            rows = [
                (run_id, None, item.iteration, name, digest, size, seconds)
                for name, (digest, size) in stored.items()
            ]
            self.session.writer.insert_checkpoints(rows)

    def drain(self) -> None:
        """Wait until every captured checkpoint is on disk and in the store."""
        if self._thread is not None:
            self._pending.join()

    def close(self, *, interrupted: bool = False) -> None:
        """Wait for the writer; when the block exits by an exception (Ctrl-C, SIGTERM, an
        error in training) only ask it to stop: the pending checkpoint is abandoned whole,
        since its row is written only after its blobs."""
        if self._thread is None:
            return
        if interrupted:
            self.disabled = self.disabled or "the run was interrupted"
            with suppress(queue.Full):
                self._pending.put_nowait(None)
        else:
            self._pending.put(None)
            self._thread.join()
        self._thread = None

    def _disable(self, reason: str) -> None:
        if self.disabled is None:
            self.disabled = reason
            print(f"flor: warning: checkpoints disabled for this run: {reason}", file=sys.stderr)
            with suppress(Exception):  # the store that just failed may not take the note
                self.session.note(f"checkpoints disabled: {reason}")

    def _check_bindings(self) -> None:
        if self.frame is None or self._warned_rebind:
            return
        scope = self.frame.f_locals
        for name, variable in self._bindings.items():
            if variable in scope and scope[variable] is not self.objects[name]:
                self._warned_rebind = True
                print(
                    f"flor: warning: {variable!r} now names a new object, but flor keeps "
                    f"checkpointing the one passed as {name}=...: keep one object per name "
                    "(e.g. load_state_dict instead of rebinding)",
                    file=sys.stderr,
                )
                return


@contextmanager
def checkpointing(
    *, budget: float | None = None, allow_pickle: bool | None = None, **objects: Any
) -> Iterator[None]:
    """Name the objects whose state every outermost `flor.loop` iteration can be restored to.

    `budget` (fraction of loop time, default 0.05) and `allow_pickle` are reserved names.
    """
    session = context.current()
    frame = sys._getframe(2)
    try:
        if session.checkpointer is not None:
            raise CheckpointError(
                "flor.checkpointing blocks cannot be nested: pass every object to one block"
            )
        if not objects:
            raise CheckpointError("flor.checkpointing needs objects: e.g. model=net, optimizer=opt")
        validate_objects(objects)
        make = session.checkpoint_factory or Checkpointer
        observer: Any = make(session, objects, budget_from_env(budget), allow_pickle, frame)
    except FlorError as exc:
        context.fail(exc)
    session.checkpointer = observer
    session.observers.append(observer)
    try:
        yield
    except BaseException:
        session.observers.remove(observer)
        session.checkpointer = None
        if isinstance(observer, Checkpointer):  # a replay's restorer has nothing in flight
            observer.close(interrupted=True)
        else:
            observer.close()
        raise
    session.observers.remove(observer)
    session.checkpointer = None
    observer.close()
    if not observer.loops_seen:
        print(
            "flor: warning: no flor.loop ran inside flor.checkpointing, so nothing was "
            "checkpointed: wrap the training loop in flor.loop(...)",
            file=sys.stderr,
        )


def load(run: str, iteration: int | None = None, **objects: Any) -> int:
    """Restore a recorded run's checkpointed state into `objects`, in place.

    `iteration` is the outer iteration whose *start* state is wanted (default: the state
    the loop ended in). Objects are matched by the names given to `flor.checkpointing`;
    returns the iteration restored. Registry-style code needs no knowledge of the layout:
    `net = Net(); flor.load(best_run, model=net)`.
    """
    from flor.runtime.checkpoint import restore as restore_in_place
    from flor.store import reader, reads

    if not objects:
        raise CheckpointError("flor.load needs objects to restore into, e.g. model=net")
    record = reader.find_run(run)
    rows = reads.checkpoints(record["run_id"])
    available = sorted(set(row.iteration for row in rows))
    if not available:
        raise CheckpointError(f"run {record['run_id']} has no checkpoints")
    chosen = available[-1] if iteration is None else iteration
    if chosen not in available:
        raise CheckpointError(
            f"run {record['run_id']} has no checkpoint at iteration {chosen}: "
            f"available: {', '.join(map(str, available))}"
        )
    digests = {row.object: row.digest for row in rows if row.iteration == chosen}
    missing = sorted(set(objects) - set(digests))
    if missing:
        raise CheckpointError(
            f"run {record['run_id']} checkpointed {', '.join(sorted(set(digests) - {'@rng'}))}, "
            f"not {', '.join(missing)}"
        )
    blobs = BlobStore(checkpoint_home(home_dir()))
    wanted = {
        name: blobs.get(digest)
        for name, digest in digests.items()
        if name in objects or name == "@rng"
    }
    restore_in_place(objects, Snapshot.from_parts(wanted))
    _record_read(record["run_id"], chosen, digests, rows)
    return chosen


def _record_read(run_id: str, iteration: int, digests: dict[str, str], rows: Any) -> None:
    """A recording run that loads a checkpoint consumed it: an edge in the lineage graph."""
    session = context.active()
    if session is None:
        return
    from flor.runtime.artifacts import recorder

    found = recorder(session)
    if found is not None:
        size = sum(row.bytes for row in rows if row.iteration == iteration)
        found.read_checkpoint(run_id, iteration, digests, size)
