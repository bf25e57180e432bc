"""Replay fidelity on real training-code patterns, round 3 (benchmarks/fidelity_more, cases
h01-h11): each defect through real recorded runs, compared with a from-scratch run of that
version with the statement written in."""

from __future__ import annotations

import pytest
from gitutil import git
from test_fidelity import fresh, insert, record, recorded_ids, values

from flor.replay import execute, plan
from flor.replay.classify import classify
from flor.replay.planner import make_tasks

# The DeiT / detectron layout: the step loop lives in engine.py, a module of the project,
# with the data; train.py's epoch loop calls it.
ENGINE = """\
import numpy as np
import flor

STEPS = 0
rng = np.random.RandomState(0)
X = rng.randn(100, 3)
y = X @ np.array([1.0, -2.0, 0.5])


def train_one_epoch(w, opt):
    global STEPS
    for step in flor.loop("step", range(4)):
        batch = np.random.randint(0, 100, 20)
        grad = 2 * X[batch].T @ (X[batch] @ w - y[batch]) / 20
        w[:] = w - opt["lr"] * grad
        STEPS += 1
"""
# the engine halves the learning rate after its step loop (a per-epoch schedule)
ENGINE_HALVING = ENGINE.replace(
    "        STEPS += 1\n", "        STEPS += 1\n    opt['lr'] *= 0.5\n"
)
ENGINE_NO_STATE = ENGINE_HALVING.replace("    global STEPS\n", "").replace(
    "        STEPS += 1\n", ""
)

ENGINE_TRAIN = """\
import numpy as np
import flor
import engine

np.random.seed(flor.arg("seed", 0))
w = np.zeros(3)
opt = {"lr": 0.1}
with flor.checkpointing(weights=w, opt=opt):
    for epoch in flor.loop("epoch", range(5)):
        engine.train_one_epoch(w, opt)
        flor.log("err", float(np.abs(w).sum()))
"""
FROM_ENGINE_TRAIN = ENGINE_TRAIN.replace(
    "import engine\n", "from engine import train_one_epoch\n"
).replace("engine.train_one_epoch(w, opt)", "train_one_epoch(w, opt)")


def _record_with_module(script, monkeypatch, train_source: str, module: str):  # type: ignore[no-untyped-def]
    """Record train.py with engine.py beside it, both committed in the run's version."""
    engine = script("engine.py", module)
    git(engine.repo, "add", "engine.py")
    return record(script, monkeypatch, train_source)


def test_a_counter_kept_by_a_project_module_is_state_no_checkpoint_holds(
    script, monkeypatch
) -> None:
    """h01: `engine.STEPS` was read as 0 in every restored iteration (outer)."""
    train = _record_with_module(script, monkeypatch, ENGINE_TRAIN, ENGINE)
    (run,) = recorded_ids()
    anchor = '        flor.log("err", float(np.abs(w).sum()))\n'
    train.path.write_text(insert(ENGINE_TRAIN, anchor, 'flor.log("steps", engine.STEPS)'))
    the_plan = plan(["steps"], jobs=1)
    (planned,) = the_plan.runs
    assert planned.strategy == "full" and "engine.STEPS" in planned.fallback
    execute(the_plan)
    assert values("steps", run) == fresh(train, "steps") == [4, 8, 12, 16, 20]


@pytest.mark.parametrize("train_source", [ENGINE_TRAIN, FROM_ENGINE_TRAIN])
def test_code_after_a_project_modules_step_loop_is_not_run_twice(
    script, monkeypatch, train_source
) -> None:
    """h01 v2: the engine halves the lr after its step loop; outer skipped the loop by
    restoring the end-of-iteration state and then halved it again."""
    train = _record_with_module(script, monkeypatch, train_source, ENGINE_NO_STATE)
    (run,) = recorded_ids()
    anchor = '        flor.log("err", float(np.abs(w).sum()))\n'
    train.path.write_text(insert(train_source, anchor, 'flor.log("lr_now", opt["lr"])'))
    the_plan = plan(["lr_now"], jobs=1)
    (planned,) = the_plan.runs
    assert planned.strategy == "nested", planned.fallback
    execute(the_plan)
    expected = [0.1 / 2 ** (i + 1) for i in range(5)]
    assert values("lr_now", run) == fresh(train, "lr_now") == expected


