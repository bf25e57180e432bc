"""Replay never stores a wrong value: each defect of issue 17 through real recorded runs,
compared with a from-scratch run of that version with the statement written in."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from gitutil import git

import flor
from flor.cli import main
from flor.replay import execute, plan
from flor.replay.planner import make_tasks

# A checkpointed dict holds the learning rate, halved after the step loop.
HALVING = """\
import numpy as np
import flor

np.random.seed(flor.arg("seed", 0))
lr0 = flor.arg("lr", 0.1)
X = np.random.randn(100, 3)
y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * np.random.randn(100)
w = np.zeros(3)
opt = {"lr": lr0}
with flor.checkpointing(weights=w, opt=opt):
    for epoch in flor.loop("epoch", range(5)):
        for step in flor.loop("step", range(4)):
            batch = np.random.randint(0, 100, 20)
            grad = 2 * X[batch].T @ (X[batch] @ w - y[batch]) / 20
            w -= opt["lr"] * grad
            flor.log("loss", float(np.mean((X[batch] @ w - y[batch]) ** 2)))
        opt["lr"] *= 0.5
        flor.log("err", float(np.abs(w).sum()))
"""

# Loop-carried state in plain variables, none of it checkpointed.
CARRIED = """\
import numpy as np
import flor

np.random.seed(flor.arg("seed", 0))
X = np.random.randn(100, 3)
y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 * np.random.randn(100)
w = np.zeros(3)
history = []
ema = {"w": np.zeros(3)}
best = float("inf")
seen = 0


def count(n):
    global seen
    seen += n


with flor.checkpointing(weights=w):
    for epoch in flor.loop("epoch", range(5)):
        for step in flor.loop("step", range(4)):
            batch = np.random.randint(0, 100, 20)
            grad = 2 * X[batch].T @ (X[batch] @ w - y[batch]) / 20
            w -= 0.05 * grad
            count(len(batch))
        ema["w"] = 0.5 * ema["w"] + 0.5 * w
        err = float(np.mean((X @ w - y) ** 2))
        history.append(err)
        if (gap := best - err) > 0:
            best = err
        flor.log("err", err)
