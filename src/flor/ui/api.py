"""The JSON API behind `flor ui`, as plain functions over a `Project` (tested on their own;
the server only routes to them). Every answer is JSON-ready: dicts, lists, numbers, text.
"""

from __future__ import annotations

import difflib
import math
import operator
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, cast

from flor.errors import FlorError, UsageError
from flor.store.backend import Target, open_backend

if TYPE_CHECKING:
    from flor.store.backend import Dialect

PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
SQL_ROW_LIMIT = 5000
RUNS_PER_VERSION = 100  # runs listed under a version; `more` counts the others
PER_RUN_CACHE = 256  # curves and name listings kept, oldest dropped first
CURVE_POINTS = 1200  # points per curve unless asked otherwise (the page asks for this many)
BASE_COLUMNS = (
    "run_id",
    "projid",
    "filename",
    "tstamp",
    "status",
    "version",
    "duration_s",
    "checkpoint_bytes",
)


class NotFound(FlorError):
    """A run, file or job the request names does not exist."""


class Forbidden(FlorError):
    """The server was not started to allow this (e.g. replays without --allow-replay)."""


def clean(value: Any) -> Any:
    """NaN and infinities are not JSON: they travel as None (shown empty)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


@dataclass
class Project:
    """The store and repository a server shows, and what it caches between requests."""

    home: Path
    root: Path | None
    target: Target
    allow_replay: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _computing: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _valuing: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _rows: tuple[tuple[Any, ...], RunRows] | None = field(default=None, repr=False)
    _values: tuple[tuple[Any, ...], LastValues] | None = field(default=None, repr=False)
    _immutable: dict[tuple[str, ...], Any] = field(default_factory=dict, repr=False)
    _per_run: dict[tuple[str, ...], tuple[tuple[Any, ...], Any]] = field(
        default_factory=dict, repr=False
    )
    _gates: dict[tuple[str, ...], threading.Lock] = field(default_factory=dict, repr=False)

    @property
    def store(self) -> str:
        return str(self.target)  # a server's password masked

    @contextmanager
    def reading(self) -> Iterator[Any]:
        conn = open_backend(self.target).reader()
        try:
            yield conn
        finally:
            conn.close()

    def exists(self) -> bool:
        return open_backend(self.target).exists()

    @property
    def dialect(self) -> Dialect:
        """How the store's database spells what differs between SQLite and PostgreSQL."""
        from flor.store.backend import open_backend

        return open_backend(self.target).dialect

    def remember(self, key: tuple[str, ...], compute: Callable[[], Any]) -> Any:
        """Results about git commits never change: compute each once."""
        if key not in self._immutable:
            self._immutable[key] = compute()
        return self._immutable[key]

    def per_run(self, key: tuple[str, ...], run_id: str, compute: Callable[[Any], Any]) -> Any:
        """A result about one run (e.g. a 10^6-value curve), kept until the run or a replay
        into it writes again. Each result is computed once at a time: a second request for
        it (say, the page's, while the run page's prefetch computes it) waits for the first."""
        from flor.store import browse

        full = (run_id, *key)
        with self._lock:
            gate = self._gates.setdefault(full, threading.Lock())
        with gate, self.reading() as conn:
            stamp = browse.run_fingerprint(conn, run_id)
            found = self._per_run.get(full)
            if found is not None and found[0] == stamp:
                return found[1]
            result = compute(conn)
            with self._lock:
                if len(self._per_run) >= PER_RUN_CACHE:
                    oldest = next(iter(self._per_run))
                    self._per_run.pop(oldest)
                    self._gates.pop(oldest, None)
                self._per_run[full] = (stamp, result)
            return result

    def prefetch(self, run_id: str, names: list[str]) -> None:
        """Start computing a run's curves while the browser renders the rest of its page."""

        def work() -> None:
            for name in names:
                try:
                    series(self, run_id, name)
                except FlorError:
                    return

        threading.Thread(target=work, daemon=True).start()

    def run_rows(self, conn: Any = None) -> list[dict[str, Any]]:
        """Every recorded run without its values."""
        return self.run_summary(conn).rows

    def run_summary(self, conn: Any = None) -> RunRows:
        """Every recorded run without its values and the names of their args, recomputed
        only when the store changed (one computation at a time: a request arriving
        meanwhile waits for its result). On `conn` if given, else on a connection of its own."""
        return cast(RunRows, self._run_summary(conn, wait=True))

    def ready_run_summary(self, conn: Any) -> RunRows | None:
        """`run_summary` if it is ready for the store as it is now, else None at once."""
        return self._run_summary(conn, wait=False)

    def _run_summary(self, conn: Any, wait: bool) -> RunRows | None:
        from flor.store import browse

        with self._reader(conn) as reader:
            stamp = browse.fingerprint(reader)
            if self._rows is not None and self._rows[0] == stamp:
                return self._rows[1]
            if not wait:
                return None
            with self._computing:
                if self._rows is not None and self._rows[0] == stamp:
                    return self._rows[1]
                return self._summarize(reader, stamp)

    def _summarize(self, reader: Any, stamp: tuple[Any, ...]) -> RunRows:
        from flor.store import browse

        rows = browse.runs(reader)
        found = RunRows(
            rows,
            sorted({k for r in rows for k in r["args"]}),
            sorted({r["projid"] for r in rows}),
            sorted({r["filename"] for r in rows}),
        )
        self._rows = (stamp, found)
        return found

    def last_values(self, wait: bool = True, conn: Any = None) -> LastValues | None:
        """Every run's last values (a pass over all logs), kept until the store changes;
        without `wait`, None unless they are ready (a first page needs only its own)."""
        from flor.store import browse

        with self._reader(conn) as reader:
            stamp = browse.fingerprint(reader)
            if self._values is not None and self._values[0] == stamp:
                return self._values[1]
            if not wait:
                return None
            with self._valuing:
                if self._values is None or self._values[0] != stamp:
                    found = browse.last_values(reader, self.dialect)
                    self._values = (
                        stamp,
                        LastValues(found, {k for v in found.values() for k in v}),
                    )
                return self._values[1]

    @contextmanager
    def _reader(self, conn: Any) -> Iterator[Any]:
        if conn is not None:
            yield conn
        else:
            with self.reading() as own:
                yield own

    def summaries(self) -> list[dict[str, Any]]:
        """Every recorded run with its last values."""
        values = cast(LastValues, self.last_values()).by_run
        return [{**row, "values": values.get(row["run_id"], {})} for row in self.run_rows()]


