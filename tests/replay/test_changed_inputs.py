"""A run whose `flor.input` file holds other content now: its replay would compute the
hindsight values from other data (the task sees the user's ignored files as they are
today), so it is declined, naming the file; unchanged inputs replay as before."""

from __future__ import annotations

from click.testing import CliRunner
from gitutil import git
from test_fidelity import fresh, insert, recorded_ids, values

from flor.cli import main

READS_DATA = """\
import numpy as np
import flor

data = np.loadtxt(flor.input("data/points.txt"))
w = np.zeros(1)
with flor.checkpointing(weights=w):
    for epoch in flor.loop("epoch", range(3)):
        w += 0.01 * data.sum()
"""
ANCHOR = "        w += 0.01 * data.sum()\n"


def _record(script, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FLOR_CKPT_BUDGET", "1")
    train = script("train.py", READS_DATA)
    (train.repo / ".gitignore").write_text("data/\n")
    (train.repo / "data").mkdir()
    (train.repo / "data" / "points.txt").write_text("1\n2\n3\n")
    git(train.repo, "add", "train.py", ".gitignore")
    git(train.repo, "commit", "-q", "-m", "v1")
    train.run()
    monkeypatch.delenv("FLOR_CKPT_BUDGET")
    return train


def test_a_run_whose_input_file_changed_is_declined_naming_the_file(script, monkeypatch) -> None:
    train = _record(script, monkeypatch)
    (train.repo / "data" / "points.txt").write_text("10\n20\n30\n")  # new data since
    train.path.write_text(insert(READS_DATA, ANCHOR, 'flor.log("total", float(w[0]))'))
    result = CliRunner().invoke(main, ["replay", "total", "--yes"])
    assert result.exit_code == 1, result.output
    assert "its input data/points.txt has changed" in result.output
    assert "flor checkout PATH@DIGEST" in result.output
    assert values("total", recorded_ids()[0]) == []


def test_every_changed_input_is_named_at_once(script, monkeypatch) -> None:
    monkeypatch.setenv("FLOR_CKPT_BUDGET", "1")
    two = READS_DATA.replace(
        'data = np.loadtxt(flor.input("data/points.txt"))',
        'data = np.loadtxt(flor.input("data/points.txt")) + np.loadtxt(flor.input("data/b.txt"))',
    )
    train = script("train.py", two)
    (train.repo / ".gitignore").write_text("data/\n")
    (train.repo / "data").mkdir()
    (train.repo / "data" / "points.txt").write_text("1\n2\n3\n")
    (train.repo / "data" / "b.txt").write_text("4\n5\n6\n")
    git(train.repo, "add", "train.py", ".gitignore")
    git(train.repo, "commit", "-q", "-m", "v1")
    train.run()
    monkeypatch.delenv("FLOR_CKPT_BUDGET")
    (train.repo / "data" / "points.txt").write_text("10\n20\n30\n")
    (train.repo / "data" / "b.txt").unlink()
    train.path.write_text(insert(two, ANCHOR, 'flor.log("total", float(w[0]))'))
    result = CliRunner().invoke(main, ["replay", "total", "--yes"])
    assert result.exit_code == 1, result.output
    assert (
        "2 of its inputs differ from what it read: data/points.txt has changed (now @"
        in result.output
    )
    assert "; data/b.txt is gone" in result.output


def test_a_run_whose_input_file_is_gone_is_declined(script, monkeypatch) -> None:
    train = _record(script, monkeypatch)
    (train.repo / "data" / "points.txt").unlink()
    train.path.write_text(insert(READS_DATA, ANCHOR, 'flor.log("total", float(w[0]))'))
    result = CliRunner().invoke(main, ["replay", "total", "--yes"])
    assert result.exit_code == 1, result.output
    assert "its input data/points.txt is gone" in result.output


def test_an_unchanged_input_replays_exactly(script, monkeypatch) -> None:
    train = _record(script, monkeypatch)
    train.path.write_text(insert(READS_DATA, ANCHOR, 'flor.log("total", float(w[0]))'))
    result = CliRunner().invoke(main, ["replay", "total", "--yes"])
    assert result.exit_code == 0, result.output
    (run,) = recorded_ids()
    assert values("total", run) == fresh(train, "total") == [0.06, 0.12, 0.18]


def test_one_plan_checks_each_run_against_its_own_reading(script, monkeypatch) -> None:
    # one reader and one digest cache serve the whole plan: the first run read data the
    # file no longer holds, the second read what it holds now
    train = _record(script, monkeypatch)
    (train.repo / "data" / "points.txt").write_text("10\n20\n30\n")
    monkeypatch.setenv("FLOR_CKPT_BUDGET", "1")
    train.run()
    monkeypatch.delenv("FLOR_CKPT_BUDGET")
    first, second = recorded_ids()
    train.path.write_text(insert(READS_DATA, ANCHOR, 'flor.log("total", float(w[0]))'))
    result = CliRunner().invoke(main, ["replay", "total", "--yes"])
    assert result.exit_code == 1, result.output
    assert f"run {first}: nothing stored" in result.output
    assert "its input data/points.txt has changed" in result.output
    assert values("total", first) == []
    assert values("total", second) == fresh(train, "total") == [0.6, 1.2, 0.6 + 1.2]
