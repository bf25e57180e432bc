"""What a replay will run: runs selected, statements propagated, tasks and time estimates.

Planning reads git and the store but writes nothing, so `--dry-run` is free of effects.
"""

from __future__ import annotations

import heapq
import json
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flor import vcs
from flor.blobs import BlobStore
from flor.errors import FlorError, ReplayError, UsageError
from flor.paths import checkpoint_home, home_dir, repo_root
from flor.propagate import Declined, propagate_source
from flor.propagate import logged_names as names_logged_in
from flor.replay import inputs, warm
from flor.replay.classify import NESTED, OUTER, PREFIX, SUFFIX, classify
from flor.replay.hazards import (
    ProjectModule,
    project_modules,
    unreproducible,
    unreproducible_reads,
    volatile,
)
from flor.store import reader, reads
from flor.taskspec import TaskSpec
from flor.where import compile_where, last_values, select_runs

if TYPE_CHECKING:
    pass

# A task's own start-up beyond its script's: a fork of the warm server, a copy of the
# snapshot, the replay session, the values handed back and checked.
PROCESS_OVERHEAD_S = 0.15
# Parameter gradients live outside every state_dict: a restored checkpoint has none.
_READS_GRADIENTS = re.compile(r"\.grad\b|clip_grad|grad_norm|\.backward\(|autograd")
FULL = "full"
PROBE_ITERATIONS = 2
PROBE_SHARE = 0.2
# From cheapest to strictest: a run the guard does not confirm is re-planned as `full`.
STRICTER = {OUTER: FULL, NESTED: FULL, SUFFIX: FULL, PREFIX: FULL}


@dataclass
class RunContext:
    """A replayable run's recorded shape, from which its tasks are (re)built."""

    projid: str
    args: dict[str, Any]
    names: list[str]  # requested and verified names the tasks log
    main_loop: str | None
    timings: list[float]  # seconds of each main-loop iteration to replay
    checkpoints: dict[int, dict[str, str]]  # iteration -> object -> blob digest
    ckpt_seconds: float
    # a task's start-up: the run's time outside its main loop (data loading, building the
    # model) except the imports its warm server pays once for every task
    startup: float
    jobs: int
    run_count: int
    # what the script imports from outside its project, and how long the record spent
    # outside its main loop (the imports' time when nothing measured them)
    packages: set[str] = field(default_factory=set)
    outside: float = 0.0
    # whether a task may start mid-run (not when the main loop iterates a wrapper of
    # flor.loop, e.g. enumerate: the wrapper would count from the task's first iteration)
    resumable: bool = True


# What a user can do about a run whose statements were not placed in its version.
_PLACE_IT_YOURSELF = (
    "write the statement into that version yourself (`flor propagate --dry-run` shows why "
    "it was not placed) or leave the run out (--runs, --since, --where)"
)
_PUT_INPUT_BACK = (
    "put back the content the run read (`flor checkout PATH@DIGEST` when it was declared "
    "with keep=True) or leave the run out (--runs, --since, --where)"
)


