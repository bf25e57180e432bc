"""The dataframe pivot, over column-wise reads of the store, in numpy.

Every value sits in one loop context (a row of `loops`) or outside loops, and is keyed by
(its context row, or its run outside loops; its tstamp). Contexts are grouped by path (the
names of their enclosing loops, outermost first) and each path is one table with a row per
key and a column per name. Values of a shallower path join the rows below them in deeper
paths (the outer join of DESIGN.md); only keys no deeper row refers to are rows of their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

RUN_KEYS = ["projid", "runid", "tstamp", "filename"]
ROOT: tuple[str, ...] = ()


@dataclass
class ValueGroup:
    """Values of one name with the same run, writer, tstamp and type, in `seq` order."""

    run: int
    name: str
    writer: str  # '' for the recorded run, else a replay task
    tstamp: str
    kind: str
    first_seq: int
    ctx: np.ndarray  # int64, -1 outside loops
    values: np.ndarray  # parsed from the stored text
    seq: np.ndarray | None = None  # read only where groups of one name interleave

    @property
    def recorded(self) -> bool:
        return self.writer == ""


@dataclass
class LoopRows:
    """The `loops` rows of the runs read: one entry per loop context."""

    run: np.ndarray
    ctx: np.ndarray
    parent: np.ndarray  # -1 for a top-level loop
    name: list[str] | pd.Categorical  # the loop's name
    iteration: np.ndarray
    value: np.ndarray  # object: the iteration value's JSON text, or None


class _Contexts:
    """The loop contexts of the runs involved: depth, ancestors and path of each."""

    def __init__(self, loops: LoopRows) -> None:
        n = len(loops.ctx)
        self.run = loops.run
        self.keys = loops.run * np.int64(1 << 32) + loops.ctx  # ascending: runs, then ctx ids
        self._runs_at(loops)
        parent_row = self.rows_of(loops.run, loops.parent)
        self.parent_row = parent_row
        self.iteration = loops.iteration
        self.value = loops.value
        # loops over values other than 0, 1, 2, ... (they get a `<loop>_value` column)
        loop_names = pd.Categorical(loops.name)
        self.valued = {loop_names[i] for i in np.flatnonzero(loops.value.astype(bool))}
        name_codes, names = loop_names.codes.astype(np.int64), loop_names.categories
        depth = np.zeros(n, dtype=np.int64)
        active = np.flatnonzero(parent_row >= 0)
        cursor = parent_row[active]
        while len(active):  # each pass climbs one level, over the rows not yet at the top
            depth[active] += 1
            cursor = parent_row[cursor]
            above = cursor >= 0
            active, cursor = active[above], cursor[above]
        self.depth = depth
        self.by_depth = [np.flatnonzero(depth == level) for level in range(_levels(depth))]
        self._ancestors: dict[int, np.ndarray] = {}
        # the path id of every row, built level by level from its parent's path id
        path_id = np.full(n, -1, dtype=np.int64)
        paths: dict[tuple[int, int], int] = {}
        self.paths: list[tuple[str, ...]] = []
        for level, rows in enumerate(self.by_depth):
            parent_paths = path_id[parent_row[rows]] if level > 0 else np.full(len(rows), -1)
            pairs = (parent_paths + 1) * np.int64(len(names) + 1) + name_codes[rows]
            inverse, unique_pairs = pd.factorize(pairs)
            ids = []
            for pair in unique_pairs.tolist():
                parent_path, name_code = divmod(int(pair), len(names) + 1)
                parent_path -= 1
                key = (parent_path, name_code)
                if key not in paths:
                    prefix = self.paths[parent_path] if parent_path >= 0 else ROOT
                    paths[key] = len(self.paths)
                    self.paths.append((*prefix, str(names[name_code])))
                ids.append(paths[key])
            path_id[rows] = np.asarray(ids, dtype=np.int64)[inverse]
        self.path_id = path_id
        first = pd.Series(np.arange(n)).groupby(path_id).min() if n else pd.Series(dtype=int)
        id_of = {path: i for i, path in enumerate(self.paths)}
        # Depth-first order of first appearance: (epoch), (epoch, step), then (doc).
        self.order = {
            path: tuple(int(first[id_of[path[:k]]]) for k in range(1, len(path) + 1))
            for path in self.paths
        }

    def _runs_at(self, loops: LoopRows) -> None:
        """Where each run's rows start, and whether its ctx ids run without gaps (the usual
        case, where a context's row is found by subtraction instead of a search)."""
        n = len(loops.ctx)
        n_runs = int(loops.run[-1]) + 1 if n else 0
        bounds = np.searchsorted(loops.run, np.arange(n_runs + 1))
        self.start, self.count = bounds[:-1], np.diff(bounds)
        filled = self.count > 0
        self.first_ctx = np.zeros(n_runs, dtype=np.int64)
        self.first_ctx[filled] = loops.ctx[self.start[filled]]
        last_ctx = loops.ctx[bounds[1:][filled] - 1]
        # ctx ids ascend strictly within a run (the key), so no gap means last - first + 1
        gapless = (last_ctx - self.first_ctx[filled] + 1 == self.count[filled]).all()
        self.dense = bool(n and gapless)

    def rows_of(self, run: int | np.ndarray, ctx: np.ndarray) -> np.ndarray:
        """Context rows of (run, ctx) pairs, -1 where there is none (outside loops)."""
        if self.dense:
            known = np.asarray(run < len(self.start))
            at = np.where(known, run, 0)
            offset = ctx - self.first_ctx[at]
            found = known & (offset >= 0) & (offset < self.count[at])
            return np.where(found, self.start[at] + offset, -1)
        wanted = run * np.int64(1 << 32) + ctx
        at = np.searchsorted(self.keys, wanted).clip(0, max(0, len(self.keys) - 1))
        found = self.keys[at] == wanted if len(self.keys) else np.zeros(len(ctx), dtype=bool)
        return np.where(found, at, -1)

    def ancestor(self, rows: np.ndarray, level: int) -> np.ndarray:
        """The ancestor at `level` (0 = outermost) of each of `rows` (all deeper than level)."""
        if level not in self._ancestors:
            table = np.arange(len(self.depth))
            for deeper in self.by_depth[level + 1 :]:  # parents first: theirs are resolved
                table[deeper] = table[self.parent_row[deeper]]
            self._ancestors[level] = table
        found: np.ndarray = self._ancestors[level][rows]
        return found


