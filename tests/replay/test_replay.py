"""Replay fills in hindsight values that equal those of a full re-execution."""

from __future__ import annotations

import fcntl
import sqlite3
import subprocess

import pandas as pd
import pytest
from click.testing import CliRunner
from gitutil import git

import flor
from flor.cli import main
from flor.errors import ReplayError, UsageError
from flor.replay import execute, plan
from flor.replay.executor import exclusive
from flor.replay.planner import make_tasks

SCRIPT = """\
import numpy as np
import flor

np.random.seed(flor.arg("seed", 0))
lr = flor.arg("lr", 0.05)
X = np.random.randn(200, 5)
w_true = np.arange(5.0)
y = X @ w_true + 0.1 * np.random.randn(200)
w = np.zeros(5)
with flor.checkpointing(weights=w):
    for epoch in flor.loop("epoch", range(6)):
        order = np.random.permutation(200)
        for step in flor.loop("step", range(10)):
            batch = order[step * 20 : (step + 1) * 20]
            grad = 2 * X[batch].T @ (X[batch] @ w - y[batch]) / 20
            w -= lr * grad
            flor.log("loss", float(np.mean((X[batch] @ w - y[batch]) ** 2)))
        flor.log("err", float(np.abs(w - w_true).sum()))
print("done")
"""

HINDSIGHT = {
    "prefix": (
        "y = X @ w_true + 0.1 * np.random.randn(200)\n",
        'flor.log("ysum", float(y.sum()))\n',
    ),
    "outer": (
        '        flor.log("err", float(np.abs(w - w_true).sum()))\n',
        '        flor.log("wnorm", float(np.linalg.norm(w)))\n',
    ),
    "nested": (
        "            w -= lr * grad\n",
        '            flor.log("gnorm", float(np.linalg.norm(grad)))\n',
    ),
    "suffix": ('print("done")\n', 'flor.log("w0", float(w[0]))\n'),
}
NAMES = {"prefix": "ysum", "outer": "wnorm", "nested": "gnorm", "suffix": "w0"}


def with_statements(source: str, *kinds: str) -> str:
    for kind in kinds:
        anchor, line = HINDSIGHT[kind]
        assert anchor in source
        source = source.replace(anchor, anchor + line)
    return source


@pytest.fixture
def recorded(repo, script, monkeypatch):  # type: ignore[no-untyped-def]
    """Two runs of version 1, then the newest version with every hindsight statement."""

    def record(budget: str = "1", source: str = SCRIPT) -> tuple[list[str], object]:
        monkeypatch.setenv("FLOR_CKPT_BUDGET", budget)
        train = script("train.py", source)
        git(repo, "add", "train.py")
        git(repo, "commit", "-q", "-m", "v1")
        train.run("--kwargs", "lr=0.05")
        train.run("--kwargs", "lr=0.02", "seed=3")
        runs = flor.query("SELECT run_id FROM runs ORDER BY started")["run_id"].tolist()
        train.path.write_text(with_statements(source, *HINDSIGHT))
        monkeypatch.delenv("FLOR_CKPT_BUDGET")
        return runs, train

    return record


def _values(name: str, run_id: str) -> list[float]:
    df = flor.dataframe(name)
    return df[df["runid"] == run_id][name].dropna().tolist()


def _fresh_values(train, name: str, *args: str) -> tuple[list[float], str]:  # type: ignore[no-untyped-def]
    """Values of the patched script re-executed from scratch as a new recorded run."""
    train.run(*args)
    newest = flor.query("SELECT run_id FROM runs WHERE mode = 'record' ORDER BY started DESC")
    run_id = newest["run_id"].iloc[0]
    return _values(name, run_id), run_id


@pytest.mark.parametrize("kind", ["prefix", "outer", "nested", "suffix"])
@pytest.mark.parametrize("budget", ["1", "0.05"])
def test_replayed_values_equal_a_full_re_execution(recorded, kind, budget) -> None:
    (first, second), train = recorded(budget)
    name = NAMES[kind]
    the_plan = plan([name], jobs=2)
    assert {r.strategy for r in the_plan.runs} == {kind}
    summary = execute(the_plan)
    assert not summary.failed, [r.tail for r in summary.failed]
    replayed = {run: _values(name, run) for run in (first, second)}
    expected, _ = _fresh_values(train, name, "--kwargs", "lr=0.05")
    assert replayed[first] == expected and len(expected) in (1, 6, 60)
    expected_second, _ = _fresh_values(train, name, "--kwargs", "lr=0.02", "seed=3")
    assert replayed[second] == expected_second and replayed[first] != replayed[second]