flor.log("final", float(w.sum()))
"""

CARRIED_STATEMENTS = {
    "ema_norm": (
        "        history.append(err)\n",
        'flor.log("ema_norm", float(np.abs(ema["w"]).sum()))',
    ),
    "seen_at_start": (
        '    for epoch in flor.loop("epoch", range(5)):\n',
        'flor.log("seen_at_start", seen)',
    ),
    "best_so_far": ('        flor.log("err", err)\n', 'flor.log("best_so_far", best)'),
    "gap": ('        flor.log("err", err)\n', 'flor.log("gap", gap)'),
    "history_min": ('flor.log("final", float(w.sum()))\n', 'flor.log("history_min", min(history))'),
}


def insert(source: str, anchor: str, statement: str) -> str:
    assert source.count(anchor) == 1, anchor
    line = anchor.rstrip("\n")
    indent = line[: len(line) - len(line.lstrip())]
    if line.rstrip().endswith(":"):
        indent += "    "
    return source.replace(anchor, anchor + indent + statement + "\n")


def record(script, monkeypatch, source: str, *kwargs: str, budget: str = "1"):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FLOR_CKPT_BUDGET", budget)
    train = script("train.py", source)
    git(train.repo, "add", "train.py")
    git(train.repo, "commit", "-q", "-m", "v1")
    for args in kwargs or ("",):
        train.run(*(["--kwargs", *args.split()] if args else []))
    monkeypatch.delenv("FLOR_CKPT_BUDGET")
    return train


def values(name: str, run_id: str) -> list[object]:
    frame = flor.dataframe(name)
    return frame[frame["runid"] == run_id][name].dropna().tolist()


def recorded_ids() -> list[str]:
    frame = flor.query("SELECT run_id FROM runs WHERE mode = 'record' ORDER BY started")
    return list(frame["run_id"])


def fresh(train, name: str, *args: str) -> list[object]:  # type: ignore[no-untyped-def]
    """The patched script re-executed from scratch as a new recorded run."""
    train.run(*args)
    return values(name, recorded_ids()[-1])


@pytest.mark.parametrize(
    ("anchor", "statement", "strategy"),
    [
        (
            '    for epoch in flor.loop("epoch", range(5)):\n',
            'flor.log("lr_start", opt["lr"])',
            "outer",
        ),
        ('        opt["lr"] *= 0.5\n', 'flor.log("lr_end", opt["lr"])', "nested"),
    ],
)
def test_outer_never_runs_the_code_after_a_skipped_nested_loop_twice(
    script, monkeypatch, anchor, statement, strategy
) -> None:
    train = record(script, monkeypatch, HALVING)
    (run,) = recorded_ids()
    train.path.write_text(insert(HALVING, anchor, statement))
    name = statement.split('"')[1]
    the_plan = plan([name], jobs=2)
    assert [r.strategy for r in the_plan.runs] == [strategy]
    summary = execute(the_plan)
    assert summary.runs_replayed == 1
    assert (
        values(name, run)
        == fresh(train, name)
        == [0.1 / 2 ** (i + (strategy == "nested")) for i in range(5)]
    )


@pytest.mark.parametrize("name", sorted(CARRIED_STATEMENTS))
@pytest.mark.parametrize("budget", ["1", "0"])
def test_state_the_loop_carries_outside_checkpoints_is_never_lost(
    script, monkeypatch, name, budget
) -> None:
    train = record(script, monkeypatch, CARRIED, "seed=1", "seed=2", budget=budget)
    runs = recorded_ids()
    anchor, statement = CARRIED_STATEMENTS[name]
    train.path.write_text(insert(CARRIED, anchor, statement))
    the_plan = plan([name], jobs=2)
    assert {r.strategy for r in the_plan.runs} <= {"full", "prefix"}
    assert all("carries state" in r.fallback for r in the_plan.runs)
    summary = execute(the_plan)
    assert summary.runs_replayed == 2 and not summary.unconfirmed
    for run, seed in zip(runs, ("1", "2"), strict=True):
        assert values(name, run) == fresh(train, name, "--kwargs", f"seed={seed}")


def test_arguments_given_to_project_modules_count_as_changed(repo, script, monkeypatch) -> None:
    script("helpers.py", "def bump(state):\n    state['k'] += 1\n")
    git(repo, "add", "helpers.py")
    source = HALVING.replace("import flor\n", "import flor\nimport helpers\n\nstate = {'k': 0}\n")
    source = source.replace(
        "            w -= opt", "            helpers.bump(state)\n            w -= opt"
    )
    train = record(script, monkeypatch, source)
    (run,) = recorded_ids()
    anchor = '    for epoch in flor.loop("epoch", range(5)):\n'
    train.path.write_text(insert(source, anchor, 'flor.log("k", state["k"])'))
    the_plan = plan(["k"])
    assert [r.strategy for r in the_plan.runs] == ["full"] and "(state)" in the_plan.runs[
        0
    ].fallback
    execute(the_plan)
    assert values("k", run) == fresh(train, "k") == [0, 4, 8, 12, 16]


def test_the_probe_catches_state_that_the_analysis_cannot_see(repo, script, monkeypatch) -> None:
    """A mutable default argument is state the analysis does not see: the probe compares
    the cheap strategy with full re-execution and re-plans the run."""
    script("helpers.py", "def bump(_count=[0]):\n    _count[0] += 1\n")
    git(repo, "add", "helpers.py")
    source = HALVING.replace("import flor\n", "import flor\nimport helpers\n")
    source = source.replace(
        "            w -= opt", "            helpers.bump()\n            w -= opt"
    )
    source = source.replace("range(5)", "range(10)")
    train = record(script, monkeypatch, source)
    (run,) = recorded_ids()
    anchor = '    for epoch in flor.loop("epoch", range(10)):\n'
    statement = 'flor.log("count", helpers.bump.__defaults__[0][0])'
    train.path.write_text(insert(source, anchor, statement))
    the_plan = plan(["count"])
    assert [r.strategy for r in the_plan.runs] == ["outer"]
    summary = execute(the_plan)
    (outcome,) = summary.runs
    assert outcome.ok and outcome.strategy == "full" and "probe" in outcome.fallback
    assert values("count", run) == fresh(train, "count") == list(range(0, 40, 4))


def test_a_killed_run_replays_with_its_arguments_and_only_as_far_as_it_got(
    script, monkeypatch
) -> None:
    killing = HALVING.replace(
        '        flor.log("err", float(np.abs(w).sum()))\n',
        '        flor.log("err", float(np.abs(w).sum()))\n'
        "        if epoch == 2:\n"
        "            import os, signal\n"
        "            from flor.runtime import context\n"
        "            context.current().checkpointer.drain()\n"
        "            context.current().flush()\n"
        "            os.kill(os.getpid(), signal.SIGKILL)\n",
    )
    monkeypatch.setenv("FLOR_CKPT_BUDGET", "1")
    train = script("train.py", killing)
    git(train.repo, "add", "train.py")
    git(train.repo, "commit", "-q", "-m", "v1")
    assert train.run("--kwargs", "lr=0.3", check=False).returncode == -9
    monkeypatch.delenv("FLOR_CKPT_BUDGET")
    (run,) = recorded_ids()
    args = flor.query("SELECT args FROM runs WHERE run_id = ?", (run,))["args"].item()
    assert json.loads(args) == {"seed": 0, "lr": 0.3}
    anchor = '    for epoch in flor.loop("epoch", range(5)):\n'
    patched = insert(killing, anchor, 'flor.log("lr_start", opt["lr"])')
    patched += 'flor.log("w_final", float(w.sum()))\n'
    train.path.write_text(patched)
    summary = execute(plan(["lr_start", "w_final"]))
    assert summary.runs_replayed == 1
    # epochs 0 and 1 completed; where epoch 2 was cut is unknown, so it gets no value
    assert values("lr_start", run) == [0.3, 0.15]
    assert values("w_final", run) == []
    suffix_only = plan(["w_final"])
    assert suffix_only.runs[0].strategy == "skip" and "never ran" in suffix_only.runs[0].reason


def test_a_failed_replay_stores_nothing_so_the_run_still_needs_the_value(
    script, monkeypatch
) -> None:
    train = record(script, monkeypatch, HALVING)
    (run,) = recorded_ids()
    train.path.write_text(
        insert(HALVING, '        opt["lr"] *= 0.5\n', 'flor.log("inv", 1 / (2 - epoch))')
    )
    summary = execute(plan(["inv"]))
    assert summary.unconfirmed and summary.values_written == 0
    assert values("inv", run) == []
    # replaying every missing name still finds it missing
    assert plan().runs[0].names == ["inv"]


def test_generators_named_in_checkpointing_are_restored(script, monkeypatch) -> None:
    source = HALVING.replace(
        'np.random.seed(flor.arg("seed", 0))\n',
        'np.random.seed(flor.arg("seed", 0))\nrng = np.random.default_rng(7)\n',
    ).replace("np.random.randint(0, 100, 20)", "rng.integers(0, 100, 20)")
    source = source.replace(
        "flor.checkpointing(weights=w, opt=opt)", "flor.checkpointing(weights=w, opt=opt, rng=rng)"
    )
    train = record(script, monkeypatch, source)
    (run,) = recorded_ids()
    train.path.write_text(
        insert(source, '            w -= opt["lr"] * grad\n', 'flor.log("b0", int(batch[0]))')
    )
    the_plan = plan(["b0"], runs=[run], jobs=2)
    (planned,) = the_plan.runs
    # tiny loops are never worth a second task: pretend they are long, so one task restores
    # the generator mid-run
    assert planned.context is not None
    planned.context.timings = [1.0] * planned.iterations
    planned.context.overhead = 0.1  # likewise the recorded start-up, slow under load
    make_tasks(planned, "nested")
    assert len(planned.tasks) == 2 and planned.tasks[1].start > 0
    summary = execute(the_plan)
    (outcome,) = summary.runs
    assert outcome.ok and not outcome.fallback and "guard confirmed" in outcome.guard
    assert values("b0", run) == fresh(train, "b0")


def test_a_statement_reading_the_clock_is_refused_per_run_with_exit_1(script, monkeypatch) -> None:
    source = HALVING.replace("import numpy", "import time\nimport numpy")
    train = record(script, monkeypatch, source, "seed=1", "seed=2")
    train.path.write_text(
        insert(source, '        opt["lr"] *= 0.5\n', 'flor.log("stamp", time.time())')
    )
    result = CliRunner().invoke(main, ["replay", "stamp", "--yes"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("run ")]
    assert len(lines) == 2 and all("stamp reads the wall clock" in line for line in lines)
    assert flor.query("SELECT COUNT(*) AS n FROM logs WHERE name = 'stamp'")["n"].item() == 0


def test_tasks_run_with_the_thread_settings_of_the_recording(script, monkeypatch) -> None:
    """joblib limits BLAS/OpenMP threads in its workers; fewer threads change float sums."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    source = HALVING.replace("import numpy", "import os\nimport numpy")
    train = record(script, monkeypatch, source, "seed=1", "seed=2")
    train.path.write_text(
        insert(
            source,
            '        opt["lr"] *= 0.5\n',
            'flor.log("omp", os.environ.get("OMP_NUM_THREADS", "unset"))',
        )
    )
    summary = execute(plan(["omp"], jobs=2))
    assert summary.runs_replayed == 2
    for run in recorded_ids():
        assert values("omp", run) == fresh(train, "omp")[:5] == ["unset"] * 5
