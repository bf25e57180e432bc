"""The `flor` command: parse, call the library, format the output.

Library errors (`FlorError`) become one line on stderr with exit status 2 for usage
errors and 1 for failures; tracebacks only with `--debug`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flor.errors import FlorError, UsageError
from flor.propagate import MATCHERS
from flor.propagate.files import REPORTS
from flor.units import human_bytes

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("table", "csv", "json")
TREE_LINES = 1000  # `flor lineage` trees longer than this end with a count of the rest


class FlorGroup(click.Group):
    """Translates library errors once, for every command."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FlorError as exc:
            if ctx.meta.get("flor.debug"):
                raise
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM in a `stoppable` command
            signum = ctx.meta.get("flor.signal", signal.SIGINT)
            word = "Terminated" if signum == signal.SIGTERM else "Interrupted"
            click.echo(f"{word}: {exc}" if str(exc) else f"{word}.", err=True)
            ctx.exit(128 + signum)


def stoppable(command: Callable[..., Any]) -> Callable[..., Any]:
    """Ctrl-C and SIGTERM (a CI job cancelled) stop the command: the first raises
    KeyboardInterrupt where the command is, so it stops what it started and says what it
    kept; a second one exits at once. SIGTERM is handled like Ctrl-C, with status 143."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _stopped_by_signals(click.get_current_context()):
            try:
                return command(*args, **kwargs)
            except KeyboardInterrupt as exc:
                if str(exc):
                    raise
                raise KeyboardInterrupt(
                    "stopped with no task running; values stored before stay, nothing "
                    "partial was stored: run the same command again to resume"
                ) from exc

    return wrapper


@contextlib.contextmanager
def _stopped_by_signals(ctx: click.Context) -> Iterator[None]:
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (a command run from a test thread)
        return
    signals = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) != signal.SIG_IGN]

    def again(signum: int, frame: object) -> None:
        with contextlib.suppress(OSError):  # stderr closed: exit all the same
            os.write(2, b"Stopping at once (second signal); the tasks end with this process.\n")
        os._exit(128 + signum)

    def first(signum: int, frame: object) -> None:
        ctx.meta["flor.signal"] = signum
        for s in signals:
            signal.signal(s, again)
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, first) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null: a closed pipe must not fail the exit's flush too."""
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), sys.stdout.fileno())


@contextlib.contextmanager
def reader_may_leave() -> Iterator[None]:
    """Output a command can do without: a reader that left (`| head -1`) ends the output,
    not the command (a replay completes whether or not its plan table was read)."""
    try:
        yield
    except BrokenPipeError:
        _stdout_to_devnull()
    except SystemExit as exc:  # rich's table exits 1 on a broken pipe (stdout at /dev/null)
        if not isinstance(exc.__context__, BrokenPipeError):
            raise
        _stdout_to_devnull()


def output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="table for people, csv or json for scripts and CI jobs",
    )
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return command(*args, **kwargs)

    return wrapper


def emit(frame: pd.DataFrame, fmt: str, title: str | None = None) -> None:
    """Print a frame as a readable table, CSV or JSON records."""
    if fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
        return
    if fmt == "json":
        click.echo(json_records(frame))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for column in frame.columns:
        numeric = frame[column].dtype.kind in "iuf"
        table.add_column(str(column), justify="right" if numeric else "left", overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*(_cell(value) for value in row))
    console = Console(width=None if sys.stdout.isatty() else 250)
    console.print(table)
    if frame.empty:
        click.echo("(no rows)")


