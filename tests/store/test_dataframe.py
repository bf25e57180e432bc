"""The dataframe: exact values through the store, and the pivot against a plain reference."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pandas as pd
import pytest
from store import pgfixtures

import flor
from flor.store.columns import CODED_NAMES
from flor.store.pivot import LoopRows, ValueGroup, pivot

backend, pg_server, pg_url = pgfixtures.backend, pgfixtures.pg_server, pgfixtures.pg_url

VALUES = """
import random
import flor
rng = random.Random(7)
for i in flor.loop("i", range(3000)):
    flor.log("x", rng.random() * 10.0 ** rng.randint(-310, 308))
    flor.log("n", rng.randint(-2**62, 2**62))
    flor.log("mixed", i if i % 2 else i / 3)
    flor.log("twice", i)
    flor.log("twice", i + 0.5)  # the later value wins, whatever its type
    if i % 1000 == 0:
        flor.log("label", f"at {i}")
flor.log("special", [float("nan"), float("inf"), -0.0])
flor.log("big", 2**70)
flor.log("text", "a\\x1fb,c")
flor.log("nothing", None)
"""


def _expected() -> dict[str, list[Any]]:
    rng = random.Random(7)
    x, n = [], []
    for _ in range(3000):
        x.append(rng.random() * 10.0 ** rng.randint(-310, 308))
        n.append(rng.randint(-(2**62), 2**62))
    return {"x": x, "n": n, "mixed": [i if i % 2 else i / 3 for i in range(3000)]}


def test_values_come_back_exactly_as_logged(script) -> None:
    script("values.py", VALUES).run()
    df = flor.dataframe("x", "n", "mixed", "label", "twice")
    expected = _expected()
    assert df["x"].tolist() == expected["x"]  # bit for bit: no rounding on the way
    assert df["n"].dtype == np.int64 and df["n"].tolist() == expected["n"]
    assert df["mixed"].dtype == np.float64 and df["mixed"].tolist() == expected["mixed"]
    assert df["twice"].tolist() == [i + 0.5 for i in range(3000)]
    labels = df["label"].dropna()
    assert labels.tolist() == ["at 0", "at 1000", "at 2000"] and labels.index.tolist() == [
        0,
        1000,
        2000,
    ]
    top = flor.dataframe("special", "big", "text", "nothing").iloc[0]
    assert math.isnan(top["special"][0]) and top["special"][1:] == [math.inf, -0.0]
    assert top["big"] == 2**70 and top["text"] == "a\x1fb,c" and top["nothing"] is None


LOOPS = """
import sys
import flor
prefix, count = sys.argv[1], int(sys.argv[2])
for k in range(count):
    for i in flor.loop(f"{prefix}{k}", range(2)):
        flor.log("v", k * 10 + i)