@dataclass
class RunRows:
    """The recorded runs (`browse.runs`, each with its `version`), every arg name, project
    and script."""

    rows: list[dict[str, Any]]
    arg_names: list[str]
    projects: list[str]
    scripts: list[str]

    @staticmethod
    def none() -> RunRows:
        return RunRows([], [], [], [])


@dataclass
class LastValues:
    """Each run's last value of each name (`browse.last_values`), and every such name."""

    by_run: dict[str, dict[str, Any]]
    names: set[str]


# -- store-wide --------------------------------------------------------------------------


def info(project: Project) -> dict[str, Any]:
    """The store and what it holds, counted by the store: the browser's first request
    need not wait for the runs page's summary of every run."""
    from flor.store import browse

    count, projects, scripts = 0, list[str](), list[str]()
    if project.exists():
        with project.reading() as conn:
            count, projects, scripts = browse.overview(conn)
    return {
        "store": project.store,
        "root": str(project.root) if project.root else None,
        "allow_replay": project.allow_replay,
        "empty": not count,
        "runs": count,
        "projects": projects,
        "scripts": scripts,
    }


_RUN_FIELDS = ("projid", "filename", "tstamp", "status", "version")


def _matcher(where: str | None) -> Callable[[dict[str, Any], dict[str, Any]], bool] | None:
    """A run's test for a `--where` filter: a name is a run field, else an arg, else the
    run's last value of it. Only the names the filter uses are looked up."""
    if not where or not where.strip():
        return None
    from flor.where import compile_where

    check, names = compile_where(where)
    wanted = sorted(names)

    def field_of(row: dict[str, Any], values: dict[str, Any], name: str) -> Any:
        if name == "runid":
            return row["run_id"]
        if name in _RUN_FIELDS:
            return row[name]
        args = row["args"]
        return args[name] if name in args else values.get(name)

    def matches(row: dict[str, Any], values: dict[str, Any]) -> bool:
        return bool(check({name: field_of(row, values, name) for name in wanted}))

    return matches


