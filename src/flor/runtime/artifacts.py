"""`flor.input(path)` and `flor.output(path)`: the files and folders a run reads and writes,
recorded by content digest with the run, its loop coordinates and its tstamp (code version).

The training thread only stats the path; hashing, the stat cache and the store writes
happen on one background thread. An output is usually declared before it is written
(`torch.save(state, flor.output("model.pt"))`), so it is hashed when flor next gets
control (the next declaration, the end of an outer loop iteration, the end of the run), and
only if it changed since it was declared. At the end of the run every output is verified:
a file rewritten after it was hashed gets its final digest, and its earlier digests stay
recorded with status `replaced` (another run may have read them meanwhile).

Statuses: `ok`; `missing` (an input that did not exist, an output never written);
`unreadable` (permissions, sockets, devices: the note says why); `changed` (a file
modified while it was being hashed, or an output another run wrote meanwhile: no digest,
rather than a wrong one); `unchanged` (an output the run declared but did not write: its
digest is kept, but the run is not its producer); `replaced` (see above). Replays record
nothing: their reads and writes happen in a sandbox and belong to the original run.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import stat
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flor.runtime import digest
from flor.runtime.digest import Content, Fingerprint, StatCache, Unreadable
from flor.store import artifacts as store
from flor.store.artifacts import blob_home

if TYPE_CHECKING:
    from flor.blobs import BlobStore
    from flor.runtime.session import Session

CACHE_FILENAME = "digests.db"
INLINE_BYTES = 1 << 20  # files this small are read on the spot: no race with a rewrite


@dataclass
class _Declared:
    role: str
    path: str  # absolute
    shown: str  # repository-relative when inside the repository
    ctx: int | None
    tstamp: str
    seq: int
    keep: bool
    recorded: float
    before: Fingerprint | None  # the file as it was when declared
    before_stamp: str | None = None  # a folder output's files' stat fingerprints, declared
    settled: Fingerprint | None = None  # an output file as it was when flor had control
    carried: bool = False  # still unwritten when an outer iteration began
    read_at: float = 0.0  # when a small output's bytes were read on the user's thread


@dataclass
class _Written:
    """An output as last hashed: to verify it at the end of the run."""

    declared: _Declared
    seqs: list[int] = field(default_factory=list)
    hashed: list[tuple[_Declared, float]] = field(default_factory=list)  # and when
    digest: str | None = None
    fingerprint: Fingerprint | None = None


def _fingerprint(path: str) -> Fingerprint | None:
    """A regular file's fingerprint; None for folders, pipes, devices and missing paths."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return Fingerprint.of(st) if stat.S_ISREG(st.st_mode) else None