"""


def test_loop_names_new_to_the_reader_and_runs_with_many_of_them(backend: str, script) -> None:  # type: ignore[no-untyped-def]
    """Loop names are read as codes of the names a reader has seen: runs bringing new
    names, and a run with more names than are coded (read row by row), keep theirs."""
    loops = script("loops.py", LOOPS)
    runs = [("a", 3), ("b", 2), ("c", 3), ("d", CODED_NAMES + 5)]
    for prefix, count in runs:
        loops.run(prefix, str(count))
    df = flor.dataframe("v")
    loop_columns = [c for c in df.columns if c[0] in "abcd" and c[1:].isdigit()]
    assert len(loop_columns) == sum(count for _, count in runs)
    assert len(df) == 2 * len(loop_columns)
    for _, row in df.iterrows():
        (column,) = [c for c in loop_columns if not pd.isna(row[c])]  # its own loop only
        assert row["v"] == int(column[1:]) * 10 + row[column]


# -- the pivot against a reference written for clarity, on random stores -------------------


def _random_store(seed: int) -> tuple[list[ValueGroup], pd.DataFrame, LoopRows, dict]:
    """Runs with epoch/step loops (sometimes a second step loop per epoch) and a doc loop;
    values at every depth, some logged twice, some replayed, over one or two tstamps."""
    rng = random.Random(seed)
    runs = pd.DataFrame({"run_id": ["r2", "r1", "r3"], "projid": "p", "filename": "f.py"})
    loops: dict[str, list] = {k: [] for k in ("run", "ctx", "parent", "name", "it", "value")}
    chain: dict[tuple[int, int], tuple[tuple[str, int, Any], ...]] = {}
    logs: list[tuple[int, str, int, str, float, int, str]] = []  # run, tstamp, ctx, ...

    def context(run: int, parent: int, name: str, iteration: int, value: Any) -> int:
        ctx = len([r for r in loops["run"] if r == run]) + 1
        for key, item in zip(loops, (run, ctx, parent, name, iteration, value), strict=True):
            loops[key].append(item)
        above = chain[run, parent] if parent > 0 else ()
        chain[run, ctx] = (*above, (name, iteration, value))
        return ctx

    for run in range(len(runs)):
        seq = 0
        tstamps = ["t1"] if rng.random() < 0.5 else ["t1", "t2"]

        def log(ctx: int, name: str, writer: str = "", tstamp: str = "t1", run: int = run) -> None:
            nonlocal seq
            seq += 1
            logs.append((run, tstamp, ctx, name, rng.random(), seq, writer))

        for tstamp in tstamps:
            log(-1, "lr", tstamp=tstamp)
            if rng.random() < 0.5:
                log(-1, "acc", tstamp=tstamp)  # one name at two depths: the nearest fills
            for e in range(rng.randint(0, 3)):
                epoch = context(run, -1, "epoch", e, None)
                for _ in range(rng.choice([1, 1, 2])):
                    for s in range(rng.randint(0, 3)):
                        step = context(run, epoch, "step", s, None)
                        if rng.random() < 0.8:
                            log(step, "loss", tstamp=tstamp)
                        if rng.random() < 0.3:
                            log(step, "loss", tstamp=tstamp)  # logged twice: later wins
                        if rng.random() < 0.4:
                            log(step, "gn", writer="replay-1", tstamp=tstamp)
                if rng.random() < 0.7:
                    log(epoch, "acc", tstamp=tstamp)
                if rng.random() < 0.3:
                    log(epoch, "acc", writer="replay-1", tstamp=tstamp)  # recorded wins
            for d in range(rng.randint(0, 2)):
                doc = context(run, -1, "doc", d, f'"doc{d}"')
                log(doc, "dq", tstamp=tstamp)
    groups = []
    keyed: dict[tuple, list] = {}
    for run, tstamp, ctx, name, value, seq, writer in logs:
        keyed.setdefault((run, name, writer, tstamp), []).append((ctx, value, seq))
    for (run, name, writer, tstamp), rows in keyed.items():
        groups.append(
            ValueGroup(
                run,
                name,
                writer,
                tstamp,
                "float",
                rows[0][2],
                np.array([r[0] for r in rows], dtype=np.int64),
                np.array([r[1] for r in rows]),
            )
        )
    order = sorted(range(len(loops["run"])), key=lambda i: (loops["run"][i], loops["ctx"][i]))
    loop_rows = LoopRows(
        np.array([loops["run"][i] for i in order], dtype=np.int64),
        np.array([loops["ctx"][i] for i in order], dtype=np.int64),
        np.array([loops["parent"][i] for i in order], dtype=np.int64),
        [loops["name"][i] for i in order],
        np.array([loops["it"][i] for i in order], dtype=np.int64),
        np.array([loops["value"][i] for i in order], dtype=object),
    )
    return groups, runs, loop_rows, {"logs": logs, "chain": chain}


def _reference(runs: pd.DataFrame, world: dict, names: list[str]) -> list[dict]:
    """Winning value per (run, tstamp, context, name); rows at the deepest contexts holding
    values; values of enclosing contexts (and of the run) fill the rows below them."""
    chain = world["chain"]
    best: dict[tuple, tuple] = {}
    for run, tstamp, ctx, name, value, seq, writer in world["logs"]:
        if name not in names:
            continue
        key = (run, tstamp, ctx, name)
        rank = (writer == "", seq)
        if key not in best or rank > best[key][0]:
            best[key] = (rank, value)
    holders = {(run, tstamp, ctx) for run, tstamp, ctx, _ in best}

    def ancestors(run: int, ctx: int) -> list[int]:
        """Contexts enclosing ctx, nearest first, then -1 (the run itself)."""
        if ctx < 0:
            return []
        found = []
        depth = len(chain[run, ctx])
        for (r, c), path in chain.items():
            if r == run and len(path) < depth and chain[run, ctx][: len(path)] == path:
                found.append((len(path), c))
        return [c for _, c in sorted(found, reverse=True)] + [-1]

    covered = {
        (run, tstamp, above) for run, tstamp, ctx in holders for above in ancestors(run, ctx)
    }
    rows = []
    for run, tstamp, ctx in holders - covered:
        row: dict[str, Any] = {"runid": runs["run_id"][run], "tstamp": tstamp}
        row.update({loop: iteration for loop, iteration, _ in (chain[run, ctx] if ctx > 0 else ())})
        for name in names:
            for source in [ctx, *ancestors(run, ctx)]:
                if (run, tstamp, source, name) in best:
                    row[name] = best[run, tstamp, source, name][1]
                    break
        rows.append(row)
    return rows


@pytest.mark.parametrize("seed", range(12))
def test_pivot_matches_the_reference(seed: int) -> None:
    groups, runs, loops, world = _random_store(seed)
    names = ["loss", "acc", "lr", "dq", "gn"]
    got = pivot(groups, runs, loops, names)
    expected = _reference(runs, world, names)
    loop_columns = [c for c in ("epoch", "step", "doc") if c in got.columns]
    assert len(got) == len(expected)
    as_rows = {
        tuple(None if pd.isna(v) else v for v in row)
        for row in got[["runid", "tstamp", *loop_columns, *names]].itertuples(index=False)
    }
    assert as_rows == {
        tuple(row.get(c) for c in ["runid", "tstamp", *loop_columns, *names]) for row in expected
    }
    assert got["tstamp"].is_monotonic_increasing
    if "doc" in loop_columns:
        docs = got.dropna(subset=["doc"])
        assert docs["doc_value"].tolist() == [f"doc{d}" for d in docs["doc"]]


def test_a_dataframe_turns_numpys_huge_page_advice_off_only_while_it_reads(
    script, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Huge-page faults cost more system time than the read itself (docs/store.md); the
    advice is numpy's process-wide switch, so a read must leave it as it found it."""
    from flor.store import reader

    body = "import flor\nfor i in flor.loop('i', range(5)):\n    flor.log('x', i)\n"
    script("loops.py", body).run()
    switch = reader._hugepage_switch()
    assert switch is not None
    seen: list[bool] = []
    real = reader._dataframe

    def spy(*args: Any) -> pd.DataFrame:
        seen.append(switch(False))  # the setting in force during the read (left off)
        return real(*args)

    monkeypatch.setattr(reader, "_dataframe", spy)
    for before in (True, False, True):
        switch(before)
        assert flor.dataframe("x")["x"].tolist() == [0, 1, 2, 3, 4]
        assert seen.pop() is False
        assert switch(True) is before  # restored as it was