def _levels(depth: np.ndarray) -> int:
    return int(depth.max()) + 1 if len(depth) else 0


@dataclass
class _Column:
    """One name's values at some keys, with a mask of where a value is present."""

    values: np.ndarray
    present: np.ndarray

    @classmethod
    def empty(cls, like: np.ndarray, size: int) -> _Column:
        if like.dtype == object:
            values = np.full(size, np.nan, dtype=object)
        else:
            values = np.zeros(size, dtype=like.dtype)
        return cls(values, np.zeros(size, dtype=bool))


def _joined(groups: list[ValueGroup]) -> np.ndarray:
    """One name's values across groups: integers and floats together become floats."""
    arrays = [g.values for g in groups]
    kinds = {a.dtype for a in arrays}
    if len(kinds) > 1:
        common = np.float64 if kinds <= {np.dtype(np.int64), np.dtype(np.float64)} else object
        arrays = [a.astype(common) for a in arrays]
    return np.concatenate(arrays)


class _Keys:
    """Integer keys: (context row, tstamp) in loops, (run, tstamp) outside them."""

    def __init__(self, contexts: _Contexts, n_tstamps: int) -> None:
        self.contexts = contexts
        self.n_t = np.int64(max(1, n_tstamps))
        self.root_base = np.int64(len(contexts.depth))

    def of(self, rows: np.ndarray, run: int, tcode: int) -> np.ndarray:
        slot = np.where(rows >= 0, rows, self.root_base + run)
        return slot * self.n_t + tcode

    def path(self, keys: np.ndarray) -> np.ndarray:
        slots = keys // self.n_t
        inside = slots < self.root_base
        out = np.full(len(keys), -1, dtype=np.int64)
        out[inside] = self.contexts.path_id[slots[inside]]
        return out

    def run(self, keys: np.ndarray) -> np.ndarray:
        slots = keys // self.n_t
        inside = slots < self.root_base
        out = slots - self.root_base
        out[inside] = self.contexts.run[slots[inside]]
        return out

    def tcode(self, keys: np.ndarray) -> np.ndarray:
        return keys % self.n_t

    def up(self, keys: np.ndarray, level: int) -> np.ndarray:
        """The keys of the ancestors at `level` (-1: outside loops) of in-loop keys."""
        rows = keys // self.n_t
        tcode = keys % self.n_t
        if level < 0:
            return (self.root_base + self.contexts.run[rows]) * self.n_t + tcode
        return self.contexts.ancestor(rows, level) * self.n_t + tcode