def _column(column: str) -> Callable[[dict[str, Any], dict[str, Any]], Any]:
    """How to read a column of a run (its row and its last values)."""
    if column.startswith("args."):
        arg = column[5:]
        return lambda row, values: row["args"].get(arg)
    if column.startswith("values."):
        name = column[7:]
        return lambda row, values: values.get(name)
    return lambda row, values: row.get(column)


def _sort_key(value: Any) -> tuple[int, Any]:
    """Missing values last; numbers before text; never a comparison between types."""
    kind = type(value)
    if kind is float:
        return (0, value) if value == value else (2, 0)
    if kind is int:
        return (0, value)
    if value is None:
        return (2, 0)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value) if value == value else (2, 0)
    return (1, str(value))


def runs_page(
    project: Project,
    *,
    where: str | None = None,
    sort: str = "started",
    descending: bool = True,
    offset: int = 0,
    limit: int = PAGE_SIZE,
    projid: str | None = None,
    complete: bool = False,
) -> dict[str, Any]:
    """One page of recorded runs, filtered with `--where` syntax and sorted on the server.

    Right after start, before every run's last values are read, a page that needs none of
    them (no filter, no sort by value) comes with its own runs' values only and
    `complete: false` (its value columns are those of its runs); `complete` waits for all.
    Before even every run is read, such a page in start order is read alone (`_first_page`)."""
    if limit < 1 or limit > MAX_PAGE_SIZE or offset < 0:
        raise UsageError(f"limit must be 1..{MAX_PAGE_SIZE} and offset >= 0")
    matches = _matcher(where)
    needs_all = complete or matches is not None or sort.startswith("values.")
    values: LastValues | None = None
    with ExitStack() as stack:
        conn = stack.enter_context(project.reading()) if project.exists() else None
        if conn is None:
            summary = RunRows.none()
        elif sort == "started" and not needs_all:
            ready = project.ready_run_summary(conn)
            if ready is None:
                return _first_page(project, conn, offset, limit, descending, projid)
            summary = ready
        else:
            summary = project.run_summary(conn)
        rows, arg_names = summary.rows, summary.arg_names
        values = project.last_values(needs_all, conn) if rows else LastValues({}, set())
        columns = [*BASE_COLUMNS, *(f"args.{a}" for a in arg_names)]
        if values is not None:
            columns += [f"values.{v}" for v in sorted(values.names - set(arg_names))]
        if sort not in (*columns, "started"):
            raise UsageError(f"cannot sort by {sort!r}: pick one of the columns")
        read = _column(sort)
        none: dict[str, Any] = {}
        known = values.by_run if values is not None else none
        # (sort key, row, its values); rows without a value to sort by come last
        present: list[tuple[Any, dict[str, Any], dict[str, Any]]] = []
        missing: list[tuple[Any, dict[str, Any], dict[str, Any]]] = []
        for row in rows:
            if projid is not None and row["projid"] != projid:
                continue
            own = known.get(row["run_id"], none)
            if matches is None or matches(row, own):
                key = _sort_key(read(row, own))
                (present if key[0] < 2 else missing).append((key, row, own))
        present.sort(key=operator.itemgetter(0), reverse=descending)
        page = (present + missing)[offset : offset + limit]
        if values is None:  # the first page after start: its own values, by index seeks
            from flor.store import browse

            assert conn is not None
            own_values = browse.last_values_of(conn, [r["run_id"] for _, r, _ in page])
            page = [(key, r, own_values.get(r["run_id"], {})) for key, r, _ in page]
            columns += [f"values.{v}" for v in _value_names(own_values.values(), arg_names)]
    listed = [(r, own) for _, r, own in page]
    total = len(present) + len(missing)
    return _page(total, offset, columns, values is not None, summary.projects, listed)


def _first_page(
    project: Project, conn: Any, offset: int, limit: int, descending: bool, projid: str | None
) -> dict[str, Any]:
    """A page in start order while every run is still being read (right after start): its
    own runs, their args and values only (`complete: false`)."""
    from flor.store import browse

    rows, total = browse.runs_by_start(conn, offset, limit, descending, projid)
    _, projects, _ = browse.overview(conn)
    ready = project.last_values(False, conn)
    ids = [r["run_id"] for r in rows]
    values = (
        {i: ready.by_run.get(i, {}) for i in ids}
        if ready is not None
        else browse.last_values_of(conn, ids)
    )
    arg_names = sorted({k for r in rows for k in r["args"]})
    columns = [*BASE_COLUMNS, *(f"args.{a}" for a in arg_names)]
    columns += [f"values.{v}" for v in _value_names(values.values(), arg_names)]
    listed = [(r, values.get(r["run_id"], {})) for r in rows]
    return _page(total, offset, columns, False, projects, listed)


