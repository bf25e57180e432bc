"""flor.checkpointing inside recorded runs: frequency, storage, restore, bad input."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import flor
from flor.cli import main

TORCH_TRAIN = """
import torch, flor
from torch import nn
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
opt = torch.optim.Adam(net.parameters(), lr=0.01)
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
data = torch.randn(64, 8)
target = data.sum(dim=1, keepdim=True)
with flor.checkpointing(model=net, optimizer=opt, scheduler=sched):
    for epoch in flor.loop("epoch", range(EPOCHS)):
        for step in flor.loop("step", range(4)):
            idx = torch.randint(0, 64, (16,))
            opt.zero_grad()
            loss = ((net(data[idx]) - target[idx]) ** 2).mean()
            loss.backward()
            opt.step()
            flor.log("loss", loss.item())
        sched.step()
"""


def _checkpointed_iterations() -> list[int]:
    rows = flor.query("SELECT DISTINCT iteration FROM checkpoints ORDER BY iteration")
    return rows["iteration"].tolist()


@pytest.mark.parametrize(("budget", "expected"), [("1", [0, 1, 2, 3, 4, 5]), ("0", [])])
def test_budget_one_checkpoints_every_iteration_and_zero_none(
    script, monkeypatch, budget, expected
) -> None:
    monkeypatch.setenv("FLOR_CKPT_BUDGET", budget)
    script("t.py", TORCH_TRAIN.replace("EPOCHS", "5")).run()
    assert _checkpointed_iterations() == expected


def test_default_budget_keeps_start_and_end_and_records_size_and_cost(script) -> None:
    script("t.py", TORCH_TRAIN.replace("EPOCHS", "30")).run()
    iterations = _checkpointed_iterations()
    assert iterations[0] == 0 and iterations[-1] == 30 and len(iterations) < 31
    rows = flor.query("SELECT object, bytes, seconds FROM checkpoints")
    assert set(rows["object"]) == {"model", "optimizer", "scheduler", "@rng"}
    assert (rows["bytes"] > 0).all() and (rows["seconds"] > 0).all()
    listed = CliRunner().invoke(main, ["runs", "--format", "json"]).output
    assert '"checkpoints":' in listed and '"checkpoints":0' not in listed


def test_load_restores_iteration_k_and_rerunning_it_reproduces_the_losses_bit_for_bit(
    script, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("FLOR_CKPT_BUDGET", "1")
    script("t.py", TORCH_TRAIN.replace("EPOCHS", "5")).run()
    run_id = flor.query("SELECT run_id FROM runs")["run_id"].item()
    recorded = flor.dataframe("loss")
    expected = recorded[recorded["epoch"] == 3]["loss"].tolist()
    # a fresh process builds new objects and restores the start of epoch 3 into them
    check = script(
        "check.py",
        f"""
        import torch, flor
        from torch import nn
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        data = torch.randn(64, 8)
        target = data.sum(dim=1, keepdim=True)
        assert flor.load("{run_id}", 3, model=net, optimizer=opt, scheduler=sched) == 3
        for step in range(4):
            idx = torch.randint(0, 64, (16,))
            opt.zero_grad()
            loss = ((net(data[idx]) - target[idx]) ** 2).mean()
            loss.backward()
            opt.step()
            print(repr(loss.item()))
        """,
    )
    losses = [float(x) for x in check.run().stdout.split()]
    assert losses == expected


def test_identical_states_are_stored_once(script, monkeypatch, repo) -> None:
    monkeypatch.setenv("FLOR_CKPT_BUDGET", "1")
    script("t.py", TORCH_TRAIN.replace("EPOCHS", "2")).run()
    script("t.py", TORCH_TRAIN.replace("EPOCHS", "2")).run()
    rows = flor.query("SELECT digest, bytes FROM checkpoints")
    files = [p for p in (repo / ".flor" / "checkpoints").rglob("??/*") if p.is_file()]
    assert len(files) == rows["digest"].nunique() < len(rows)


def test_gc_frees_checkpoints_of_deleted_runs(script, monkeypatch, repo) -> None:
    monkeypatch.setenv("FLOR_CKPT_BUDGET", "1")
    train = script("t.py", TORCH_TRAIN.replace("EPOCHS", "2"))
    train.run()
    train.run("--kwargs")  # a second run: same states, shared blobs
    keep, drop = flor.query("SELECT run_id FROM runs ORDER BY started")["run_id"]
    digests = flor.query("SELECT run_id, digest FROM checkpoints").groupby("run_id")["digest"]
    kept, dropped = set(digests.get_group(keep)), set(digests.get_group(drop))
    assert kept & dropped  # model and optimizer states are shared; RNG states differ
    runner = CliRunner()
    assert runner.invoke(main, ["runs", "--delete", drop]).exit_code == 0
    shared = runner.invoke(main, ["gc", "--grace", "0"])
    assert shared.output.startswith(f"removed {len(dropped - kept)} checkpoint blobs")
    assert all((repo / ".flor" / "checkpoints" / d[:2] / d[2:]).is_file() for d in kept)
    assert runner.invoke(main, ["runs", "--delete", keep]).exit_code == 0
    freed = runner.invoke(main, ["gc", "--grace", "0"]).output
    assert not freed.startswith("removed 0") and not any(
        p.is_file() for p in (repo / ".flor" / "checkpoints").rglob("??/*")
    )


@pytest.mark.parametrize(
    ("code", "message", "status"),
    [
        ("import flor\nx = [1]\nwith flor.checkpointing(a=x, b=x):\n    pass\n", "same object", 1),
        (
            "import flor\nwith flor.checkpointing(a=[1]):\n    with flor.checkpointing(b=[2]):\n"
            "        pass\n",
            "cannot be nested",
            1,
        ),
        ("import flor\nwith flor.checkpointing(lr=0.1):\n    pass\n", "type float", 1),
    ],
)
def test_bad_objects_are_refused_with_one_line(script, code, message, status) -> None:
    done = script("bad.py", code).run(check=False)
    assert done.returncode == status and message in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1


def test_warnings_for_no_loop_and_a_rebound_object(script) -> None:
    done = script(
        "w.py",
        """
        import flor, numpy as np
        with flor.checkpointing(a=[1]):
            pass
        w = np.zeros(3)
        with flor.checkpointing(weights=w):
            for i in flor.loop("i", range(3)):
                w = np.ones(3)
        """,
    ).run()
    assert "no flor.loop ran inside flor.checkpointing" in done.stderr
    assert "'w' now names a new object" in done.stderr
    assert done.stderr.count("now names a new object") == 1


def test_unwritable_checkpoint_folder_keeps_training_and_notes_the_run(script, repo) -> None:
    (repo / ".flor").mkdir()
    (repo / ".flor" / "checkpoints").write_text("a file where a folder should be")
    done = script(
        "t.py",
        "import flor, numpy as np\nw = np.zeros(2)\nwith flor.checkpointing(w=w):\n"
        "    for i in flor.loop('i', range(3)):\n        flor.log('v', i)\n",
    ).run()
    assert "checkpoints disabled for this run" in done.stderr
    assert flor.dataframe("v")["v"].tolist() == [0, 1, 2]
    assert "checkpoints disabled" in flor.query("SELECT note FROM runs")["note"].item()


def test_recording_with_checkpoints_does_not_load_pandas_or_libcst(script) -> None:
    done = script(
        "light.py",
        """
        import sys, flor, numpy as np
        w = np.zeros(3)
        with flor.checkpointing(w=w):
            for i in flor.loop("i", range(3)):
                flor.log("x", i)
        print(sorted(m for m in ("pandas", "libcst", "joblib", "rich") if m in sys.modules))
        """,
    ).run()
    assert done.stdout.strip() == "[]"