def test_a_project_module_that_cannot_be_read_makes_the_loop_re_execute(
    script, monkeypatch
) -> None:
    """A package (`engine/__init__.py`) is not analysed: calling it may change anything."""
    package = script("engine/__init__.py", ENGINE)
    git(package.repo, "add", "engine/__init__.py")
    train = record(script, monkeypatch, ENGINE_TRAIN)
    (run,) = recorded_ids()
    anchor = '        flor.log("err", float(np.abs(w).sum()))\n'
    train.path.write_text(insert(ENGINE_TRAIN, anchor, 'flor.log("steps", engine.STEPS)'))
    the_plan = plan(["steps"], jobs=1)
    (planned,) = the_plan.runs
    assert planned.strategy == "full" and "engine.*" in planned.fallback
    execute(the_plan)
    assert values("steps", run) == fresh(train, "steps") == [4, 8, 12, 16, 20]


# The pytorch/examples layout with the schedule inside train(), after its step loop.
HALVES_AFTER_ITS_LOOP = """\
import numpy as np
import flor

np.random.seed(flor.arg("seed", 0))
X = np.random.randn(100, 3)
y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * np.random.randn(100)
w = np.zeros(3)
opt = {"lr": 0.1}


def train(epoch):
    for step in flor.loop("step", range(4)):
        batch = np.random.randint(0, 100, 20)
        grad = 2 * X[batch].T @ (X[batch] @ w - y[batch]) / 20
        w[:] = w - opt["lr"] * grad
    if epoch >= 0:
        opt["lr"] *= 0.5


with flor.checkpointing(weights=w, opt=opt):
    for epoch in flor.loop("epoch", range(5)):
        train(epoch)
        flor.log("err", float(np.abs(w).sum()))
"""


def test_code_after_the_step_loop_inside_the_called_function_is_not_run_twice(
    script, monkeypatch
) -> None:
    train = record(script, monkeypatch, HALVES_AFTER_ITS_LOOP)
    (run,) = recorded_ids()
    anchor = '        flor.log("err", float(np.abs(w).sum()))\n'
    train.path.write_text(insert(HALVES_AFTER_ITS_LOOP, anchor, 'flor.log("lr_now", opt["lr"])'))
    the_plan = plan(["lr_now"], jobs=1)
    assert [r.strategy for r in the_plan.runs] == ["nested"]
    execute(the_plan)
    expected = [0.1 / 2 ** (i + 1) for i in range(5)]
    assert values("lr_now", run) == fresh(train, "lr_now") == expected


# An endless batch generator made once, read by every epoch where the last one stopped.
STREAM = """\
import numpy as np
import flor

np.random.seed(flor.arg("seed", 0))
X = np.random.randn(100, 3)
y = X @ np.array([1.0, -2.0, 0.5])
w = np.zeros(3)
opt = {"lr": 0.05}


def batches(size):
    pos = 0
    while True:
        yield np.arange(pos, pos + size) % 100
        pos += size


stream = batches(7)
with flor.checkpointing(weights=w, opt=opt):
    for epoch in flor.loop("epoch", range(6)):
        for step, batch in zip(flor.loop("step", range(3)), stream):
            grad = 2 * X[batch].T @ (X[batch] @ w - y[batch]) / len(batch)
            w[:] = w - opt["lr"] * grad
print(float(np.abs(w).sum()))
"""


def test_a_generator_read_across_epochs_is_state_a_restore_does_not_rewind(
    script, monkeypatch
) -> None:
    """h06: a task resumed at epoch 3 started the stream from its first batch (the run
    records nothing the guard could compare)."""
    train = record(script, monkeypatch, STREAM)
    (run,) = recorded_ids()
    anchor = '            w[:] = w - opt["lr"] * grad\n'
    train.path.write_text(insert(STREAM, anchor, 'flor.log("first", int(batch[0]))'))
    the_plan = plan(["first"], runs=[run], jobs=2)
    (planned,) = the_plan.runs
    if planned.strategy != "full":  # a task starting mid-run is what would go wrong
        assert planned.context is not None
        planned.context.timings = [1.0] * planned.iterations
        make_tasks(planned, planned.strategy)
        assert planned.tasks[-1].start > 0
    execute(the_plan)
    assert values("first", run) == fresh(train, "first") == [(7 * i) % 100 for i in range(18)]
    assert planned.strategy == "full" and "(stream)" in planned.fallback


