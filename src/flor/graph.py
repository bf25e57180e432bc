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

import bisect
import collections
import contextlib
import functools
import gc
import itertools
import json
import operator
import os
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TextIO, TypeVar

from flor.errors import FlorError, UsageError
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


class _Tree:
    """A graph printed as indented trees from its roots: upstream, then downstream. A node
    reached twice is printed in full once, then as `(shown above)`. `Lineage` prints the
    rows it holds; `_Screen` reads the store a node at a time, for a screenful."""

    roots: list[str]
    direction: Direction

    @functools.cached_property
    def _labels(self) -> _Memo:
        """Each node's `_label`, made once."""
        return _Memo(self._label)

    def _label(self, node: str) -> str:
        raise NotImplementedError

    def _tail(self, node: str) -> str:
        """An artifact's label after its path: `_label(node, path)` is path + this."""
        raise NotImplementedError

    def _away(self, forward: bool) -> Callable[[str], Sequence[tuple[str, tuple[Any, ...]]]]:
        """A node's edges away from the roots, in the order printed: (the node at the other
        end, the event's row)."""
        raise NotImplementedError

    def _size(self, roots: list[str], forward: bool) -> int:
        """The lines below `roots` in their full trees: every node reached from them once,
        a line per edge away from it."""
        raise NotImplementedError

    def tree(self, limit: int | None = None) -> str:
        """The tree; with `limit`, at most that many lines, then one saying how many more
        there are."""
        return "".join(self.tree_chunks(limit))

    def tree_chunks(self, limit: int | None = None) -> Iterator[str]:
        """The text of `tree(limit)` in pieces, for a large graph to be written as it is
        made. A section (upstream, downstream) is a tree per root; a node already printed
        in full in the section, in its root's tree or an earlier one, is `(shown above)`, so
        every version of a path shows what came of them without repeating it per version."""
        lines = _TreeLines(self, limit)
        sections: list[tuple[str, bool]] = []
        if self.direction in ("both", "upstream"):
            sections.append(("upstream", False))
        if self.direction in ("both", "downstream"):
            sections.append(("downstream", True))
        for title, forward in sections:
            with _building():
                away = self._away(forward)
                printed = len(lines.out)
                if len(sections) > 1 and lines.room:
                    lines.add(f"{title}:")
                seen: set[str] = set()
                for root in self.roots:
                    if not lines.room:
                        break
                    again = " (shown above)" if root in seen else ""
                    lines.add(self._labels[root] + again)
                    if not again:
                        seen.add(root)
                        lines.branch(root, forward, away, seen)
                if not lines.room:  # the rest of the section is counted
                    whole = (len(sections) > 1) + len(self.roots) + self._size(self.roots, forward)
                    lines.more += whole - (len(lines.out) - printed)
            yield from lines.flush()
        if lines.more:
            yield (
                f"… {lines.more:,} more line{'s' if lines.more > 1 else ''}: narrow with --depth N"
                " or --upstream/--downstream, print them all with --limit 0, or use --format json\n"
            )


