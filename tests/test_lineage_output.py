"""`flor lineage`'s text: the tree's line limit, and JSON, DOT and the tree written from the
walk's rows agreeing exactly with the graph they describe (awkward names included)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import blake3
import pandas as pd
import pytest
from click.testing import CliRunner
from store import pgfixtures

from flor import graph as graph_module
from flor.cli import main
from flor.graph import Edge, Lineage, lineage, write
from flor.store.artifacts import keep_blob, record
from flor.store.writer import StoreWriter
from flor.units import human_bytes

backend, pg_server, pg_url = pgfixtures.backend, pgfixtures.pg_server, pgfixtures.pg_url

FOOTER = (
    "more lines: narrow with --depth N or --upstream/--downstream, print them all with "
    "--limit 0, or use --format json"
)


def b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def write_store(runs: list[tuple[str, str, str | None]], artifacts: list[tuple[Any, ...]],
                events: list[tuple[Any, ...]]) -> None:  # fmt: skip
    """Rows recorded by hand: runs (run_id, filename, snapshot), artifacts, events."""
    writer = StoreWriter()

    def work(conn):  # type: ignore[no-untyped-def]
        conn.executemany(
            "INSERT INTO runs (run_id, projid, filename, tstamp, status, mode, started, snapshot)"
            " VALUES (?, 'p', ?, '2026-12-01 10:00:00', 'finished', 'record', ?, ?)",
            [(run, filename, i + 1, snapshot) for i, (run, filename, snapshot) in enumerate(runs)],
        )
        record(conn, writer.dialect, artifacts, events)

    writer.transaction(work)
    writer.close()


def chain(count: int) -> list[str]:
    """`count` fine-tuning runs, each reading the model the one before wrote; the models."""
    runs = [f"{i:012x}" for i in range(count)]
    models = [b3(str(i).encode()) for i in range(count + 1)]
    events = []
    for i, run in enumerate(runs):
        events.append((run, 1, "t", None, "input", "model.pt", models[i], "ok", None, i, None))
        events.append((run, 2, "t", None, "output", "model.pt", models[i + 1], "ok", None, i, None))
    write_store([(run, "tune.py", None) for run in runs], [(m, "file", 1, 1) for m in models],
                events)  # fmt: skip
    return models


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_a_long_tree_stops_at_its_limit_and_says_how_many_lines_are_left(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = chain(1500)
    first = f"model.pt@{models[0][:16]}"
    graph = lineage(first, direction="downstream")
    full = graph.tree().splitlines()
    assert len(full) == 1 + 2 * 1500 and FOOTER not in graph.tree()
    short = graph.tree(limit=10).splitlines()
    assert short == [*full[:10], f"… 2,991 {FOOTER}"]

    code, out = cli("lineage", first, "--downstream")  # the CLI's default: 1000 lines
    assert code == 0 and out.splitlines() == [*full[:1000], f"… 2,001 {FOOTER}"]
    code, out = cli("lineage", first, "--downstream", "--limit", "0")
    assert code == 0 and out.splitlines() == full
    code, out = cli("lineage", first, "--downstream", "--limit", "3001")
    assert code == 0 and out.splitlines() == full
    code, out = cli("lineage", first, "--downstream", "--limit", "3000")
    assert out.splitlines() == [*full[:3000], f"… 1 {FOOTER.replace('lines', 'line')}"]
    monkeypatch.setattr(graph_module, "SCREEN_LINES", 2999)  # past it: from the whole graph
    code, again = cli("lineage", first, "--downstream", "--limit", "3000")
    assert code == 0 and again == out

    # every version of the path: what came of each is printed once, not once per version
    every = lineage("model.pt", direction="downstream").tree().splitlines()
    assert len(every) == 1501 + 2 * 1500 and every[1:3001] == full[1:]
    assert sum(line.endswith(" (shown above)") for line in every) == 1500
    code, out = cli("lineage", "model.pt", "--downstream")
    assert code == 0 and out.splitlines() == [*every[:1000], f"… 3,501 {FOOTER}"]

    last = lineage(f"model.pt@{models[-1][:16]}", direction="downstream")  # read by no run
    assert last.tree(limit=1) == f"model.pt @{models[-1][:12]} · file 1 B\n"
    assert last.to_json() == json.dumps(last.to_dict(), default=str)
    assert last.to_dot() == reference_dot(last) and last.edges == []
    assert list(last.edges_frame().columns) == [*Edge._fields, "filename", "snapshot"]
    assert last.edges_frame().empty

    # both ways from the middle: the count goes on through the second section
    middle = lineage(f"model.pt@{models[750][:16]}")
    both = middle.tree().splitlines()
    assert len(both) == 2 + 2 * 750 + 2 + 2 * 750
    assert both[1502] == "downstream:"
    assert middle.tree(limit=5).splitlines() == [*both[:5], f"… 2,999 {FOOTER}"]
    assert middle.tree(limit=1600).splitlines() == [*both[:1600], f"… 1,404 {FOOTER}"]


def test_a_reader_that_stops_early_ends_the_command_quietly(repo: Path) -> None:
    models = chain(1500)  # about 1 MB of JSON: more than a pipe holds
    command = [sys.executable, "-m", "flor", "lineage", f"model.pt@{models[0][:16]}",
               "--format", "json"]  # fmt: skip
    with subprocess.Popen(command, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
        assert p.stdout is not None and p.stderr is not None
        assert p.stdout.read(10) == b'{"roots": '
        p.stdout.close()
        error = p.stderr.read().decode()
        assert p.wait(timeout=60) == 1
    assert error == ""


# a content at a path with a quote, a backslash, a non-ASCII letter and the label separator
ODD = 'data/we"ird\\naïve · x.csv'
RAW, OUT, OLD_MODEL, MODEL, CKPT = (b3(name.encode()) for name in ("raw", "out", "m1", "m2", "ck"))
PREP, TRAIN, GONE = "aaaa00000001", "bbbb00000002", "cccc00000003"


@pytest.fixture
def odd_store(repo: Path) -> None:
    events = [
        (PREP, 1, "2026-12-01 10:00:00", None, "input", ODD, RAW, "ok", None, 1.0, None),
        (PREP, 2, "2026-12-01 10:00:00", 3, "output", "out\nline.txt", OUT, "ok", None, 2.0, None),
        (PREP, 3, "2026-12-01 10:00:00", 1, "output", "model.pt", OLD_MODEL, "replaced", None,
         3.0, None),
        (PREP, 4, "2026-12-01 10:00:01", 2, "output", "model.pt", MODEL, "ok", None, 4.0, None),
        (PREP, 5, "2026-12-01 10:00:01", 2, "output", "big.bin", None, "changed", None, 4.0, None),
        (TRAIN, 1, "2026-12-01 11:00:00", None, "input", "out\nline.txt", OUT, "ok", None, 5.0,
         None),
        (TRAIN, 2, "2026-12-01 11:00:00", 7, "input", f"checkpoint:{PREP}/2", CKPT, "ok", PREP,
         6.0, None),
        (TRAIN, 3, "2026-12-01 11:00:00", None, "input", "model.pt", OLD_MODEL, "ok", None, 7.0,
         None),
        (GONE, 1, "2026-12-01 12:00:00", None, "input", "model.pt", MODEL, "ok", None, 8.0, None),
        (GONE, 2, "2026-12-01 12:00:00", None, "input", "копия/model.pt", MODEL, "ok", None, 8.0,
         None),
        # read at another path as TRAIN did, at the same code version: the tree orders by path
        (GONE, 3, "2026-12-01 11:00:00", None, "input", "a-copy/out.txt", OUT, "ok", None, 9.0,
         None),
    ]  # fmt: skip
    artifacts = [(RAW, "file", 0, 1), (OUT, "dir", 2048, 3), (OLD_MODEL, "file", 5 << 20, 1),
                 (MODEL, "file", 5 << 20, 1), (CKPT, "checkpoint", 1234, 1)]  # fmt: skip
    write_store([(PREP, "prep.py", "0123456789abcdef"), (TRAIN, "train.py", None)], artifacts,
                events)  # fmt: skip
    writer = StoreWriter()
    writer.transaction(lambda conn: keep_blob(conn, MODEL, "f" * 64))
    writer.close()


def reference_dot(graph: Lineage) -> str:
    """DOT made the plain way, from the graph's nodes and edges."""

    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'

    lines = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for node in graph.nodes.values():
        shape = "box" if node.kind == "run" else "note"
        bold = ", style=bold" if node.id in graph.roots else ""
        label = quoted(label_of(node.kind, node.attrs).replace(" · ", "\n"))
        lines.append(f"  {quoted(node.id)} [shape={shape}, label={label}{bold}];")
    for edge in graph.edges:
        style = ", style=dashed" if edge.status != "ok" else ""
        lines.append(f"  {quoted(edge.source)} -> {quoted(edge.target)} "
                     f"[label={quoted(edge.role)}{style}];")  # fmt: skip
    return "\n".join([*lines, "}"]) + "\n"


