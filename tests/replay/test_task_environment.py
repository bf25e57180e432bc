"""A replay task gets only what it needs: never the store's location or its password."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from gitutil import git
from store import pgfixtures

import flor
from flor.replay import execute, plan

pg_server, pg_url = pgfixtures.pg_server, pgfixtures.pg_url

TRAIN = """\
import os
import flor

state = {"total": 0.0}
with flor.checkpointing(state=state, budget=1):
    for epoch in flor.loop("epoch", range(3)):
        state["total"] += epoch + 1
        flor.log("total", state["total"])
"""
# what a replay task sees: the names of flor's settings, and whether any variable holds
# the store's password
SEEN = (
    '        flor.log("total", state["total"])\n',
    '        flor.log("flor_settings", sorted(k for k in os.environ if k.startswith("FLOR_")))\n'
    '        flor.log("password_seen", any(PASSWORD in v for v in os.environ.values()))\n',
)


def test_a_replay_task_gets_neither_the_store_nor_its_password(
    repo: Path, script, pg_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    password = urlsplit(pg_url).password  # the fixture's own server or CI's
    assert password
    monkeypatch.setenv("FLOR_STORE", pg_url)
    monkeypatch.setenv("FLOR_HOME", str(tmp_path / "flor-home"))
    train = script("train.py", TRAIN)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "train")
    train.run()
    anchor, lines = SEEN
    train.path.write_text(TRAIN.replace(anchor, anchor + lines.replace("PASSWORD", repr(password))))

    replay = plan(["flor_settings", "password_seen"], jobs=1)
    assert [r.strategy for r in replay.runs] == ["outer"], replay.table()
    summary = execute(replay)

    assert not summary.failed, [r.tail for r in summary.failed]
    frame = flor.dataframe("flor_settings", "password_seen")
    assert frame["password_seen"].tolist() == [False] * 3
    settings = [json.loads(v) if isinstance(v, str) else v for v in frame["flor_settings"]]
    for names in settings:
        assert "FLOR_STORE" not in names and "FLOR_HOME" not in names
        assert set(names) <= {"FLOR_CHECKPOINTS", "FLOR_REPLAY_OUTPUT", "FLOR_SANDBOX"}
    # the executor still records the tasks as replays of the run, for `flor runs` and the UI
    tasks = flor.query("SELECT status FROM runs WHERE mode = 'replay'")["status"].tolist()
    assert tasks and set(tasks) == {"finished"}