def json_records(frame: pd.DataFrame) -> str:
    """JSON records whose floats read back bit for bit (shortest repr), with a missing
    value or NaN as null and infinities as the strings "Infinity" and "-Infinity"."""
    import json
    import math

    def plain(value: Any) -> Any:
        if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
            try:
                value = value.item()
            except (TypeError, ValueError):
                return str(value)
        if isinstance(value, float):
            if math.isnan(value):
                return None
            if math.isinf(value):
                return "Infinity" if value > 0 else "-Infinity"
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return value

    records = [
        {str(k): plain(v) for k, v in zip(frame.columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]
    return json.dumps(records, default=str, allow_nan=False)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if value != value else f"{value:.6g}"
    text = str(value)
    return "" if text in ("<NA>", "nan") else text


@click.group(cls=FlorGroup)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="flor")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Multiversion hindsight logging: record runs, propagate new log statements into past
    versions, replay them from checkpoints, and query everything as one table."""
    ctx.meta["flor.debug"] = debug


def downstream_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--downstream-of TARGET`: only runs that consumed TARGET or anything derived from it."""
    return click.option(
        "--downstream-of",
        "downstream_of",
        metavar="TARGET",
        help="Only runs that consumed TARGET (PATH, PATH@DIGEST, PATH@RUN, RUN) or anything "
        "derived from it; see `flor lineage`.",
    )(command)


def _select_runs(
    run_ids: str | None, downstream_of: str | None, script: Path | None = None
) -> list[str] | None:
    """`--runs` and `--downstream-of` together: the runs both select (of SCRIPT, if given)."""
    chosen = _split(run_ids)
    if not downstream_of:
        return chosen
    from flor.graph import downstream_runs

    filename = None
    if script is not None:
        from flor.paths import find_repo_root

        where = script.resolve()
        root = find_repo_root(where.parent)
        filename = where.relative_to(root).as_posix() if root else where.name
    below = downstream_runs(downstream_of, filename=filename)
    if chosen:
        below = [r for r in below if any(r.startswith(p) for p in chosen)]
        if not below:
            raise UsageError(f"none of --runs {run_ids} is downstream of {downstream_of}")
    return below


@main.command()
@click.argument("names", nargs=-1)
@downstream_option
@output_options
def dataframe(names: tuple[str, ...], downstream_of: str | None, fmt: str) -> None:
    """Logged values as one table: a column per NAME, a row per run and loop coordinates.

    With no NAMES: one row per run with every value logged outside loops.
    """
    import flor

    frame = flor.dataframe(*names, downstream_of=downstream_of)
    missing = [n for n in names if n in frame.columns and frame[n].isna().all()]
    if missing:
        _check_names_logged(names, missing)
    emit(frame, fmt)
    if missing:
        click.echo(f"note: no values logged under {', '.join(missing)}", err=True)


def _check_names_logged(names: tuple[str, ...], missing: list[str]) -> None:
    """A name no run ever logged is most likely misspelt: with nothing else asked for,
    an empty table (exit 0) would let a CI job pass on a typo."""
    import difflib

    from flor.store import reads

    known = reads.logged_names()
    unknown = [n for n in missing if n not in known]
    if unknown:  # a statement in a recorded script, never replayed or declined, is no typo
        from flor.replay import asked

        unknown = [n for n in unknown if n not in asked.expected_names()]
    if not unknown or len(unknown) < len(names):
        return
    close = difflib.get_close_matches(unknown[0], known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "") or "none yet"
    raise UsageError(f"no run logged {', '.join(map(repr, unknown))}{hint}; names logged: {listed}")


@main.command()
@click.argument("sql")
@output_options
def query(sql: str, fmt: str) -> None:
    """Run a read-only SQL query over the store (tables: runs, loops, logs, checkpoints,
    commits, artifacts, events)."""
    from flor.store import reader

    emit(reader.query(sql), fmt)


WHERE_HELP = (
    "Only runs whose fields and last values match, e.g. \"acc < 0.9 and filename == 'a.py'\"."
)


RUN_COLUMNS = [
    "run_id",
    "tstamp",
    "filename",
    "status",
    "commit",
    "args",
    "duration_s",
    "checkpoints",
]


def _args_text(args: str | None) -> str:
    values = json.loads(args or "{}")
    return " ".join(f"{k}={v}" for k, v in values.items())


@main.command()
@click.option(
    "--delete",
    "delete",
    multiple=True,
    metavar="RUN",
    help="Delete this run's logs and checkpoint records (repeatable); `flor gc` "
    "then frees its checkpoint files.",
)
@click.option(
    "--drop-snapshot",
    is_flag=True,
    help="With --delete: also delete the run's code snapshot refs (refs/flor/runs/RUN*).",
)
@click.option("--replays", is_flag=True, help="Also list replay runs.")
@output_options
def runs(delete: tuple[str, ...], drop_snapshot: bool, replays: bool, fmt: str) -> None:
    """Recorded runs: id, time, script, status, commit, args, duration, checkpoint size."""
    from flor.store import admin, reader

    if drop_snapshot and not delete:
        raise UsageError("--drop-snapshot goes with --delete RUN")
    if delete:
        for run in delete:
            run_id = admin.delete_run(run)
            click.echo(f"deleted run {run_id}")
            if drop_snapshot:
                from flor import vcs
                from flor.paths import repo_root

                dropped = vcs.drop_snapshots(repo_root(), run_id)
                click.echo(
                    f"dropped {dropped} snapshot refs of run {run_id} (`git gc --prune=now` "
                    "erases their files from git's store)"
                )
        return
    frame = reader.runs(include_replays=replays)
    if frame.empty:
        emit(frame.reindex(columns=RUN_COLUMNS), fmt)
        return
    frame["commit"] = frame["snapshot"].fillna("").str[:10]
    frame["args"] = frame["args"].map(_args_text)
    if fmt == "table":
        frame["checkpoints"] = frame["checkpoint_bytes"].map(human_bytes)
    else:
        frame["checkpoints"] = frame["checkpoint_bytes"]
    emit(frame[RUN_COLUMNS], fmt)


@main.command()
@click.argument("run")
@output_options
def show(run: str, fmt: str) -> None:
    """One run in detail: its record, arguments and values logged outside loops."""
    import pandas as pd

    from flor.store import reader, reads

    record = reader.find_run(run)
    values = reads.values_outside_loops(record["run_id"])
    counts = reads.value_counts(record["run_id"])
    for key, value in list(record.items()):
        if isinstance(value, float) and value != value:
            record[key] = None  # NaN is not JSON
    for key in ("started", "ended", "heartbeat"):
        if record.get(key) is not None:
            record[key] = datetime.fromtimestamp(float(record[key])).isoformat(sep=" ")
    if fmt == "json":
        record["logged"] = dict(counts)
        click.echo(json.dumps(record, default=str))
        return
    rows = [(k, v) for k, v in record.items()]
    rows += [(f"logged {n}", f"{c} values") for n, c in counts]
    rows += [(f"value {row.name}", row.value) for row in values]
    emit(pd.DataFrame(rows, columns=["field", "value"]), fmt, title=f"run {record['run_id']}")


@main.command()
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    help="Spare files modified less than this many seconds ago.",
)
def gc(dry_run: bool, grace: float) -> None:
    """Remove checkpoint blobs and kept artifact copies no recorded run refers to (after
    `flor runs --delete`)."""
    from flor.store import admin

    found = admin.collect_garbage(dry_run=dry_run, grace=grace)
    verb = "would remove" if dry_run else "removed"
    parts = [f"{found.blobs} checkpoint blobs"]
    if found.kept_blobs:
        parts.append(f"{found.kept_blobs} kept artifact blobs")
    if found.temp_files:
        parts.append(f"{found.temp_files} stale temporary files")
    listed = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    click.echo(f"{verb} {listed} ({human_bytes(found.bytes)})")