def label_of(kind: str, a: dict[str, Any], path: str | None = None) -> str:
    if kind == "run":
        code = (a.get("snapshot") or "")[:10] or "no snapshot"
        return f"run {a['run_id']} {a['filename']} · code {code} · {a['tstamp']} · {a['status']}"
    size = "" if a["bytes"] is None else f" {human_bytes(a['bytes'])}"
    kept = " · kept" if a.get("blob") else ""
    return f"{path or ', '.join(a['paths'][:3])} @{a['digest'][:12]} · {a['type']}{size}{kept}"


def reference_tree(graph: Lineage) -> str:
    """The tree made the plain way: recursive, from the graph's nodes and edges."""
    out: list[str] = []
    ways = {"upstream": [False], "downstream": [True], "both": [False, True]}[graph.direction]
    for forward in ways:
        near: dict[str, list[Any]] = {}
        for edge in graph.edges:
            near.setdefault(edge.source if forward else edge.target, []).append(edge)
        if len(ways) > 1:
            out.append("downstream:" if forward else "upstream:")
        seen: set[str] = set()  # a node is printed in full once per section
        for root in graph.roots:
            again = " (shown above)" if root in seen else ""
            out.append(label_of(graph.nodes[root].kind, graph.nodes[root].attrs) + again)
            if not again:
                seen.add(root)
                branch(graph, near, forward, root, "", seen, out)
    return "\n".join(out) + "\n"


