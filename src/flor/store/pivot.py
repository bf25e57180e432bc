"""The dataframe pivot, on fetched rows, with integer keys and numpy throughout.

Every loop context is one row of the `loops` table, so a value's loop coordinates are
those of its context row: values are pivoted on (context row, tstamp), never on text
columns, and the coordinates of each context (and its ancestors, for the outer join of
shallower values) are found by pointer jumping over parent links.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from flor.store.values import decode

RUN_KEYS = ["projid", "runid", "tstamp", "filename"]
LOG_COLUMNS = ["tstamp", "ctx_id", "name", "value", "type", "recorded", "seq"]
LOOP_COLUMNS = ["ctx_id", "parent", "name", "iteration", "value"]
ROOT: tuple[str, ...] = ()


class _Contexts:
    """The loop contexts of the runs involved: depth, ancestors and path of each."""

    def __init__(self, loops: pd.DataFrame, run_codes: pd.Index) -> None:
        n = len(loops)
        self.run = run_codes.get_indexer(pd.Index(loops["run_id"])).astype(np.int64)
        ctx = loops["ctx_id"].to_numpy(dtype=np.int64)
        parent = loops["parent"].fillna(-1).to_numpy(dtype=np.int64)
        shift = np.int64(1 << 32)
        self.index = pd.Index(self.run * shift + ctx)
        parent_row = self.index.get_indexer(self.run * shift + parent)
        parent_row[parent < 0] = -1
        self.parent_row = parent_row
        self.iteration = loops["iteration"].to_numpy(dtype=np.int64)
        self.value = loops["value"].to_numpy(dtype=object)
        name_codes, names = pd.factorize(loops["name"].to_numpy(dtype=object))
        depth = np.zeros(n, dtype=np.int64)
        cursor = parent_row.copy()
        while (cursor >= 0).any():
            live = cursor >= 0
            depth[live] += 1
            cursor[live] = parent_row[cursor[live]]
        self.depth = depth
        # path id of every row, built level by level from its parent's path id
        path_id = np.full(n, -1, dtype=np.int64)
        paths: dict[tuple[int, int], int] = {}
        self.paths: list[tuple[str, ...]] = []
        for level in range(int(depth.max()) + 1 if n else 0):
            rows = np.flatnonzero(depth == level)
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

    def ancestor(self, rows: np.ndarray, level: int) -> np.ndarray:
        """The ancestor at `level` (0 = outermost) of each of `rows` (all deeper than level)."""
        cursor = rows.copy()
        for _ in range(int(self.depth.max()) + 1 if len(self.depth) else 0):
            deeper = self.depth[cursor] > level
            if not deeper.any():
                break
            cursor[deeper] = self.parent_row[cursor[deeper]]
        return cursor


def _typed_by_name(logs: pd.DataFrame) -> np.ndarray:
    """Decode stored text: a name whose values are all numbers is converted in bulk."""
    text = logs["value"].to_numpy(dtype=object)
    kinds = logs["type"].to_numpy(dtype=object)
    numeric = np.isin(kinds, ["int", "float"])
    if numeric.all():
        return pd.to_numeric(pd.Series(text), errors="coerce").to_numpy()
    out = np.empty(len(logs), dtype=object)
    for _, positions in logs.groupby("name", sort=False).indices.items():
        if numeric[positions].all():
            out[positions] = pd.to_numeric(pd.Series(text[positions]), errors="coerce").to_numpy()
        else:
            out[positions] = [decode(text[i], kinds[i]) for i in positions]
    return out


def pivot(
    logs: pd.DataFrame, runs: pd.DataFrame, loops: pd.DataFrame, names: list[str]
) -> pd.DataFrame:
    """One row per run and loop coordinates, one column per name (see the README).

    `logs`: run_id, tstamp, ctx_id, name, value, type, recorded, seq (recorded runs only);
    `runs`: run_id, projid, filename; `loops`: run_id, ctx_id, parent, name, iteration, value.
    """
    # Recorded values win over replayed ones; later values win over earlier ones.
    logs = logs.sort_values(["recorded", "seq"], kind="stable")
    run_codes = pd.Index(runs["run_id"])
    tstamps = pd.Index(pd.unique(logs["tstamp"]))
    n_t = np.int64(max(1, len(tstamps)))
    contexts = _Contexts(loops, run_codes)
    run = run_codes.get_indexer(pd.Index(logs["run_id"])).astype(np.int64)
    tcode = tstamps.get_indexer(pd.Index(logs["tstamp"])).astype(np.int64)
    ctx = logs["ctx_id"].fillna(-1).to_numpy(dtype=np.int64)
    row = np.full(len(logs), -1, dtype=np.int64)
    in_loop = ctx >= 0
    row[in_loop] = contexts.index.get_indexer(run[in_loop] * np.int64(1 << 32) + ctx[in_loop])
    path = np.full(len(logs), -1, dtype=np.int64)
    path[row >= 0] = contexts.path_id[row[row >= 0]]
    # A value's key: its context row (or its run, outside loops) and its tstamp.
    key = np.where(row >= 0, row, run) * n_t + tcode
    value_names = names or list(dict.fromkeys(logs["name"]))
    values = _typed_by_name(logs)

    tables: dict[int, pd.DataFrame] = {}
    for path_id in np.unique(path).tolist():
        mine = path == path_id
        frame = pd.DataFrame(
            {"key": key[mine], "name": logs["name"].to_numpy()[mine], "v": values[mine]}
        )
        frame = frame.drop_duplicates(["key", "name"], keep="last")
        wide = frame.pivot(index="key", columns="name", values="v")
        tables[path_id] = wide.reindex(columns=[n for n in value_names if n in wide.columns])

    def path_of(path_id: int) -> tuple[str, ...]:
        return contexts.paths[path_id] if path_id >= 0 else ROOT

    present = sorted(tables, key=lambda p: len(path_of(p)))
    prefix_ids = {
        p: [q for q in present if q != p and path_of(p)[: len(path_of(q))] == path_of(q)]
        for p in present
    }
    referenced: dict[int, list[np.ndarray]] = {p: [] for p in present}
    ancestors: dict[int, dict[int, np.ndarray]] = {}
    for p in present:
        own = tables[p].index.to_numpy(dtype=np.int64)
        ancestors[p] = {}
        for q in prefix_ids[p]:
            level = len(path_of(q)) - 1
            if level < 0:
                rows = own // n_t
                upper = contexts.run[rows] if p >= 0 else rows
            else:
                upper = contexts.ancestor(own // n_t, level)
            ancestors[p][q] = upper * n_t + own % n_t
            referenced[q].append(ancestors[p][q])

    blocks = []
    for p in present:
        own = tables[p].index.to_numpy(dtype=np.int64)
        keep = ~np.isin(own, np.concatenate(referenced[p])) if referenced[p] else own >= 0
        if not keep.any():
            continue
        keys = own[keep]
        rows = keys // n_t
        block: dict[str, Any] = {}
        run_of = contexts.run[rows] if p >= 0 else rows
        block["projid"] = runs["projid"].to_numpy()[run_of]
        block["runid"] = runs["run_id"].to_numpy()[run_of]
        block["tstamp"] = tstamps.to_numpy()[keys % n_t]
        block["filename"] = runs["filename"].to_numpy()[run_of]
        loop_names = path_of(p)
        for level, loop_name in enumerate(loop_names):
            at = contexts.ancestor(rows, level)
            block[loop_name] = contexts.iteration[at]
            block[f"{loop_name}_value"] = contexts.value[at]
        for name in value_names:
            column = _values_for(tables, p, keys, keep, ancestors, prefix_ids, path_of, name)
            block[name] = column
        blocks.append(pd.DataFrame(block))
    paths = sorted((path_of(p) for p in present if p >= 0), key=contexts.order.__getitem__)
    return _assemble(blocks, paths, value_names)


def _values_for(
    tables: dict[int, pd.DataFrame],
    p: int,
    keys: np.ndarray,
    keep: np.ndarray,
    ancestors: dict[int, dict[int, np.ndarray]],
    prefix_ids: dict[int, list[int]],
    path_of: Any,
    name: str,
) -> np.ndarray:
    """The value of `name` for each emitted row: its own, else the nearest prefix's."""
    column: pd.Series | None = None
    sources = [(p, keys)] + [
        (q, ancestors[p][q][keep]) for q in sorted(prefix_ids[p], key=lambda q: -len(path_of(q)))
    ]
    for source, source_keys in sources:
        table = tables[source]
        if name not in table.columns:
            continue
        found = table[name].reindex(source_keys).reset_index(drop=True)
        column = found if column is None else column.combine_first(found)
    if column is None:
        return np.full(len(keys), np.nan)
    return column.to_numpy()