class Lineage(_Tree):
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
        self._artifacts = artifacts  # digest -> row (every content reached)
        # event rows (store.EDGE_COLUMNS) followed: as they are, and to a content's producer
        self._followed, self._by_producer = followed
        self._start_paths = start_paths
        self._sections: dict[bool, dict[str, list[tuple[str, tuple[Any, ...]]]]] = {}

    def runs(self) -> list[str]:
        """Run ids in the graph, oldest first."""
        return _oldest_first(self._runs)

    def run(self, run_id: str) -> dict[str, Any]:
        """A run's attributes (run_id, filename, tstamp, status, snapshot, started, mode)."""
        return self._runs[run_id]

    @functools.cached_property
    def _paths(self) -> dict[str, list[str]]:
        """The paths each content was seen at in the walk (sorted), else at the start."""
        rows = self._followed + self._by_producer
        pairs = zip(map(_digest_of, rows), map(_path_of, rows), strict=True)
        seen = list(dict.fromkeys(pairs))  # distinct (digest, path), first seen first
        paths = dict(zip(map(_first, seen), map(list, zip(map(_second, seen))), strict=True))
        if len(paths) < len(seen):  # some contents were seen at several paths
            several = {digest: n for digest, n in collections.Counter(map(_first, seen)).items()
                       if n > 1}  # fmt: skip
            for digest in several:
                paths[digest] = []
            for digest, path in seen:
                if digest in several:
                    paths[digest].append(path)
            for digest in several:
                paths[digest].sort()
        for digest, at in self._start_paths.items():
            paths.setdefault(digest, at)
        return paths

    def _artifact_attrs(self, digest: str) -> dict[str, Any]:
        return {**self._artifact_attrs_without_paths(digest), "paths": self._paths.get(digest, [])}

    def _artifact_attrs_without_paths(self, digest: str) -> dict[str, Any]:
        return _artifact_columns(self._artifacts[digest])

    @functools.cached_property
    @_built
    def nodes(self) -> dict[str, Node]:
        found = {f"run:{r}": Node(f"run:{r}", "run", self._runs[r]) for r in sorted(self._runs)}
        for digest in sorted(self._artifacts):  # the same order on every backend
            found[f"artifact:{digest}"] = Node(
                f"artifact:{digest}", "artifact", self._artifact_attrs(digest)
            )
        return found

    @functools.cached_property
    @_built
    def _edge_rows(self) -> list[tuple[Any, ...]]:
        """The event rows (store.EDGE_COLUMNS) of `edges`, in their order: a producer's
        content another run read as the producer's output row."""
        found = list(self._followed)  # each event once (`_Walk.rows`)
        made = set()
        for _, seq, tstamp, ctx, _, path, digest, status, producer in self._by_producer:
            if (producer, digest) not in made:
                made.add((producer, digest))
                found.append((producer, seq, tstamp, ctx, "output", path, digest, status, None))
        found.sort(key=_edge_order)  # rows come in table order: nearly sorted already
        return found

    @functools.cached_property
    @_built
    def edges(self) -> list[Edge]:
        """input: artifact -> run; output: run -> artifact (also a producer's content
        another run read, once per producer and content), oldest first."""
        new = tuple.__new__
        return [
            new(Edge, ("artifact:" + digest, "run:" + run, role, run, digest, path, ctx, tstamp,
                       status)) if role == "input" else
            new(Edge, ("run:" + run, "artifact:" + digest, "output", run, digest, path, ctx,
                       tstamp, status))
            for run, _, tstamp, ctx, role, path, digest, status, _ in self._edge_rows
        ]  # fmt: skip

    @_built
    def edges_frame(self) -> pd.DataFrame:
        """One row per edge: source, target, role, run_id, digest, path, ctx_id, tstamp,
        status, plus the run's filename and code version (snapshot)."""
        import pandas as pd

        edges = self.edges
        if not edges:
            return pd.DataFrame([], columns=[*Edge._fields, "filename", "snapshot"])
        columns: dict[str, Any] = dict(zip(Edge._fields, zip(*edges, strict=True), strict=True))
        runs = self._runs
        columns["filename"] = [runs[run]["filename"] for run in columns["run_id"]]
        columns["snapshot"] = [runs[run]["snapshot"] for run in columns["run_id"]]
        return pd.DataFrame(columns)

    @_built
    def to_dict(self) -> dict[str, Any]:
        return {
            "roots": self.roots,
            "direction": self.direction,
            "nodes": [{"id": n.id, "kind": n.kind, **n.attrs} for n in self.nodes.values()],
            "edges": [e._asdict() for e in self.edges],
        }

    def to_json(self) -> str:
        """`json.dumps(to_dict())`, written piece by piece without the dictionaries."""
        return "".join(self.json_chunks())

    def json_chunks(self) -> Iterator[str]:
        """The text of `to_json()` in pieces of a few thousand nodes or edges each, for
        a large graph to be written as it is made."""
        roots, direction = _json_text(self.roots), _json_text(self.direction)
        yield f'{{"roots": {roots}, "direction": {direction}, "nodes": ['
        yield from _joined(self._json_nodes(), ", ")
        yield '], "edges": ['
        yield from _joined(self._json_edges(), ", ")
        yield "]}"

    @_built
    def _json_nodes(self) -> list[str]:
        text, quoted = _json_text, self._quoted
        runs = sorted(self._runs)
        every = list(map(self._runs.__getitem__, runs))
        nodes: list[str]
        if all(map(_RUN_KEYS.__eq__, map(tuple, every))):  # as the store reads them
            # each node's text is its pieces joined: constants between columns, in C
            run, filename, tstamp, status, snapshot, started, mode = (
                map(operator.itemgetter(key), every) for key in _RUN_KEYS
            )
            nodes = list(map("".join, zip(
                itertools.repeat('{"id": "run:'), _after_quote(map(quoted.__getitem__, run)),
                itertools.repeat(', "kind": "run", "run_id": '), map(quoted.__getitem__, runs),
                itertools.repeat(', "filename": '), map(quoted.__getitem__, filename),
                itertools.repeat(', "tstamp": '), map(quoted.__getitem__, tstamp),
                itertools.repeat(', "status": '), map(quoted.__getitem__, status),
                itertools.repeat(', "snapshot": '), map(text, snapshot),
                itertools.repeat(', "started": '), map(text, started),  # (1 == 1.0: no memo)
                itertools.repeat(', "mode": '), map(quoted.__getitem__, mode),
                itertools.repeat("}"), strict=False,
            )))  # fmt: skip
        else:
            nodes = []
            for run_id, attrs in zip(runs, every, strict=True):
                fields = "".join([f", {text(k)}: {text(v)}" for k, v in attrs.items()])
                nodes.append(f'{{"id": {text("run:" + run_id)}, "kind": "run"{fields}}}')
        digests = sorted(self._artifacts)
        if not digests:
            return nodes
        _, kinds, sizes, files, blobs = zip(*map(self._artifacts.__getitem__, digests), strict=True)
        json_digests = list(map(encode_basestring_ascii, digests))
        # each content's paths as JSON: most have one, quoted by a C loop; the others joined
        paths = list(map(self._paths.get, digests, itertools.repeat(_NO_PATHS)))
        first = _Memo(text)
        first[_NO_PATH] = ""
        listed = list(map(first.__getitem__, map(_first, paths)))
        for at in itertools.compress(range(len(paths)), map(_several, paths)):
            listed[at] = ", ".join([quoted[path] for path in paths[at]])
        nodes.extend(map("".join, zip(
            itertools.repeat('{"id": "artifact:'), _after_quote(json_digests),
            itertools.repeat(', "kind": "artifact", "digest": '), json_digests,
            itertools.repeat(', "type": '), map(_Memo(text).__getitem__, kinds),
            itertools.repeat(', "bytes": '), map(_Memo(text).__getitem__, sizes),
            itertools.repeat(', "files": '), map(_Memo(text).__getitem__, files),
            itertools.repeat(', "blob": '), map(_Memo(text).__getitem__, blobs),
            itertools.repeat(', "paths": ['), listed,
            itertools.repeat("]}"), strict=False,
        )))  # fmt: skip
        return nodes

    @_built
    def _json_edges(self) -> list[str]:
        if not self._edge_rows:
            return []
        quoted = self._quoted.__getitem__
        run, _, tstamp, ctx, role, path, digest, status, _ = zip(*self._edge_rows, strict=True)
        # run ids and digests are text: quoted in C, without the memo's misses
        runs = list(map(encode_basestring_ascii, run))
        digests = list(map(encode_basestring_ascii, digest))
        # each edge's text is its pieces joined: constants between columns (the loop runs in
        # C); an input goes artifact -> run, an output run -> artifact
        reads = list(map("input".__eq__, role))
        unquoted = itertools.repeat(slice(1, None))
        ends = list(zip(map(operator.getitem, runs, unquoted),
                        map(operator.getitem, digests, unquoted), strict=True))  # fmt: skip
        pieces = (
            map(_JSON_EDGE_SOURCE.__getitem__, reads),
            map(operator.getitem, ends, reads),  # the JSON of the source's id, no opening "
            map(_JSON_EDGE_TARGET.__getitem__, reads),
            map(operator.getitem, ends, map(operator.not_, reads)),
            map(_JSON_EDGE_ROLE.__getitem__, reads),
            runs,
            itertools.repeat(', "digest": '),
            digests,
            itertools.repeat(', "path": '),
            map(quoted, path),
            itertools.repeat(', "ctx_id": '),
            map(_Memo(_json_text).__getitem__, ctx),
            itertools.repeat(', "tstamp": '),
            map(quoted, tstamp),
            itertools.repeat(', "status": '),
            map(quoted, status),
            itertools.repeat("}"),
        )
        return list(map("".join, zip(*pieces, strict=False)))  # (constants repeat forever)

    @functools.cached_property
    def _quoted(self) -> _Memo:
        """Text columns as JSON strings, each made once (paths, digests and run ids recur)."""
        return _Memo(_json_text)

    def to_dot(self) -> str:
        """Graphviz DOT: runs as boxes, artifacts as notes, roots in bold."""
        return "".join(self.dot_chunks())

    def dot_chunks(self) -> Iterator[str]:
        """The text of `to_dot()` in pieces, for a large graph to be written as it is made."""
        yield 'digraph lineage {\n  rankdir=LR;\n  node [fontname="Helvetica"];\n'
        yield from _joined(self._dot_nodes(), "")
        yield from _joined(self._dot_edges(), "")
        yield "}\n"

    @_built
    def _dot_nodes(self) -> list[str]:
        roots, labels = set(self.roots), self._labels
        lines = [
            f"  {_dot(node)} [shape=box, label={_dot_label(labels[node])}"
            f"{', style=bold' if node in roots else ''}];\n"
            for node in ["run:" + run for run in sorted(self._runs)]
        ]
        digests = sorted(self._artifacts)
        if not digests:
            return lines
        # each label and line is its pieces joined: the loop over 50,000 artifacts runs in C
        _, kinds, sizes, _, blobs = zip(*map(self._artifacts.__getitem__, digests), strict=True)
        paths: list[Any] = list(map(self._paths.get, digests, itertools.repeat(_NO_PATHS)))
        firsts = list(map(_first, paths))
        listed = list(map({_NO_PATH: ""}.get, firsts, firsts))  # one path: itself
        for at in itertools.compress(range(len(paths)), map(_several, paths)):
            listed[at] = ", ".join(paths[at][:3])
        size = _Memo(_size_text).__getitem__
        label = _escaped(list(map("".join, zip(
            listed,
            itertools.repeat(" @"), map(operator.getitem, digests, itertools.repeat(slice(12))),
            itertools.repeat(" · "), kinds, map(size, sizes),
            map(_Memo(lambda blob: " · kept" if blob else "").__getitem__, blobs), strict=False,
        ))), _dot_label_escape)  # fmt: skip
        node = _escaped(list(map("artifact:".__add__, digests)), _dot_escape)
        styles = [""] * len(digests)
        for root in roots:
            at = bisect.bisect_left(digests, root.partition(":")[2])
            if root.startswith("artifact:") and at < len(digests) and digests[at] == root[9:]:
                styles[at] = ", style=bold"
        lines.extend(map("".join, zip(
            itertools.repeat('  "'), node, itertools.repeat('" [shape=note, label="'), label,
            itertools.repeat('"'), styles, itertools.repeat("];\n"), strict=False,
        )))  # fmt: skip
        return lines

    @_built
    def _dot_edges(self) -> list[str]:
        if not self._edge_rows:
            return []
        run, *_, role, _, digest, status, _ = zip(*self._edge_rows, strict=True)
        styles = _Memo(lambda status: "];" if status == "ok" else ", style=dashed];")
        columns = (
            _escaped(list(digest), _dot_escape),
            _escaped(list(run), _dot_escape),
            map(styles.__getitem__, status),
        )
        templates = map(_DOT_EDGE.__getitem__, map("input".__eq__, role))
        return list(map(str.format, templates, *columns))

    def _label(self, node: str) -> str:
        """`_label` of a node, without making every node (nor, for a tree's roots, the
        paths of every content)."""
        kind, _, key = node.partition(":")
        if kind == "run":
            return _run_label(self._runs[key])
        if "_paths" in self.__dict__:
            return _label(Node(node, kind, self._artifact_attrs(key)))
        seen = [row[_PATH] for rows in (self._followed, self._by_producer) for row in rows
                if row[_DIGEST] == key]  # fmt: skip
        paths = sorted(set(seen)) if seen else self._start_paths.get(key, [])
        return _label(Node(node, kind, {**self._artifact_attrs_without_paths(key), "paths": paths}))

    def _tail(self, node: str) -> str:
        attrs = self._artifact_attrs_without_paths(node.partition(":")[2])
        return _label(Node(node, "artifact", attrs), "\0").partition("\0")[2]

    def _away(self, forward: bool) -> Callable[[str], Sequence[tuple[str, tuple[Any, ...]]]]:
        return functools.partial(_edges_of, self._section(forward))

    def _size(self, roots: list[str], forward: bool) -> int:
        return _tree_size(roots, self._section(forward), _first)

    def _section(self, forward: bool) -> dict[str, list[tuple[str, tuple[Any, ...]]]]:
        """`_near(forward)`, or nothing for a section of a "both" tree where no edge leaves
        the roots (a raw dump's upstream: only the root's line, without indexing every
        edge)."""
        found = self._sections.get(forward)
        if found is None:
            leaves = self.direction != "both" or self._leave_roots(forward)
            found = self._sections[forward] = self._near(forward) if leaves else {}
        return found

    def _leave_roots(self, forward: bool) -> bool:
        """Whether any edge leads away from a root this way (a raw dump's upstream has
        none: its section is only the root's line, without indexing every edge)."""
        digests = {root[9:] for root in self.roots if root.startswith("artifact:")}
        runs = {root[4:] for root in self.roots if root.startswith("run:")}
        rows = self._edge_rows
        reads = list(map("input".__eq__, map(_role_of, rows)))
        away_from_artifact = reads if forward else list(map(operator.not_, reads))
        return not (
            digests.isdisjoint(itertools.compress(map(_digest_of, rows), away_from_artifact))
            and runs.isdisjoint(
                itertools.compress(map(_run_of, rows), map(operator.not_, away_from_artifact))
            )
        )

    def _near(self, forward: bool) -> dict[str, list[tuple[str, tuple[Any, ...]]]]:
        """Each node's edges away from the roots, by (tstamp, path, run_id), as (the node at
        the other end, the edge's row)."""
        near: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
        for row in self._edge_rows:
            run, artifact = "run:" + row[_RUN], "artifact:" + row[_DIGEST]
            if (row[_ROLE] == "input") is forward:  # artifact -> run, seen from the artifact
                key, other = artifact, run
            else:
                key, other = run, artifact
            found = near.get(key)
            if found is None:
                near[key] = [(other, row)]
            else:
                found.append((other, row))
        for key, edges in near.items():
            # a run's own edges are all of one run and role: in `edges` order already
            if len(edges) > 1 and key[0] == "a":  # artifact:...
                edges.sort(key=_near_order)
        return near


