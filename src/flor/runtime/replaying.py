"""Replay mode: the patched old script runs one task of a replay plan.

The task spec (a JSON file named by `FLOR_REPLAY`) says which outer iterations to execute,
which names to log, the run's loop contexts and its checkpoints' digests. Logs go under the
original run id and loop coordinates, tagged with the replay's id; `flor.arg` returns the
recorded values. A task never opens the store: it hands its values back in a file
(`FLOR_REPLAY_OUTPUT`) for the replaying process to check and store, so it needs neither
the store's location nor its credentials.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from flor.blobs import BlobStore
from flor.errors import ReplayError
from flor.paths import CHECKPOINTS_ENV
from flor.runtime.checkpoint import Snapshot, restore
from flor.runtime.session import Identity, Session
from flor.store.writer import StoreWriter
from flor.taskspec import OUTPUT_ENV, TaskSpec


class ReplayFinished(SystemExit):
    """Raised where the task's work ends, so the rest of the script does not run."""

    def __init__(self) -> None:
        super().__init__(0)


class _NoStore(StoreWriter):
    """A replay task's writer: it has no store (nothing to open, no credentials), and any
    attempt to write is a bug the task reports rather than a value stored unchecked."""

    def __init__(self) -> None:
        pass  # deliberately opens nothing

    def transaction(self, work: Callable[[Any], Any]) -> Any:
        raise ReplayError("a replay task hands its values back and never writes the store")


class Restorer:
    """Holds the objects of `flor.checkpointing` and puts recorded states back into them."""

    def __init__(self, objects: dict[str, Any], blobs: BlobStore, spec: TaskSpec) -> None:
        self.objects = objects
        self.blobs = blobs
        self.spec = spec
        self.loops_seen = 0
        self._last: tuple[int, dict[str, bytes]] | None = None

    def restore(self, iteration: int) -> None:
        digests = self.spec.checkpoints[iteration]
        missing = set(self.objects) - set(digests)
        if missing:
            raise ReplayError(
                f"the checkpoint of iteration {iteration} has no state for "
                f"{', '.join(sorted(missing))}: this version checkpoints other objects"
            )
        if self._last is not None and self._last[0] == iteration:
            parts = self._last[1]  # restored twice in a row when a nested loop is skipped
        else:
            parts = {name: self.blobs.get(digest) for name, digest in digests.items()}
            self._last = (iteration, parts)
        restore(self.objects, Snapshot.from_parts(parts))

    def loop_started(self, name: str) -> None:
        self.loops_seen += 1

    def iteration_ended(self, index: int, ctx_id: int, seconds: float) -> None:
        pass

    def loop_ended(self, exhausted: bool) -> None:
        pass

    def close(self) -> None:
        pass