@main.command()
@click.argument("script", required=False, type=click.Path(path_type=Path))
@click.option("--source", type=click.Path(path_type=Path), help="File form: the new version.")
@click.option("--target", type=click.Path(path_type=Path), help="File form: the old version.")
@click.option("--output", type=click.Path(path_type=Path), help="File form: where to write.")
@click.option(
    "--matcher",
    type=click.Choice(MATCHERS),
    default="tree",
    show_default=True,
    help="How the two versions' trees are matched.",
)
@click.option(
    "--report",
    type=click.Choice(REPORTS),
    default="text",
    show_default=True,
    help="File form: how to print the per-statement report.",
)
@click.option(
    "--history",
    "history_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="File form: folder of the versions between target and source, oldest first.",
)
@click.option("--since", help="Repository form: versions recorded since a date, revision or run.")
@click.option("--runs", "run_ids", help="Repository form: comma-separated run ids.")
@click.option("--dry-run", is_flag=True, help="Repository form: report only, store nothing.")
@click.option("--diff", is_flag=True, help="Repository form: show unified diffs.")
@downstream_option
@output_options
def propagate(
    script: Path | None,
    source: Path | None,
    target: Path | None,
    output: Path | None,
    matcher: str,
    report: str,
    history_dir: Path | None,
    since: str | None,
    run_ids: str | None,
    dry_run: bool,
    diff: bool,
    downstream_of: str | None,
    fmt: str,
) -> None:
    """Transplant new flor.log statements into past versions of a script.

    File form: --source NEW.py --target OLD.py --output OUT.py. Repository form: SCRIPT
    (the working-tree version) against every recorded version of it.
    """
    if source or target or output:
        if not (source and target and output) or script:
            raise UsageError("the file form needs --source, --target and --output, no SCRIPT")
        _propagate_files(source, target, output, matcher, report, history_dir)
        return
    if script is None:
        raise UsageError("name the SCRIPT to propagate from, or use --source/--target/--output")
    from flor.replay.versions import propagate_history, summary

    versions = propagate_history(
        script,
        since=since,
        runs=_select_runs(run_ids, downstream_of, script),
        matcher=matcher,
        store=not dry_run,
        progress=fmt == "table",
    )
    emit(summary(versions), fmt)
    if diff:
        for version in versions:
            if version.diff:
                click.echo(version.diff)