def _near_order(edge: tuple[str, tuple[Any, ...]]) -> tuple[str, str, str]:
    row = edge[1]
    return row[_TSTAMP], row[_PATH], row[_RUN]


_RUN_KEYS = ("run_id", "filename", "tstamp", "status", "snapshot", "started", "mode")
_DOT_EDGE = {  # by role == "input"
    True: '  "artifact:{0}" -> "run:{1}" [label="input"{2}\n',
    False: '  "run:{1}" -> "artifact:{0}" [label="output"{2}\n',
}
# an edge's JSON before its run id, by role == "input" (the ids' JSON between)
_JSON_EDGE_SOURCE = ('{"source": "run:', '{"source": "artifact:')
_JSON_EDGE_TARGET = (', "target": "artifact:', ', "target": "run:')
_JSON_EDGE_ROLE = (', "role": "output", "run_id": ', ', "role": "input", "run_id": ')


def _escaped(texts: list[str], escape: Callable[[str], str]) -> list[str]:
    """`[escape(text) for text in texts]` in one pass over their join, for an `escape` that
    replaces substrings without NUL; item by item if a text holds a NUL itself."""
    found = escape("\0".join(texts)).split("\0")
    return found if len(found) == len(texts) else [escape(text) for text in texts]


class _TreeLines:
    """The lines of a tree, up to a limit; past it, only counted."""

    def __init__(self, graph: _Tree, limit: int | None) -> None:
        self.room = limit if limit else -1  # lines that may still be printed; -1: no limit
        self.more = 0  # lines past the limit
        self.out: list[str] = []
        self.labels = graph._labels
        # an artifact's label after its path (each edge shows the path it was seen at)
        self.tails = _Memo(graph._tail)

    def add(self, line: str) -> None:
        self.out.append(line)
        self.room -= 1

    def flush(self) -> Iterator[str]:
        if self.out:
            yield from _joined(self.out, "\n")
            yield "\n"
            self.out = []

    def branch(
        self,
        root: str,
        forward: bool,
        away: Callable[[str], Sequence[tuple[str, Any]]],
        seen: set[str],
    ) -> None:
        """Depth first without recursion, so a chain of thousands of runs prints too, until
        the limit; `seen`: the nodes printed in full so far."""
        stack: list[tuple[str, int, str]] = [(root, 0, "")]  # node, next edge, indent
        verbs, labels, tails, out = _VERBS[forward], self.labels, self.tails, self.out
        while stack and self.room:
            node, index, indent = stack.pop()
            edges = away(node)
            if index >= len(edges):
                continue
            other, (_, _, _, _, role, path, _, status, _) = edges[index]
            last = index == len(edges) - 1
            stack.append((node, index + 1, indent))
            again = other in seen
            verb = verbs.get((role, status)) or _verb(role, status, forward)
            artifact = (role == "input") is not forward  # else `other` is a run
            text = path + tails[other] if artifact and path else labels[other]
            suffix = " (shown above)" if again else ""
            out.append(f"{indent}{'└── ' if last else '├── '}{verb} {text}{suffix}")
            self.room -= 1
            if not again:
                seen.add(other)
                stack.append((other, 0, indent + ("    " if last else "│   ")))