def _winners(
    groups: list[ValueGroup], keys: list[np.ndarray], values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One value per key: recorded values win over replayed ones, later over earlier."""
    all_keys = np.concatenate(keys)
    if len(all_keys) and (all_keys[1:] > all_keys[:-1]).all():  # the usual case: one each
        return all_keys, values
    if len(groups) > 1:
        recorded = np.concatenate([np.full(len(g.ctx), g.recorded) for g in groups])
        seq = np.concatenate([g.seq if g.seq is not None else np.zeros(len(g.ctx)) for g in groups])
        order = np.lexsort((seq, recorded))
        all_keys, values = all_keys[order], values[order]
    order = np.argsort(all_keys, kind="stable")
    ordered = all_keys[order]
    last = np.append(ordered[1:] != ordered[:-1], True)
    return ordered[last], values[order[last]]


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a is b or (len(a) == len(b) and bool((a == b).all()))


def _union(sorted_keys: list[np.ndarray]) -> np.ndarray:
    first = sorted_keys[0]
    if all(_same(k, first) for k in sorted_keys[1:]):
        return first  # names logged side by side share their keys
    merged = np.sort(np.concatenate(sorted_keys))
    unique: np.ndarray = merged[np.append(True, merged[1:] != merged[:-1])]
    return unique


def pivot(
    groups: list[ValueGroup], runs: pd.DataFrame, loops: LoopRows, names: list[str]
) -> pd.DataFrame:
    """One row per run and loop coordinates, one column per name (see the README).

    `runs`: run_id, projid, filename of the runs the groups' `run` numbers index.
    """
    tstamps = sorted({g.tstamp for g in groups})
    tcode_of = {t: i for i, t in enumerate(tstamps)}
    contexts = _Contexts(loops)
    keying = _Keys(contexts, len(tstamps))
    by_name: dict[str, list[ValueGroup]] = {}
    for group in sorted(groups, key=lambda g: (g.run, g.first_seq)):
        by_name.setdefault(group.name, []).append(group)
    value_names = names or list(by_name)

    # per name: its winning value at each key, split by path into tables
    tables: dict[int, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for name, mine in by_name.items():
        group_keys = [
            keying.of(contexts.rows_of(g.run, g.ctx), g.run, tcode_of[g.tstamp]) for g in mine
        ]
        unique, values = _winners(mine, group_keys, _joined(mine))
        paths = keying.path(unique)
        for path in np.unique(paths).tolist():
            at = paths == path
            tables.setdefault(path, {})[name] = (unique[at], values[at])

    def path_of(path_id: int) -> tuple[str, ...]:
        return contexts.paths[path_id] if path_id >= 0 else ROOT

    table_keys = {p: _union([k for k, _ in columns.values()]) for p, columns in tables.items()}
    present = sorted(tables, key=lambda p: len(path_of(p)))
    prefixes = {
        p: [q for q in present if q != p and path_of(p)[: len(path_of(q))] == path_of(q)]
        for p in present
    }
    referenced: dict[int, list[np.ndarray]] = {p: [] for p in present}
    for p in present:
        for q in prefixes[p]:
            referenced[q].append(keying.up(table_keys[p], len(path_of(q)) - 1))

    blocks = []
    for p in present:
        keys = table_keys[p]
        if referenced[p]:
            keys = keys[~np.isin(keys, np.concatenate(referenced[p]))]
        if not len(keys):
            continue
        block: dict[str, Any] = {"run": keying.run(keys), "tcode": keying.tcode(keys)}
        rows = keys // keying.n_t
        for level, loop_name in enumerate(path_of(p)):
            at = contexts.ancestor(rows, level)
            block[loop_name] = contexts.iteration[at]
            if loop_name in contexts.valued:
                block[f"{loop_name}_value"] = contexts.value[at]
        # own values first, then those of the nearest enclosing path that has one
        sources = [(p, keys)] + [
            (q, keying.up(keys, len(path_of(q)) - 1))
            for q in sorted(prefixes[p], key=lambda q: -len(path_of(q)))
        ]
        for name in value_names:
            column: _Column | None = None
            for source, source_keys in sources:
                if name not in tables[source]:
                    continue
                stored_keys, stored_values = tables[source][name]
                if column is None and source_keys is keys and _same(stored_keys, keys):
                    # a value at every key of its own table: nothing to look up
                    column = _Column(stored_values, np.ones(len(keys), dtype=bool))
                    break
                if column is None:
                    column = _Column.empty(stored_values, len(keys))
                at = np.searchsorted(stored_keys, source_keys).clip(0, len(stored_keys) - 1)
                found = (stored_keys[at] == source_keys) & ~column.present
                column.values[found] = stored_values[at[found]]
                column.present |= found
            if column is not None:
                block[name] = column
        blocks.append(block)
    loop_paths = sorted((path_of(p) for p in present if p >= 0), key=contexts.order.__getitem__)
    return _assemble(blocks, loop_paths, value_names, runs, tstamps)


def _assemble(
    blocks: list[dict[str, Any]],
    paths: list[tuple[str, ...]],
    names: list[str],
    runs: pd.DataFrame,
    tstamps: list[str],
) -> pd.DataFrame:
    loop_order: list[str] = list(dict.fromkeys(name for path in paths for name in path))
    sizes = [len(b["run"]) for b in blocks]
    total = sum(sizes)

    def gather(key: str, fill: Any, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
        if len(blocks) == 1 and key in blocks[0]:  # one table: its arrays as they are
            part = blocks[0][key]
            if isinstance(part, _Column):
                return part.values, part.present
            return part, np.ones(total, dtype=bool)
        values = np.full(total, fill, dtype=dtype)
        present = np.zeros(total, dtype=bool)
        start = 0
        for block, size in zip(blocks, sizes, strict=True):
            if key in block:
                part = block[key]
                if isinstance(part, _Column):
                    values[start : start + size] = part.values
                    present[start : start + size] = part.present
                else:
                    values[start : start + size] = part
                    present[start : start + size] = True
            start += size
        return values, present

    run, _ = gather("run", 0, np.int64)
    tcode, _ = gather("tcode", 0, np.int64)
    iterations = {name: gather(name, -1, np.int64) for name in loop_order}
    # Rows sorted by tstamp, run id and loop coordinates (missing coordinates first).
    run_rank = np.argsort(np.argsort(runs["run_id"].to_numpy(dtype=object), kind="stable"))
    sort_keys = [iterations[name][0] for name in reversed(loop_order)]
    ordering = [tcode, run_rank[run], *reversed(sort_keys)]
    order = None if _ascending(ordering) else np.lexsort(ordering[::-1])

    # taken from the runs' own columns: a million rows, no million strings to check again
    columns: dict[str, Any] = {
        "projid": runs["projid"].array.take(run),
        "runid": runs["run_id"].array.take(run),
        "tstamp": pd.Series(tstamps).array.take(tcode),
        "filename": runs["filename"].array.take(run),
    }
    for name in loop_order:
        values, present = iterations[name]
        columns[name] = pd.arrays.IntegerArray(values, ~present)
        raw, present = gather(f"{name}_value", None, object)
        if present.any():
            columns[f"{name}_value"] = [json.loads(v) if isinstance(v, str) else None for v in raw]
    for name in names:
        columns[name] = _finish(name, blocks, sizes, total)
    frame = pd.DataFrame(columns, copy=False)  # the arrays are this frame's own
    return frame if order is None else frame.take(order).reset_index(drop=True)


def _ascending(keys: list[np.ndarray]) -> bool:
    """Whether rows are already in the order of `keys` (the first key decides first)."""
    ties = np.ones(max(0, len(keys[0]) - 1), dtype=bool)
    for key in keys:
        step = np.diff(key)
        if (ties & (step < 0)).any():
            return False
        ties &= step == 0
    return True


def _finish(name: str, blocks: list[dict[str, Any]], sizes: list[int], total: int) -> pd.Series:
    """A name's column: integers stay integers when every row has one; gaps make them NaN."""
    parts = [b.get(name) for b in blocks]
    kinds = {p.values.dtype for p in parts if p is not None}
    if not kinds:  # a name nobody logged: an empty column
        return pd.Series(np.full(total, np.nan))
    dtype = kinds.pop() if len(kinds) == 1 else np.dtype(object)
    only = parts[0] if len(parts) == 1 else None
    if only is not None and dtype.kind != "O":  # one table: its arrays as they are
        values, present = only.values, only.present
    else:
        values, present = _stacked(parts, sizes, total, dtype)
    if dtype.kind == "O":
        values[~present] = np.nan
        return _tidy(pd.Series(values, dtype=object))
    if present.all():
        return pd.Series(values)
    result = values.astype(np.float64)
    result[~present] = np.nan
    return pd.Series(result)


def _stacked(
    parts: list[_Column | None], sizes: list[int], total: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    values = np.full(total, np.nan, dtype=object) if dtype.kind == "O" else np.zeros(total, dtype)
    present = np.zeros(total, dtype=bool)
    start = 0
    for part, size in zip(parts, sizes, strict=True):
        if part is not None:
            values[start : start + size] = part.values
            present[start : start + size] = part.present
        start += size
    return values, present


def _tidy(column: pd.Series) -> pd.Series:
    """Numbers as numbers: an object column of only numbers becomes numeric."""
    present = column.dropna()
    if len(present) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in present.head(1000)
    ):
        converted = pd.to_numeric(column, errors="coerce")
        if converted.notna().sum() == len(present):
            return converted
    return column
