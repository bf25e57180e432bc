"""Replay fidelity on patterns of real public training code (benchmarks/fidelity_more): each
defect through real recorded runs, compared with a from-scratch run of that version with the
statement written in."""

from __future__ import annotations

import pytest
from test_fidelity import fresh, insert, record, recorded_ids, values

from flor.replay import execute, plan

# The pytorch/examples layout: the step loop lives in train(), called from the epoch loop;
# the learning rate (checkpointed) is halved after it.
HELPER_LOOP = """\
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
        flor.log("loss", float(np.mean((X[batch] @ w - y[batch]) ** 2)))


with flor.checkpointing(weights=w, opt=opt):
    for epoch in flor.loop("epoch", range(5)):
        train(epoch)
        opt["lr"] *= 0.5
        flor.log("err", float(np.abs(w).sum()))
"""


def test_a_nested_loop_inside_a_called_function_is_not_skipped_under_the_code_after_it(
    script, monkeypatch
) -> None:
    train = record(script, monkeypatch, HELPER_LOOP)
    (run,) = recorded_ids()
    train.path.write_text(
        insert(HELPER_LOOP, '        opt["lr"] *= 0.5\n', 'flor.log("lr_end", opt["lr"])')
    )
    the_plan = plan(["lr_end"], jobs=1)
    assert [r.strategy for r in the_plan.runs] == ["nested"]
    assert "code after a nested loop" in the_plan.runs[0].fallback
    summary = execute(the_plan)
    assert summary.runs_replayed == 1
    assert values("lr_end", run) == fresh(train, "lr_end") == [0.1 / 2 ** (i + 1) for i in range(5)]


# The main loop wrapped (HEADER: in a tqdm-like progress bar, or in enumerate); iterations
# take long enough (sleep) that the planner wants to split a run between two jobs.
WRAPPED = """\
import time

import numpy as np
import flor


def progress(iterable, desc=""):
    for item in iterable:
        yield item


np.random.seed(flor.arg("seed", 0))
X = np.random.randn(100, 3)
y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * np.random.randn(100)
w = np.zeros(3)
with flor.checkpointing(weights=w):
    for HEADER:
        for step in flor.loop("step", range(4)):
            batch = np.random.randint(0, 100, 20)
            w -= 0.05 * 2 * X[batch].T @ (X[batch] @ w - y[batch]) / 20
            time.sleep(0.15)
        flor.log("err", float(np.abs(w).sum()))
"""


def test_a_main_loop_wrapped_in_a_progress_bar_is_the_main_loop(script, monkeypatch) -> None:
    source = WRAPPED.replace("HEADER", 'epoch in progress(flor.loop("epoch", range(6)), desc="x")')
    train = record(script, monkeypatch, source)
    (run,) = recorded_ids()
    anchor = '        flor.log("err", float(np.abs(w).sum()))\n'
    train.path.write_text(insert(source, anchor, 'flor.log("w0", float(w[0]))'))
    the_plan = plan(["w0"], jobs=1)
    assert the_plan.runs[0].strategy == "outer"
    execute(the_plan)
    assert values("w0", run) == fresh(train, "w0")
    assert len(values("w0", run)) == 6


def test_a_wrapped_main_loop_is_never_resumed_mid_run_by_a_task(script, monkeypatch) -> None:
    source = WRAPPED.replace("HEADER", 'k, epoch in enumerate(flor.loop("epoch", range(6)))')
    train = record(script, monkeypatch, source)
    (run,) = recorded_ids()
    anchor = "            time.sleep(0.15)\n"
    train.path.write_text(insert(source, anchor, 'flor.log("k_step", k * 10 + step)'))
    the_plan = plan(["k_step"], jobs=2)
    assert the_plan.runs[0].strategy == "nested"
    assert len(the_plan.runs[0].tasks) == 1  # enumerate would count from a later start as 0
    execute(the_plan)
    assert (
        values("k_step", run)
        == fresh(train, "k_step")
        == [k * 10 + s for k in range(6) for s in range(4)]
    )


# The optimizer is re-created mid-training (Adam, then SGD: the SWATS-style switch); the
# checkpoint names the first one.
SWITCH = """\
import torch
import torch.nn.functional as F
import flor

torch.manual_seed(flor.arg("seed", 0))
x = torch.randn(64, 4)
y = x @ torch.randn(4, 1)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(4)):
        if epoch == 2:
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        for step in flor.loop("step", range(4)):
            loss = F.mse_loss(model(x[step * 16 : step * 16 + 16]), y[step * 16 : step * 16 + 16])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        flor.log("loss", loss.item())
"""


