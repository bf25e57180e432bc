"""Replay fidelity on real training-code patterns, round 2 (benchmarks/fidelity_more, cases
g01-g12): each defect through real recorded runs, compared with a from-scratch run of that
version with the statement written in; and the bad-input bar of issue 17 (values that cannot
be reproduced, declined runs, Ctrl-C)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from gitutil import git
from test_fidelity import HALVING, fresh, insert, record, recorded_ids, values

import flor
from flor.cli import main
from flor.replay import execute, plan
from flor.replay.planner import make_tasks


def _stored(name: str) -> int:
    return int(flor.query(f"SELECT COUNT(*) AS n FROM logs WHERE name = '{name}'")["n"].item())


# A script that computes values it only prints from the clock, uuid and an unseeded RNG.
PRINTS_VOLATILE = HALVING.replace(
    "import numpy as np\n",
    "import random\nimport time\nimport uuid\nfrom time import perf_counter\n\n"
    "import numpy as np\n",
).replace(
    "w = np.zeros(3)\n",
    "w = np.zeros(3)\ntag = uuid.uuid4().hex[:8]\ndebug_rng = np.random.default_rng()\n",
).replace(
    '        opt["lr"] *= 0.5\n',
    '        t0 = time.perf_counter()\n'
    '        opt["lr"] *= 0.5\n'
    "        elapsed = time.perf_counter() - t0\n"
    "        shown = int(debug_rng.integers(0, 100))\n"
    '        print(tag, elapsed, shown, X[shown] @ w)\n',
)  # fmt: skip


@pytest.mark.parametrize(
    ("statement", "what"),
    [
        ('flor.log("took", elapsed)', "took reads elapsed, computed from the wall clock"),
        ('flor.log("tag", tag)', "tag reads tag, computed from a random id"),
        ('flor.log("shown", shown)', "shown reads shown, computed from an unseeded RNG"),
        ('flor.log("lap", perf_counter() - t0)', "lap reads the wall clock"),
        # the script seeds numpy, never python's random
        ('flor.log("coin", random.random())', "coin reads an unseeded RNG"),
    ],
)
def test_a_statement_reading_a_variable_computed_from_an_unreproducible_source_is_refused(
    script, monkeypatch, statement, what
) -> None:
    """g11: the statement's own text names no clock; the variable it reads does."""
    train = record(script, monkeypatch, PRINTS_VOLATILE, "seed=1", "seed=2")
    name = statement.split('"')[1]
    anchor = "        shown = int(debug_rng.integers(0, 100))\n"
    train.path.write_text(insert(PRINTS_VOLATILE, anchor, statement))
    result = CliRunner().invoke(main, ["replay", name, "--yes"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("run ")]
    assert len(lines) == 2, result.output
    assert all(what in line and "log it while recording" in line for line in lines)
    assert _stored(name) == 0
    # the table a CI job then reads has the column, empty: a statement is no typo, even
    # once it has left the working tree
    train.path.write_text(PRINTS_VOLATILE)
    table = CliRunner().invoke(main, ["dataframe", name, "--format", "csv"])
    assert table.exit_code == 0, table.output
    assert name in table.output.splitlines()[0] and "no values logged" in table.output


def test_a_reproducible_statement_in_the_same_script_is_still_replayed_exactly(
    script, monkeypatch
) -> None:
    """The analysis refuses what reads a tainted variable, not the whole script."""
    train = record(script, monkeypatch, PRINTS_VOLATILE, "seed=1")
    (run,) = recorded_ids()
    anchor = "        shown = int(debug_rng.integers(0, 100))\n"
    train.path.write_text(insert(PRINTS_VOLATILE, anchor, 'flor.log("lr_now", opt["lr"])'))
    result = CliRunner().invoke(main, ["replay", "lr_now", "--yes"])
    assert result.exit_code == 0, result.output
    assert values("lr_now", run) == fresh(train, "lr_now") == [0.1 / 2 ** (i + 1) for i in range(5)]


def test_an_argument_is_recorded_so_a_clock_default_taints_nothing(script, monkeypatch) -> None:
    """`flor.arg("seed", int(time.time()))` replays with the recorded value."""
    source = HALVING.replace("import numpy", "import time\nimport numpy").replace(
        'flor.arg("seed", 0)', 'flor.arg("seed", int(time.time()) % 1000)'
    )
    train = record(script, monkeypatch, source)
    (run,) = recorded_ids()
    train.path.write_text(
        insert(source, '        opt["lr"] *= 0.5\n', 'flor.log("w_sum", float(w.sum()))')
    )
    result = CliRunner().invoke(main, ["replay", "w_sum", "--yes"])
    assert result.exit_code == 0, result.output
    seed = flor.dataframe("seed")["seed"].dropna().tolist()[0]
    assert len(values("w_sum", run)) == 5
    assert values("w_sum", run) == fresh(train, "w_sum", "--kwargs", f"seed={seed}")


def test_replay_exits_1_with_a_line_per_run_when_every_run_is_declined(script, monkeypatch) -> None:
    """A user asked for values and got none: that is not "nothing to replay"."""
    train = record(script, monkeypatch, HALVING, "seed=1", "seed=2")
    newer = HALVING.replace(
        '        opt["lr"] *= 0.5\n',
        '        opt["lr"] *= 0.5\n        spread = float(w.max() - w.min())\n',
    )
    git(train.repo, "add", "train.py")
    train.path.write_text(newer)
    git(train.repo, "commit", "-q", "-am", "v2: spread")
    train.path.write_text(insert(newer, "        spread = float(w.max() - w.min())\n",
                                 'flor.log("spread", spread)'))  # fmt: skip
    result = CliRunner().invoke(main, ["replay", "spread", "--yes"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("run ")]
    assert len(lines) == 2, result.output
    for line in lines:
        assert "nothing stored, declined" in line and "spread" in line
        assert "write the statement into that version yourself" in line
    assert "nothing replayed: 2 runs declined" in result.output
    assert "Traceback" not in result.output and _stored("spread") == 0


def test_replay_exits_0_when_every_run_already_has_the_values(script, monkeypatch) -> None:
    train = record(script, monkeypatch, HALVING, "seed=1")
    train.path.write_text(
        insert(HALVING, '        opt["lr"] *= 0.5\n', 'flor.log("lr_end", opt["lr"])')
    )
    first = CliRunner().invoke(main, ["replay", "lr_end", "--yes"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(main, ["replay", "--yes"])  # every name some run lacks
    assert again.exit_code == 0, again.output
    assert "nothing to replay" in again.output and "nothing stored" not in again.output


def test_a_run_of_a_script_that_logs_none_of_the_names_says_so(script, monkeypatch) -> None:
    train = record(script, monkeypatch, HALVING, "seed=1")
    other = script("report.py", "import flor\nflor.log('pages', 3)\n")
    git(other.repo, "add", "report.py")
    git(other.repo, "commit", "-q", "-m", "report")
    other.run()
    train.path.write_text(
        insert(HALVING, '        opt["lr"] *= 0.5\n', 'flor.log("lr_end", opt["lr"])')
    )
    result = CliRunner().invoke(main, ["replay", "lr_end", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "report.py logs none of lr_end" in result.output
    assert "has values for every name" not in result.output


# A DataLoader shuffling with its own seeded torch.Generator, which no checkpoint holds; the
# run records nothing inside the main loop, so the guard has nothing to compare there.
OWN_GENERATOR = """\
import torch
from torch.utils.data import DataLoader, TensorDataset
import flor

torch.manual_seed(flor.arg("seed", 0))
g = torch.Generator().manual_seed(1)
x = torch.randn(64, 3)
y = x.sum(1, keepdim=True)
loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=g)
model = torch.nn.Linear(3, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
flor.log("n", len(x))
with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(6)):
        for xb, yb in flor.loop("step", loader):
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
"""


def test_a_loader_with_its_own_generator_is_state_the_main_loop_carries(
    script, monkeypatch
) -> None:
    """g02: iterating the loader advances `g`, though the loop never names it."""
    train = record(script, monkeypatch, OWN_GENERATOR)
    (run,) = recorded_ids()
    anchor = "            loss = torch.nn.functional.mse_loss(model(xb), yb)\n"
    train.path.write_text(insert(OWN_GENERATOR, anchor, 'flor.log("y0", float(yb[0, 0]))'))
    the_plan = plan(["y0"], runs=[run], jobs=2)
    (planned,) = the_plan.runs
    if planned.strategy != "full":  # a task starting mid-run is what would go wrong
        assert planned.context is not None
        planned.context.timings = [1.0] * planned.iterations
        planned.context.overhead = 0.1
        make_tasks(planned, planned.strategy)
    execute(the_plan)
    assert len(values("y0", run)) == 24
    assert values("y0", run) == fresh(train, "y0")
    assert planned.strategy == "full" and "(g)" in planned.fallback


def test_a_checkpointed_loader_generator_lets_tasks_start_mid_run(script, monkeypatch) -> None:
    source = OWN_GENERATOR.replace(
        "flor.checkpointing(model=model, optimizer=optimizer)",
        "flor.checkpointing(model=model, optimizer=optimizer, g=g)",
    )
    train = record(script, monkeypatch, source)
    (run,) = recorded_ids()
    anchor = "            loss = torch.nn.functional.mse_loss(model(xb), yb)\n"
    train.path.write_text(insert(source, anchor, 'flor.log("y0", float(yb[0, 0]))'))
    the_plan = plan(["y0"], runs=[run], jobs=2)
    (planned,) = the_plan.runs
    assert planned.strategy == "nested", planned.fallback
    assert planned.context is not None
    planned.context.timings = [1.0] * planned.iterations  # worth two tasks, whatever the load
    planned.context.overhead = 0.1
    make_tasks(planned, "nested")
    assert len(planned.tasks) == 2 and planned.tasks[1].start > 0
    execute(the_plan)
    assert values("y0", run) == fresh(train, "y0")


# The main loop saves the model to a file every epoch; the code after it reloads that file.
SAVES_AND_RELOADS = """\
import os

import torch
import flor

torch.manual_seed(flor.arg("seed", 0))
x = torch.randn(64, 3)
y = x.sum(1, keepdim=True)
model = torch.nn.Linear(3, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
os.makedirs("outputs", exist_ok=True)
with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(4)):
        for i in flor.loop("step", range(0, 64, 16)):
            loss = torch.nn.functional.mse_loss(model(x[i : i + 16]), y[i : i + 16])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        torch.save(model.state_dict(), "outputs/last.pt")
        flor.log("loss", loss.item())
final = torch.nn.Linear(3, 1)
final.load_state_dict(torch.load("outputs/last.pt"))
with torch.no_grad():
    test_loss = torch.nn.functional.mse_loss(final(x), y).item()
"""


def test_code_after_the_loop_reading_a_file_the_loop_writes_is_not_replayed_from_a_checkpoint(
    repo, script, monkeypatch
) -> None:
    """Skipping the loop skips its writes: the file on disk is the newest run's, not this
    run's (every run but the last would store the newest run's test loss)."""
    (repo / ".gitignore").write_text("outputs/\n")
    git(repo, "add", ".gitignore")
    train = record(script, monkeypatch, SAVES_AND_RELOADS, "seed=1", "seed=2")
    first, second = recorded_ids()
    anchor = "    test_loss = torch.nn.functional.mse_loss(final(x), y).item()\n"
    train.path.write_text(insert(SAVES_AND_RELOADS, anchor, 'flor.log("test_loss", test_loss)'))
    the_plan = plan(["test_loss"], jobs=1)
    execute(the_plan)
    replayed = values("test_loss", first), values("test_loss", second)
    assert replayed == (fresh(train, "test_loss", "--kwargs", "seed=1"),
                        fresh(train, "test_loss", "--kwargs", "seed=2"))  # fmt: skip
    assert replayed[0] != replayed[1]
    assert all("writes files" in r.fallback for r in the_plan.runs), the_plan.table()


# A list made at each epoch's start, appended to in the step loop, averaged after it.
EPOCH_LIST = """\
import torch
import flor

torch.manual_seed(flor.arg("seed", 0))
x = torch.randn(64, 3)
y = x.sum(1, keepdim=True)
model = torch.nn.Linear(3, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(4)):
        losses = []
        for i in flor.loop("step", range(0, 64, 16)):
            loss = torch.nn.functional.mse_loss(model(x[i : i + 16]), y[i : i + 16])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        flor.log("w", model.weight.sum().item())
"""


def test_a_statement_reading_what_the_step_loop_appends_to_replays_the_step_loop(
    script, monkeypatch
) -> None:
    """Skipping the step loop restores the model, not `losses`: outer would average []."""
    train = record(script, monkeypatch, EPOCH_LIST)
    (run,) = recorded_ids()
    anchor = '        flor.log("w", model.weight.sum().item())\n'
    statement = 'flor.log("epoch_loss", torch.tensor(losses).mean().item())'
    train.path.write_text(insert(EPOCH_LIST, anchor, statement))
    the_plan = plan(["epoch_loss"], jobs=1)
    execute(the_plan)
    assert values("epoch_loss", run) == fresh(train, "epoch_loss")
    assert len(values("epoch_loss", run)) == 4
    assert the_plan.runs[0].strategy == "nested"


# Step-based training: the main loop iterates a shuffling DataLoader, whose iterator draws its
# seeds from torch's generator when the loop asks for the first batch; dropout draws after.
STEP_LOADER = """\
import torch
from torch.utils.data import DataLoader, TensorDataset
import flor

torch.manual_seed(flor.arg("seed", 0))
x = torch.randn(96, 3)
y = x.sum(1, keepdim=True)
loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
flor.log("n", len(x))
with flor.checkpointing(model=model, optimizer=optimizer):
    for step, (xb, yb) in enumerate(flor.loop("step", loader)):
        loss = torch.nn.functional.mse_loss(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
"""


@pytest.mark.parametrize("budget", ["1", "0.0001"])
def test_a_task_restores_each_iteration_before_the_loop_fetches_its_item(
    script, monkeypatch, budget
) -> None:
    """g14: the recording checkpoints iteration i before fetching item i; a replay that
    restored after the fetch rewound the loader's draws and gave dropout other masks."""
    train = record(script, monkeypatch, STEP_LOADER, budget=budget)
    (run,) = recorded_ids()
    anchor = "        loss = torch.nn.functional.mse_loss(model(xb), yb)\n"
    train.path.write_text(insert(STEP_LOADER, anchor, 'flor.log("loss", loss.item())'))
    execute(plan(["loss"], jobs=1))
    assert len(values("loss", run)) == 6
    assert values("loss", run) == fresh(train, "loss")
