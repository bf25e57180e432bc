"""Lineage: runs linked through the content they read and wrote, across scripts and versions.

Nodes are runs and artifacts (a content digest; one node however many paths held it).
Edges: artifact -> run for an input, run -> artifact for an output (and for a checkpoint
another run loaded with `flor.load`). A walk goes a level at a time through the store's
indexes, so it reads only the part of the graph it returns.

TARGET (for `flor lineage`, `--downstream-of` and `flor checkout`):
- `PATH`: every content recorded at that path (relative to the current folder or to the
  repository root, or absolute); `PATH@latest`: the newest; `PATH@HEX`: the content whose
  digest starts with HEX, else the content the run whose id starts with HEX read or wrote
  there (its final one);
- `RUN`: a run id or a unique prefix of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from flor.errors import UsageError
from flor.store import artifacts as store
from flor.store.artifacts import Event
from flor.units import human_bytes

if TYPE_CHECKING:
    import pandas as pd

Direction = Literal["both", "upstream", "downstream"]
_PRODUCED = ("ok", "replaced")  # output statuses that make a run the content's producer


class TargetError(UsageError):
    """A lineage target that matches nothing, or more than one thing."""


@dataclass(frozen=True)
class Node:
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


@dataclass
class Lineage:
    """The graph around `roots` (node ids), with runs and artifacts described."""

    roots: list[str]
    direction: Direction
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    def runs(self) -> list[str]:
        """Run ids in the graph, oldest first."""
        found = [n for n in self.nodes.values() if n.kind == "run"]
        found.sort(key=lambda n: (n.attrs.get("started") or 0, n.id))
        return [n.id.split(":", 1)[1] for n in found]

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "roots": self.roots,
            "direction": self.direction,
            "nodes": [{"id": n.id, "kind": n.kind, **n.attrs} for n in self.nodes.values()],
            "edges": [e._asdict() for e in self.edges],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str)

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


class _Events:
    """Event lookups for a walk: indexed queries while it stays small; once it has asked
    for more than `FULL_SCAN_AT` keys, every event is read once and looked up in memory
    (a walk over most of the store: one scan instead of hundreds of IN lists)."""

    FULL_SCAN_AT = 2000

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.asked = 0
        self.by: dict[str, dict[str, list[Event]]] | None = None

    def _lookup(self, column: str, keys: Iterable[str]) -> list[Event] | None:
        keys = list(keys)
        self.asked += len(keys)
        if self.by is None and self.asked > self.FULL_SCAN_AT:
            self.by = {"digest": {}, "run_id": {}, "producer": {}}
            for e in store.all_events(self.conn):
                self.by["digest"].setdefault(str(e.digest), []).append(e)
                self.by["run_id"].setdefault(e.run_id, []).append(e)
                if e.producer:
                    self.by["producer"].setdefault(e.producer, []).append(e)
        if self.by is None:
            return None
        index = self.by[column]
        return [e for key in keys for e in index.get(key, ())]

    def of_digests(self, digests: Iterable[str]) -> list[Event]:
        found = self._lookup("digest", digests)
        return store.events_of_digests(self.conn, list(digests)) if found is None else found

    def of_runs(self, runs: Iterable[str]) -> list[Event]:
        runs = list(runs)
        found = self._lookup("run_id", runs)
        return store.events_of_runs(self.conn, runs) if found is None else found

    def produced_by(self, runs: Iterable[str]) -> list[Event]:
        runs = list(runs)
        found = self._lookup("producer", runs)
        return store.events_produced_by(self.conn, runs) if found is None else found


class _Walk:
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.events = _Events(conn)
        self.edges: dict[tuple[str, str, str, int], Edge] = {}
        self.runs: set[str] = set()
        self.digests: set[str] = set()
        self.paths: dict[str, list[str]] = {}

    def add(self, event: Event, producer: str | None = None) -> None:
        assert event.digest is not None
        run = producer or event.run_id
        self.runs.add(run)
        self.digests.add(event.digest)
        known = self.paths.setdefault(event.digest, [])
        if event.path not in known:
            known.append(event.path)
        run_node, artifact_node = f"run:{run}", f"artifact:{event.digest}"
        if event.role == "input" and producer is None:
            edge = Edge(artifact_node, run_node, "input", run, event.digest, event.path,
                        event.ctx_id, event.tstamp, event.status)  # fmt: skip
        else:
            edge = Edge(run_node, artifact_node, "output", run, event.digest, event.path,
                        event.ctx_id, event.tstamp, event.status)  # fmt: skip
        key = (edge.source, edge.target, edge.role, 0 if producer else event.seq)
        self.edges.setdefault(key, edge)

    def down_from_digests(self, digests: Iterable[str]) -> set[str]:
        found = set()
        for e in self.events.of_digests(digests):
            if e.role == "input" and e.status == "ok":
                self.add(e)
                found.add(e.run_id)
        return found

    def down_from_runs(self, runs: Iterable[str]) -> set[str]:
        runs = list(runs)
        found = set()
        for e in self.events.of_runs(runs):
            if e.role == "output" and e.status in _PRODUCED and e.digest:
                self.add(e)
                found.add(e.digest)
        for e in self.events.produced_by(runs):
            if e.digest and e.producer:
                self.add(e, producer=e.producer)
                found.add(e.digest)
        return found

    def up_from_runs(self, runs: Iterable[str]) -> set[str]:
        found = set()
        for e in self.events.of_runs(runs):
            if e.role == "input" and e.status == "ok" and e.digest:
                self.add(e)
                found.add(e.digest)
        return found

    def up_from_digests(self, digests: Iterable[str]) -> set[str]:
        found = set()
        for e in self.events.of_digests(digests):
            if e.role == "output" and e.status in _PRODUCED:
                self.add(e)
                found.add(e.run_id)
            elif e.role == "input" and e.producer:
                self.add(e, producer=e.producer)
                found.add(e.producer)
        return found

    def go(self, start: Start, forward: bool, depth: int | None) -> None:
        runs, digests = set(start.run_ids), set(start.digests)
        seen_runs, seen_digests = set(runs), set(digests)
        level = 0
        while (runs or digests) and (depth is None or level < depth):
            if forward:
                next_runs = self.down_from_digests(digests) - seen_runs
                next_digests = self.down_from_runs(runs) - seen_digests
            else:
                next_runs = self.up_from_digests(digests) - seen_runs
                next_digests = self.up_from_runs(runs) - seen_digests
            seen_runs |= next_runs
            seen_digests |= next_digests
            runs, digests = next_runs, next_digests
            level += 1


def _open(home: Path | None) -> Any:
    """A read-only connection, opened without pandas: `flor lineage` answers in a blink."""
    from flor.store.backend import STORE_ENV, resolve

    if os.environ.get(STORE_ENV, "").strip():
        target = resolve()
        from flor.store.postgres import PostgresStore

        return PostgresStore(target).reader()
    from flor.store.location import db_path, home_dir
    from flor.store.schema import connect

    return connect(db_path(home or home_dir()), readonly=True)


def _root() -> Path | None:
    from flor.store.location import find_repo_root

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
    conn = _open(home)
    try:
        start = resolve(conn, target, _root())
        walk = _Walk(conn)
        walk.runs |= set(start.run_ids)
        walk.digests |= set(start.digests)
        if direction in ("both", "upstream"):
            walk.go(start, False, depth)
        if direction in ("both", "downstream"):
            walk.go(start, True, depth)
        for digest, paths in _start_paths(conn, start).items():
            walk.paths.setdefault(digest, paths)
        graph = Lineage(
            [f"run:{r}" for r in start.run_ids] + [f"artifact:{d}" for d in start.digests],
            direction,
        )
        runs = store.runs(conn, sorted(walk.runs))
        for run_id in sorted(walk.runs):
            attrs = runs.get(run_id) or {"run_id": run_id, "filename": "?", "tstamp": "",
                                         "status": "deleted", "snapshot": None}  # fmt: skip
            graph.nodes[f"run:{run_id}"] = Node(f"run:{run_id}", "run", attrs)
        found = store.artifacts(conn, sorted(walk.digests))
        for digest in sorted(found):  # the same order on every backend
            art = found[digest]
            attrs = {
                "digest": digest,
                "type": art.kind,  # file | dir | checkpoint
                "bytes": art.bytes,
                "files": art.files,
                "blob": art.blob,
                "paths": _sorted(walk.paths.get(digest, [])),
            }
            graph.nodes[f"artifact:{digest}"] = Node(f"artifact:{digest}", "artifact", attrs)
        graph.edges = sorted(
            (e for e in walk.edges.values() if e.source in graph.nodes and e.target in graph.nodes),
            key=lambda e: (e.tstamp, e.run_id, e.role, e.path, e.digest),
        )
        return graph
    finally:
        conn.close()


def _sorted(paths: list[str]) -> list[str]:
    return sorted(paths) if len(paths) > 1 else paths


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
    graph = lineage(target, direction="downstream", home=home)
    starts = {r.split(":", 1)[1] for r in graph.roots if r.startswith("run:")}
    found = [r for r in graph.runs() if r not in starts]
    if filename is not None:
        found = [r for r in found if graph.nodes[f"run:{r}"].attrs["filename"] == filename]
    if not found:
        runs = f"run of {filename}" if filename else "run"
        raise TargetError(
            f"no {runs} consumed {target} or anything derived from it: `flor lineage "
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
    from flor.runtime.artifacts import blob_home
    from flor.store.location import home_dir

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
    blobs = BlobStore(blob_home(home or home_dir()))
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
        os.replace(temp, dest)
        return dest
    data = blobs.get(art.blob)
    _check_copy(digests.hash_bytes(data), digest, target, None)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(name, dest)
    return dest


def _check_copy(found: str, digest: str, target: str, temp: Path | None) -> None:
    if found != digest:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
        raise UsageError(
            f"the kept copy of {target} does not hash to @{digest[:12]} (symbolic links and "
            "empty folders are not kept): restore it by hand from the blob store"
        )