class Recorder:
    """The run's artifact bookkeeping; one per recording session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pid = os.getpid()
        self.started = time.time()
        self.cache = StatCache(session.home / CACHE_FILENAME)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: dict[str, _Declared] = {}  # outputs declared, not hashed yet
        self._written: dict[str, _Written] = {}
        # each output file as last sent to be hashed, and the declaration it was hashed for
        self._settled: dict[str, tuple[Fingerprint, _Declared]] = {}
        self._unwritten: list[tuple[Any, ...]] = []
        self._warned_store = False
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="flor-digest")
        self._jobs: list[Future[None]] = []
        self._blobs: BlobStore | None = None
        self._finished = False
        self._finishing = False
        session.observers.append(self)
        atexit.register(self.finish)  # before the session's own close (atexit is LIFO)

    # -- declarations (the user's thread) ------------------------------------------------

    def declare(self, role: str, path: str | os.PathLike[str], keep: bool) -> None:
        if self._finished or os.getpid() != self.pid:
            return  # a forked worker (e.g. a DataLoader) is not the run
        where = os.path.abspath(os.fspath(path))
        item = _Declared(
            role,
            where,
            self._shown(where),
            self.session.ctx,
            self.session.tstamp,
            next(self._seq),
            keep,
            time.time(),
            _fingerprint(where),
        )
        self.settle()
        if role == "output":
            if os.path.isdir(where):  # hashed now: a background hash could see new files
                found = self._content(replace(item, keep=False))
                item.before_stamp = found.stamp if isinstance(found, Content) else None
            with self._lock:
                self._pending[where] = item
            return
        if not os.path.lexists(where):
            print(
                f"flor: warning: input {item.shown} does not exist; recorded as missing, the "
                "run continues",
                file=sys.stderr,
            )
            self._submit(self._write, [], [self._event(item, None, "missing", None)])
            return
        self._submit(self._hash_input, item, self._read_small(item.path, item.before))

    def read_checkpoint(
        self, producer: str, iteration: int, parts: dict[str, str], size: int
    ) -> None:
        """`flor.load` of a recorded run's checkpoint: an input produced by that run."""
        if self._finished or os.getpid() != self.pid:
            return
        text = "".join(f"{name}\0{sha}\n" for name, sha in sorted(parts.items()))
        content = Content(digest.hash_bytes(text.encode()), "checkpoint", size, len(parts))
        item = _Declared(
            "input",
            "",
            f"checkpoint:{producer}/{iteration}",
            self.session.ctx,
            self.session.tstamp,
            next(self._seq),
            False,
            time.time(),
            None,
        )
        event = self._event(item, content.digest, "ok", None, producer=producer)
        self._submit(self._write, [self._artifact(content)], [event])

    def _shown(self, where: str) -> str:
        """Repository-relative when inside the repository (through symlinks too), as the
        store can hold it (`digest.storable`)."""
        root = self.session.root
        if root is not None:
            for form in (where, os.path.realpath(where)):
                with contextlib.suppress(ValueError):
                    return digest.storable(Path(form).relative_to(root).as_posix())
        return digest.storable(where)

    @staticmethod
    def _read_small(where: str, fingerprint: Fingerprint | None) -> bytes | None:
        """A small file's bytes, read now (on the user's thread) if it stays still meanwhile."""
        if fingerprint is None or fingerprint.size > INLINE_BYTES:
            return None
        try:
            data = Path(where).read_bytes()
        except OSError:
            return None
        return data if _fingerprint(where) == fingerprint else None

    def _read_output(self, item: _Declared, now: Fingerprint | None) -> bytes | None:
        """A small output's bytes, and when they were read: the moment its content was seen,
        which a concurrent writer of the same path is compared with."""
        data = self._read_small(item.path, now)
        item.read_at = time.time()
        return data

    def settle(self, ctx_id: int | None = None) -> None:
        """Hash the outputs declared so far (their writes are done once flor has control).
        At the end of outer iteration `ctx_id`, an output declared before the iteration
        began was written in it: it is recorded at the iteration's coordinates."""
        with self._lock:
            pending, self._pending = self._pending, {}
        keep: dict[str, _Declared] = {}
        for where, item in pending.items():
            now = _fingerprint(where)
            if not os.path.lexists(where) or (item.before is not None and now == item.before):
                keep[where] = item  # not written yet: wait for the next chance
                continue
            if ctx_id is not None and item.carried:
                item = replace(item, ctx=ctx_id, tstamp=self.session.tstamp)
            item.settled = now
            if now is not None:
                self._settled[where] = (now, item)
            self._submit(self._hash_output, item, self._read_output(item, now))
        if keep:
            with self._lock:
                for where, item in keep.items():
                    self._pending.setdefault(where, item)

    def _carry(self) -> None:
        """An outer iteration begins: the outputs still unwritten are written in it or later."""
        with self._lock:
            for item in self._pending.values():
                item.carried = True

    # LoopObserver: an outer iteration's end is a point where its outputs are complete.
    def loop_started(self, name: str) -> None:
        self.settle()
        self._carry()

    def iteration_ended(self, index: int, ctx_id: int, seconds: float) -> None:
        self.settle(ctx_id)
        self._rewritten(ctx_id)
        self._carry()

    def _rewritten(self, ctx_id: int) -> None:
        """Outputs written again during iteration `ctx_id` without being declared again
        (`path = flor.output(...)` before the loop): each version, at its iteration."""
        for where, (last, declared) in list(self._settled.items()):
            now = _fingerprint(where)
            if now is None or now == last or where in self._pending:
                continue
            item = replace(
                declared,
                ctx=ctx_id,
                tstamp=self.session.tstamp,
                seq=next(self._seq),
                recorded=time.time(),
                before=last,
                settled=now,
            )
            self._settled[where] = (now, item)
            self._submit(self._hash_output, item, self._read_output(item, now))

    def loop_ended(self, exhausted: bool) -> None:
        self.settle()

    # -- the background thread -----------------------------------------------------------

    def _submit(self, work: Any, *args: Any) -> None:
        if self._finishing:  # at exit the pool takes no more work: the run is over anyway
            self._guarded(work, *args)
            return
        self._jobs = [job for job in self._jobs if not job.done()]
        self._jobs.append(self._worker.submit(self._guarded, work, *args))

    def _guarded(self, work: Any, *args: Any) -> None:
        try:
            work(*args)
        except Exception as exc:  # noqa: BLE001 - never let bookkeeping kill training
            print(f"flor: warning: could not record an artifact ({exc})", file=sys.stderr)

    def _content(self, item: _Declared, data: bytes | None = None) -> Content | Unreadable:
        """The content, or why it could not be hashed (its `status` and message); stores
        the bytes for keep. `data`: the file's bytes, already read."""
        progress = digest.progress_printer(item.shown)
        try:
            if data is not None:
                found = Content(digest.hash_bytes(data), "file", len(data), 1)
                if item.keep:
                    self._write([self._artifact(found)], [], kept=(found.digest, self._put(data)))
                return found
            if item.keep:
                return self._keep(item, progress)
            return digest.content(item.path, self.cache, progress)
        except Unreadable as exc:
            return exc

    def _hash_input(self, item: _Declared, data: bytes | None) -> None:
        found = self._content(item, data)
        if isinstance(found, Unreadable):
            self._cannot_hash("input", item, found)
            return
        if data is None and found.kind == "file" and _fingerprint(item.path) != item.before:
            note = "modified while flor hashed it: declare inputs once they are complete"
            self._write([], [self._event(item, None, "changed", note)])
            return
        self._write([self._artifact(found)], [self._event(item, found.digest, "ok", None)])

    def _cannot_hash(self, role: str, item: _Declared, why: Unreadable) -> None:
        """A one-line warning, and the event without a digest (`unreadable` or `changed`)."""
        said = f"is unreadable: {why}" if why.status == "unreadable" else str(why)
        print(f"flor: warning: {role} {item.shown} {said}", file=sys.stderr)
        self._write([], [self._event(item, None, why.status, str(why))])

    def _hash_output(self, item: _Declared, data: bytes | None) -> None:
        found = self._content(item, data)
        if isinstance(found, Unreadable):
            self._cannot_hash("output", item, found)
            return
        unwritten = found.kind == "dir" and found.stamp == item.before_stamp
        if unwritten and item.path not in self._written:
            with self._lock:  # the folder is as it was: not written yet
                self._pending.setdefault(item.path, item)
            return
        with self._lock:
            written = self._written.setdefault(item.path, _Written(item))
        written.declared = item
        written.seqs.append(item.seq)
        written.hashed.append((item, item.read_at if data is not None else time.time()))
        if data is None and found.kind == "file" and _fingerprint(item.path) != item.settled:
            # rewritten before flor could hash it: no digest rather than a wrong one
            note = "rewritten before flor hashed it; the final content is verified at the end"
            written.digest = written.fingerprint = None
            self._write([], [self._event(item, None, "changed", note)])
            return
        written.digest, written.fingerprint = found.digest, item.settled
        self._write([self._artifact(found)], [self._event(item, found.digest, "ok", None)])

    def _keep(self, item: _Declared, progress: Any) -> Content:
        """Hash from the same bytes that go into the blob store, so they always agree."""
        blobs = self._blob_store()
        if os.path.isdir(item.path):
            kept: dict[str, list[Any]] = {"files": [], "links": [], "dirs": []}

            def store_entry(rel: str, kind: str, where: str, expected: str) -> None:
                if kind == "dir":
                    kept["dirs"].append(rel)
                    return
                data = os.fsencode(os.readlink(where)) if kind == "link" else None
                data = Path(where).read_bytes() if data is None else data
                if digest.hash_bytes(data) != expected:
                    raise Unreadable(f"{rel} changed while flor kept it: declare it when done")
                if kind == "link":
                    kept["links"].append((rel, os.fsdecode(data)))
                else:
                    kept["files"].append((rel, blobs.put(data)[0]))

            found = digest.content(item.path, self.cache, progress, store_entry)
            manifest = json.dumps(kept, separators=(",", ":")).encode()
            blob = blobs.put(manifest)[0]
        else:
            try:
                if not stat.S_ISREG(os.stat(item.path).st_mode):  # a pipe would never end
                    raise Unreadable(digest.NOT_A_FILE)
                data = Path(item.path).read_bytes()
            except OSError as exc:
                raise Unreadable(f"{exc.strerror}: check the path and its permissions") from exc
            found = Content(digest.hash_bytes(data), "file", len(data), 1)
            blob = self._put(data)
        self._write([self._artifact(found)], [], kept=(found.digest, blob))
        return found

    def _put(self, data: bytes) -> str:
        return self._blob_store().put(data)[0]

    def _blob_store(self) -> BlobStore:
        if self._blobs is None:
            from flor.blobs import BlobStore

            self._blobs = BlobStore(blob_home(self.session.home))
        return self._blobs

    def _artifact(self, found: Content) -> tuple[Any, ...]:
        return (found.digest, found.kind, found.bytes, found.files)

    def _event(
        self,
        item: _Declared,
        found: str | None,
        status: str,
        note: str | None,
        producer: str | None = None,
        seq: int | None = None,
    ) -> tuple[Any, ...]:
        return (
            self.session.run_id,
            item.seq if seq is None else seq,
            item.tstamp,
            item.ctx,
            item.role,
            item.shown,
            found,
            status,
            producer,
            item.recorded,
            None if note is None else digest.storable(note),
        )

    def _write(
        self,
        artifacts: list[tuple[Any, ...]],
        events: list[tuple[Any, ...]],
        kept: tuple[str, str] | None = None,
    ) -> None:
        def work(conn: Any) -> None:
            store.record(conn, self.session.writer.dialect, artifacts, events)
            if kept:
                store.keep_blob(conn, *kept)

        try:
            self.session.writer.transaction(work)
        except Exception as exc:  # noqa: BLE001 - retried at the end of the run
            if not self._warned_store:
                self._warned_store = True
                print(f"flor: warning: could not record artifacts yet ({exc})", file=sys.stderr)
            self._unwritten.append((artifacts, events, kept))

    # -- the end of the run --------------------------------------------------------------

    def finish(self) -> None:
        """Settle and verify every output, then wait for the background thread."""
        if self._finished or os.getpid() != self.pid:
            return
        self._drain()  # the pool ran its queue before atexit handlers; the rest runs here
        self._finishing = True
        self.settle()
        with self._lock:
            never, self._pending = self._pending, {}
        for item in never.values():
            if item.path in self._written:
                continue  # hashed earlier, then declared again and left as it was
            if os.path.lexists(item.path):
                self._submit(self._unchanged, item)
            else:
                print(
                    f"flor: warning: output {item.shown} was declared but never written",
                    file=sys.stderr,
                )
                self._submit(self._write, [], [self._event(item, None, "missing", None)])
        for written in list(self._written.values()):
            self._submit(self._verify, written)
        retry, self._unwritten = self._unwritten, []
        for artifacts, events, kept in retry:
            self._write(artifacts, events, kept)
        for _ in self._unwritten:
            print("flor: warning: some artifact records could not be written", file=sys.stderr)
            break
        self._worker.shutdown(wait=True)
        self.cache.close()
        self._finished = True

    def _drain(self) -> None:
        while self._jobs:
            self._jobs.pop(0).result()

    def _unchanged(self, item: _Declared) -> None:
        found = self._content(item)
        if isinstance(found, Unreadable):
            self._write([], [self._event(item, None, found.status, str(found))])
            return
        note = "declared as an output but not modified by this run"
        self._write([self._artifact(found)], [self._event(item, found.digest, "unchanged", note)])

    def _verify(self, written: _Written) -> None:
        """The final content of an output; earlier digests of it become `replaced`."""
        item = written.declared
        earlier = written.seqs[:-1]
        now = _fingerprint(item.path)
        others = self._other_writers(item)
        if others:  # another run wrote it meanwhile: some contents hashed may be theirs
            self._disown(written, others)
        if now is None or now != written.fingerprint:
            if others:
                note = f"also written by run {others[0].run_id}; its final content is not claimed"
                self._write([], [self._event(item, None, "changed", note, seq=next(self._seq))])
                return
            found = self._content(item)  # deleted at the end: keep what was seen
            if isinstance(found, Content) and found.digest != written.digest:
                seq = next(self._seq)
                note = "final content at the end of the run"
                final = replace(item, ctx=None, tstamp=self.session.tstamp, recorded=time.time())
                event = self._event(final, found.digest, "ok", note, seq=seq)
                self._write([self._artifact(found)], [event])
                earlier = written.seqs
        if earlier:
            run_id = self.session.run_id
            self.session.writer.transaction(lambda c: store.mark_replaced(c, run_id, earlier))

    def _disown(self, written: _Written, others: list[store.Event]) -> None:
        """Contents read once another run had declared the path as its output may be that
        run's bytes: they are recorded `changed`, without a digest, rather than as this run's.
        (A run records only what it writes after declaring it.)"""
        since = min(e.recorded for e in others)
        note = (
            f"run {others[0].run_id} also wrote this path while this run ran: flor cannot "
            "tell whose content it hashed"
        )
        doubtful = [
            self._event(i, None, "changed", note) for i, at in written.hashed if at >= since
        ]
        if doubtful:
            self._write([], doubtful)

    def _other_writers(self, item: _Declared) -> list[store.Event]:
        """The output events at this path of the other runs that wrote it while this run
        ran, oldest first (a run that declared it but wrote nothing is not a writer)."""
        run_id, since = self.session.run_id, self.started

        def read(conn: Any) -> list[store.Event]:
            others = store.other_writers(conn, item.shown, run_id, since)
            if not others:  # the usual answer, from the path's index alone
                return []
            found = store.events_at_path(conn, [item.shown])
            return [e for e in found if e.run_id in others and e.status in _WROTE]

        writers = self.session.writer.transaction(read)
        return sorted((e for e in writers if e.role == "output"), key=lambda e: e.recorded)


_WROTE = frozenset({"ok", "replaced", "changed", "unreadable"})  # not missing, unchanged


_recorder: Recorder | None = None
_recorder_lock = threading.Lock()


def recorder(session: Session) -> Recorder | None:
    """The session's recorder, or None in replay (replays record no artifacts)."""
    global _recorder
    if session.replay_id is not None:
        return None
    if _recorder is None or _recorder.session is not session:
        with _recorder_lock:
            if _recorder is None or _recorder.session is not session:
                _recorder = Recorder(session)
    return _recorder