class _Skip(Exception):
    """The run is not replayed for the names asked: the plan's note says why. `fix`, when
    set, means the user asked for values flor could not give (a decline), and what to do."""

    def __init__(self, reason: str, *, fix: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


@dataclass(frozen=True)
class _Selection:
    """What planning every run shares: where, which scripts, what the store holds."""

    root: Path
    home: Path
    scripts: dict[str, str]
    logged: dict[str, set[str]]
    names: list[str]
    verify: list[str]
    jobs: int
    run_count: int
    stored_blobs: set[str]
    present: dict[str, set[str]]
    recorded: dict[str, set[str]]
    environment: dict[str, str]  # the local warm server's
    warmth: warm.Readiness
    input_check: inputs.InputCheck


@dataclass
class RunPlan:
    run_id: str
    filename: str
    snapshot: str | None
    tstamp: str
    names: list[str]
    strategy: str = "skip"
    reason: str = ""
    patched: str = ""
    argv: list[str] = field(default_factory=list)
    cwd: str | None = None
    iterations: int = 0
    checkpointed: int = 0
    tasks: list[TaskSpec] = field(default_factory=list)
    estimates: list[float] = field(default_factory=list)
    # names the run recorded that its tasks re-derive and the guard compares
    check: list[str] = field(default_factory=list)
    # why the planner chose a stricter strategy than the statements' places allow
    fallback: str = ""
    # values were asked for and flor declined to give them: what the user can do
    fix: str = ""
    finished: bool = True
    # what task building needs (set once the run is found replayable)
    context: RunContext | None = field(default=None, repr=False)

    @property
    def estimate_s(self) -> float:
        return sum(self.estimates)

    @property
    def declined(self) -> str:
        """Why values asked for will not be given, and what to do, or "" when they will be
        (or exist already, or never existed: a suffix the run never reached)."""
        return f"{self.reason}; {self.fix}" if self.fix else ""


@dataclass
class Plan:
    names: list[str]
    verify: list[str]
    runs: list[RunPlan]
    jobs: int
    home: Path
    root: Path
    # what the warm server had yet to import when the plan was made (`_import_seconds`)
    import_s: float = 0.0

    @property
    def active(self) -> list[RunPlan]:
        return [r for r in self.runs if r.tasks]

    @property
    def estimate_s(self) -> float:
        """The server's remaining imports, then the makespan of the tasks on `jobs`
        workers, longest first."""
        if not self.active:
            return 0.0
        loads = [self.import_s] * max(1, self.jobs)
        for cost in sorted((c for r in self.active for c in r.estimates), reverse=True):
            heapq.heapreplace(loads, loads[0] + cost)
        return max(loads)

    def table(self) -> list[dict[str, Any]]:
        return [
            {
                "run_id": r.run_id,
                "filename": r.filename,
                "version": (r.snapshot or "")[:10],
                "strategy": r.strategy,
                "names": ",".join(r.names),
                "iterations": r.iterations,
                "checkpoints": r.checkpointed,
                "tasks": len(r.tasks),
                "estimate_s": round(r.estimate_s, 1),
                "note": "; ".join(x for x in (r.declined or r.reason, r.fallback) if x),
            }
            for r in self.runs
        ]


# -- selecting runs --------------------------------------------------------------------------


# -- planning --------------------------------------------------------------------------------


def plan(
    names: Sequence[str] = (),
    *,
    since: str | None = None,
    runs: Sequence[str] | None = None,
    where: str | None = None,
    jobs: int = 1,
    verify: Sequence[str] = (),
    root: Path | None = None,
    home: Path | None = None,
) -> Plan:
    root = root or repo_root()
    home = home or home_dir(root)
    recorded = reader.runs(home)
    if recorded.empty:
        raise UsageError("no recorded runs in this store: record a run first")
    recorded = recorded[recorded["status"] != "running"]
    scripts: dict[str, str] = {}
    for filename in sorted(set(recorded["filename"])):
        source = _working_source(root, filename)
        if source is not None:
            scripts[filename] = source
    logged = {f: set(names_logged_in(src)) for f, src in scripts.items()}
    all_logged = set().union(*logged.values()) if logged else set()
    for name in [*names, *verify]:
        if name not in all_logged:
            where_ = ", ".join(sorted(scripts)) or "none found"
            raise UsageError(
                f"no script logs {name!r}: add flor.log({name!r}, ...) to the newest version "
                f"first (scripts: {where_})"
            )
    selected = recorded[recorded["snapshot"].notna() | recorded["filename"].isin(scripts)]
    selected = select_runs(selected, root, runs, since)
    if where:
        check, where_names = compile_where(where)
        values = last_values(where_names)
        selected = selected[[check(values.get(r, {})) for r in selected["run_id"]]]
    if selected.empty:
        raise UsageError("no recorded runs match the selection: `flor runs` lists them")
    run_ids = list(selected["run_id"])
    environment = warm.local_environment(jobs)
    shared = _Selection(
        root=root,
        home=home,
        scripts=scripts,
        logged=logged,
        names=list(names),
        verify=list(verify),
        jobs=jobs,
        run_count=len(selected),
        # one listing of the checkpoint home (a folder or a bucket), not a request per blob
        stored_blobs=BlobStore(checkpoint_home(home)).digests(),
        present=_names_present(run_ids),
        recorded=_names_present(run_ids, recorded_only=True),
        environment=environment,
        warmth=warm.readiness(environment),
        input_check=inputs.InputCheck(root, home),
    )
    rows: list[dict[str, Any]] = selected.to_dict("records")  # type: ignore[assignment]
    with shared.input_check:
        run_plans = [_plan_run(row, shared) for row in rows]
    found = Plan(list(names), list(verify), run_plans, jobs, home, root)
    found.import_s = _import_seconds(found.active, shared.warmth)
    return found


def _import_seconds(active: list[RunPlan], warmth: warm.Readiness) -> float:
    """What the warm server has yet to import before it forks the first task, now: the
    measured imports of the tasks' scripts it has not done (those it is doing now, less the
    time spent so far); a script's imports never measured count as the record's time
    outside its main loop, less what the server has spent importing them so far. Fixed
    when the plan is made: the estimate is of the replay that follows it."""
    contexts = [r.context for r in active if r.context is not None]
    packages = set().union(*(c.packages for c in contexts))
    _, remaining, unknown = warmth.imports(packages)
    unmeasured = max((c.outside for c in contexts if c.packages & unknown), default=0.0)
    started = {m.partition(".")[0] for m in warmth.importing} & unknown
    return remaining + max(0.0, unmeasured - (warmth.spent() if started else 0.0))


def _working_source(root: Path, filename: str) -> str | None:
    path = root / filename
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _names_present(run_ids: list[str], *, recorded_only: bool = False) -> dict[str, set[str]]:
    return reads.names_present(run_ids, recorded_only=recorded_only)


def _plan_run(row: dict[str, Any], shared: _Selection) -> RunPlan:
    """One run's plan: its strategy and tasks, or the reason it is skipped."""
    logged = shared.logged.get(row["filename"], set())
    wanted = shared.names or sorted(logged - shared.present.get(row["run_id"], set()))
    run_plan = RunPlan(
        row["run_id"],
        row["filename"],
        row["snapshot"],
        row["tstamp"],
        [n for n in wanted if n in logged],
        argv=json.loads(row["argv"] or "[]"),
        cwd=row.get("cwd"),
        finished=row.get("status") == "finished",
    )
    names = run_plan.names + [v for v in shared.verify if v in logged and v not in run_plan.names]
    try:
        run_plan.patched = _patched_version(run_plan, names, shared)
        assert run_plan.snapshot is not None  # _patched_version skips a run without one
        if why := shared.input_check.changed(run_plan.run_id, run_plan.snapshot):
            raise _Skip(f"cannot be reproduced: {why}", fix=_PUT_INPUT_BACK)
        local = _local_modules(shared.root, run_plan.snapshot, run_plan.filename, run_plan.patched)
        project = _project_modules(shared.root, run_plan.snapshot, run_plan.filename, local)
        placement = _placement(run_plan, names, local, project)
        context, lost = _run_context(run_plan, row, names, placement, local, shared)
    except _Skip as skip:
        run_plan.reason, run_plan.fix = skip.reason, skip.fix
        return run_plan
    args = context.args
    run_plan.check = _check_names(run_plan.patched, shared.recorded.get(run_plan.run_id, set()),
                                  set(names), args)  # fmt: skip
    if lost:
        run_plan.reason = (
            f"{lost} checkpoints missing from the store: re-executing from earlier ones"
        )
    run_plan.iterations = len(context.timings)
    run_plan.checkpointed = len(context.checkpoints)
    run_plan.context = context
    strategy, run_plan.fallback = _safe_strategy(
        placement, names, context.checkpoints, len(context.timings)
    )
    make_tasks(run_plan, strategy)
    return run_plan


def _patched_version(run_plan: RunPlan, names: list[str], shared: _Selection) -> str:
    """The run's version of the script with the new statements propagated into it."""
    if not names:
        logged = shared.logged.get(run_plan.filename, set())
        if shared.names and not logged.intersection(shared.names):
            asked = ", ".join(shared.names)
            raise _Skip(f"nothing to replay: {run_plan.filename} logs none of {asked}")
        raise _Skip("nothing to replay: it has values for every name")
    if not run_plan.snapshot:
        raise _Skip(
            "no code snapshot (recorded outside git)",
            fix="record runs inside a git repository to replay them; leave this one out",
        )
    new_source = shared.scripts.get(run_plan.filename)
    old_source = vcs.read_file(shared.root, run_plan.snapshot, run_plan.filename)
    if new_source is None or old_source is None:
        raise _Skip(
            f"{run_plan.filename} is missing from its snapshot or the work tree",
            fix=f"restore {run_plan.filename} in the working tree, or leave the run out",
        )
    try:
        result = propagate_source(new_source, old_source)
    except FlorError as exc:
        raise _Skip(f"propagate failed: {exc}", fix=_PLACE_IT_YOURSELF) from None
    declined = [
        o
        for o in result.outcomes
        if isinstance(o, Declined) and _statement_name(o.statement) in names
    ]
    if declined:
        raise _Skip(
            "declined: " + "; ".join(f"{o.statement}: {o.reason}" for o in declined),
            fix=_PLACE_IT_YOURSELF,
        )
    return result.source if result.ok else old_source


def _placement(
    run_plan: RunPlan, names: list[str], local: set[str], project: dict[str, Any]
) -> Any:
    """Where each statement sits in the patched version, refusing statements that are not
    there or whose value no replay can reproduce."""
    placement = classify(run_plan.patched, names, local, project)
    absent = [n for n in names if n not in placement.places]
    if absent:
        raise _Skip(
            f"{', '.join(absent)} could not be placed in this version", fix=_PLACE_IT_YOURSELF
        )
    tainted_reads = unreproducible_reads(run_plan.patched)
    for name in run_plan.names:
        texts = [*placement.statements.get(name, []), *placement.helpers.get(name, [])]
        source = next(filter(None, map(unreproducible, texts)), None)
        if source is None and (tainted := tainted_reads(texts)):
            variable, what = tainted
            source = what if variable is None else f"{variable}, computed from {what}"
        if source is not None:
            why = f"cannot be reproduced: {name} reads {source}"
            raise _Skip(why, fix="log it while recording")
    return placement


def _run_context(
    run_plan: RunPlan,
    row: dict[str, Any],
    names: list[str],
    placement: Any,
    local: set[str],
    shared: _Selection,
) -> tuple[RunContext, int]:
    """The recorded shape the tasks replay, and how many checkpoints are gone."""
    recorded = _recorded_loop(run_plan.run_id, placement.main_loop)
    timings, completed, checkpoints, ckpt_seconds = recorded
    if not run_plan.finished:
        # the last, interrupted iteration and the suffix never completed in the record
        timings = timings[:completed]
        if placement.places and all(p == {SUFFIX} for p in placement.places.values()):
            raise _Skip(
                f"the run {row.get('status')} inside its main loop, so statements after "
                "the loop never ran"
            )
    lost = _drop_missing(checkpoints, shared.stored_blobs)
    outside = max(0.0, float(row.get("duration_s") or 0.0) - sum(timings))
    packages = set(warm.external_imports(run_plan.patched, local))
    warm.preload_early(shared.environment, packages)
    context = RunContext(
        projid=str(row["projid"]),
        args=json.loads(row["args"] or "{}"),
        names=names,
        main_loop=placement.main_loop,
        timings=timings,
        checkpoints=checkpoints,
        ckpt_seconds=ckpt_seconds,
        startup=_startup(
            outside,
            packages,
            shared.warmth.startups.get(script_key(str(row["projid"]), run_plan.filename)),
            shared.warmth,
        ),
        jobs=shared.jobs,
        run_count=shared.run_count,
        packages=packages,
        outside=outside,
        resumable=not placement.main_wrapped,
    )
    return context, lost


def _startup(
    outside: float, packages: set[str], measured: float | None, warmth: warm.Readiness
) -> float:
    """A task's start-up: the script's own, as measured in the last replay of it (from its
    fork off the warm server to its first replayed iteration), else the record's time
    outside its main loop less the imports, which a warm server pays once for all tasks
    (`Plan.import_s`; imports never measured are taken to be all of that time)."""
    if measured is not None:
        return measured + PROCESS_OVERHEAD_S
    imports, _, unknown = warmth.imports(packages)
    own = 0.0 if unknown else max(0.0, outside - imports)
    return own + PROCESS_OVERHEAD_S


def script_key(projid: str, filename: str) -> str:
    """A script's name among the measured start-ups (`warm.remember_startups`)."""
    return f"{projid}:{filename}"


def _safe_strategy(
    placement: Any, names: list[str], checkpoints: dict[int, Any], total: int
) -> tuple[str, str]:
    """The cheapest strategy whose skipped work cannot change what the statements read,
    and why a cheaper one was refused."""
    strategy = placement.strategy
    if strategy == PREFIX:
        return PREFIX, ""
    hazards = placement.hazards
    why = hazards.why_not_restore()
    # a statement in a nested loop reads the gradients its own steps computed (the guard
    # compares the record if they carry over); elsewhere it reads the previous iteration's
    outside = [
        t for n in names if placement.places.get(n, set()) - {NESTED}
        for t in [*placement.statements.get(n, []), *placement.helpers.get(n, [])]
    ]  # fmt: skip
    if why is None and any(_READS_GRADIENTS.search(t) for t in outside):
        why = "a statement outside the nested loops reads gradients, which no checkpoint holds"
    if strategy == SUFFIX:
        if why is None and hazards.breaks:
            why = "the main loop may stop early (break)"
        if why is None and hazards.suffix_reads & hazards.loop_writes:
            names_ = ", ".join(sorted(hazards.suffix_reads & hazards.loop_writes)[:4])
            why = f"statements after the loop read what the loop assigns ({names_})"
        if why is None and total not in checkpoints:
            why = "no checkpoint at the end of the main loop"
    skips_effects = placement.outer_after_nested and hazards.after_nested_effects
    if strategy == OUTER and why is None and skips_effects:
        why = "code after a nested loop changes state the skipped loop's checkpoint holds"
        return NESTED, f"replays whole iterations: {why}"
    if why is None:
        return strategy, ""
    return FULL, f"re-executes from the start: {why}"


def make_tasks(run_plan: RunPlan, strategy: str, because: str = "") -> None:
    """(Re)build a planned run's tasks for `strategy` (the guard's fallback calls it too)."""
    assert run_plan.context is not None
    if because:
        run_plan.fallback = f"{run_plan.strategy} -> {strategy}: {because}"
    if strategy not in (PREFIX, FULL) and not run_plan.context.timings:
        strategy = FULL  # no recorded iterations: nothing to restore, run it all
    run_plan.strategy = strategy
    builder = _TaskBuilder(run_plan, run_plan.context, uuid.uuid4().hex[:12])
    tasks = builder.tasks(strategy)
    run_plan.tasks = [t for t, _ in tasks]
    run_plan.estimates = [e for _, e in tasks]


@dataclass
class _TaskBuilder:
    """The tasks of one strategy, each with its estimated seconds."""

    run: RunPlan
    ctx: RunContext
    replay_id: str

    def spec(self, index: int, mode: str, start: int = 0, stop: int = 0, **flags: bool) -> TaskSpec:
        spec = TaskSpec(
            run_id=self.run.run_id,
            replay_id=f"{self.replay_id}-{index}",
            names=self.ctx.names,
            tstamp=self.run.tstamp,
            projid=self.ctx.projid,
            filename=self.run.filename,
            mode=mode,
            main_loop=self.ctx.main_loop,
            start=start,
            stop=stop,
            total=len(self.ctx.timings),
            args=self.ctx.args,
            checkpoints=self.ctx.checkpoints,
            check=self.run.check,
        )
        for flag, value in flags.items():
            setattr(spec, flag, value)
        return spec

    def tasks(self, strategy: str) -> list[tuple[TaskSpec, float]]:
        timings, startup = self.ctx.timings, self.ctx.startup
        if strategy == PREFIX:
            return [(self.spec(0, "prefix", log_prefix=True), startup)]
        if strategy == SUFFIX:
            resume = max((k for k in self.ctx.checkpoints if k <= len(timings)), default=0)
            cost = startup + sum(timings[resume:]) + self.ctx.ckpt_seconds
            return [(self.spec(0, "suffix", log_suffix=True), cost)]
        if strategy == FULL:
            everything = self.spec(
                0, "iterations", 0, len(timings), log_prefix=True, log_suffix=self.run.finished
            )
            return [(everything, startup + sum(timings))]
        return self.ranges(skip_nested=strategy == OUTER)

    def ranges(self, *, skip_nested: bool) -> list[tuple[TaskSpec, float]]:
        """Iteration ranges from checkpoints (`outer` skips nested loops; `nested` runs
        whole iterations), plus the guard's probe for `outer`."""
        timings, checkpoints = self.ctx.timings, self.ctx.checkpoints
        startup, ckpt_seconds = self.ctx.startup, self.ctx.ckpt_seconds
        tasks: list[tuple[TaskSpec, float]] = []
        if skip_nested and len(timings) >= PROBE_ITERATIONS / PROBE_SHARE:
            # the guard's probe: the first iterations re-executed in full must give the
            # values the cheap strategy gives them (only where that costs a small share)
            probe = self.spec(0, "iterations", 0, PROBE_ITERATIONS, probe=True)
            tasks.append((probe, startup + sum(timings[:PROBE_ITERATIONS])))
        # skipping a nested loop restores the next checkpoint instead: reading and loading
        # it costs about what recording it did (benchmarks/replay.py)
        per_iteration = [
            (ckpt_seconds if skip_nested and (i + 1) in checkpoints else t)
            for i, t in enumerate(timings)
        ]
        # Every task pays the start-up (data loading, building the model) again: split a
        # run only into pieces that are each worth more than that.
        worth = max(1, int(sum(per_iteration) / max(startup, 1e-3)))
        chunks = min(_chunks_per_run(self.ctx.run_count, self.ctx.jobs), worth)
        if not self.ctx.resumable:
            chunks = 1
        bounds = _split(per_iteration, set(checkpoints), chunks)
        for index, (start, stop) in enumerate(bounds):
            resume = max((k for k in checkpoints if k <= start), default=0)
            spec = self.spec(
                len(tasks),
                "iterations",
                start,
                stop,
                log_prefix=index == 0,
                log_suffix=self.run.finished and index == len(bounds) - 1,
                skip_nested=skip_nested,
            )
            catch_up = sum(timings[resume:start])
            tasks.append((spec, startup + catch_up + ckpt_seconds + sum(per_iteration[start:stop])))
        return tasks


_IMPORTED = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", re.MULTILINE)


def _local_modules(root: Path, snapshot: str, filename: str, source: str) -> set[str]:
    """The modules the script imports from the project itself (next to it, or at the
    repository's top), as recorded in the run's snapshot."""
    imported = set(_IMPORTED.findall(source)) - {"flor", "__future__"}
    if not imported:
        return set()
    listed = vcs.entries(root, snapshot, {Path(filename).parent.as_posix(), "."})
    return {name for name in imported if name in listed or f"{name}.py" in listed}


def _project_modules(
    root: Path, snapshot: str, filename: str, local: set[str]
) -> dict[str, ProjectModule | None]:
    """The analysis of each project module the script imports, read from the run's snapshot
    (beside the script first, as `python SCRIPT` finds it); a package is not analysed."""
    folder = Path(filename).parent
    sources: dict[str, str | None] = {}
    for name in sorted(local):
        candidates = [(folder / f"{name}.py").as_posix(), f"{name}.py"]
        texts = (vcs.read_file(root, snapshot, c) for c in dict.fromkeys(candidates))
        sources[name] = next((t for t in texts if t is not None), None)
    return project_modules(sources)


def _check_names(
    source: str, recorded: set[str], hindsight: set[str], args: dict[str, Any]
) -> list[str]:
    """Recorded names this version logs deterministically: the guard re-derives them."""
    candidates = sorted(recorded - hindsight - set(args))
    if not candidates:
        return []
    statements = classify(source, candidates).statements
    return [
        n for n in candidates if statements.get(n) and not any(volatile(t) for t in statements[n])
    ]


def _drop_missing(checkpoints: dict[int, dict[str, str]], stored: set[str]) -> int:
    """Forget checkpoints whose blobs are gone (deleted, not copied); returns how many."""
    missing = [it for it, parts in checkpoints.items() if not stored.issuperset(parts.values())]
    for iteration in missing:
        del checkpoints[iteration]
    return len(missing)


def _statement_name(statement: str) -> str | None:
    names = names_logged_in(statement) if "flor.log" in statement else []
    return names[0] if names else None


def _chunks_per_run(run_count: int, jobs: int) -> int:
    """Cut runs so the task count fills every job equally (3 runs on 2 jobs: halves), unless
    there are so many runs that whole runs already balance well."""
    if run_count >= 4 * jobs:
        return 1
    return jobs // math.gcd(run_count, jobs)


def _split(costs: list[float], checkpoints: set[int], chunks: int) -> list[tuple[int, int]]:
    """Cut [0, n) into about `chunks` ranges of similar cost, only where a checkpoint exists."""
    n = len(costs)
    if chunks <= 1 or n <= 1:
        return [(0, n)]
    target = sum(costs) / chunks
    bounds: list[tuple[int, int]] = []
    start, acc = 0, 0.0
    for i, cost in enumerate(costs):
        acc += cost
        cut = i + 1
        if acc >= target and cut < n and cut in checkpoints and len(bounds) < chunks - 1:
            bounds.append((start, cut))
            start, acc = cut, 0.0
    bounds.append((start, n))
    return bounds


def _recorded_loop(
    run_id: str, main_loop: str | None
) -> tuple[list[float], int, dict[int, dict[str, str]], float]:
    """Per-iteration seconds of the main loop, how many iterations completed (an
    interrupted run's last one has no time), its checkpoints, and a checkpoint's cost."""
    loops = reads.top_level_iterations(run_id)
    main_loop = main_loop if main_loop is not None or not loops else loops[0].name
    mine = [loop for loop in loops if loop.name == main_loop]
    timings = [loop.seconds or 0.0 for loop in mine]
    completed = sum(loop.seconds is not None for loop in mine)
    rows = reads.checkpoints(run_id)
    checkpoints: dict[int, dict[str, str]] = {}
    first_seconds: dict[int, float] = {}
    for row in rows:
        checkpoints.setdefault(row.iteration, {})[row.object] = row.digest
        first_seconds.setdefault(row.iteration, row.seconds)
    seconds = sum(first_seconds.values()) / len(first_seconds) if rows else 0.0
    if rows and not checkpoints:
        raise ReplayError(f"run {run_id} has unreadable checkpoint rows")
    return timings, completed, checkpoints, seconds