def _page(
    total: int,
    offset: int,
    columns: list[str],
    complete: bool,
    projects: list[str],
    listed: list[tuple[dict[str, Any], dict[str, Any]]],
) -> dict[str, Any]:
    return {
        "total": total,
        "offset": offset,
        "columns": columns,
        "complete": complete,
        "projects": projects,
        "rows": [
            clean(
                {
                    **{k: r[k] for k in BASE_COLUMNS},
                    "started": r["started"],
                    "args": r["args"],
                    "values": {k: v for k, v in own.items() if _scalar(v)},
                }
            )
            for r, own in listed
        ],
    }


def _value_names(values: Any, arg_names: list[str]) -> list[str]:
    """The value columns: every name some run logged, args excepted."""
    return sorted({k for each in values for k in each} - set(arg_names))


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (int, float, str, bool))


# -- one run ---------------------------------------------------------------------------------


def find(project: Project, run: str) -> dict[str, Any]:
    """A run by id or unique prefix, recorded or replay."""
    from flor.store import browse

    with project.reading() as conn:
        ids = browse.run_ids_starting(conn, run)
        if len(ids) != 1:
            problem = "no run" if not ids else "several runs"
            raise NotFound(f"{problem} with id {run!r}: the runs page lists them")
        found = browse.run(conn, ids[0])
    assert found is not None
    return found


def run_detail(project: Project, run: str) -> dict[str, Any]:
    from flor.store import browse

    record = find(project, run)
    run_id = record["run_id"]
    names = _logged(project, run_id)
    project.prefetch(run_id, [n.name for n in names if n.loops])
    with project.reading() as conn:
        checkpoints = browse.checkpoints(conn, run_id)
        replays = browse.replays_of(conn, run_id)
    return clean(
        {
            "run": record,
            "version": (record["snapshot"] or "")[:10],
            "names": [asdict(n) for n in names],
            "checkpoints": checkpoints,
            "replays": replays,
            "git": _git_info(project, record),
        }
    )


def _git_info(project: Project, record: dict[str, Any]) -> dict[str, Any]:
    snapshot = record.get("snapshot")
    found: dict[str, Any] = {
        "snapshot": snapshot,
        "base_commit": record.get("base_commit"),
        "branch": record.get("branch"),
    }
    if not snapshot or project.root is None:
        return found
    found.update(project.remember(("commit", snapshot), lambda: _commit_info(project, snapshot)))
    return found


def _commit_info(project: Project, commit: str) -> dict[str, Any]:
    import git

    from flor import vcs

    assert project.root is not None
    with vcs.open_repo(project.root) as repo:
        try:
            found = repo.commit(commit)
        except (ValueError, git.BadName):
            return {"missing": True}
        base = found.parents[0] if found.parents else None
        return {
            "missing": False,
            "files": sorted(repo.git.ls_tree("-r", "--name-only", commit).splitlines()),
            "base_message": base.message.strip().splitlines()[0] if base else "",
            "base_author": str(base.author) if base else "",
            "base_date": base.committed_date if base else None,
        }


def series(project: Project, run: str, name: str, points: int = CURVE_POINTS) -> dict[str, Any]:
    from flor.store import browse

    if not 10 <= points <= 20_000:
        raise UsageError("points must be between 10 and 20000")
    run_id = find(project, run)["run_id"]

    def compute(conn: Any) -> dict[str, Any]:
        with project.reading() as loops_conn:
            found = browse.series(conn, run_id, name, points, loops_conn, dialect=project.dialect)
        return clean({"run_id": run_id, **asdict(found)})

    return project.per_run(("series", name, str(points)), run_id, compute)


def _snapshot_path(path: str) -> str:
    """A file path inside a snapshot: relative, no `..`, nothing that could leave the tree."""
    clean_path = PurePosixPath(path)
    if not path or clean_path.is_absolute() or ".." in clean_path.parts or "\\" in path:
        raise UsageError(f"{path!r} is not a file path inside the snapshot")
    return clean_path.as_posix()


