"""Replay mode: the patched old script runs one task of a replay plan.

The task spec (JSON, from `FLOR_REPLAY`) says which outer iterations to execute, which
names to log and where checkpoints are. Logs go under the original run id and loop
coordinates, tagged with the replay's id; `flor.arg` returns the recorded values.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from flor.blobs import BlobStore
from flor.errors import ReplayError
from flor.runtime.checkpoint import Snapshot, restore
from flor.runtime.session import Identity, Session
from flor.store.location import checkpoint_home, db_path
from flor.store.writer import StoreWriter

# Where a task leaves the values it derived, for the replaying process to check and store.
OUTPUT_ENV = "FLOR_REPLAY_OUTPUT"


class ReplayFinished(SystemExit):
    """Raised where the task's work ends, so the rest of the script does not run."""

    def __init__(self) -> None:
        super().__init__(0)


@dataclass
class TaskSpec:
    run_id: str
    replay_id: str
    home: str
    names: list[str]
    tstamp: str
    projid: str
    filename: str
    mode: str  # prefix | iterations | suffix
    main_loop: str | None = None
    start: int = 0
    stop: int = 0
    total: int = 0
    log_prefix: bool = False
    log_suffix: bool = False
    skip_nested: bool = False
    args: dict[str, Any] = field(default_factory=dict)
    checkpoints: dict[int, dict[str, str]] = field(default_factory=dict)
    # recorded names the task re-derives so the guard can compare them with the record
    check: list[str] = field(default_factory=list)
    # re-executes the first iterations in full, to compare with the cheap strategy's values
    probe: bool = False

    @classmethod
    def from_json(cls, text: str) -> TaskSpec:
        data = json.loads(text)
        data["checkpoints"] = {int(k): v for k, v in data.get("checkpoints", {}).items()}
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


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
    def __init__(self, spec: TaskSpec, writer: StoreWriter, argv: list[str]) -> None:
        identity = Identity(
            spec.run_id, spec.projid, spec.filename, spec.tstamp, spec.replay_id, tuple(spec.names)
        )
        names = frozenset([*spec.names, *spec.check])
        super().__init__(
            writer,
            identity,
            Path(spec.home),
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
        rows = writer.loop_contexts(spec.run_id)
        self._ctx_map = {(p, n, i): c for p, n, i, c in rows}
        self._new_ids = itertools.count(max((r[3] for r in rows), default=0) + 1)

    def begin(self, snapshot: str | None, base: str | None, branch: str | None) -> None:
        now = time.time()
        row = {
            "run_id": self.row_id, "projid": self.projid, "filename": self.filename,
            "tstamp": self.tstamp, "status": "running", "mode": "replay",
            "replay_of": self.run_id, "argv": json.dumps(self.argv), "cwd": os.getcwd(),
            "args": json.dumps(self.spec.args), "host": socket.gethostname(),
            "pid": os.getpid(), "started": now, "heartbeat": now,
        }  # fmt: skip

        # A task retried after its worker died starts over instead of duplicating.
        self.writer.clear_replay(self.row_id)
        self.writer.insert_run(row)
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
                json.dumps({"logs": self.staged_logs, "loops": self.staged_loops}),
                encoding="utf-8",
            )
        super().close(status)

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
                restored = resume is None
                for index, value in enumerate(iterable):
                    if not restored:
                        if index < resume:  # type: ignore[operator]
                            continue
                        self._restore(index)
                        restored = True
                    if spec.mode == "iterations" and index >= spec.stop:
                        self._finish()
                    if self._skipped_to == index:
                        # the body after the skipped nested loop ran on the end state:
                        # start this iteration from its own checkpoint again
                        self._restore(index)
                    self._skipped_to = None
                    self.logging = spec.mode == "iterations" and index >= spec.start
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
    blobs = BlobStore(checkpoint_home(Path(session.spec.home)))
    return Restorer(objects, blobs, session.spec)


def start_replay(spec_json: str) -> ReplaySession:
    import sys

    spec = TaskSpec.from_json(spec_json)
    session = ReplaySession(spec, StoreWriter(db_path(Path(spec.home))), list(sys.argv))
    session.begin(None, None, None)
    return session