# Everything in main(); a train_step closure keeps counters of main's.
CLOSURE = """\
import numpy as np
import flor


def main():
    np.random.seed(flor.arg("seed", 0))
    X = np.random.randn(100, 3)
    y = X @ np.array([1.0, -2.0, 0.5])
    w = np.zeros(3)
    opt = {"lr": 0.05}
    updates = 0
    stats = {"seen": 0}

    def train_step(batch):
        nonlocal updates
        grad = 2 * X[batch].T @ (X[batch] @ w - y[batch]) / len(batch)
        w[:] = w - opt["lr"] * grad
        updates += 1
        stats["seen"] += len(batch)

    with flor.checkpointing(weights=w, opt=opt):
        for epoch in flor.loop("epoch", range(5)):
            for step in flor.loop("step", range(3)):
                train_step(np.random.randint(0, 100, 10))
            flor.log("err", float(np.abs(w).sum()))


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ('flor.log("updates_now", updates)', [3, 6, 9, 12, 15]),
        ('flor.log("seen_now", stats["seen"])', [30, 60, 90, 120, 150]),
    ],
)
def test_state_a_closure_changes_is_state_the_main_loop_carries(
    script, monkeypatch, statement, expected
) -> None:
    """h08: `nonlocal` counters and the enclosing function's dict, changed by a closure
    the step loop calls, were invisible: outer replayed them as 0."""
    train = record(script, monkeypatch, CLOSURE)
    (run,) = recorded_ids()
    name = statement.split('"')[1]
    anchor = '            flor.log("err", float(np.abs(w).sum()))\n'
    train.path.write_text(insert(CLOSURE, anchor, statement))
    the_plan = plan([name], jobs=1)
    (planned,) = the_plan.runs
    assert planned.strategy == "full", planned.fallback
    execute(the_plan)
    assert values(name, run) == fresh(train, name) == expected


# A step helper calls the helpers that bump a global counter and append to a history.
HELPERS_CALLING_HELPERS = """\
import numpy as np
import flor

np.random.seed(flor.arg("seed", 0))
X = np.random.randn(100, 3)
y = X @ np.array([1.0, -2.0, 0.5])
w = np.zeros(3)
STEP = 0
LRS = []


def bump():
    global STEP
    STEP += 1


def remember(lr):
    LRS.append(lr)


def train_step(batch, lr):
    w[:] = w - lr * 2 * X[batch].T @ (X[batch] @ w - y[batch]) / len(batch)
    bump()
    remember(lr)


with flor.checkpointing(weights=w):
    for epoch in flor.loop("epoch", range(5)):
        for step in flor.loop("step", range(3)):
            train_step(np.random.randint(0, 100, 10), 0.05)
        flor.log("err", float(np.abs(w).sum()))
"""


@pytest.mark.parametrize("statement", ['flor.log("step_now", STEP)', 'flor.log("n_lrs", len(LRS))'])
def test_globals_written_by_a_helper_of_a_helper_are_carried(
    script, monkeypatch, statement
) -> None:
    """What `bump()` writes, `train_step()` (which calls it) writes: outer read STEP as 0."""
    train = record(script, monkeypatch, HELPERS_CALLING_HELPERS)
    (run,) = recorded_ids()
    name = statement.split('"')[1]
    anchor = '        flor.log("err", float(np.abs(w).sum()))\n'
    train.path.write_text(insert(HELPERS_CALLING_HELPERS, anchor, statement))
    the_plan = plan([name], jobs=1)
    (planned,) = the_plan.runs
    assert planned.strategy == "full", planned.fallback
    execute(the_plan)
    assert values(name, run) == fresh(train, name) == [3, 6, 9, 12, 15]


# model.train() once before the loop, model.eval() at every epoch's end: from epoch 1 on the
# model trains in eval mode (no dropout), a mode no state_dict holds.
FORGETS_TRAIN = """\
import torch
import flor

torch.manual_seed(flor.arg("seed", 0))
x = torch.randn(64, 4)
y = x.sum(1, keepdim=True)
model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
model.train()
with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(6)):
        for i in flor.loop("step", range(0, 64, 16)):
            loss = torch.nn.functional.mse_loss(model(x[i : i + 16]), y[i : i + 16])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            print(torch.nn.functional.mse_loss(model(x), y).item())