class ReplaySession(Session):
    def __init__(self, spec: TaskSpec, argv: list[str]) -> None:
        # the store's folder only for a script that reads the store itself (flor.dataframe)
        home = Path(os.environ.get("FLOR_HOME") or Path.cwd())
        identity = Identity(
            spec.run_id, spec.projid, spec.filename, spec.tstamp, spec.replay_id, tuple(spec.names)
        )
        names = frozenset([*spec.names, *spec.check])
        super().__init__(
            _NoStore(),
            identity,
            home,
            None,
            argv,
            # only the requested (and checked) names, only inside the task's share of the run
            log_filter=lambda name: self.logging and name in names,
            checkpoint_factory=_restorer,
        )
        self.spec = spec
        self.logging = spec.log_prefix
        self.current_iteration = -1
        self._main_seen = False
        self._skipped_to: int | None = None
        self.staged_logs: list[tuple[Any, ...]] = []
        self.staged_loops: list[tuple[Any, ...]] = []
        self.first_iteration: float | None = None  # when the task's own share began
        self._ctx_map = {(p, n, i): c for p, n, i, c in spec.contexts}
        self._new_ids = itertools.count(max((c[3] for c in spec.contexts), default=0) + 1)

    def begin(self, snapshot: str | None, base: str | None, branch: str | None) -> None:
        self.start_flushing()

    def arg(self, name: str, default: Any) -> Any:
        if name in self.spec.args:
            return self.spec.args[name]
        # a run killed before it wrote its args: its command line still has them
        return super().arg(name, default)

    def commit(self) -> None:
        self.flush()

    def _flush(self) -> None:
        """Values stay with the task until the replaying process has checked them: nothing
        a task derives reaches the store on its own."""
        self.staged_loops.extend(self.drain_loops()[0])
        self.staged_logs.extend(self.drain_logs())

    def close(self, status: str | None = None) -> None:
        if self._closed:
            return
        self._stop.set()
        self.flush()
        output = os.environ.get(OUTPUT_ENV)
        if output:
            Path(output).write_text(
                json.dumps(
                    {
                        "logs": self.staged_logs,
                        "loops": self.staged_loops,
                        "first_iteration": self.first_iteration,
                    }
                ),
                encoding="utf-8",
            )
        self._closed = True

    def _ctx_for(self, parent: int | None, name: str, index: int, value: Any) -> int:
        ctx = self._ctx_map.get((parent, name, index))
        if ctx is None:
            ctx = next(self._new_ids)
            self._ctx_map[(parent, name, index)] = ctx
            self.note_iteration(ctx, parent, name, index, value)
        return ctx

    def _finish(self) -> None:
        self.flush()
        raise ReplayFinished()

    def _restore(self, iteration: int) -> None:
        if self.checkpointer is None:
            raise ReplayError("this version has checkpoints but no flor.checkpointing block")
        self.checkpointer.restore(iteration)

    def loop(self, name: str, iterable: Iterable[Any]) -> Iterator[Any]:
        main = self.spec.main_loop
        if self.depth == 0 and not self._main_seen and (main is None or name == main):
            self._main_seen = True
            return self._outer(name, iterable)
        return self._nested(name, iterable)

    def _outer(self, name: str, iterable: Iterable[Any]) -> Iterator[Any]:
        spec = self.spec
        if spec.mode == "prefix":
            self._finish()
        goal = spec.start if spec.mode == "iterations" else spec.total
        resume = max((k for k in spec.checkpoints if k <= goal), default=None)
        self.logging = False
        parent = self.ctx
        self.depth += 1
        try:
            if resume is not None and resume == spec.total:
                self._restore(resume)  # the loop's end state: nothing to execute
            else:
                # A recording checkpoints iteration i before it asks the iterable for item
                # i (iteration 0: before iter()), so a restore happens there too: fetching
                # an item may draw random numbers (a shuffling DataLoader's iterator draws
                # its seeds, a dataset its augmentations) that iteration i's state follows.
                if resume == 0:
                    self._restore(0)
                restored = resume is None or resume == 0
                items = iter(iterable)
                index = -1
                while True:
                    index += 1
                    if not restored and index == resume:
                        self._restore(index)
                        restored = True
                    elif self._skipped_to == index:
                        # the body after the skipped nested loop ran on the end state:
                        # start this iteration from its own checkpoint again
                        self._restore(index)
                    self._skipped_to = None
                    try:
                        value = next(items)
                    except StopIteration:
                        break
                    if not restored:
                        continue  # before the checkpoint the task resumes from
                    if spec.mode == "iterations" and index >= spec.stop:
                        self._finish()
                    self.logging = spec.mode == "iterations" and index >= spec.start
                    if self.logging and self.first_iteration is None:
                        self.first_iteration = time.time()
                    self.current_iteration = index
                    self.ctx = self._ctx_for(parent, name, index, value)
                    yield value
                    self.ctx = parent
        finally:
            self.depth -= 1
            self.ctx = parent
        self.logging = spec.log_suffix
        self.flush()

    def _nested(self, name: str, iterable: Iterable[Any]) -> Iterator[Any]:
        spec = self.spec
        if (
            self.depth == 1
            and spec.skip_nested
            and self.logging
            and self.current_iteration + 1 in spec.checkpoints
        ):
            # The statement lives in the outer body: jump over the nested loop to the state
            # it ended in, which is the checkpoint at the start of the next iteration.
            self._restore(self.current_iteration + 1)
            self._skipped_to = self.current_iteration + 1
            return
        parent = self.ctx
        self.depth += 1
        try:
            for index, value in enumerate(iterable):
                self.ctx = self._ctx_for(parent, name, index, value)
                yield value
                self.ctx = parent
        finally:
            self.depth -= 1
            self.ctx = parent


def _restorer(
    session: Session,
    objects: dict[str, Any],
    budget: float,
    allow_pickle: bool | None,
    frame: FrameType | None,
) -> Restorer:
    """Replay's `flor.checkpointing`: restores recorded states instead of capturing."""
    assert isinstance(session, ReplaySession)
    # Opened here, inside flor.checkpointing, so a bad checkpoint home is a one-line error.
    location = os.environ.get(CHECKPOINTS_ENV, "")
    if not location and session.spec.checkpoints:
        raise ReplayError(f"a replay task needs {CHECKPOINTS_ENV}: run it with flor replay")
    return Restorer(objects, BlobStore(location), session.spec)


def start_replay(spec_file: str) -> ReplaySession:
    import sys

    spec = TaskSpec.from_json(Path(spec_file).read_text(encoding="utf-8"))
    session = ReplaySession(spec, list(sys.argv))
    session.begin(None, None, None)
    return session