def test_nested_replay_split_across_jobs_is_idempotent_and_verifies(recorded) -> None:
    # steps slow enough that half a run is worth more than a task's start-up
    slow = SCRIPT.replace("import numpy as np\n", "import time\nimport numpy as np\n").replace(
        "            w -= lr * grad\n", "            w -= lr * grad\n            time.sleep(0.05)\n"
    )
    (first, _second), _train = recorded("1", slow)
    one_job = plan(["gnorm"], runs=[first], jobs=1)
    assert len(one_job.runs[0].tasks) == 1
    execute(one_job)
    serial = _values("gnorm", first)
    split = plan(["gnorm"], runs=[first], jobs=2, verify=["loss"])
    (planned,) = split.runs
    # whether half a run is worth a task's start-up depends on the machine's load while
    # recording: pretend the iterations are long, so the run is split whatever the load
    assert planned.context is not None
    planned.context.timings = [1.0] * planned.iterations
    planned.context.overhead = 0.1  # likewise the recorded start-up, slow under load
    make_tasks(planned, planned.strategy)
    assert len(planned.tasks) == 2
    summary = execute(split)
    assert not summary.failed and summary.verified == 60 and not summary.mismatches
    assert _values("gnorm", first) == serial and len(serial) == 60
    count = flor.query("SELECT COUNT(*) AS n FROM logs WHERE name = 'gnorm'")["n"].item()
    assert count == 60  # replaying twice replaced, never duplicated


def test_recorded_values_are_untouched_and_replays_are_hidden_from_runs(recorded) -> None:
    (first, _), _ = recorded("1")
    before = flor.dataframe("loss", "err")
    execute(plan(["wnorm"], jobs=2))
    after = flor.dataframe("loss", "err")
    pd.testing.assert_frame_equal(before, after)
    assert len(flor.dataframe()) == 2
    assert set(flor.query("SELECT mode FROM runs")["mode"]) == {"record", "replay"}


def test_where_selects_runs_by_their_recorded_values(recorded) -> None:
    (first, second), _ = recorded("1")
    errs = {r: _values("err", r)[-1] for r in (first, second)}
    best = min(errs, key=errs.__getitem__)
    chosen = plan(["wnorm"], where=f"err <= {errs[best]}")
    assert [r.run_id for r in chosen.runs] == [best]
    with pytest.raises(UsageError, match="does not parse"):
        plan(["wnorm"], where="err <")
    with pytest.raises(UsageError, match="use logged names"):
        plan(["wnorm"], where="__import__('os').system('x')")


def test_bad_selections_are_clear_errors(recorded) -> None:
    recorded("1")
    with pytest.raises(UsageError, match="no script logs 'nope'"):
        plan(["nope"])
    with pytest.raises(UsageError, match="no recorded runs match"):
        plan(["wnorm"], runs=["zzzz"])
    with pytest.raises(UsageError, match="--since 'not-a-date'"):
        plan(["wnorm"], since="not-a-date")


def _digests(run_id: str) -> set[str]:
    query = "SELECT DISTINCT digest FROM checkpoints WHERE run_id = ?"
    return set(flor.query(query, (run_id,))["digest"])


def test_missing_checkpoints_mean_re_executing_from_earlier_ones(recorded, repo) -> None:
    (first, second), train = recorded("1")
    for digest in _digests(first) - _digests(second):
        (repo / ".flor" / "checkpoints" / digest[:2] / digest[2:]).unlink()
    the_plan = plan(["wnorm"], jobs=2)
    notes = {r.run_id: r.reason for r in the_plan.runs}
    assert "checkpoints missing" in notes[first] and not notes[second]
    summary = execute(the_plan)
    assert not summary.failed
    expected, _ = _fresh_values(train, "wnorm", "--kwargs", "lr=0.05")
    assert _values("wnorm", first) == expected