def snapshot_file(project: Project, run: str, path: str | None = None) -> dict[str, Any]:
    """A file of the run's code snapshot (default: its script), highlighted if Python."""
    from flor import vcs
    from flor.ui.highlight import python_html

    record = find(project, run)
    rel = _snapshot_path(path or record["filename"])
    snapshot = record["snapshot"]
    if not snapshot or project.root is None:
        raise NotFound(f"run {record['run_id']} has no code snapshot")
    files = project.remember(("commit", snapshot), lambda: _commit_info(project, snapshot))
    text = vcs.read_file(project.root, snapshot, rel) if rel in files.get("files", ()) else None
    if text is None:
        raise NotFound(f"{rel} is not a file in the snapshot of run {record['run_id']}")
    lines = python_html(text) if rel.endswith(".py") else None
    return {"path": rel, "commit": record["snapshot"], "text": text, "html": lines}


# -- compare ---------------------------------------------------------------------------------


def compare(project: Project, runs: Sequence[str]) -> dict[str, Any]:
    """Args side by side, the names every run logged, and the code diff between snapshots,
    the runs oldest first whatever order they are named in: each diff reads forward in
    time, from the oldest run's code to each later one's."""
    if not 2 <= len(runs) <= 12:
        raise UsageError("compare 2 to 12 runs")
    records = sorted((find(project, r) for r in runs), key=operator.itemgetter("started"))
    arg_names = sorted({k for r in records for k in r["args"]})
    args = [
        {
            "name": name,
            "values": [r["args"].get(name) for r in records],
            "differs": len({repr(r["args"].get(name)) for r in records}) > 1,
        }
        for name in arg_names
    ]

    logged = [{n.name: n for n in _logged(project, r["run_id"])} for r in records]
    names = sorted({n for each in logged for n in each})
    first = records[0]
    diffs = [
        {"base": first["run_id"], "other": other["run_id"], **_code_diff(project, first, other)}
        for other in records[1:]
    ]
    return clean(
        {
            "runs": [
                {k: r[k] for k in ("run_id", "filename", "tstamp", "snapshot", "status")}
                for r in records
            ],
            "args": args,
            "names": [
                {"name": n, "loops": next(e[n].loops for e in logged if n in e)} for n in names
            ],
            "diffs": diffs,
        }
    )