def _split(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def _propagate_files(
    source: Path, target: Path, output: Path, matcher: str, report: str, history: Path | None
) -> None:
    from flor.propagate import files

    result = files.propagate_files(source, target, output, matcher, history)
    out, err = files.report(result, report)
    for line in out:
        click.echo(line)
    for line in err:
        click.echo(line, err=True)
    if not result.ok:
        sys.exit(1)


@main.command()
@click.argument("names", nargs=-1)
@click.option("--since", help="Runs recorded since a date (YYYY-MM-DD), git revision or run id.")
@click.option("--runs", "run_ids", help="Comma-separated run ids (prefixes work).")
@click.option("--where", help=WHERE_HELP)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Tasks run at once.",
)
@click.option(
    "--backend",
    type=click.Choice(["loky", "threading", "dask", "ray"]),
    default="loky",
    show_default=True,
    help="joblib backend running the tasks.",
)
@click.option(
    "--scheduler",
    "--address",
    "scheduler",
    help="dask scheduler (tcp://HOST:PORT) or ray address; default: a local cluster.",
)
@click.option(
    "--verify",
    multiple=True,
    metavar="NAME",
    help="Also re-log this recorded name and report mismatches (fidelity check).",
)
@click.option("--dry-run", is_flag=True, help="Show the plan and stop.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (CI).")
@downstream_option
@output_options
@stoppable
def replay(
    names: tuple[str, ...],
    since: str | None,
    run_ids: str | None,
    where: str | None,
    jobs: int,
    backend: str,
    scheduler: str | None,
    verify: tuple[str, ...],
    dry_run: bool,
    yes: bool,
    downstream_of: str | None,
    fmt: str,
) -> None:
    """Fill in values of log statements NAMES for past runs, from their checkpoints.

    NAMES default to every flor.log statement of the newest script that some run lacks.
    """
    from flor.replay import warm

    if backend in warm.LOCAL_BACKENDS and not dry_run:
        warm.warm_up(jobs)  # the server's imports (torch, ...) overlap ours and the planning
    import pandas as pd

    from flor import replay as replays

    plan = replays.plan(
        names,
        since=since,
        runs=_select_runs(run_ids, downstream_of),
        where=where,
        jobs=jobs,
        verify=verify,
    )
    with reader_may_leave():
        emit(pd.DataFrame(plan.table()), fmt)
    if names and not dry_run:
        from flor.replay import asked

        asked.remember(plan.home, names)
    # values asked for that flor will not give (a decline, or a value no replay reproduces)
    declined = [r for r in plan.runs if r.declined]
    for run in declined:
        click.echo(f"run {run.run_id}: nothing stored, {run.declined}", err=True)
    if not plan.active:
        if declined:
            click.echo(f"nothing replayed: {len(declined)} runs declined", err=True)
            sys.exit(1)
        click.echo("nothing to replay", err=True)
        return
    tasks = sum(len(r.tasks) for r in plan.active)
    click.echo(
        f"plan: {len(plan.active)} runs, {tasks} tasks on {jobs} jobs, "
        f"estimated {plan.estimate_s:.0f} s",
        err=True,
    )
    if dry_run:
        return
    if not yes:
        # after planning, so that a bad name or selection is the error a CI job sees
        if not sys.stdin.isatty():
            raise UsageError("stdin is not a terminal: pass --yes to replay without asking")
        click.confirm("replay now?", abort=True, err=True)
    summary = replays.execute(
        plan, backend=backend, scheduler=scheduler, progress=sys.stderr.isatty()
    )
    for outcome in summary.runs:
        click.echo(outcome.line(), err=True)
    click.echo(
        f"replayed {summary.runs_replayed} runs, wrote {summary.values_written} values in "
        f"{summary.seconds:.1f} s; {len(summary.failed)} tasks failed, "
        f"{len(summary.unconfirmed)} runs not confirmed",
        err=True,
    )
    unconfirmed = {r.run_id for r in summary.unconfirmed}
    # a task that failed under a cheaper strategy and was replaced is in the run's line
    for failure in (f for f in summary.failed if f.run_id in unconfirmed):
        click.echo(
            f"task {failure.replay_id} of run {failure.run_id} failed "
            f"(exit {failure.returncode}):\n{failure.tail}",
            err=True,
        )
    if plan.verify:
        click.echo(
            f"verify: {summary.verified} values compared, {len(summary.mismatches)} mismatches",
            err=True,
        )
        for miss in summary.mismatches[:20]:
            click.echo(
                f"  run {miss.run_id} {miss.name} ctx {miss.ctx_id}: recorded "
                f"{miss.recorded!r}, replayed {miss.replayed!r}",
                err=True,
            )
    if summary.unconfirmed or summary.mismatches or declined:
        sys.exit(1)