def _edges_of(near: dict[str, list[tuple[str, Any]]], node: str) -> Sequence[tuple[str, Any]]:
    return near.get(node, ())


def _tree_size(
    roots: list[str], near: dict[str, list[Any]], other: Callable[[Any], str] | None
) -> int:
    """The lines below `roots` in their full trees: every node reached from them is shown in
    full once, a line per edge away from it (`near`'s items are the nodes at the other end,
    or give them by `other`)."""
    seen = set(roots)
    level = list(seen)
    size = 0
    while level:
        below: list[str] = []
        for node in level:
            edges = near.get(node)
            if edges:
                size += len(edges)
                below.extend(map(other, edges) if other else edges)
        level = [node for node in dict.fromkeys(below) if node not in seen]
        seen.update(level)
    return size


def _joined(items: list[str], separator: str, size: int = 4096) -> Iterator[str]:
    """`separator.join(items)` in pieces of `size` items."""
    for start in range(0, len(items), size):
        if start:
            yield separator
        yield separator.join(items[start : start + size])


class _Memo(dict[Any, str]):
    """`make(key)`, made once per key."""

    def __init__(self, make: Callable[[Any], str]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, key: Any) -> str:
        found = self[key] = self.make(key)
        return found


def _json_text(value: Any) -> str:
    """`json.dumps(value, default=str)`, with the common values made without the encoder."""
    kind = value.__class__
    if kind is str:
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    if kind is float and value - value == 0:  # finite
        return float.__repr__(value)
    return json.dumps(value, default=str)


def _verb(role: str, status: str, forward: bool) -> str:
    status = "" if status == "ok" else f" ({status})"
    if role == "input":
        return f"read by{status}" if forward else f"read{status}"
    return f"wrote{status}" if forward else f"written by{status}"


_VERBS = {
    forward: {(role, "ok"): _verb(role, "ok", forward) for role in ("input", "output")}
    for forward in (False, True)
}  # fmt: skip


def _label(node: Node, path: str | None = None) -> str:
    """A run, or an artifact under `path` (else every path its content was seen at)."""
    a = node.attrs
    if node.kind == "run":
        return _run_label(a)
    kept = " · kept" if a.get("blob") else ""
    paths = path or ", ".join(a.get("paths", [])[:3])
    return f"{paths} @{a['digest'][:12]} · {a.get('type')}{_size_text(a.get('bytes'))}{kept}"


def _size_text(size: int | None) -> str:
    """` 1.2 MB`, or nothing for a content of unknown size (its `artifacts` row is gone)."""
    return "" if size is None else f" {human_bytes(size)}"


def _run_label(a: dict[str, Any]) -> str:
    code = (a.get("snapshot") or "")[:10] or "no snapshot"
    return f"run {a['run_id']} {a['filename']} · code {code} · {a['tstamp']} · {a['status']}"


def _dot(text: str) -> str:
    return '"' + _dot_escape(text) + '"'


def _dot_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _dot_label(label: str) -> str:
    """`_dot(label.replace(" · ", "\\n"))`: a label's parts on lines of their own."""
    return '"' + _dot_label_escape(label) + '"'


def _dot_label_escape(label: str) -> str:
    return _dot_escape(label).replace(" · ", "\\n")


# -- finding the target ----------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    run_ids: tuple[str, ...] = ()
    digests: tuple[str, ...] = ()
    described: str = ""
    path: str | None = None  # the recorded path a PATH target matched


def _path_forms(text: str, root: Path | None) -> list[list[str]]:
    """How a path may have been recorded, in the order to try: relative to the current
    folder (repository-relative, also through symlinks, or absolute), then as given (a
    repository-relative path typed from a subfolder)."""
    where = os.path.abspath(text)
    here = []
    if root is not None:
        for form in (where, os.path.realpath(where)):
            with contextlib.suppress(ValueError):
                here.append(Path(form).relative_to(root).as_posix())
    here.append(where)
    from flor.runtime.digest import storable  # as recorded: undecodable bytes escaped

    here = list(dict.fromkeys(map(storable, here)))
    return [here] if storable(text) in here else [here, [storable(text)]]