def _code_diff(project: Project, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    if not a["snapshot"] or not b["snapshot"] or project.root is None:
        return {"same": False, "diff": "", "note": "a run has no code snapshot"}
    if a["snapshot"] == b["snapshot"]:
        return {"same": True, "diff": "", "note": "same code version"}
    return project.remember(
        ("diff", a["snapshot"], b["snapshot"]),
        lambda: _git_diff(project, a["snapshot"], b["snapshot"]),
    )


def _git_diff(project: Project, a: str, b: str) -> dict[str, Any]:
    import git

    from flor import vcs

    assert project.root is not None
    with vcs.open_repo(project.root) as repo:
        try:
            text = repo.git.diff(a, b, "--no-color", "--no-ext-diff", "-M")
        except git.GitCommandError as exc:
            return {"same": False, "diff": "", "note": f"git diff failed: {exc.stderr.strip()}"}
    return {"same": not text, "diff": text, "note": "" if text else "no difference in files"}


# -- SQL -------------------------------------------------------------------------------------


def sql(project: Project, text: str, limit: int = SQL_ROW_LIMIT) -> dict[str, Any]:
    """A read-only query, guarded exactly as `flor query` (by the store itself), read as
    plain rows: a first query need not wait for pandas to import. At most `limit` rows
    are shown."""
    if not text or not text.strip():
        raise UsageError("write a SELECT statement to run")
    found = open_backend(project.target).query(text)
    return {
        "columns": [str(c) for c in found.columns],
        "rows": [clean(list(row)) for row in found.rows[:limit]],
        "total": len(found.rows),
        "truncated": len(found.rows) > limit,
    }


def sql_frame(project: Project, text: str) -> Any:
    from flor.store import reader

    if not text or not text.strip():
        raise UsageError("write a SELECT statement to run")
    frame = reader.query(text, home=project.home)
    return frame.where(frame.notna(), None)


# -- versions and parameters ---------------------------------------------------------------


def versions(project: Project) -> dict[str, Any]:
    """Per script, its code versions (distinct snapshot trees) in the order first run, each
    with its runs and the change in the script since the version before."""
    rows = project.summaries() if project.exists() else []
    trees = _trees(project, [r["snapshot"] for r in rows if r["snapshot"]])
    scripts: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        found = scripts.setdefault(row["filename"], {})
        snapshot = row["snapshot"] or ""
        key = trees.get(snapshot, snapshot)
        version = found.get(key)
        if version is None:
            version = found[key] = {
                "snapshot": snapshot,
                "tree": key,
                "first": row["started"],
                "runs": [],
                "more": 0,  # runs beyond the RUNS_PER_VERSION listed
            }
        version["last"] = row["started"]
        if len(version["runs"]) < RUNS_PER_VERSION:
            version["runs"].append(
                {"run_id": row["run_id"], "status": row["status"], "args": row["args"]}
            )
        else:
            version["more"] += 1
    listed = []
    for filename, by_tree in sorted(scripts.items()):
        previous = None
        for version in by_tree.values():
            version["change"] = _change(project, filename, previous, version["snapshot"])
            previous = version["snapshot"] or previous
        listed.append({"filename": filename, "versions": list(by_tree.values())})
    return clean({"scripts": listed})


def _trees(project: Project, commits: list[str]) -> dict[str, str]:
    """The tree of each snapshot commit: runs of unchanged code share a tree, not a commit."""
    from flor import vcs

    if project.root is None:
        return {}
    unknown = sorted({c for c in commits if ("tree", c) not in project._immutable})
    if unknown:
        for commit, tree in vcs.trees(project.root, unknown).items():
            project._immutable[("tree", commit)] = tree
    return {c: project._immutable.get(("tree", c), c) for c in commits}


def _change(project: Project, filename: str, before: str | None, after: str) -> dict[str, Any]:
    if not before or not after or project.root is None:
        return {"added": 0, "removed": 0, "first": before is None}

    def count() -> dict[str, Any]:
        from flor import vcs

        assert project.root is not None
        old = vcs.read_file(project.root, before, filename) or ""
        new = vcs.read_file(project.root, after, filename) or ""
        added = removed = 0
        for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0):
            if line.startswith("+") and not line.startswith("+++"):
                added += 1
            elif line.startswith("-") and not line.startswith("---"):
                removed += 1
        return {"added": added, "removed": removed, "first": False}

    return project.remember(("change", filename, before, after), count)


def params(project: Project) -> dict[str, Any]:
    """Each run's args and last numeric values: the parameters-vs-metrics view, as columns
    (one list per name, a run per position) to stay small at 10,000 runs."""
    rows = project.summaries() if project.exists() else []
    arg_names = sorted(
        {k for r in rows for k, v in r["args"].items() if isinstance(v, (int, float, str))}
    )
    metric_names = sorted(
        {
            k
            for r in rows
            for k, v in r["values"].items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in r["args"]
        }
    )
    columns = {a: [r["args"].get(a) for r in rows] for a in arg_names}
    return clean(
        {
            "params": arg_names,
            # the parameters some runs set differently: the page shows the first by default
            "varying": [a for a in arg_names if len({repr(v) for v in columns[a]}) > 1],
            "metrics": metric_names,
            "run_ids": [r["run_id"] for r in rows],
            "versions": _version_labels(project, rows),
            "args": columns,
            "values": {
                m: [_number_or_none(r["values"].get(m)) for r in rows] for m in metric_names
            },
        }
    )


def _version_labels(project: Project, rows: list[dict[str, Any]]) -> list[str]:
    """Each run's code version, named after the first run's snapshot of the same tree."""
    trees = _trees(project, [r["snapshot"] for r in rows if r["snapshot"]])
    first: dict[str, str] = {}
    labels = []
    for row in rows:
        tree = trees.get(row["snapshot"] or "", row["snapshot"] or "")
        labels.append(first.setdefault(tree, row["version"]) if tree else "")
    return labels


def _number_or_none(value: Any) -> Any:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# -- hindsight -------------------------------------------------------------------------------


