"""The plan's time estimate: a task's start-up is the part of its script's start the warm
server has not already paid (its imports are paid once, by the server, not by every task).

The runs are real recordings; what the server measured (`warm.Readiness`) is injected, so
no assertion depends on how fast this machine is."""

from __future__ import annotations

import heapq
import time
from pathlib import Path

import pytest
from gitutil import git

from flor.replay import plan, planner, warm

LIBRARY = "VALUE = 41\n"
SCRIPT = """\
import heavylib
import helpers
import flor

seed = flor.arg("seed", 0)
state = {"total": 0.0}
with flor.checkpointing(state=state, budget=1):
    for epoch in flor.loop("epoch", range(4)):
        for step in flor.loop("step", range(3)):
            state["total"] += helpers.step(heavylib.VALUE + seed)
        flor.log("total", state["total"])
"""
OUTER = (
    '        flor.log("total", state["total"])\n',
    '        flor.log("doubled", 2 * state["total"])\n',
)
NESTED = (
    '            state["total"] += helpers.step(heavylib.VALUE + seed)\n',
    '            flor.log("partial", state["total"])\n',
)


@pytest.fixture
def recorded(repo: Path, script, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """Three recorded runs of a script importing an installed library and a module of its
    own; the newest script has an outer and a nested statement more."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "heavylib.py").write_text(LIBRARY)
    monkeypatch.setenv("PYTHONPATH", str(site))
    (repo / "helpers.py").write_text("def step(x):\n    return x / 10\n")
    train = script("train.py", SCRIPT)
    git(repo, "add", "train.py", "helpers.py")
    git(repo, "commit", "-q", "-m", "train")
    for seed in range(3):
        train.run("--kwargs", f"seed={seed}")
    source = SCRIPT
    for anchor, line in (OUTER, NESTED):
        source = source.replace(anchor, anchor + line)
    train.path.write_text(source)
    return repo


def _plan_with(
    monkeypatch: pytest.MonkeyPatch, readiness: warm.Readiness, name: str, jobs: int
) -> planner.Plan:
    monkeypatch.setattr(warm, "readiness", lambda env: readiness)
    return plan([name], jobs=jobs)


def _makespan(first: float, costs: list[float], jobs: int) -> float:
    loads = [first] * jobs
    for cost in sorted(costs, reverse=True):
        heapq.heapreplace(loads, loads[0] + cost)
    return max(loads)


def _contexts(found: planner.Plan) -> list[planner.RunContext]:
    contexts = [r.context for r in found.active]
    assert len(contexts) == 3 and all(c is not None for c in contexts), found.table()
    return [c for c in contexts if c is not None]


@pytest.mark.parametrize(("name", "jobs"), [("doubled", 1), ("doubled", 2), ("partial", 2)])
def test_a_warm_server_that_imported_the_libraries_leaves_tasks_only_the_rest_of_the_start(
    recorded: Path, monkeypatch: pytest.MonkeyPatch, name: str, jobs: int
) -> None:
    # the server imported heavylib, which took longer than each run spent outside its loop
    ready = warm.Readiness({"heavylib": 1e6}, running=True, loaded={"heavylib"})
    found = _plan_with(monkeypatch, ready, name, jobs)
    contexts = _contexts(found)
    # the project's own module is the script's, never an installed package
    assert all(c.packages == {"heavylib"} and c.outside > 0 for c in contexts)
    assert found.import_s == 0
    # the old model charged every task the run's whole time outside its main loop again
    assert all(c.startup == planner.PROCESS_OVERHEAD_S for c in contexts)
    costs = [e for r in found.active for e in r.estimates]
    assert found.estimate_s == pytest.approx(_makespan(0.0, costs, jobs))
    assert found.estimate_s < sum(c.outside for c in contexts) + sum(
        sum(c.timings) for c in contexts
    )


def test_a_task_still_pays_the_part_of_its_start_that_is_not_imports(
    recorded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    measured = warm.Readiness(seconds={"heavylib": 0.0})
    outside = {c.outside for c in _contexts(_plan_with(monkeypatch, measured, "doubled", 1))}
    imports = min(outside) / 4  # what the server measured: a quarter of the shortest start
    ready = warm.Readiness({"heavylib": imports}, running=True, loaded={"heavylib"})
    contexts = _contexts(_plan_with(monkeypatch, ready, "doubled", 1))
    for context in contexts:
        expected = context.outside - imports + planner.PROCESS_OVERHEAD_S
        assert context.startup == pytest.approx(expected)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_server_yet_to_import_pays_it_once_before_the_first_task(
    recorded: Path, monkeypatch: pytest.MonkeyPatch, jobs: int
) -> None:
    # no server runs; some server measured heavylib's import (and a library no task uses)
    cold = warm.Readiness({"heavylib": 7.0, "heavylib.extra": 2.0, "numpy": 5.0})
    found = _plan_with(monkeypatch, cold, "doubled", jobs)
    assert found.import_s == 9.0  # heavylib and its submodule, not numpy, and only once
    costs = [e for r in found.active for e in r.estimates]
    assert found.estimate_s == pytest.approx(_makespan(9.0, costs, jobs))
    # the last server had imported numpy too: a new one imports it first, as it did
    queued = warm.Readiness(cold.seconds, queued={"heavylib", "numpy"})
    assert _plan_with(monkeypatch, queued, "doubled", jobs).import_s == 14.0
    # a server importing them now has paid part of it already (an injected clock)
    importing = warm.Readiness(
        cold.seconds, running=True, importing={"heavylib", "heavylib.extra"}, importing_since=0.0
    )
    assert importing.imports({"heavylib"}, now=4.0)[1] == 5.0
    assert importing.imports({"heavylib"}, now=100.0)[1] == 0.0
    # a running server that has the library loaded forks at once
    loaded = warm.Readiness(cold.seconds, running=True, loaded={"heavylib", "heavylib.extra"})
    assert _plan_with(monkeypatch, loaded, "doubled", jobs).import_s == 0.0


def test_imports_never_measured_count_as_the_records_time_outside_its_loop_once(
    recorded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the first replay in this environment: nothing says what the imports cost
    found = _plan_with(monkeypatch, warm.Readiness(), "doubled", 1)
    contexts = _contexts(found)
    assert found.import_s == max(c.outside for c in contexts)
    assert all(c.startup == planner.PROCESS_OVERHEAD_S for c in contexts)
    costs = [e for r in found.active for e in r.estimates]
    assert found.estimate_s == pytest.approx(found.import_s + sum(costs))
    # the replay's server has been importing them for a while (an injected clock: a start
    # far in the past or in the future) while the replay planned
    for since, left in ((time.time() - 1e6, 0.0), (time.time() + 1e6, found.import_s)):
        importing = warm.Readiness(running=True, importing={"heavylib"}, importing_since=since)
        assert _plan_with(monkeypatch, importing, "doubled", 1).import_s == left


def test_an_environment_without_a_shared_server_has_nothing_measured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("FLOR_WARM_IDLE_S", "0")  # each replay has a server of its own
    assert warm.readiness(warm.local_environment(1)) == warm.Readiness()


def test_the_estimate_is_fixed_when_the_plan_is_made(
    recorded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the server has just begun importing (an injected clock: it began in the future)
    since = time.time() + 1e6
    importing = warm.Readiness(
        {"heavylib": 100.0}, running=True, importing={"heavylib"}, importing_since=since
    )
    found = _plan_with(monkeypatch, importing, "doubled", 2)
    before = (found.import_s, found.estimate_s)
    assert before[0] == 100
    # later (an injected clock: the server has long finished), the plan says the same:
    # the benchmark read it after the replay, when the import had been credited away
    monkeypatch.setattr(warm.Readiness, "spent", lambda self, now=None: 1e6)
    assert (found.import_s, found.estimate_s) == before