def _events_at(conn: Any, text: str, root: Path | None) -> list[Event]:
    """The events at the path `text` names: `data.csv` typed in `sub/` is `sub/data.csv`
    when that was recorded, and the repository's `data.csv` only when it was not."""
    for forms in _path_forms(text, root):
        found = store.events_at_path(conn, forms)
        if found:
            return found
    return []


def resolve(conn: Any, target: str, root: Path | None = None) -> Start:
    """The runs or contents a TARGET names; a one-line error when it names none or several."""
    if not target.strip():
        raise TargetError("empty lineage target: give a path, PATH@DIGEST, PATH@RUN or a run id")
    path, _, pin = target.rpartition("@") if "@" in target else (target, "", "")
    if "@" in target and not pin:
        raise TargetError(
            f"{target} has nothing after @: write PATH@latest, PATH@DIGEST or PATH@RUN"
        )
    if "@" in target:  # a recorded path with an @ of its own (`model@v2.pt`) is a PATH
        whole = _recorded_path(conn, target, root)
        if whole:
            return replace(_all_versions(target, whole), path=whole[0].path)
    recorded: list[Event] = []
    if path:
        recorded = _events_at(conn, path, root)
        events = [e for e in recorded if e.digest]
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
    if recorded:  # declared, but never with a content (missing, unreadable, ...)
        how = sorted({f"{e.status} in run {e.run_id}" for e in recorded})
        more = f" and {len(how) - 3} more" if len(how) > 3 else ""
        raise TargetError(
            f"{path} was recorded without a content to follow ({', '.join(how[:3])}{more}): "
            f'`flor query "SELECT run_id, status, note FROM events WHERE path = '
            f"'{_sql_text(recorded[0].path)}'\"` shows why"
        )
    paths, runs_count = store.counts(conn)
    searched = _count(paths, "recorded path")
    if pin:  # a path with an @ of its own, or PATH@PIN: a run id has no @
        where = f"{target!r} nor at {path!r}" if path else repr(target)
        raise TargetError(
            f"no artifact recorded at {where} (searched {searched}): "
            '`flor query "SELECT DISTINCT path FROM events"` lists the paths'
        )
    raise TargetError(
        f"no artifact recorded at {target!r} and no run id starting with it "
        f"(searched {searched} and {_count(runs_count, 'run')}): "
        '`flor query "SELECT DISTINCT path FROM events"` lists the paths'
    )


def _recorded_path(conn: Any, path: str, root: Path | None) -> list[Event]:
    """The events that recorded a content at `path` (in any of its forms)."""
    return [e for e in _events_at(conn, path, root) if e.digest]


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


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
_run_of = operator.itemgetter(_RUN)
_seq_of = operator.itemgetter(_SEQ)
_digest_of = operator.itemgetter(_DIGEST)
_role_of = operator.itemgetter(_ROLE)
_path_of = operator.itemgetter(_PATH)
_first = operator.itemgetter(0)
_second = operator.itemgetter(1)
_NO_PATH = object()  # a content without a recorded path: its JSON list is empty
_NO_PATHS = (_NO_PATH,)


def _after_quote(texts: Iterable[str]) -> Iterator[str]:
    """JSON strings without their opening quote (to follow a prefix inside them)."""
    return map(operator.getitem, texts, itertools.repeat(slice(1, None)))


def _several(items: Any) -> bool:
    return len(items) > 1


# edges oldest first: by tstamp, run_id, role, path, then in the order the run declared them
# (its seq; of rows: store.EDGE_COLUMNS)
_edge_order = operator.itemgetter(_TSTAMP, _RUN, _ROLE, _PATH, _SEQ)


class _Events:
    """Where a walk's steps (`store.STEPS`) lead: (key, to) pairs by indexed queries while
    the walk stays small; once it has asked for more keys than a sixteenth of the store's
    events, each step's events are read once, in full, into a dictionary by key (one scan
    instead of hundreds of IN lists), which then also gives the rows of a graph to print.
    With `rows=False` (a tree printed a screen at a time) a scan reads (key, to) pairs only:
    the few rows the screen shows are read by node."""

    SCAN_SHARE = 16
    ASK_COUNT_AT = 1000  # keys asked before the store's size is worth a COUNT
    # Queries by index after which a step is read whole: a deep walk (a chain of fine-tuning
    # runs) asks a few keys per level, thousands of times; past this many queries, their
    # cost is that of one scan, which then serves every level left.
    SCAN_AFTER = 300

    def __init__(self, conn: Any, *, rows: bool = True, twins: bool = False) -> None:
        self.conn = conn
        self.keep_rows = rows
        self.twins = twins and not rows  # (a walk both ways indexes a scan from both ends)
        self.asked = 0
        self.scan_at: int | None = None
        self.scanned: dict[str, list[tuple[Any, ...]]] = {}  # step -> its events
        self.by: dict[str, dict[str, list[str]]] = {}  # step -> key -> where it leads (all)
        self.led: dict[str, dict[str, list[str]]] = {}  # the same, for keys asked by index
        self.queries: dict[str, int] = {}  # step -> times asked by index

    def __call__(self, step: str, keys: set[str]) -> set[str]:
        """Where `step` leads from `keys`, for a step not read whole yet (`_Walk.go` looks
        in `by` itself)."""
        self.asked += len(keys)
        if self.scan_at is None and self.asked > self.ASK_COUNT_AT:
            self.scan_at = store.event_count(self.conn) // self.SCAN_SHARE
        queries = self.queries[step] = self.queries.get(step, 0) + 1
        if (self.scan_at is None or self.asked <= self.scan_at) and queries <= self.SCAN_AFTER:
            led = self.led.setdefault(step, {})
            for key in keys:
                led[key] = []
            for key, led_to in store.step_pairs(self.conn, step, keys):
                led[key].append(led_to)
            return {led_to for key in keys for led_to in led[key]}
        index = self._indexed(step)
        return set(itertools.chain.from_iterable(map(index.get, keys, _NO_LEADS)))

    def leads(self, step: str, key: str) -> list[str]:
        """Where `step` leads from a key the walk followed (an entry per event)."""
        return (self.by.get(step) or self.led.get(step, {})).get(key, [])

    def _indexed(self, step: str) -> dict[str, list[str]]:
        """key -> where `step` leads from it, over all the step's events (read once)."""
        index = self.by.get(step)
        if index is None:
            index = self.by[step] = {}
            if self.keep_rows:
                rows = self.scanned[step] = store.step_rows(self.conn, step)
                at = store.EDGE_COLUMNS.index(store.STEPS[step].key)
                to = store.EDGE_COLUMNS.index(store.STEPS[step].to)
                pairs: Iterable[tuple[Any, Any]] = map(operator.itemgetter(at, to), rows)
            else:
                pairs = store.step_pairs(self.conn, step)
                twin = _OTHER_STEP.get(step, ("",))[0]
                if self.twins and twin and twin not in self.by:
                    # the same events seen from their other end: one scan for both steps
                    pairs = list(pairs)
                    _index_into(self.by.setdefault(twin, {}), (p[::-1] for p in pairs if p[0]))
            _index_into(index, pairs)
        return index

    def rows(self, step: str, keys: set[str]) -> list[tuple[Any, ...]]:
        """The event rows (store.EDGE_COLUMNS) `step` follows from `keys`: from the step's
        scan when it has one (in its order, the table's), else by index."""
        rows = self.scanned.get(step)
        if rows is None:
            return store.step_rows(self.conn, step, keys)
        at = store.EDGE_COLUMNS.index(store.STEPS[step].key)
        return [row for row in rows if row[at] in keys]