@main.group("store")
def store_group() -> None:
    """The store's database: FLOR_STORE=postgresql://user:pass@host:port/db for a shared
    server, else the embedded SQLite file in .flor/."""


@store_group.command("migrate")
@click.option("--url", help="Store URL to migrate instead of the current store.")
def store_migrate(url: str | None) -> None:
    """Create the store's schema, or upgrade it to this flor's version."""
    from flor.store import admin

    target, before, after = admin.migrate(url)
    change = f"{before} -> {after}" if before != after else f"{after} (up to date)"
    click.echo(f"{target.kind} store {target}: schema version {change}")


@store_group.command("info")
@click.option("--url", help="Store URL to describe instead of the current store.")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table")
def store_info(url: str | None, fmt: str) -> None:
    """Backend, location (password masked), schema version and row counts."""
    from dataclasses import asdict

    from flor.store import admin

    found = admin.info(url)
    if fmt == "json":
        click.echo(json.dumps(asdict(found)))
        return
    click.echo(f"backend: {found.backend}\nlocation: {found.location}")
    click.echo(f"schema version: {found.schema_version}")
    for table, count in found.counts.items():
        click.echo(f"{table}: {count}")


@store_group.command("copy")
@click.option("--to", "to_url", required=True, help="Destination store URL.")
@click.option("--from", "from_url", help="Source store URL (default: the current store).")
def store_copy(to_url: str, from_url: str | None) -> None:
    """Copy every finished run into another store; runs already there are left alone."""
    from flor.store import admin

    report = admin.copy(to_url, from_url=from_url)
    click.echo(
        f"copied {report.copied} runs ({report.values} values) from {report.source} to "
        f"{report.destination}; {report.skipped} already there"
        + (f"; {report.running} still running, left out" if report.running else "")
    )