def test_a_checkpointed_object_replaced_in_the_loop_is_never_restored_from_the_old_one(
    script, monkeypatch
) -> None:
    train = record(script, monkeypatch, SWITCH)
    (run,) = recorded_ids()
    anchor = '        for step in flor.loop("step", range(4)):\n'
    first = 'flor.log("opt_lr", optimizer.param_groups[0]["lr"])\n' + anchor
    train.path.write_text(SWITCH.replace(anchor, "        " + first))
    the_plan = plan(["opt_lr"], jobs=1)
    assert the_plan.runs[0].strategy == "full"
    assert "replaces optimizer" in the_plan.runs[0].fallback
    execute(the_plan)
    assert values("opt_lr", run) == fresh(train, "opt_lr") == [0.05, 0.05, 0.01, 0.01]


# The training loop inside a method (Trainer.fit), its state on self; module-level code
# after the call reads what fit() returned.
TRAINER = """\
import numpy as np
import flor


class Trainer:
    def __init__(self, w):
        self.w = w
        self.best = float("inf")
        self.history = []

    def fit(self, X, y, epochs):
        with flor.checkpointing(weights=self.w):
            for epoch in flor.loop("epoch", range(epochs)):
                for step in flor.loop("step", range(4)):
                    batch = np.random.randint(0, 100, 20)
                    self.w -= 0.05 * 2 * X[batch].T @ (X[batch] @ self.w - y[batch]) / 20
                err = float(np.mean((X @ self.w - y) ** 2))
                self.history.append(err)
                self.best = min(self.best, err)
                flor.log("err", err)
        return self.history


np.random.seed(flor.arg("seed", 0))
X = np.random.randn(100, 3)
y = X @ np.array([1.0, -2.0, 0.5]) + 0.5 * np.random.randn(100)
trainer = Trainer(np.zeros(3))
history = trainer.fit(X, y, 5)
flor.log("final", float(trainer.w.sum()))
"""

# The same loop in `def main()`, with a plain learning rate halved every epoch.
IN_MAIN = """\
import numpy as np
import flor


def main():
    np.random.seed(flor.arg("seed", 0))
    X = np.random.randn(100, 3)
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.5 * np.random.randn(100)
    w = np.zeros(3)
    lr = 0.1
    with flor.checkpointing(weights=w):
        for epoch in flor.loop("epoch", range(5)):
            for step in flor.loop("step", range(4)):
                batch = np.random.randint(0, 100, 20)
                w -= lr * 2 * X[batch].T @ (X[batch] @ w - y[batch]) / 20
            lr *= 0.5
            flor.log("err", float(np.mean((X @ w - y) ** 2)))


if __name__ == "__main__":
    main()
"""


def test_statements_after_a_method_that_runs_the_main_loop_are_replayed(
    script, monkeypatch
) -> None:
    train = record(script, monkeypatch, TRAINER)
    (run,) = recorded_ids()
    anchor = 'flor.log("final", float(trainer.w.sum()))\n'
    train.path.write_text(insert(TRAINER, anchor, 'flor.log("n_hist", len(history))'))
    the_plan = plan(["n_hist"], jobs=2)
    assert the_plan.runs[0].strategy == "full"
    execute(the_plan)
    assert values("n_hist", run) == fresh(train, "n_hist") == [5]


def test_a_main_loop_inside_def_main_is_analysed_like_a_module_level_one(
    script, monkeypatch
) -> None:
    train = record(script, monkeypatch, IN_MAIN)
    (run,) = recorded_ids()
    anchor = "            lr *= 0.5\n"
    train.path.write_text(insert(IN_MAIN, anchor, 'flor.log("lr_now", lr)'))
    the_plan = plan(["lr_now"], jobs=2)
    assert the_plan.runs[0].strategy == "full"
    assert "carries state no checkpoint holds (lr)" in the_plan.runs[0].fallback
    execute(the_plan)
    assert values("lr_now", run) == fresh(train, "lr_now") == [0.1 / 2 ** (i + 1) for i in range(5)]


DECAY = """\
import torch
import torch.nn.functional as F
import flor

torch.manual_seed(flor.arg("seed", 0))
x = torch.randn(64, 4)
y = x @ torch.randn(4, 1)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)


def decay_lr(opt, factor):
    for group in opt.param_groups:
        group["lr"] *= factor


def evaluate():
    return F.mse_loss(model(x), y).item()


with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(4)):
        for step in flor.loop("step", range(4)):
            loss = F.mse_loss(model(x[step * 16 : step * 16 + 16]), y[step * 16 : step * 16 + 16])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val = evaluate()
        model.train()
        decay_lr(optimizer, 0.5)
        flor.log("val", val)
"""


def test_a_helper_that_changes_its_argument_through_an_alias_changes_it(
    script, monkeypatch
) -> None:
    train = record(script, monkeypatch, DECAY)
    (run,) = recorded_ids()
    anchor = '        flor.log("val", val)\n'
    train.path.write_text(
        insert(DECAY, anchor, 'flor.log("lr_now", optimizer.param_groups[0]["lr"])')
    )
    the_plan = plan(["lr_now"], jobs=1)
    assert the_plan.runs[0].strategy == "nested"
    execute(the_plan)
    assert values("lr_now", run) == fresh(train, "lr_now") == [0.1 / 2 ** (i + 1) for i in range(4)]