def test_a_run_whose_snapshot_is_gone_is_reported_and_the_others_replay(recorded, repo) -> None:
    (first, second), _ = recorded("1")
    conn = sqlite3.connect(repo / ".flor" / "flor.db")
    conn.execute("UPDATE runs SET snapshot = ? WHERE run_id = ?", ("0" * 40, first))
    conn.commit()
    conn.close()
    the_plan = plan(["wnorm"])
    notes = {r.run_id: r.reason for r in the_plan.runs}
    assert "missing from its snapshot" in notes[first]
    summary = execute(the_plan)
    assert not summary.failed and {r.run_id for r in summary.results} == {second}


def test_a_failed_run_is_replayed_only_as_far_as_it_got(repo, script) -> None:
    buggy = SCRIPT.replace(
        '        flor.log("err"', '        assert epoch < 3, "old bug"\n        flor.log("err"'
    )
    train = script("train.py", buggy)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "buggy")
    train.run(check=False)
    (failed,) = flor.query("SELECT run_id FROM runs WHERE status = 'failed'")["run_id"]
    train.path.write_text(with_statements(SCRIPT, "outer"))
    summary = execute(plan(["wnorm"]))
    assert not summary.failed and summary.runs_replayed == 1
    fresh, _ = _fresh_values(train, "wnorm")
    # epochs 0-2 completed; epoch 3 failed before its statement would have run
    assert _values("wnorm", failed) == fresh[:3]


def test_a_replay_that_crashes_is_reported_with_its_traceback_and_stores_nothing(
    recorded,
) -> None:
    (first, _), train = recorded("1")
    train.path.write_text(
        with_statements(SCRIPT).replace(
            '        flor.log("err"',
            '        flor.log("ratio", 1.0 / (2 - epoch))\n        flor.log("err"',
        )
    )
    summary = execute(plan(["ratio"], runs=[first]))
    assert summary.failed and "ZeroDivisionError" in summary.failed[-1].tail
    assert summary.runs_replayed == 0 and summary.values_written == 0
    assert "ratio" not in set(flor.query("SELECT DISTINCT name FROM logs")["name"])


def test_two_replays_of_one_store_at_once_are_refused(recorded, repo) -> None:
    recorded("1")
    the_plan = plan(["wnorm"])
    with open(repo / ".flor" / "replay.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(ReplayError, match="another flor replay is running"):
            execute(the_plan)
    with exclusive(repo / ".flor"):
        pass


def test_cli_plan_dry_run_and_confirmation(recorded) -> None:
    recorded("1")
    runner = CliRunner()
    dry = runner.invoke(main, ["replay", "wnorm", "--dry-run", "--format", "json"])
    assert dry.exit_code == 0 and '"strategy": "outer"' in dry.output
    assert flor.query("SELECT COUNT(*) AS n FROM logs WHERE name = 'wnorm'")["n"].item() == 0
    refused = runner.invoke(main, ["replay", "wnorm"], input="")
    assert refused.exit_code == 2 and "pass --yes" in refused.output
    done = runner.invoke(main, ["replay", "wnorm", "--yes", "--jobs", "2"])
    assert done.exit_code == 0, done.output
    assert "replayed 2 runs, wrote 12 values" in done.output
    unknown = runner.invoke(main, ["replay", "nope", "--yes"])
    assert unknown.exit_code == 2 and "no script logs 'nope'" in unknown.output
    # without a terminal and without --yes, a bad name is still the error a CI job sees
    unknown = runner.invoke(main, ["replay", "nope"], input="")
    assert unknown.exit_code == 2 and "no script logs 'nope'" in unknown.output


def test_replay_never_touches_the_work_tree(recorded, repo) -> None:
    recorded("1")
    status = git(repo, "status", "--porcelain")
    head = git(repo, "rev-parse", "HEAD")
    execute(plan(["gnorm", "wnorm"], jobs=2))
    assert git(repo, "status", "--porcelain") == status and git(repo, "rev-parse", "HEAD") == head
    assert not subprocess.run(
        ["git", "stash", "list"], cwd=repo, capture_output=True, text=True
    ).stdout
