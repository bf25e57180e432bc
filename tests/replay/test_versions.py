"""The repository form over a real git history: chains, per-statement details, bad versions."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from gitutil import git

from flor.cli import main
from flor.replay import versions

OLD = """
net = Net()
for x in data:
    res = net(x)
    print(res)
"""
MIDDLE = """
model = Net()
for x in data:
    res = model(x)
    print(res)
"""
NEW = """
import flor
model = Net()
for x in data:
    out = model(x)
    flor.log("out", out.sum())
    print(out)
"""


def _commit(repo: Path, text: str, message: str) -> str:
    (repo / "train.py").write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def test_a_declined_jump_is_retried_through_the_git_history(repo: Path) -> None:
    old = _commit(repo, OLD, "old")
    _commit(repo, MIDDLE, "rename net to model")
    _commit(repo, NEW.replace('    flor.log("out", out.sum())\n', ""), "rename res to out")
    (repo / "train.py").write_text(textwrap.dedent(NEW).lstrip("\n"), encoding="utf-8")
    results = versions.propagate_history(Path("train.py"), store=False)
    by_commit = {r.commit: r for r in results}
    assert by_commit[old].inserted == ['flor.log("out", res.sum())']
    assert by_commit[old].details == [
        'flor.log("out", res.sum()): placed after old line 3, renamed out->res'
    ]


def test_table_reports_each_statement_and_skips_a_version_that_does_not_parse(
    repo: Path,
) -> None:
    _commit(repo, "async = 1\nx = 2\n", "an old version of another Python")
    _commit(repo, "x = 2\nprint(x)\n", "fixed")
    (repo / "train.py").write_text(
        "import flor\nx = 2\nflor.log('x', x)\nprint(x)\n", encoding="utf-8"
    )
    result = CliRunner().invoke(main, ["propagate", "train.py", "--dry-run", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows[0]["inserted"] == 0 and "does not parse at line 1" in rows[0]["statements"]
    assert "does not parse at line 1" in rows[0]["why"]  # the column CI jobs read
    assert rows[1]["statements"] == "flor.log('x', x): placed after old line 1"
    assert rows[1]["why"] == ""


def test_a_version_over_the_time_limit_is_reported_and_the_rest_continue(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _commit(repo, "x = 1\n", "first")
    second = _commit(repo, "x = 2\n", "second")
    (repo / "train.py").write_text("import flor\nx = 3\nflor.log('x', x)\n", encoding="utf-8")
    real = versions.propagate_source
    never = threading.Event()

    def stuck_on_first(new: str, old: str, *args: object) -> object:
        while old == "x = 1\n" and not never.is_set():
            never.wait(0.01)  # blocks until the time limit interrupts it
        return real(new, old, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(versions, "propagate_source", stuck_on_first)
    results = versions.propagate_history(Path("train.py"), store=False, time_limit_s=0.2)
    by_commit = {r.commit: r for r in results}
    assert by_commit[first].error.startswith("timed out after 0.2 s")
    assert by_commit[second].inserted == ["flor.log('x', x)"]


def test_a_script_that_cannot_be_read_is_one_usage_line(repo: Path) -> None:
    result = CliRunner().invoke(main, ["propagate", "nosuch.py"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: cannot read nosuch.py (No such file or directory): check the path"
    ]


def test_a_time_limit_expiring_inside_a_finalizer_still_interrupts_the_version() -> None:
    """An exception raised in `__del__` is swallowed by Python: the alarm must not be lost."""
    finalized = threading.Event()

    class AlarmOnFree:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGALRM)  # the limit expires while this runs
            finalized.set()

    never = threading.Event()
    with pytest.raises(versions.VersionTimeout), versions.time_limit(3600):
        AlarmOnFree()  # freed at once
        assert finalized.is_set()
        for _ in range(10_000):  # about 100 s if the alarm was lost
            never.wait(0.01)