def _index_into(index: dict[str, list[str]], pairs: Iterable[tuple[str, str]]) -> None:
    """key -> where it leads, an entry per (key, to) pair."""
    for key, led in pairs:
        found = index.get(key)
        if found is None:
            index[key] = [led]
        else:
            found.append(led)


# a walk's steps each way: (step, whether it goes from runs, else from contents)
_FORWARD = (("readers", False), ("outputs", True), ("products_read", True))
_BACKWARD = (("writers", False), ("product_reads", False), ("inputs", True))
_NO_LEADS: Iterator[tuple[()]] = itertools.repeat(())
# steps whose events are reads followed to the run that produced the content
_BY_PRODUCER = ("products_read", "product_reads")
# a step whose events a later step (in name order) of the other direction may follow again
_MET_AGAIN = {"inputs": "readers", "outputs": "writers"}


class _Walk:
    """Breadth first from a start, a level at a time, over (key, to) pairs only: remembers
    what it reached and, per step, the keys it followed, so that `rows` can read the events
    it went through (for a graph to print) in one query per step."""

    def __init__(self, conn: Any, *, rows: bool = True, twins: bool = False) -> None:
        self.conn = conn
        self.events = _Events(conn, rows=rows, twins=twins)
        self.followed: dict[str, set[str]] = {}  # step -> keys it was followed from
        self.runs: set[str] = set()
        self.digests: set[str] = set()

    def go(self, start: Start, forward: bool, depth: int | None) -> None:
        runs, digests = set(start.run_ids), set(start.digests)
        seen_runs, seen_digests = set(runs), set(digests)
        steps = _FORWARD if forward else _BACKWARD
        scanned, events = self.events.by, self.events
        level = 0
        while (runs or digests) and (depth is None or level < depth):
            next_runs: set[str] = set()
            next_digests: set[str] = set()
            for step, from_runs in steps:
                keys = runs if from_runs else digests
                if not keys:
                    continue
                self.followed.setdefault(step, set()).update(keys)
                index = scanned.get(step)  # (read whole: this level goes on in memory)
                led = (
                    events(step, keys)
                    if index is None
                    else itertools.chain.from_iterable(map(index.get, keys, _NO_LEADS))
                )
                (next_digests if from_runs else next_runs).update(led)
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
        # a walk each way may follow an event twice (a read: from its run upstream, then from
        # its content downstream): listed once, where first met (steps go in name order)
        seen: dict[str, set[tuple[str, int]]] = {}  # a later step -> events listed before it
        for step, keys in sorted(self.followed.items()):
            rows = self.events.rows(step, keys)
            if step in _BY_PRODUCER:
                by_producer.extend(rows)
                continue
            if step in seen:
                listed = seen[step]
                rows = [row for row in rows if (row[_RUN], row[_SEQ]) not in listed]
            later = _MET_AGAIN.get(step)
            if later in self.followed:
                seen[later] = set(zip(map(_run_of, rows), map(_seq_of, rows), strict=True))
            followed.extend(rows)
        by_producer.sort(key=operator.itemgetter(_RUN, _SEQ))  # the same edge on every backend
        return followed, by_producer


def _walked(
    conn: Any, start: Start, direction: Direction, depth: int | None, *, rows: bool = True
) -> _Walk:
    walk = _Walk(conn, rows=rows, twins=direction == "both")
    if direction in ("both", "upstream"):
        walk.go(start, False, depth)
    if direction in ("both", "downstream"):
        walk.go(start, True, depth)
    return walk


