"""Recording from IPython (as Jupyter does): a commit per executed cell that logged, and
the notebook's code in the snapshots. Run in a subprocess so the flor session is the
notebook's own, not pytest's."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from gitutil import git

CELLS = [
    "import flor",
    "lr = flor.arg('lr', 0.1)\nflor.log('first', 1)",
    "x = 2  # logs nothing: no commit",
    "for epoch in flor.loop('epoch', range(3)):\n    flor.log('loss', 1 / (epoch + 1))",
    "print('still nothing logged')",
    "flor.log('last', x)",
]
DRIVER = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
for cell in json.loads(sys.argv[1]):
    result = shell.run_cell(cell, store_history=True)
    if not result.success:
        raise SystemExit(f"cell failed: {cell!r}: {result.error_in_exec!r}")
"""


def test_ipython_commits_after_each_logging_cell(repo: Path) -> None:
    notebook = repo / "analysis.ipynb"
    notebook.write_text(json.dumps({"cells": [], "nbformat": 4, "nbformat_minor": 5}))
    git(repo, "add", "analysis.ipynb")
    git(repo, "commit", "-q", "-m", "notebook")
    driver = repo.parent / "driver.py"  # outside the repository: not the recorded code
    driver.write_text(textwrap.dedent(DRIVER))
    done = subprocess.run(
        [sys.executable, str(driver), json.dumps(CELLS)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "FLOR_NOTEBOOK": "analysis.ipynb"},
    )
    assert done.returncode == 0, done.stderr

    import flor

    [run] = flor.query("SELECT run_id, filename, status FROM runs").to_dict("records")
    assert run["filename"] == "analysis.ipynb" and run["status"] == "finished"
    logs = flor.query(
        "SELECT name, tstamp FROM logs WHERE run_id = ? ORDER BY seq", (run["run_id"],)
    )
    tstamps = list(dict.fromkeys(logs["tstamp"]))
    assert len(tstamps) == 3, "one tstamp per logging cell: is notebook.install wired at start?"
    assert list(logs.groupby("tstamp", sort=False)["name"].apply(sorted)) == [
        ["first", "lr"],
        ["loss", "loss", "loss"],
        ["last"],
    ]
    commits = flor.query(
        "SELECT tstamp, snapshot FROM commits WHERE run_id = ? ORDER BY tstamp", (run["run_id"],)
    )
    assert len(commits) == 4  # the run's start and one commit per logging cell
    snapshots = dict(zip(commits["tstamp"], commits["snapshot"], strict=True))
    for k, tstamp in enumerate(tstamps):
        code = git(repo, "show", f"{snapshots[tstamp]}:.flor-notebook/analysis.py")
        ran = [c for c in CELLS if c.strip()]
        upto = ran.index(CELLS[[1, 3, 5][k]])
        assert all(cell in code for cell in ran[: upto + 1]), code
        assert all(cell not in code for cell in ran[upto + 1 :]), code
        files = git(repo, "ls-tree", "-r", "--name-only", snapshots[tstamp]).split()
        assert "analysis.ipynb" in files  # the saved notebook is in the snapshot too
    assert flor.dataframe("loss")["loss"].tolist() == [1.0, 0.5, 1 / 3]
    assert "flor-notebook" not in git(repo, "status", "--porcelain")  # work tree untouched