VERBS = {("input", True): "read by", ("input", False): "read", ("output", True): "wrote",
         ("output", False): "written by"}  # fmt: skip


def branch(graph: Lineage, near: dict[str, list[Any]], forward: bool, node: str, indent: str,
           seen: set[str], out: list[str]) -> None:  # fmt: skip
    edges = sorted(near.get(node, []), key=lambda e: (e.tstamp, e.path, e.run_id))
    for i, edge in enumerate(edges):
        last = i == len(edges) - 1
        other = graph.nodes[edge.target if forward else edge.source]
        state = "" if edge.status == "ok" else f" ({edge.status})"
        path = edge.path if other.kind == "artifact" else None
        again = " (shown above)" if other.id in seen else ""
        out.append(f"{indent}{'└── ' if last else '├── '}{VERBS[edge.role, forward]}{state} "
                   f"{label_of(other.kind, other.attrs, path)}{again}")  # fmt: skip
        if not again:
            seen.add(other.id)
            branch(graph, near, forward, other.id, indent + ("    " if last else "│   "), seen, out)


@pytest.mark.parametrize(
    ("target", "direction"),
    [
        (PREP, "both"),
        (TRAIN, "upstream"),
        (f"{ODD}@latest", "downstream"),
        ("model.pt", "both"),
        (f"model.pt@{PREP}", "downstream"),
    ],
)
def test_json_dot_and_the_tree_say_exactly_what_the_graph_holds(
    odd_store: None, target: str, direction: str
) -> None:
    graph = lineage(target, direction=direction)  # type: ignore[arg-type]
    assert graph.edges and graph.nodes
    assert graph.to_json() == json.dumps(graph.to_dict(), default=str)
    assert graph.to_dot() == reference_dot(graph)
    assert graph.tree() == reference_tree(graph)
    rows = [{**edge._asdict(), "filename": graph.nodes[f"run:{edge.run_id}"].attrs["filename"],
             "snapshot": graph.nodes[f"run:{edge.run_id}"].attrs["snapshot"]}
            for edge in graph.edges]  # fmt: skip
    pd.testing.assert_frame_equal(graph.edges_frame(), pd.DataFrame(rows))


def test_the_odd_graph_has_what_it_should(odd_store: None) -> None:
    """What the comparisons above went through: a deleted run, a kept and a replaced
    content, a loaded checkpoint, a path seen twice, escapes in every format."""
    graph = lineage(PREP, direction="downstream")
    assert graph.runs() == [GONE, PREP, TRAIN]  # a deleted run has no start time
    assert graph.run(GONE)["status"] == "deleted"
    assert graph.nodes[f"artifact:{MODEL}"].attrs["paths"] == ["model.pt", "копия/model.pt"]
    assert [(e.role, e.run_id, e.status) for e in graph.edges if e.digest == CKPT] == [
        ("output", PREP, "ok"),
        ("input", TRAIN, "ok"),
    ]
    assert '"path": "out\\nline.txt"' in graph.to_json()
    assert "\\u043a\\u043e\\u043f" in graph.to_json()  # non-ASCII as JSON escapes
    dot = graph.to_dot()
    assert f'"run:{PREP}" -> "artifact:{OLD_MODEL}" [label="output", style=dashed];' in dot
    assert 'label="model.pt, копия/model.pt @' in dot and '\\nkept"' in dot
    upstream = lineage(f"{ODD}@latest", direction="downstream").to_dot()
    assert 'label="data/we\\"ird\\\\naïve\\nx.csv @' in upstream


def screen(target: str, direction: str, depth: int | None, limit: int) -> str:
    """The tree as `flor lineage` prints it with a line limit (read a node at a time)."""
    out = io.StringIO()
    write(target, out, direction=direction, depth=depth, limit=limit)  # type: ignore[arg-type]
    return out.getvalue()