class _Screen(_Tree):
    """`Lineage.tree(limit)` without the graph: a tree as `flor lineage` prints it, a
    screenful at a time. The walk's (key, to) pairs count the lines past the limit; only the
    nodes the screen shows have their events read, a node at a time. An event is in the
    graph when a step the walk took followed its key: the same rule `_Walk.rows` reads by."""

    def __init__(
        self, conn: Any, start: Start, walk: _Walk, direction: Direction, depth: int | None
    ) -> None:
        self.conn = conn
        self.depth = depth
        self.roots = _roots(start)
        self.direction = direction
        self.walk = walk
        self.start = start
        self._produced_by_way: dict[bool, dict[str, list[str]]] = {}
        self._others: dict[str, dict[str, list[str]]] = {}  # step -> key not followed -> to
        self._rows: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        self._artifacts: dict[str, store.Artifact] = {}
        self._runs: dict[str, dict[str, Any]] = {}

    def _followed(self, step: str) -> set[str]:
        return self.walk.followed.get(step, _NO_KEYS)

    # -- one node's events, read when the screen shows it

    def _step_rows(self, step: str, key: str) -> list[tuple[Any, ...]]:
        """The events `step` would follow from `key` that are in the graph: those of a key
        the walk followed, else those the other step of the same events followed."""
        found = self._rows.get((step, key))
        if found is None:
            rows = store.step_rows(self.conn, step, [key])
            if key not in self._followed(step):
                other, at = _OTHER_STEP[step]
                followed = self._followed(other)
                rows = [row for row in rows if row[at] in followed]
            found = self._rows[step, key] = rows
        return found

    def _produced(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Loads of a run's checkpoint in the graph, as that run's output rows (once per
        producer and content, from its first load), as `Lineage._edge_rows` has them."""
        by_producer, by_content = self._followed("products_read"), self._followed("product_reads")
        made: dict[tuple[str, str], tuple[Any, ...]] = {}
        for _, seq, tstamp, ctx, role, path, digest, status, producer in sorted(
            rows, key=operator.itemgetter(_RUN, _SEQ)
        ):
            if producer in by_producer or (role == "input" and digest in by_content):
                made.setdefault(
                    (producer, digest),
                    (producer, seq, tstamp, ctx, "output", path, digest, status, None),
                )
        return list(made.values())

    def _edges(self, node: str, forward: bool) -> list[tuple[str, tuple[Any, ...]]]:
        kind, _, key = node.partition(":")
        if kind == "run" and forward:  # what it wrote
            rows = self._step_rows("outputs", key)
            rows = rows + self._produced(store.step_rows(self.conn, "products_read", [key]))
        elif kind == "run":  # what it read
            rows = self._step_rows("inputs", key)
        elif forward:  # the runs that read it
            rows = self._step_rows("readers", key)
        else:  # the runs that wrote it
            rows = self._step_rows("writers", key) + self._produced(self._loads(key))
        rows = sorted(rows, key=_edge_order)
        if kind == "artifact":
            rows.sort(key=_row_near_order)
            return [("run:" + row[_RUN], row) for row in rows]
        return [("artifact:" + row[_DIGEST], row) for row in rows]

    def _loads(self, digest: str) -> list[tuple[Any, ...]]:
        found = self._rows.get(("loads", digest))
        if found is None:
            found = self._rows["loads", digest] = store.producer_rows(self.conn, digest)
        return found

    def _away(self, forward: bool) -> Callable[[str], Sequence[tuple[str, tuple[Any, ...]]]]:
        edges: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}

        def away(node: str) -> list[tuple[str, tuple[Any, ...]]]:
            found = edges.get(node)
            if found is None:
                found = edges[node] = self._edges(node, forward)
            return found

        return away

    # -- labels

    def _run(self, run_id: str) -> dict[str, Any]:
        found = self._runs.get(run_id)
        if found is None:
            found = self._runs[run_id] = _run_attrs(self.conn, {run_id})[run_id]
        return found

    def _artifact(self, digest: str) -> dict[str, Any]:
        found = self._artifacts.get(digest)
        if found is None:
            found = self._artifacts[digest] = _contents(self.conn, {digest})[digest]
        return _artifact_columns(found)

    def _label(self, node: str) -> str:
        kind, _, key = node.partition(":")
        if kind == "run":
            return _run_label(self._run(key))
        rows = [*self._step_rows("readers", key), *self._step_rows("writers", key)]
        by_producer, by_content = self._followed("products_read"), self._followed("product_reads")
        rows += [
            row
            for row in self._loads(key)
            if row[_PRODUCER] in by_producer or (row[_ROLE] == "input" and key in by_content)
        ]
        seen = sorted({row[_PATH] for row in rows})
        paths = seen or self._paths_at_start.get(key, [])
        return _label(Node(node, kind, {**self._artifact(key), "paths": paths}))

    def _tail(self, node: str) -> str:
        attrs = self._artifact(node.partition(":")[2])
        return _label(Node(node, "artifact", attrs), "\0").partition("\0")[2]

    @functools.cached_property
    def _paths_at_start(self) -> dict[str, list[str]]:
        return _start_paths(self.conn, self.start)

    # -- counting what the screen leaves out

    def _size(self, roots: list[str], forward: bool) -> int:
        """`_tree_size` over the walk's (key, to) pairs, breadth first, in C loops: every
        node reached from `roots` counts its edges away from it once."""
        content_step, run_step = ("readers", "outputs") if forward else ("writers", "inputs")
        produced = self._produced_by_way.get(forward)
        if produced is None:
            produced = self._produced_by_way[forward] = self._produced_pairs(forward)
        if self.depth is None and roots == self.roots:
            # the walk this way went from these roots to its end: the nodes it followed are
            # the ones the tree reaches, and each step it took from one holds all of that
            # node's edges this way (the other walk's pairs add none: see `_led`)
            reached = self._followed(run_step if forward else content_step)  # producers' end
            return sum(
                sum(map(len, map(self._index(step).get, self._followed(step), _NONE)))
                for step in (content_step, run_step)
            ) + sum(map(len, map(produced.get, reached, _NONE)))
        runs = {root[4:] for root in roots if root.startswith("run:")}
        contents = {root[9:] for root in roots if root.startswith("artifact:")}
        seen_runs, seen_contents = set(runs), set(contents)
        size = 0
        while runs or contents:
            to_runs = self._led(content_step, contents)
            to_contents = self._led(run_step, runs)
            if produced:
                (to_contents if forward else to_runs).extend(
                    map(produced.get, runs if forward else contents, itertools.repeat(_NO_NODES))
                )
            size += sum(map(len, to_runs)) + sum(map(len, to_contents))
            runs = set(itertools.chain.from_iterable(to_runs)) - seen_runs
            contents = set(itertools.chain.from_iterable(to_contents)) - seen_contents
            seen_runs |= runs
            seen_contents |= contents
        return size

    def _index(self, step: str) -> dict[str, list[str]]:
        events = self.walk.events
        return events.by.get(step) or events.led.get(step, {})

    def _led(self, step: str, keys: set[str]) -> list[list[str]]:
        """Where `step` leads in the graph from each of `keys`: the walk's pairs from a key
        it followed; from one it did not (a walk's last level, or a node the other walk
        reached), the step's events whose other end the other step followed (read by key,
        once)."""
        followed = self._followed(step)
        index = self._index(step)
        if keys <= followed:  # (nearly always)
            return list(map(index.get, keys, itertools.repeat(_NO_NODES)))
        here, elsewhere = keys & followed, keys - followed
        others = self._others.setdefault(step, {})
        missing = elsewhere - others.keys()
        if missing:
            other = self._followed(_OTHER_STEP[step][0])
            for key in missing:
                others[key] = []
            for key, led in store.step_pairs(self.conn, step, missing):
                if led in other:  # (the other step is keyed by where this one leads)
                    others[key].append(led)
        found = list(map(index.get, here, itertools.repeat(_NO_NODES)))
        found.extend(map(others.__getitem__, elsewhere))
        return found

    def _produced_pairs(self, forward: bool) -> dict[str, list[str]]:
        """A run's checkpoints other runs loaded (forward: producer -> contents; else
        content -> producers), once per producer and content."""
        pairs: set[tuple[str, str]] = set()
        for step, from_producer in (("products_read", True), ("product_reads", False)):
            followed = self._followed(step)
            for key, led in self._index(step).items():  # (loads are few: no index by key)
                if key in followed:
                    pairs.update((key, to) if from_producer else (to, key) for to in led)
        found: dict[str, list[str]] = {}
        for producer, digest in pairs:
            if forward:
                found.setdefault(producer, []).append(digest)
            else:
                found.setdefault(digest, []).append(producer)
        return found


# a step, and the step over the same events from their other end: (its name, the position
# in a row of the key it follows)
_OTHER_STEP = {
    "readers": ("inputs", _RUN),
    "inputs": ("readers", _DIGEST),
    "outputs": ("writers", _DIGEST),
    "writers": ("outputs", _RUN),
}
_NO_KEYS: set[str] = set()
_NO_NODES: list[str] = []
_NONE = itertools.repeat(_NO_NODES)


def _contents(conn: Any, digests: Collection[str]) -> dict[str, store.Artifact]:
    """The `artifacts` row of each content reached; a content whose row is gone (removed by
    hand) is still a node, of type `unknown`, so the runs it links stay linked."""
    found = store.artifacts(conn, digests)
    for digest in set(digests) - found.keys():
        found[digest] = store.Artifact(digest, "unknown", None, None, None)
    return found


def _artifact_columns(art: store.Artifact) -> dict[str, Any]:
    return {
        "digest": art.digest,
        "type": art.kind,  # file | dir | checkpoint
        "bytes": art.bytes,
        "files": art.files,
        "blob": art.blob,
    }


def _row_near_order(row: tuple[Any, ...]) -> tuple[str, str, str]:
    return row[_TSTAMP], row[_PATH], row[_RUN]


def _roots(start: Start) -> list[str]:
    return [f"run:{r}" for r in start.run_ids] + [f"artifact:{d}" for d in start.digests]


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
    _check_depth(depth)
    with contextlib.closing(_open(home)) as conn, _building():
        start = resolve(conn, target, _root())
        walk = _walked(conn, start, direction, depth)
        return Lineage(
            _roots(start),
            direction,
            _run_attrs(conn, walk.runs),
            _contents(conn, walk.digests),
            walk.rows(),
            _start_paths(conn, start),
        )


# Past this many lines a tree is printed from the whole graph: reading each shown node's
# events by key costs more than reading every event once.
SCREEN_LINES = 10_000


def write(
    target: str,
    out: TextIO,
    *,
    direction: Direction = "both",
    depth: int | None = None,
    fmt: Literal["table", "json", "dot"] = "table",
    limit: int | None = None,
    home: Path | None = None,
) -> None:
    """`flor lineage`: the graph around TARGET written to `out` as it is made, as a tree
    (at most `limit` lines, then how many more), JSON or DOT. A tree with a limit (up to
    SCREEN_LINES) reads only the events of the nodes it shows (and the walk's pairs to count
    the rest). The collector
    stays paused until the graph is freed, so it never walks the graph's rows."""
    if direction not in ("both", "upstream", "downstream"):
        raise UsageError(f"direction {direction!r}: use both, upstream or downstream")
    with _building():
        if fmt != "table" or not limit or limit > SCREEN_LINES:
            _write(lineage(target, direction=direction, depth=depth, home=home), out, fmt, limit)
            return
        _check_depth(depth)
        with contextlib.closing(_open(home)) as conn:
            start = resolve(conn, target, _root())
            walk = _walked(conn, start, direction, depth, rows=False)
            for chunk in _Screen(conn, start, walk, direction, depth).tree_chunks(limit):
                out.write(chunk)


