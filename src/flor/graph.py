"""Lineage: runs linked through the content they read and wrote, across scripts and versions.

Nodes are runs and artifacts (a content digest; one node however many paths held it).
Edges: artifact -> run for an input, run -> artifact for an output (and for a checkpoint
another run loaded with `flor.load`). A walk goes a level at a time through the store's
indexes over (key, to) pairs only, so it reads only the part of the graph it returns; a
walk that grows past a few thousand nodes reads each step's pairs once instead and goes on
in memory. The events it followed are read in full only for a graph to print.

TARGET (for `flor lineage`, `--downstream-of` and `flor checkout`):
- `PATH`: every content recorded at that path (relative to the current folder or to the
  repository root, or absolute); `PATH@latest`: the newest; `PATH@HEX`: the content whose
  digest starts with HEX, else the content the run whose id starts with HEX read or wrote
  there (its final one);
- `RUN`: a run id or a unique prefix of one.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import operator
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

from flor.errors import UsageError
from flor.store import artifacts as store
from flor.store.artifacts import Event
from flor.units import human_bytes

if TYPE_CHECKING:
    import pandas as pd

Direction = Literal["both", "upstream", "downstream"]
T = TypeVar("T")


@contextlib.contextmanager
def _building() -> Iterator[None]:
    """Without the cyclic garbage collector: a whole-store graph is some 300,000 tuples and
    dicts (none in a reference cycle), and each collection their allocation triggers walks
    everything built so far, about half of the build time otherwise."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _built(method: Callable[[Any], T]) -> Callable[[Any], T]:
    @functools.wraps(method)
    def build(self: Any) -> T:
        with _building():
            return method(self)

    return build


class TargetError(UsageError):
    """A lineage target that matches nothing, or more than one thing."""


class Node(NamedTuple):
    """(A named tuple: a walk over the whole store builds tens of thousands.)"""

    id: str  # "run:<run_id>" or "artifact:<digest>"
    kind: str  # run | artifact
    attrs: dict[str, Any]


class Edge(NamedTuple):
    source: str
    target: str
    role: str  # input | output
    run_id: str
    digest: str
    path: str
    ctx_id: int | None
    tstamp: str
    status: str