def _assemble(
    blocks: list[pd.DataFrame], paths: list[tuple[str, ...]], names: list[str]
) -> pd.DataFrame:
    loop_order: list[str] = []
    for path in paths:
        for loop_name in path:
            if loop_name not in loop_order:
                loop_order.append(loop_name)
    merged = pd.concat(blocks, ignore_index=True, sort=False) if blocks else pd.DataFrame()
    columns: dict[str, Any] = {key: merged[key] for key in RUN_KEYS}
    for loop_name in loop_order:
        columns[loop_name] = merged[loop_name].astype("Int64")
        raw = merged[f"{loop_name}_value"]
        if raw.notna().any():
            columns[f"{loop_name}_value"] = raw.map(
                lambda v: json.loads(v) if isinstance(v, str) else None
            )
    for name in names:
        column = merged[name] if name in merged else pd.Series(np.nan, index=merged.index)
        columns[name] = _tidy(column)
    result = pd.DataFrame(columns)
    order = ["tstamp", "runid", *loop_order]
    return result.sort_values(order, kind="stable", na_position="first", ignore_index=True)


def _tidy(column: pd.Series) -> pd.Series:
    """Numbers as numbers: an object column of only numbers becomes numeric."""
    if column.dtype == object:
        present = column.dropna()
        if len(present) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in present.head(1000)
        ):
            converted = pd.to_numeric(column, errors="coerce")
            if converted.notna().sum() == len(present):
                return converted
    return column
