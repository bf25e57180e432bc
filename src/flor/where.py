"""`--where` filters over runs, parsed safely (never pasted into SQL or eval'd).

One meaning for `flor replay --where` and `flor plot --where`, the same as the web UI's
filter box: a run matches when its fields (`RUN_FIELDS`) and its last value of each name
in the expression (the recorded one, else the replayed one) satisfy it."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from flor.errors import UsageError

RUN_FIELDS = ("runid", "filename", "projid", "tstamp", "version")

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def compile_where(expression: str) -> tuple[Callable[[dict[str, Any]], bool], set[str]]:
    """A filter over a run's recorded values, e.g. "acc < 0.9 and lr >= 1e-3".

    Parsed as a Python expression with only names, literals, comparisons and and/or/not,
    so nothing the user typed ever reaches SQL or eval.
    """
    try:
        tree = ast.parse(expression, mode="eval").body
    except SyntaxError as exc:
        raise UsageError(f"--where {expression!r} does not parse: {exc.msg}") from None
    names: set[str] = set()

    def build(node: ast.AST) -> Callable[[dict[str, Any]], Any]:
        if isinstance(node, ast.BoolOp):
            parts = [build(v) for v in node.values]
            if isinstance(node.op, ast.And):
                return lambda row: all(p(row) for p in parts)
            return lambda row: any(p(row) for p in parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = build(node.operand)
            return lambda row: not inner(row)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = build(node.operand)
            return lambda row: -inner(row)
        if isinstance(node, ast.Compare):
            left = build(node.left)
            pairs = [
                (_COMPARE[type(op)], build(c))
                for op, c in zip(node.ops, node.comparators, strict=True)
                if type(op) in _COMPARE
            ]
            if len(pairs) != len(node.ops):
                raise UsageError(f"--where {expression!r}: only < <= > >= == != compare")

            def compare(row: dict[str, Any]) -> bool:
                value = left(row)
                for op, right in pairs:
                    other = right(row)
                    try:
                        if value is None or other is None or not op(value, other):
                            return False
                    except TypeError:
                        return False
                    value = other
                return True

            return compare
        if isinstance(node, ast.Name):
            names.add(node.id)
            return lambda row: row.get(node.id)
        if isinstance(node, ast.Constant):
            return lambda row: node.value
        raise UsageError(
            f"--where {expression!r}: use logged names, numbers, strings, comparisons, and/or/not"
        )

    return build(tree), names


def last_values(names: set[str]) -> dict[str, dict[str, Any]]:
    """What a `--where` expression sees of each recorded run: the fields `RUN_FIELDS` and
    the last value of each of `names` the run recorded, else (a name it never recorded)
    the last hindsight value a replay stored for it (a run's 10^6 values of a name are
    not read: see `browse.last_of_names`)."""
    from flor.store import browse, reads
    from flor.store.backend import open_backend

    values: dict[str, dict[str, Any]] = {
        run.run_id: {
            "runid": run.run_id,
            "filename": run.filename,
            "projid": run.projid,
            "tstamp": run.tstamp,
            "version": run.snapshot[:10] if run.snapshot else "unversioned",
        }
        for run in reads.recorded_runs()
    }
    logged = sorted(names - set(RUN_FIELDS))
    if logged:
        backend = open_backend(reads.locate())
        conn = backend.reader()
        try:
            found = browse.last_of_names(conn, backend.dialect, logged)
        finally:
            conn.close()
        for run_id, named in found.items():
            values.setdefault(run_id, {}).update(named)
    return values


def matching_runs(expression: str) -> set[str]:
    """The ids of the recorded runs `expression` selects (see `last_values`)."""
    check, names = compile_where(expression)
    return {run_id for run_id, run in last_values(names).items() if check(run)}


def select_runs(
    runs: pd.DataFrame, root: Path, ids: Sequence[str] | None = None, since: str | None = None
) -> pd.DataFrame:
    """Recorded runs whose id starts with one of `ids`, started since `--since`."""
    if ids:
        runs = runs[runs["run_id"].map(lambda run: any(run.startswith(p) for p in ids))]
    if since:
        from flor import vcs

        starts = dict(zip(runs["run_id"], runs["started"], strict=True))
        runs = runs[runs["started"] >= vcs.since_cutoff(root, since, starts)]
    return runs