@pytest.mark.parametrize("direction", ["both", "upstream", "downstream"])
@pytest.mark.parametrize("depth", [None, 0, 1, 2])
def test_a_screenful_is_the_first_lines_of_the_whole_tree(
    odd_store: None, direction: str, depth: int | None
) -> None:
    for target in (PREP, TRAIN, f"{ODD}@latest", "model.pt", f"model.pt@{PREP}"):
        whole = lineage(target, direction=direction, depth=depth)  # type: ignore[arg-type]
        for limit in (1, 2, 4, 7, 1000):
            assert screen(target, direction, depth, limit) == whole.tree(limit), (target, limit)


A, B, C, D = (b3(name.encode()) for name in "abcd")


@pytest.fixture
def tangled_store(repo: Path, backend: str) -> None:
    """A run that writes back what it read (a cycle), a content whose artifact row was
    deleted by hand (still a node), and checkpoints loaded across runs."""
    events = [
        ("r1", 1, "t1", None, "input", "a.bin", A, "ok", None, 1.0, None),
        ("r1", 2, "t1", None, "output", "a.bin", A, "ok", None, 2.0, None),  # the same bytes
        ("r1", 3, "t1", None, "output", "b.bin", B, "ok", None, 3.0, None),
        ("r2", 1, "t2", None, "input", "b.bin", B, "ok", None, 4.0, None),
        ("r2", 2, "t2", None, "input", "c.bin", C, "ok", None, 5.0, None),  # C: no row
        ("r2", 3, "t2", 4, "input", "checkpoint:r1/4", D, "ok", "r1", 6.0, None),
        ("r2", 4, "t2", 5, "input", "checkpoint:r1/4", D, "ok", "r1", 6.5, None),
        ("r2", 5, "t2", None, "output", "a.bin", A, "ok", None, 7.0, None),  # back to a.bin
        ("r3", 1, "t3", None, "input", "a.bin", A, "ok", None, 8.0, None),
        ("r3", 2, "t3", None, "output", "c.bin", C, "ok", None, 9.0, None),
    ]  # fmt: skip
    artifacts = [(A, "file", 1, 1), (B, "file", 2, 1), (C, "file", 3, 1),
                 (D, "checkpoint", 4, 1)]  # fmt: skip
    write_store([("r1", "a.py", None), ("r2", "b.py", None), ("r3", "c.py", None)], artifacts,
                events)  # fmt: skip
    writer = StoreWriter()
    writer.transaction(lambda conn: conn.execute("DELETE FROM artifacts WHERE digest = ?", (C,)))
    writer.close()


@pytest.mark.parametrize("reads", ["by index", "each step whole", "whole after a query"])
@pytest.mark.parametrize("direction", ["both", "upstream", "downstream"])
@pytest.mark.parametrize("depth", [None, 1, 2, 3])
def test_a_screenful_of_a_tangled_graph_is_the_first_lines_of_its_tree(
    tangled_store: None, direction: str, depth: int | None, reads: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    if reads == "each step whole":  # as a walk over most of a large store does
        monkeypatch.setattr(graph_module._Events, "ASK_COUNT_AT", -1)
        monkeypatch.setattr(graph_module._Events, "SCAN_SHARE", 10**9)
    elif reads == "whole after a query":  # as a deep walk does
        monkeypatch.setattr(graph_module._Events, "SCAN_AFTER", 1)
    for target in ("r1", "r2", "r3", "a.bin", "b.bin", f"a.bin@{A[:10]}", "c.bin"):
        whole = lineage(target, direction=direction, depth=depth)  # type: ignore[arg-type]
        for limit in (1, 3, 6, 1000):
            assert screen(target, direction, depth, limit) == whole.tree(limit), (target, limit)
    whole = lineage("r1")
    assert reference_tree(whole) == whole.tree() and len(whole.edges) == 11  # 10 + a load
    assert whole.nodes[f"artifact:{C}"].attrs["type"] == "unknown"  # its row is gone
    assert whole.to_json() == json.dumps(whole.to_dict(), default=str)
    assert whole.to_dot() == reference_dot(whole)


def test_a_runs_versions_of_one_path_print_in_the_order_it_wrote_them(repo: Path) -> None:
    epochs = [b3(f"epoch {i}".encode()) for i in range(5)]
    assert sorted(epochs) != epochs  # digest order is not write order
    events = [("r1", i + 1, "t", i, "output", "model.pt", digest, "replaced" if i < 4 else "ok",
               None, float(i), None) for i, digest in enumerate(epochs)]  # fmt: skip
    write_store([("r1", "train.py", None)], [(d, "file", 1, 1) for d in epochs], events)
    lines = lineage("r1", direction="downstream").tree().splitlines()
    assert [line.split("@")[1][:12] for line in lines[1:]] == [d[:12] for d in epochs]
    assert screen("r1", "downstream", None, 1000).splitlines() == lines