def _check_depth(depth: int | None) -> None:
    if depth is not None and depth < 0:
        raise UsageError(f"depth {depth} is negative: give 0 or more edges")


def _write(graph: Lineage, out: TextIO, fmt: str, limit: int | None) -> None:
    chunks: Iterator[str]
    if fmt == "json":
        chunks = itertools.chain(graph.json_chunks(), "\n")
    elif fmt == "dot":
        chunks = graph.dot_chunks()
    else:
        chunks = graph.tree_chunks(limit)
    for chunk in chunks:
        out.write(chunk)


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
        runs = _run_attrs(conn, _walked(conn, start, "downstream", None, rows=False).runs)
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

    conn = _open(home)
    try:
        if "@" not in target or _recorded_path(conn, target, _root()):
            if not _recorded_path(conn, target, _root()) and store.run_ids_starting(conn, target):
                raise TargetError(f"{target} is a run, not a file: name a PATH or PATH@RUN")
            target = f"{target}@latest"
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
    from flor.runtime import digest as digests

    dest = Path(output) if output is not None else Path(digests.unstored(recorded))
    if not dest.is_absolute() and output is None and root is not None:
        dest = root / dest
    blobs = BlobStore(store.blob_home(home or home_dir()))
    if dest.exists() or dest.is_symlink():
        with contextlib.suppress(digests.Unreadable):  # a device, a pipe: other content
            if digests.content(str(dest), None).digest == digest:
                return dest
        raise UsageError(
            f"{dest} exists with other content: pass --output DEST, or move it away first"
        )
    temp: Path | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if art.kind == "dir":
            temp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
            _restore_folder(json.loads(blobs.get(art.blob)), blobs, temp)
            _check_copy(digests.content(str(temp), None).digest, digest, target)
            temp.chmod(0o777 & ~_umask())  # as a new folder of the user's, not mkdtemp's 0700
        else:
            data = blobs.get(art.blob)
            _check_copy(digests.hash_bytes(data), digest, target)
            fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
            temp = Path(name)
            os.fchmod(fd, 0o666 & ~_umask())  # as a new file of the user's, not mkstemp's 0600
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        temp.replace(dest)
    except OSError as exc:
        raise FlorError(
            f"cannot write {dest}: {exc.strerror or exc}: choose a writable --output DEST"
        ) from exc
    finally:
        if temp is not None and temp.is_dir():  # not moved into place
            shutil.rmtree(temp, ignore_errors=True)
        elif temp is not None:
            temp.unlink(missing_ok=True)
    return dest


def _restore_folder(manifest: dict[str, Any], blobs: Any, temp: Path) -> None:
    """A kept folder's entries, written under `temp`."""
    for rel in manifest.get("dirs", ()):  # absent from folders kept by older versions
        (temp / rel).mkdir(parents=True, exist_ok=True)
    for rel, sha in manifest["files"]:
        where = temp / rel
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_bytes(blobs.get(sha))
    for rel, link in manifest.get("links", ()):
        where = temp / rel
        where.parent.mkdir(parents=True, exist_ok=True)
        where.symlink_to(link)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _check_copy(found: str, digest: str, target: str) -> None:
    if found != digest:
        raise FlorError(
            f"the kept copy of {target} does not hash to @{digest[:12]}, so nothing was "
            "written: the blob store was damaged, or the folder was kept by a flor that did "
            "not keep symbolic links and empty folders yet"
        )