class Lineage:
    """The graph around `roots` (node ids), with runs and artifacts described.

    Holds the event rows the walk followed; `nodes` and `edges` are built from them when
    first asked for, so a question about runs only (`runs()`) does not build an object per
    edge of a walk over the whole store (`downstream_runs` does not even read the rows)."""

    def __init__(
        self,
        roots: list[str],
        direction: Direction,
        runs: dict[str, dict[str, Any]],
        artifacts: dict[str, store.Artifact],
        followed: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]],
        start_paths: dict[str, list[str]],
    ) -> None:
        self.roots = roots
        self.direction = direction
        self._runs = runs  # run id -> attributes (every run reached)
        self._artifacts = artifacts  # digest -> row (every content reached that is recorded)
        # event rows (store.EDGE_COLUMNS) followed: as they are, and to a content's producer
        self._followed, self._by_producer = followed
        self._start_paths = start_paths

    def runs(self) -> list[str]:
        """Run ids in the graph, oldest first."""
        return _oldest_first(self._runs)

    def run(self, run_id: str) -> dict[str, Any]:
        """A run's attributes (run_id, filename, tstamp, status, snapshot, started, mode)."""
        return self._runs[run_id]

    @functools.cached_property
    @_built
    def nodes(self) -> dict[str, Node]:
        found = {f"run:{r}": Node(f"run:{r}", "run", self._runs[r]) for r in sorted(self._runs)}
        seen = {(row[_DIGEST], row[_PATH]) for rows in (self._followed, self._by_producer)
                for row in rows}  # fmt: skip
        paths: dict[str, list[str]] = {}  # the paths each content was seen at
        for digest, path in seen:
            paths.setdefault(digest, []).append(path)
        for digest in sorted(self._artifacts):  # the same order on every backend
            art = self._artifacts[digest]
            at = paths.get(digest)
            if at is None:
                at = self._start_paths.get(digest, [])
            elif len(at) > 1:
                at.sort()
            attrs = {
                "digest": digest,
                "type": art.kind,  # file | dir | checkpoint
                "bytes": art.bytes,
                "files": art.files,
                "blob": art.blob,
                "paths": at,
            }
            found[f"artifact:{digest}"] = Node(f"artifact:{digest}", "artifact", attrs)
        return found

    @functools.cached_property
    @_built
    def edges(self) -> list[Edge]:
        """input: artifact -> run; output: run -> artifact (also a producer's content
        another run read, once per producer and content), oldest first."""
        artifacts = self._artifacts
        rows = self._followed
        if self.direction == "both":  # a walk each way: both may follow one event
            rows = list({(row[_RUN], row[_SEQ]): row for row in rows}.values())
        new = tuple.__new__
        found = [
            new(Edge, ("artifact:" + digest, "run:" + run, role, run, digest, path, ctx, tstamp,
                       status)) if role == "input" else
            new(Edge, ("run:" + run, "artifact:" + digest, "output", run, digest, path, ctx,
                       tstamp, status))
            for run, _, tstamp, ctx, role, path, digest, status, _ in rows
            if digest in artifacts
        ]  # fmt: skip
        made = set()
        for _, _, tstamp, ctx, _, path, digest, status, producer in self._by_producer:
            if digest in artifacts and (producer, digest) not in made:
                made.add((producer, digest))
                found.append(Edge("run:" + producer, "artifact:" + digest, "output", producer,
                                  digest, path, ctx, tstamp, status))  # fmt: skip
        found.sort(key=_edge_order)
        return found

    def edges_frame(self) -> pd.DataFrame:
        """One row per edge: source, target, role, run_id, digest, path, ctx_id, tstamp,
        status, plus the run's filename and code version (snapshot)."""
        import pandas as pd

        rows = []
        for edge in self.edges:
            run = self.nodes[f"run:{edge.run_id}"].attrs
            code = {"filename": run["filename"], "snapshot": run["snapshot"]}
            rows.append({**edge._asdict(), **code})
        columns = [*Edge._fields, "filename", "snapshot"]
        return pd.DataFrame(rows, columns=columns)

    @_built
    def to_dict(self) -> dict[str, Any]:
        return {
            "roots": self.roots,
            "direction": self.direction,
            "nodes": [{"id": n.id, "kind": n.kind, **n.attrs} for n in self.nodes.values()],
            "edges": [e._asdict() for e in self.edges],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str)

    @_built
    def to_dot(self) -> str:
        """Graphviz DOT: runs as boxes, artifacts as notes, roots in bold."""
        lines = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
        for node in self.nodes.values():
            shape = "box" if node.kind == "run" else "note"
            bold = ", style=bold" if node.id in self.roots else ""
            label = _dot(_label(node).replace(" · ", "\n"))
            lines.append(f"  {_dot(node.id)} [shape={shape}, label={label}{bold}];")
        for edge in self.edges:
            style = ", style=dashed" if edge.status != "ok" else ""
            lines.append(
                f"  {_dot(edge.source)} -> {_dot(edge.target)} [label={_dot(edge.role)}{style}];"
            )
        lines.append("}")
        return "\n".join(lines) + "\n"

    @_built
    def tree(self) -> str:
        """The graph as indented trees from the roots: upstream, then downstream. A node
        reached twice is printed in full once, then as `(shown above)`."""
        out: list[str] = []
        sections: list[tuple[str, bool]] = []
        if self.direction in ("both", "upstream"):
            sections.append(("upstream", False))
        if self.direction in ("both", "downstream"):
            sections.append(("downstream", True))
        for title, forward in sections:
            near: dict[str, list[Edge]] = {}
            for edge in self.edges:
                near.setdefault(edge.source if forward else edge.target, []).append(edge)
            for edges in near.values():
                edges.sort(key=lambda e: (e.tstamp, e.path, e.run_id))
            if len(sections) > 1:
                out.append(f"{title}:")
            for root in self.roots:
                out.append(_label(self.nodes[root]))
                self._branch(root, forward, near, {root}, out)
        return "\n".join(out) + "\n"

    def _branch(
        self,
        root: str,
        forward: bool,
        near: dict[str, list[Edge]],
        seen: set[str],
        out: list[str],
    ) -> None:
        """Depth first without recursion, so a chain of thousands of runs prints too."""
        stack: list[tuple[str, int, str]] = [(root, 0, "")]  # node, next edge, indent
        while stack:
            node, index, indent = stack.pop()
            edges = near.get(node, [])
            if index >= len(edges):
                continue
            edge = edges[index]
            last = index == len(edges) - 1
            stack.append((node, index + 1, indent))
            other = edge.target if forward else edge.source
            again = other in seen
            shown = _label(self.nodes[other], edge.path)
            suffix = " (shown above)" if again else ""
            out.append(
                f"{indent}{'└── ' if last else '├── '}{_verb(edge, forward)} {shown}{suffix}"
            )
            if not again:
                seen.add(other)
                stack.append((other, 0, indent + ("    " if last else "│   ")))


