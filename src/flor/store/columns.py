"""Column-wise reads of a run's logs and loops, for the dataframe.

A run's values of one name, writer, tstamp and type come back as one row whose columns
are joined text (`group_concat`, `string_agg`) parsed in bulk: a million values cost a few
dozen fetched rows instead of a million tuples. Both tables are clustered by run (schema 2),
so each read is one range of the table, in key order.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flor.errors import StoreError
from flor.store.backend import Connection, Dialect
from flor.store.pivot import LoopRows, ValueGroup
from flor.store.values import decode

SEPARATOR = "\x1f"  # never inside stored JSON text, which escapes control characters


def _ints(text: str | None, count: int) -> np.ndarray:
    values = np.fromstring(text or "", dtype=np.int64, sep=",") if count else np.zeros(0, np.int64)
    if len(values) != count:
        raise StoreError(f"store returned {len(values)} of {count} integers: run `flor gc`")
    return values


# pandas before 3 parses floats exactly only when asked to (its default became exact in 3)
_EXACT: dict[str, Any] = (
    {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
)


def parse(joined: str, count: int, kind: str) -> np.ndarray | None:
    """Joined stored text as values, or None if it does not split into `count` values.

    Numbers go through pandas' C parser (exact, like `float()`, and ~5x faster than numpy
    on strings); integers beyond 64 bits stay Python ints; other types are decoded."""
    if kind in ("int", "float") and count:
        try:
            column: np.ndarray = pd.read_csv(
                io.StringIO(joined.replace(SEPARATOR, "\n")),
                header=None,
                names=["v"],
                dtype={"v": np.int64 if kind == "int" else np.float64},
                engine="c",
                **_EXACT,
            )["v"].to_numpy()
            if len(column) == count:
                return column
        except (ValueError, OverflowError):
            pass
    texts = joined.split(SEPARATOR) if count else []
    return _decoded(texts, kind) if len(texts) == count else None


def _decoded(texts: list[str], kind: str) -> np.ndarray:
    out = np.empty(len(texts), dtype=object)
    out[:] = [decode(t, kind) for t in texts]
    return out


@dataclass
class RunLoops:
    """One run's loop contexts in ctx order, each context's loop name a code into `names`,
    and the iteration values of loops over other things than 0, 1, 2, ..."""

    ctx: np.ndarray
    parent: np.ndarray  # -1 for a top-level loop
    iteration: np.ndarray
    codes: np.ndarray
    names: list[str]
    values: list[tuple[int, str]]


CODED_NAMES = 200  # loop names a reader codes in SQL; a run with more is read row by row
_LOOP_NAMES = "SELECT DISTINCT name FROM loops WHERE run_id = ?"
_LOOPS_IN_ORDER = (
    "SELECT ctx_id, COALESCE(parent_ctx_id, -1), iteration, name FROM loops "
    "WHERE run_id = ? ORDER BY ctx_id"
)


# one group's column, row by row, for the rare groups the joined text cannot serve
_GROUP_SQL = (
    "SELECT {} FROM logs WHERE run_id = ? AND name = ? AND writer = ? AND tstamp = ? "
    "AND type = ? ORDER BY seq"
)


class ColumnReader:
    """The statements for one connection's dialect, and the reads of one run."""

    def __init__(self, conn: Connection, names: Sequence[str], dialect: Dialect) -> None:
        self.conn = conn
        # SQLite joins a group's rows in key order (`seq` ends the logs key, `ctx_id` the
        # loops key); PostgreSQL is told the same order for every aggregate of the group.
        concat = dialect.concat
        if names:
            where, self.params = f"name IN ({','.join('?' * len(names))})", list(names)
        else:  # no names: the run's top-level values
            where, self.params = "ctx_id IS NULL", []
        self.value_sql = (
            "SELECT name, writer, tstamp, type, COUNT(*), MIN(seq), {}, {} FROM logs "
            f"WHERE run_id = ? AND {where} GROUP BY name, writer, tstamp, type"
        ).format(
            concat("COALESCE(ctx_id, -1)", order="seq"),
            concat("COALESCE(value, '')", SEPARATOR, order="seq"),
        )
        self.concat = concat
        self.loop_names: list[str] = []  # learned run by run; codes index them
        # COUNT(value): the iteration values are read apart only for a run that has some
        self.loop_sql = (
            "SELECT COUNT(*), COUNT(value), {}, {}, {}, {{}} FROM loops WHERE run_id = ?"
        )
        self.loop_sql = self.loop_sql.format(
            concat("ctx_id", order="ctx_id"),
            concat("COALESCE(parent_ctx_id, -1)", order="ctx_id"),
            concat("iteration", order="ctx_id"),
        )

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return list(self.conn.execute(sql, list(params)).fetchall())

    def run(self, run_id: str, run: int) -> tuple[list[ValueGroup], RunLoops | None]:
        groups = self.values(run_id, run)
        if not any((g.ctx >= 0).any() for g in groups):
            return groups, None
        return groups, self.loops(run_id)

    def values(self, run_id: str, run: int) -> list[ValueGroup]:
        """The run's values of the reader's names, a group per (name, writer, tstamp, type)."""
        groups = []
        for name, writer, tstamp, kind, count, first, ctx, joined in self._rows(
            self.value_sql, [run_id, *self.params]
        ):
            values = parse(joined, count, kind)
            if values is None:  # a string value holding the separator: row by row
                key = [run_id, name, writer, tstamp, kind]
                texts = [v or "" for (v,) in self._rows(_GROUP_SQL.format("value"), key)]
                values = _decoded(texts, kind)
            groups.append(
                ValueGroup(run, name, writer, tstamp, kind, first, _ints(ctx, count), values)
            )
        # Values of one name, writer and tstamp in two types interleave: order them by seq.
        shared = Counter((g.name, g.writer, g.tstamp) for g in groups)
        for group in groups:
            if shared[group.name, group.writer, group.tstamp] > 1:
                key = [run_id, group.name, group.writer, group.tstamp, group.kind]
                group.seq = np.asarray([s for (s,) in self._rows(_GROUP_SQL.format("seq"), key)])
        return groups

    def loops(self, run_id: str) -> RunLoops:
        """The run's loop contexts (read apart from its values, so both can be read at once).

        Contexts come with their loop's name as a number (its place among the loop names
        seen so far) rather than as text: a million names would cost a million strings. A
        name not seen yet reads as -1; the names are then learned and the run read again.
        Each read is one statement, so it sees one state of the run."""
        names = self.loop_names
        if not names:
            names.extend(n for (n,) in self._rows(_LOOP_NAMES, [run_id]))
        while names and len(names) <= CODED_NAMES:
            cases = " ".join(f"WHEN ? THEN {code}" for code in range(len(names)))
            column = self.concat(f"CASE name {cases} ELSE -1 END", order="ctx_id")
            count, valued, ctx, parent, iteration, coded = self._rows(
                self.loop_sql.format(column), [*names, run_id]
            )[0]
            codes = _ints(coded, count)
            if (codes >= 0).all():
                arrays = (_ints(ctx, count), _ints(parent, count), _ints(iteration, count))
                values = self._valued(run_id) if valued else []
                return RunLoops(*arrays, codes, list(names), values)
            known = set(names)
            new = [n for (n,) in self._rows(_LOOP_NAMES, [run_id]) if n not in known]
            if not new:
                break
            names.extend(new)
        return self._loops_row_by_row(run_id)

    def _loops_row_by_row(self, run_id: str) -> RunLoops:
        """The contexts of a run with many loop names (or none), one row each."""
        rows = self._rows(_LOOPS_IN_ORDER, [run_id])
        names = list(dict.fromkeys(name for *_, name in rows))
        code_of = {name: code for code, name in enumerate(names)}

        def column(at: int) -> np.ndarray:
            return np.asarray([row[at] for row in rows], dtype=np.int64)

        codes = np.asarray([code_of[name] for *_, name in rows], dtype=np.int64)
        return RunLoops(column(0), column(1), column(2), codes, names, self._valued(run_id))

    def _valued(self, run_id: str) -> list[tuple[int, str]]:
        return self._rows(
            "SELECT ctx_id, value FROM loops WHERE run_id = ? AND value IS NOT NULL", [run_id]
        )


def loop_rows(parts: list[tuple[int, RunLoops]]) -> LoopRows:
    """The loop contexts of the runs read, in (run, ctx id) order."""
    runs, ctxs, parents, iterations, values, codes = [], [], [], [], [], []
    code_of: dict[str, int] = {}
    for run, fetched in parts:
        count = len(fetched.ctx)
        runs.append(np.full(count, run, dtype=np.int64))
        ctxs.append(fetched.ctx)
        parents.append(fetched.parent)
        iterations.append(fetched.iteration)
        ours = [code_of.setdefault(name, len(code_of)) for name in fetched.names]
        codes.append(np.asarray(ours, dtype=np.int64)[fetched.codes])
        value = np.full(count, None, dtype=object)
        if fetched.values:
            value[np.searchsorted(fetched.ctx, [c for c, _ in fetched.values])] = [
                v for _, v in fetched.values
            ]
        values.append(value)

    def joined(arrays: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)

    return LoopRows(
        joined(runs, np.int64),
        joined(ctxs, np.int64),
        joined(parents, np.int64),
        pd.Categorical.from_codes(joined(codes, np.int64), pd.Index(list(code_of), dtype=object)),
        joined(iterations, np.int64),
        joined(values, object),
    )