@main.command()
@click.argument("names", nargs=-1, required=True)
@click.option(
    "--by",
    type=click.Choice(["run", "version"]),
    default="run",
    show_default=True,
    help="One curve per run, or per code version (mean over its runs).",
)
@click.option("--where", help=WHERE_HELP)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("flor_plot.png"),
    show_default=True,
    help="PNG file to write.",
)
def plot(names: tuple[str, ...], by: str, where: str | None, output: Path) -> None:
    """Draw the curves of NAMES across runs or code versions into a PNG."""
    from flor import plot as plots

    click.echo(str(plots.plot(names, by=by, where=where, output=output)))


@main.command()
@click.argument("target")
@click.option("--upstream", is_flag=True, help="What TARGET came from (alone: only that).")
@click.option("--downstream", is_flag=True, help="What came of TARGET (alone: only that).")
@click.option(
    "--depth", type=click.IntRange(min=0), help="Follow at most this many edges from TARGET."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("table", "json", "dot")),
    default="table",
    show_default=True,
    help="table: a tree for people; json for tools; dot for Graphviz (dot -Tsvg).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=TREE_LINES,
    show_default=True,
    help="table: print at most this many lines of the tree, then how many more (0: all).",
)
def lineage(
    target: str, upstream: bool, downstream: bool, depth: int | None, fmt: str, limit: int
) -> None:
    """Which runs read and wrote TARGET, and what came of it (both ways unless one of
    --upstream and --downstream is given alone).

    TARGET is a PATH (every content recorded there), PATH@latest, PATH@DIGEST, PATH@RUN
    (the content that run read or wrote there), or a RUN id.
    """
    from flor.graph import write

    way = "both" if upstream == downstream else "upstream" if upstream else "downstream"
    write(target, sys.stdout, direction=way, depth=depth, fmt=fmt, limit=limit or None)  # type: ignore[arg-type]


@main.command()
@click.argument("target")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="Where to write it (default: the path it was recorded at, if free).",
)
def checkout(target: str, output: Path | None) -> None:
    """Bring back a file or folder recorded with keep=True: PATH (its newest content),
    PATH@DIGEST or PATH@RUN."""
    from flor.graph import checkout as restore

    click.echo(str(restore(target, output)))


@main.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=5173,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; any other than loopback requires the printed token.",
)
@click.option("--token", help="Token for a non-loopback --host (default: a random one).")
@click.option(
    "--open/--no-open", "open_browser", default=True, help="Open the browser once serving."
)
@click.option(
    "--allow-replay", is_flag=True, help="Let the Hindsight page start replays (off by default)."
)
def ui(port: int, host: str, token: str | None, open_browser: bool, allow_replay: bool) -> None:
    """Browse runs, curves, versions, code diffs and hindsight replays in a local web UI."""
    from flor.ui.server import serve

    serve(
        host,
        port,
        token=token,
        allow_replay=allow_replay,
        open_browser=open_browser,
        announce=lambda line: click.echo(line),
    )