# Validation on random batches, in a helper, under eval() and no_grad, after the step loop.
RANDOM_EVAL = """\
import torch
import torch.nn.functional as F
import flor

torch.manual_seed(flor.arg("seed", 0))
x = torch.randn(128, 4)
y = x @ torch.randn(4, 1) + 0.3 * torch.randn(128, 1)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)


def estimate_loss():
    idx = DRAW
    return F.mse_loss(model(x[idx]), y[idx]).item()


with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(4)):
        for step in flor.loop("step", range(4)):
            loss = F.mse_loss(model(x[step * 16 : step * 16 + 16]), y[step * 16 : step * 16 + 16])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val = estimate_loss()
        model.train()
        flor.log("w_sum", model.weight.sum().item())
"""


@pytest.mark.parametrize(
    "draw", ["torch.randint(64, 128, (16,))", "64 + torch.multinomial(torch.ones(64), 16)"]
)
def test_a_helper_drawing_random_numbers_after_the_nested_loop_is_not_run_twice(
    script, monkeypatch, draw
) -> None:
    source = RANDOM_EVAL.replace("DRAW", draw)
    train = record(script, monkeypatch, source)
    (run,) = recorded_ids()
    anchor = '        flor.log("w_sum", model.weight.sum().item())\n'
    train.path.write_text(insert(source, anchor, 'flor.log("val", val)'))
    the_plan = plan(["val"], jobs=1)
    assert the_plan.runs[0].strategy == "nested"
    execute(the_plan)
    assert values("val", run) == fresh(train, "val")


# A helper of the script reads the gradients; the record logs it per step.
GRAD_HELPER = """\
import torch
import torch.nn.functional as F
import flor

torch.manual_seed(flor.arg("seed", 0))
x = torch.randn(64, 4)
y = x @ torch.randn(4, 1)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)


def global_norm(module):
    total = 0.0
    for p in module.parameters():
        if p.grad is not None:
            total += p.grad.pow(2).sum().item()
    return total**0.5


with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(4)):
        for step in flor.loop("step", range(4)):
            loss = F.mse_loss(model(x[step * 16 : step * 16 + 16]), y[step * 16 : step * 16 + 16])
            optimizer.zero_grad()
            loss.backward()
            flor.log("step_norm", global_norm(model))
            optimizer.step()
"""


def test_a_statement_reading_gradients_through_a_helper_is_not_replayed_from_checkpoints(
    script, monkeypatch
) -> None:
    train = record(script, monkeypatch, GRAD_HELPER)
    (run,) = recorded_ids()
    anchor = '    for epoch in flor.loop("epoch", range(4)):\n'
    train.path.write_text(insert(GRAD_HELPER, anchor, 'flor.log("start_norm", global_norm(model))'))
    the_plan = plan(["start_norm"], jobs=1)
    assert the_plan.runs[0].strategy == "full"
    assert "reads gradients" in the_plan.runs[0].fallback
    execute(the_plan)
    replayed = values("start_norm", run)
    assert replayed == fresh(train, "start_norm")
    assert replayed[0] == 0.0 and all(v > 0 for v in replayed[1:])


# A clean loop in `def main()`, run under `if __name__ == "__main__"`, its result used after.
CLEAN_MAIN = """\
import numpy as np
import flor


def main():
    np.random.seed(flor.arg("seed", 0))
    X = np.random.randn(100, 3)
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.5 * np.random.randn(100)
    w = np.zeros(3)
    with flor.checkpointing(weights=w):
        for epoch in flor.loop("epoch", range(5)):
            for step in flor.loop("step", range(4)):
                batch = np.random.randint(0, 100, 20)
                w -= 0.05 * 2 * X[batch].T @ (X[batch] @ w - y[batch]) / 20
            flor.log("err", float(np.mean((X @ w - y) ** 2)))
    return w


if __name__ == "__main__":
    w = main()
    print(w)
"""


@pytest.mark.parametrize(
    ("anchor", "statement", "strategy"),
    [
        ("    print(w)\n", 'flor.log("w_after", float(w[2]))', "suffix"),
        (
            '            flor.log("err", float(np.mean((X @ w - y) ** 2)))\n',
            'flor.log("w_epoch", float(w[0]))',
            "outer",
        ),
    ],
)
def test_statements_around_a_clean_loop_in_def_main_take_the_cheap_strategies(
    script, monkeypatch, anchor, statement, strategy
) -> None:
    train = record(script, monkeypatch, CLEAN_MAIN)
    (run,) = recorded_ids()
    train.path.write_text(insert(CLEAN_MAIN, anchor, statement))
    name = statement.split('"')[1]
    the_plan = plan([name], jobs=2)
    assert the_plan.runs[0].strategy == strategy
    execute(the_plan)
    replayed = values(name, run)
    assert replayed == fresh(train, name)
    assert len(replayed) == (1 if strategy == "suffix" else 5)