"""


def test_a_module_left_in_eval_mode_by_the_last_iteration_is_carried_state(
    script, monkeypatch
) -> None:
    """h12: a task resumed at epoch 3 trained in train mode (dropout on); the recording
    trained in eval mode from epoch 1 on."""
    train = record(script, monkeypatch, FORGETS_TRAIN)
    (run,) = recorded_ids()
    anchor = "            optimizer.step()\n"
    train.path.write_text(insert(FORGETS_TRAIN, anchor, 'flor.log("step_loss", loss.item())'))
    the_plan = plan(["step_loss"], runs=[run], jobs=2)
    (planned,) = the_plan.runs
    if planned.strategy != "full":  # a task starting mid-run is what would go wrong
        assert planned.context is not None
        planned.context.timings = [1.0] * planned.iterations
        make_tasks(planned, planned.strategy)
        assert planned.tasks[-1].start > 0
    execute(the_plan)
    assert len(values("step_loss", run)) == 24
    assert values("step_loss", run) == fresh(train, "step_loss")
    assert planned.strategy == "full" and "(model.training)" in planned.fallback


def test_only_iterators_made_before_the_loop_count_as_carried() -> None:
    """`iter()`, generator functions, generator expressions and itertools make one-pass
    objects; a datasets-style `dataset.map(f)` method makes a new dataset."""
    source = """\
import itertools
import flor

def batches():
    while True:
        yield 1

dataset = load().map(tokenize)
counts = labels.count(1)
stream = batches()
cycled = itertools.cycle([1, 2])
squares = (i * i for i in range(9))
w = [0.0]
with flor.checkpointing(w=w):
    for epoch in flor.loop("epoch", range(3)):
        total = sum(x for x, _ in zip(dataset, stream)) + counts + next(cycled) + sum(squares)
        flor.log("total", total)
"""
    carried = classify(source, ["total"]).hazards.carried
    assert carried == {"stream", "cycled", "squares"}


STAR_TRAIN = ENGINE_TRAIN.replace("import engine\n", "from engine import *\n").replace(
    "engine.train_one_epoch(w, opt)", "train_one_epoch(w, opt)"
)


def test_a_star_import_of_a_project_module_binds_its_functions(script, monkeypatch) -> None:
    """`from engine import *`: the call of train_one_epoch is into engine, whose counter
    (read here through its module object) is state no checkpoint holds."""
    statement = 'flor.log("steps", sys.modules["engine"].STEPS)'
    source = STAR_TRAIN.replace("import numpy as np\n", "import sys\n\nimport numpy as np\n")
    train = _record_with_module(script, monkeypatch, source, ENGINE)
    (run,) = recorded_ids()
    anchor = '        flor.log("err", float(np.abs(w).sum()))\n'
    train.path.write_text(insert(source, anchor, statement))
    the_plan = plan(["steps"], jobs=1)
    (planned,) = the_plan.runs
    assert planned.strategy == "full" and "engine.STEPS" in planned.fallback
    execute(the_plan)
    assert values("steps", run) == fresh(train, "steps") == [4, 8, 12, 16, 20]


# A metric object that accumulates when called (torchmetrics' forward), never reset.
CALLABLE_METRIC = """\
import numpy as np
import flor


class MeanAbsError:
    def __init__(self):
        self.total = 0.0
        self.count = 0

    def __call__(self, pred, target):
        self.total += float(np.abs(pred - target).sum())
        self.count += len(target)


np.random.seed(flor.arg("seed", 0))
X = np.random.randn(100, 3)
y = X @ np.array([1.0, -2.0, 0.5])
w = np.zeros(3)
mae = MeanAbsError()
with flor.checkpointing(weights=w):
    for epoch in flor.loop("epoch", range(5)):
        for step in flor.loop("step", range(3)):
            batch = np.random.randint(0, 100, 10)
            mae(X[batch] @ w, y[batch])
            w[:] = w - 0.05 * 2 * X[batch].T @ (X[batch] @ w - y[batch]) / len(batch)
        flor.log("err", float(np.abs(w).sum()))
"""


def test_calling_an_object_whose_call_changes_it_changes_it(script, monkeypatch) -> None:
    """h14: `mae(pred, y)` names no method; outer skipped the step loop and read the
    metric as it was before it."""
    train = record(script, monkeypatch, CALLABLE_METRIC)
    (run,) = recorded_ids()
    anchor = '        flor.log("err", float(np.abs(w).sum()))\n'
    train.path.write_text(insert(CALLABLE_METRIC, anchor, 'flor.log("seen", mae.count)'))
    the_plan = plan(["seen"], jobs=1)
    (planned,) = the_plan.runs
    assert planned.strategy == "full" and "(mae)" in planned.fallback
    execute(the_plan)
    assert values("seen", run) == fresh(train, "seen") == [30, 60, 90, 120, 150]