def hindsight(project: Project, script: str | None = None) -> dict[str, Any]:
    """The newest script's `flor.log` names that past runs lack, the propagation into each
    past version (placed or declined, with the diff), and the replay plan with its estimate."""
    from flor.propagate import logged_names

    if project.root is None:
        raise UsageError("hindsight needs the project's git repository: start flor ui inside it")
    rows = project.summaries() if project.exists() else []
    scripts = sorted({r["filename"] for r in rows})
    if not scripts:
        return {"scripts": [], "script": None, "names": [], "versions": [], "plan": None}
    if script is None:
        script = max(rows, key=lambda r: r["started"])["filename"]
    if script not in scripts:
        raise NotFound(f"no recorded run of {script!r}: pick one of {', '.join(scripts)}")
    rel = _snapshot_path(script)
    try:
        source = (project.root / rel).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotFound(f"cannot read the newest {rel}: {exc}") from None
    runs = [r for r in rows if r["filename"] == script]
    have = _names_logged(project, [r["run_id"] for r in runs])
    names: list[dict[str, Any]] = [
        {
            "name": name,
            "lacking": [r["run_id"] for r in runs if name not in have.get(r["run_id"], set())],
        }
        for name in logged_names(source)
    ]
    missing = [n["name"] for n in names if n["lacking"]]
    return clean(
        {
            "scripts": scripts,
            "script": script,
            "names": names,
            "versions": _propagation(project, rel) if missing else [],
            "plan": _plan(project, missing, [r["run_id"] for r in runs]) if missing else None,
        }
    )


def _names_logged(project: Project, run_ids: list[str]) -> dict[str, set[str]]:
    return {run_id: {n.name for n in _logged(project, run_id)} for run_id in run_ids}


def _logged(project: Project, run_id: str) -> list[Any]:
    from flor.store import browse

    return project.per_run(("logged",), run_id, lambda conn: browse.logged(conn, run_id))


def _propagation(project: Project, rel: str) -> list[dict[str, Any]]:
    from flor.replay.versions import propagate_history

    assert project.root is not None
    try:
        found = propagate_history(project.root / rel, store=False)
    except FlorError as exc:
        return [{"label": "", "commit": "", "error": str(exc)}]
    # runs of unchanged code are one version (one tree), however many snapshot commits
    trees = _trees(project, [v.commit for v in found])
    merged: dict[str, dict[str, Any]] = {}
    for version in found:
        key = trees.get(version.commit, version.commit)
        if key in merged:
            merged[key]["label"] += ", " + version.label
        else:
            merged[key] = asdict(version)
    return list(merged.values())


def _plan(project: Project, names: list[str], run_ids: list[str]) -> dict[str, Any]:
    from flor import replay

    try:
        found = replay.plan(names, runs=run_ids, root=project.root, home=project.home)
    except FlorError as exc:
        return {"error": str(exc), "runs": [], "tasks": 0, "estimate_s": 0}
    rows = found.table()
    return {
        "error": "",
        "names": names,
        "runs": rows,
        "tasks": sum(r["tasks"] for r in rows),
        "estimate_s": round(found.estimate_s, 1),
    }


# -- lineage ---------------------------------------------------------------------------------


def lineage(
    project: Project, target: str, direction: str = "both", depth: int | None = None
) -> dict[str, Any]:
    """`flor.graph.lineage` around TARGET (a path, PATH@latest/@DIGEST/@RUN or a run id),
    each node with its `layer`: 0 for the roots, -n n edges upstream, +n n edges downstream,
    so a page can draw the graph in columns without a layout library."""
    from flor import graph

    way = cast("graph.Direction", direction)  # checked by graph.lineage, one message
    found = graph.lineage(target, direction=way, depth=depth, home=project.home)
    answer = found.to_dict()
    layers = _layers(found)
    for node in answer["nodes"]:
        node["layer"] = layers.get(node["id"], 0)
    answer["target"] = target
    answer["depth"] = depth
    return clean(answer)


def _layers(found: Any) -> dict[str, int]:
    """Each node's signed distance from the roots, breadth first: downstream along the
    edges, upstream against them (a node reached both ways is placed downstream)."""
    ahead: dict[str, list[str]] = {}
    behind: dict[str, list[str]] = {}
    for edge in found.edges:
        ahead.setdefault(edge.source, []).append(edge.target)
        behind.setdefault(edge.target, []).append(edge.source)
    layers: dict[str, int] = {}
    for near, sign in ((behind, -1), (ahead, 1)):
        level, frontier, seen = 0, list(found.roots), set(found.roots)
        while frontier:
            for node in frontier:
                layers[node] = sign * level
            level += 1
            frontier = [n for f in frontier for n in near.get(f, []) if n not in seen]
            frontier = list(dict.fromkeys(frontier))
            seen.update(frontier)
    return layers