def _verb(edge: Edge, forward: bool) -> str:
    status = "" if edge.status == "ok" else f" ({edge.status})"
    if edge.role == "input":
        return f"read by{status}" if forward else f"read{status}"
    return f"wrote{status}" if forward else f"written by{status}"


def _label(node: Node, path: str | None = None) -> str:
    """A run, or an artifact under `path` (else every path its content was seen at)."""
    a = node.attrs
    if node.kind == "run":
        code = (a.get("snapshot") or "")[:10] or "no snapshot"
        return f"run {a['run_id']} {a['filename']} · code {code} · {a['tstamp']} · {a['status']}"
    kept = " · kept" if a.get("blob") else ""
    paths = path or ", ".join(a.get("paths", [])[:3])
    return f"{paths} @{a['digest'][:12]} · {a.get('type')} {human_bytes(a.get('bytes') or 0)}{kept}"


def _dot(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# -- finding the target ----------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    run_ids: tuple[str, ...] = ()
    digests: tuple[str, ...] = ()
    described: str = ""
    path: str | None = None  # the recorded path a PATH target matched


def _path_forms(text: str, root: Path | None) -> list[str]:
    """How a path may have been recorded: as given, repository-relative, absolute."""
    forms = [text]
    where = os.path.abspath(text)
    if root is not None:
        for form in (where, os.path.realpath(where)):
            with contextlib.suppress(ValueError):
                forms.append(Path(form).relative_to(root).as_posix())
    forms.append(where)
    return list(dict.fromkeys(forms))


def resolve(conn: Any, target: str, root: Path | None = None) -> Start:
    """The runs or contents a TARGET names; a one-line error when it names none or several."""
    if not target.strip():
        raise TargetError("empty lineage target: give a path, PATH@DIGEST, PATH@RUN or a run id")
    path, _, pin = target.rpartition("@") if "@" in target else (target, "", "")
    if "@" in target and not pin:
        raise TargetError(
            f"{target} has nothing after @: write PATH@latest, PATH@DIGEST or PATH@RUN"
        )
    if path:
        events = [e for e in store.events_at_path(conn, _path_forms(path, root)) if e.digest]
        if events:
            found = _pinned(conn, path, pin, events) if pin else _all_versions(path, events)
            return replace(found, path=events[0].path)
    if not pin:
        runs = store.run_ids_starting(conn, target)
        if len(runs) == 1:
            return Start(run_ids=(runs[0],), described=f"run {runs[0]}")
        if len(runs) > 1:
            raise TargetError(
                f"{target!r} is the start of {len(runs)} run ids ({', '.join(runs[:3])}, ...): "
                "give more characters"
            )
    paths, runs_count = store.counts(conn)
    raise TargetError(
        f"no artifact recorded at {path or target!r} and no run id starting with it "
        f"(searched {paths} recorded paths and {runs_count} runs): "
        '`flor query "SELECT DISTINCT path FROM events"` lists the paths'
    )


def _all_versions(path: str, events: list[Event]) -> Start:
    digests = tuple(dict.fromkeys(e.digest for e in sorted(events, key=_when) if e.digest))
    return Start(digests=digests, described=f"{path} ({len(digests)} versions)")


def _when(event: Event) -> tuple[float, int]:
    return (event.recorded, event.seq)


def _pinned(conn: Any, path: str, pin: str, events: list[Event]) -> Start:
    if pin == "latest":
        newest = max(events, key=_when)
        return Start(digests=(str(newest.digest),), described=f"{path}@latest")
    by_digest = sorted({str(e.digest) for e in events if str(e.digest).startswith(pin.lower())})
    by_run = sorted({e.run_id for e in events if e.run_id.startswith(pin)})
    if len(by_digest) + len(by_run) > 1 or (by_digest and by_run):
        several = [*(d[:12] for d in by_digest), *(f"run {r}" for r in by_run)]
        raise TargetError(
            f"{path}@{pin} matches {len(several)} things ({', '.join(several[:4])}): "
            "give more characters"
        )
    if by_digest:
        return Start(digests=(by_digest[0],), described=f"{path}@{by_digest[0][:12]}")
    if by_run:
        mine = [e for e in events if e.run_id == by_run[0]]
        written = [e for e in mine if e.role == "output" and e.status == "ok"]
        chosen = max(written or mine, key=_when)
        return Start(digests=(str(chosen.digest),), described=f"{path}@run {by_run[0]}")
    known = sorted({str(e.digest)[:12] for e in events})
    raise TargetError(
        f"no content of {path} has a digest or run id starting with {pin!r} "
        f"(recorded digests: {', '.join(known[:5])}): `flor lineage {path}` lists them"
    )


# -- walking ---------------------------------------------------------------------------------


# positions in a walk's event rows (store.EDGE_COLUMNS)
_RUN, _SEQ, _TSTAMP, _CTX, _ROLE, _PATH, _DIGEST, _STATUS, _PRODUCER = range(9)


# edges oldest first: by tstamp, run_id, role, path, digest
_edge_order = operator.itemgetter(7, 3, 2, 5, 4)


class _Events:
    """Where a walk's steps (`store.STEPS`) lead: (key, to) pairs by indexed queries while
    the walk stays small; once it has asked for more keys than a sixteenth of the store's
    events, each step's events are read once, in full, into a dictionary by key (one scan
    instead of hundreds of IN lists), which then also gives the rows of a graph to print."""

    SCAN_SHARE = 16
    ASK_COUNT_AT = 1000  # keys asked before the store's size is worth a COUNT

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.asked = 0
        self.scan_at: int | None = None
        self.scanned: dict[str, list[tuple[Any, ...]]] = {}  # step -> its events
        self.by: dict[str, dict[str, list[tuple[Any, ...]]]] = {}  # step -> key -> events

    def __call__(self, step: str, keys: set[str]) -> set[str]:
        """Where `step` leads from `keys`."""
        self.asked += len(keys)
        if self.scan_at is None and self.asked > self.ASK_COUNT_AT:
            self.scan_at = store.event_count(self.conn) // self.SCAN_SHARE
        if step not in self.by and (self.scan_at is None or self.asked <= self.scan_at):
            return {to for _, to in store.step_pairs(self.conn, step, keys)}
        index = self._indexed(step)
        to = store.EDGE_COLUMNS.index(store.STEPS[step].to)
        return {row[to] for key in keys for row in index.get(key, ())}

    def _indexed(self, step: str) -> dict[str, list[tuple[Any, ...]]]:
        index = self.by.get(step)
        if index is None:
            index = self.by[step] = {}
            rows = self.scanned[step] = store.step_rows(self.conn, step)
            at = store.EDGE_COLUMNS.index(store.STEPS[step].key)
            for row in rows:
                found = index.get(row[at])
                if found is None:
                    index[row[at]] = [row]
                else:
                    found.append(row)
        return index

    def rows(self, step: str, keys: set[str]) -> list[tuple[Any, ...]]:
        """The event rows (store.EDGE_COLUMNS) `step` follows from `keys`: from the step's
        scan when it has one (in its order, the table's), else by index."""
        rows = self.scanned.get(step)
        if rows is None:
            return store.step_rows(self.conn, step, keys)
        at = store.EDGE_COLUMNS.index(store.STEPS[step].key)
        return [row for row in rows if row[at] in keys]


# steps whose events are reads followed to the run that produced the content
_BY_PRODUCER = ("products_read", "product_reads")


class _Walk:
    """Breadth first from a start, a level at a time, over (key, to) pairs only: remembers
    what it reached and, per step, the keys it followed, so that `rows` can read the events
    it went through (for a graph to print) in one query per step."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.events = _Events(conn)
        self.followed: dict[str, set[str]] = {}  # step -> keys it was followed from
        self.runs: set[str] = set()
        self.digests: set[str] = set()

    def _follow(self, step: str, keys: set[str]) -> set[str]:
        if not keys:
            return set()
        self.followed.setdefault(step, set()).update(keys)
        return self.events(step, keys)

    def go(self, start: Start, forward: bool, depth: int | None) -> None:
        runs, digests = set(start.run_ids), set(start.digests)
        seen_runs, seen_digests = set(runs), set(digests)
        level = 0
        while (runs or digests) and (depth is None or level < depth):
            if forward:
                next_runs = self._follow("readers", digests)
                next_digests = self._follow("outputs", runs)
                next_digests |= self._follow("products_read", runs)
            else:
                next_runs = self._follow("writers", digests)
                next_runs |= self._follow("product_reads", digests)
                next_digests = self._follow("inputs", runs)
            runs, digests = next_runs - seen_runs, next_digests - seen_digests
            seen_runs |= runs
            seen_digests |= digests
            level += 1
        self.runs |= seen_runs
        self.digests |= seen_digests

    def rows(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """The event rows (store.EDGE_COLUMNS) the walk followed: as they are, and those
        followed to a content's producer."""
        followed: list[tuple[Any, ...]] = []
        by_producer: list[tuple[Any, ...]] = []
        for step, keys in sorted(self.followed.items()):
            rows = self.events.rows(step, keys)
            (by_producer if step in _BY_PRODUCER else followed).extend(rows)
        by_producer.sort(key=operator.itemgetter(_RUN, _SEQ))  # the same edge on every backend
        return followed, by_producer


def _walked(conn: Any, start: Start, direction: Direction, depth: int | None) -> _Walk:
    walk = _Walk(conn)
    if direction in ("both", "upstream"):
        walk.go(start, False, depth)
    if direction in ("both", "downstream"):
        walk.go(start, True, depth)
    return walk


def _run_attrs(conn: Any, run_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The lineage columns of each run reached (a deleted run keeps its id)."""
    found = store.runs(conn, run_ids)
    gone = {"filename": "?", "tstamp": "", "status": "deleted", "snapshot": None}
    return {r: found.get(r) or {"run_id": r, **gone} for r in run_ids}


def _oldest_first(runs: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(runs, key=lambda r: (runs[r].get("started") or 0, r))


def _open(home: Path | None) -> Any:
    """A read-only connection to the store the CLI would pick, opened without pandas:
    `flor lineage` answers in a blink."""
    from flor.store.backend import open_backend
    from flor.store.reads import locate

    return open_backend(locate(home)).reader()


def _root() -> Path | None:
    from flor.paths import find_repo_root

    return find_repo_root()


def lineage(
    target: str,
    *,
    direction: Direction = "both",
    depth: int | None = None,
    home: Path | None = None,
) -> Lineage:
    """The lineage graph around TARGET: what it came from (upstream), what came of it
    (downstream), or both; `depth` limits the edges followed from it."""
    if direction not in ("both", "upstream", "downstream"):
        raise UsageError(f"direction {direction!r}: use both, upstream or downstream")
    if depth is not None and depth < 0:
        raise UsageError(f"depth {depth} is negative: give 0 or more edges")
    with contextlib.closing(_open(home)) as conn, _building():
        start = resolve(conn, target, _root())
        walk = _walked(conn, start, direction, depth)
        return Lineage(
            [f"run:{r}" for r in start.run_ids] + [f"artifact:{d}" for d in start.digests],
            direction,
            _run_attrs(conn, walk.runs),
            store.artifacts(conn, walk.digests),
            walk.rows(),
            _start_paths(conn, start),
        )


def _start_paths(conn: Any, start: Start) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for e in store.events_of_digests(conn, list(start.digests)):
        found.setdefault(str(e.digest), [])
        if e.path not in found[str(e.digest)]:
            found[str(e.digest)].append(e.path)
    return found


def downstream_runs(
    target: str, home: Path | None = None, *, filename: str | None = None
) -> list[str]:
    """Every run that consumed TARGET or anything derived from it (a run TARGET itself is
    not included: its dependants are), only runs of `filename` if given. Raises when there
    are none."""
    with contextlib.closing(_open(home)) as conn, _building():
        start = resolve(conn, target, _root())
        runs = _run_attrs(conn, _walked(conn, start, "downstream", None).runs)
    found = [r for r in _oldest_first(runs) if r not in start.run_ids]
    if filename is not None:
        found = [r for r in found if runs[r]["filename"] == filename]
    if not found:
        which = f"run of {filename}" if filename else "run"
        raise TargetError(
            f"no {which} consumed {target} or anything derived from it: `flor lineage "
            f"{target} --downstream` shows what was recorded"
        )
    return found


# -- bringing a kept artifact back -----------------------------------------------------------


def checkout(target: str, output: str | os.PathLike[str] | None = None, *,
             home: Path | None = None) -> Path:  # fmt: skip
    """Write the bytes of an artifact kept with `keep=True` back to `output` (default: the
    path it was recorded at). A bare PATH means its newest content. Never overwrites a file
    with other content."""
    from flor.blobs import BlobStore
    from flor.paths import home_dir

    if "@" not in target:
        target = f"{target}@latest"
    conn = _open(home)
    try:
        start = resolve(conn, target, _root())
        if len(start.digests) != 1:
            raise TargetError(f"{target} is a run, not a file: name a PATH or PATH@DIGEST")
        digest = start.digests[0]
        art = store.artifacts(conn, [digest]).get(digest)
        recorded = start.path or _start_paths(conn, start)[digest][0]
    finally:
        conn.close()
    if art is None or not art.blob:
        raise TargetError(
            f"{target} (@{digest[:12]}) was recorded without its bytes: record it with "
            "flor.input/flor.output(path, keep=True) to be able to check it out"
        )
    root = _root()
    dest = Path(output) if output is not None else Path(recorded)
    if not dest.is_absolute() and output is None and root is not None:
        dest = root / dest
    blobs = BlobStore(store.blob_home(home or home_dir()))
    from flor.runtime import digest as digests

    if dest.exists() or dest.is_symlink():
        found = digests.content(str(dest), None)
        if found.digest == digest:
            return dest
        raise UsageError(
            f"{dest} exists with other content: pass --output DEST, or move it away first"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    if art.kind == "dir":
        manifest = json.loads(blobs.get(art.blob))
        temp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        for rel, sha in manifest["files"]:
            where = temp / rel
            where.parent.mkdir(parents=True, exist_ok=True)
            where.write_bytes(blobs.get(sha))
        _check_copy(digests.content(str(temp), None).digest, digest, target, temp)
        temp.replace(dest)
        return dest
    data = blobs.get(art.blob)
    _check_copy(digests.hash_bytes(data), digest, target, None)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    Path(name).replace(dest)
    return dest


def _check_copy(found: str, digest: str, target: str, temp: Path | None) -> None:
    if found != digest:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
        raise UsageError(
            f"the kept copy of {target} does not hash to @{digest[:12]} (symbolic links and "
            "empty folders are not kept): restore it by hand from the blob store"
        )
