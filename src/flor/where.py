"""`--where` filters over runs' recorded values, parsed safely (never pasted into SQL)."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from flor.errors import UsageError

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
    """Each run's last recorded value of each name (the final epoch's accuracy, say)."""
    if not names:
        return {}
    from flor.store import reads
    from flor.store.values import decode

    values: dict[str, dict[str, Any]] = {}
    for run_id, name, value, kind in reads.recorded_values_of_names(sorted(names)):
        values.setdefault(run_id, {})[name] = decode(value, kind)
    return values


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
