"""`flor.where`: one meaning of `--where` for replay, plot and the web UI's filter."""

from __future__ import annotations

import time
from pathlib import Path

from gitutil import git
from store import pgfixtures

from flor.paths import db_path, home_dir
from flor.store.values import encode
from flor.store.writer import LOG_COLUMNS, StoreWriter
from flor.where import last_values, matching_runs

backend, pg_server, pg_url = pgfixtures.backend, pgfixtures.pg_server, pgfixtures.pg_url

TRAIN = """
import flor

lr = flor.arg("lr", 0.1)
for epoch in flor.loop("epoch", range(3)):
    flor.log("acc", lr * (epoch + 1))
"""


def _store_replayed(run_id: str, name: str, value: float, replay_id: str) -> None:
    """A hindsight value as `flor replay` stores it: under the run, written by a replay."""
    writer = StoreWriter(db_path(home_dir()))
    try:
        text, kind = encode(value)
        row = dict.fromkeys(LOG_COLUMNS)
        row.update(run_id=run_id, tstamp="t", ctx_id=None, name=name, value=text, type=kind,
                   seq=0, replay_id=replay_id, writer=replay_id)  # fmt: skip
        writer.write_batch(replay_id, [], [tuple(row[c] for c in LOG_COLUMNS)], [], time.time())
    finally:
        writer.close()


def test_where_sees_run_fields_recorded_values_and_else_replayed_ones(repo: Path, script) -> None:  # type: ignore[no-untyped-def]
    train = script("train.py", TRAIN)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    train.run("--kwargs", "lr=0.1")
    train.run("--kwargs", "lr=0.3")
    runs = last_values({"acc", "lr"})
    by_lr = {values["lr"]: run_id for run_id, values in runs.items()}
    low, high = by_lr[0.1], by_lr[0.3]
    assert runs[high]["acc"] == 0.3 * 3  # the last epoch's value
    assert runs[high]["filename"] == "train.py" and runs[high]["runid"] == high
    assert len(runs[high]["version"]) == 10  # the snapshot commit, abbreviated

    # the run fields work in every `--where` (replay's used to see only logged names)
    assert matching_runs("filename == 'train.py' and acc > 0.5") == {high}
    # a replayed value never overrides a recorded one, but counts for names never recorded
    _store_replayed(low, "acc", 99.0, "replay-a")
    _store_replayed(low, "grad_norm", 2.5, "replay-a")
    assert matching_runs("acc > 0.5") == {high}
    assert matching_runs("grad_norm > 2") == {low}


MIXED = """
import flor

for epoch in flor.loop("epoch", range(2)):
    flor.log("x", 3)
    flor.log("x", 1.25 + epoch)  # the last value of x, though 'int' sorts after 'float'
flor.log("y", 9.5)
flor.commit()  # a new tstamp, as a notebook's cell does
flor.log("y", 4)
"""


def test_where_sees_the_value_logged_last_whatever_its_type_or_tstamp(
    repo: Path, script, backend: str
) -> None:  # type: ignore[no-untyped-def]
    train = script("mixed.py", MIXED)
    git(repo, "add", "mixed.py")
    git(repo, "commit", "-q", "-m", "v1")
    train.run()
    (run_id,) = last_values(set())
    _store_replayed(run_id, "g", 1.0, "replay-b")
    _store_replayed(run_id, "g", 2.0, "replay-a")  # replays only: the greatest replay id's
    assert {k: last_values({"x", "y", "g"})[run_id][k] for k in "xyg"} == {
        "x": 2.25,
        "y": 4,
        "g": 1.0,
    }


LONG = """
import flor

for step in flor.loop("step", range(int(flor.arg("steps", 10)))):
    flor.log("loss", 1.0 / (step + 1))
"""


def test_where_reads_a_long_curve_by_seeks_not_value_by_value(
    repo: Path, script, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A run that ended with a long curve (its summary stored) has its last value found by
    a few index seeks, however many values it has: SQLite executes fewer instructions
    than the run has values (a read of each would take several per value)."""
    from flor.store import schema

    train = script("long.py", LONG)
    git(repo, "add", "long.py")
    git(repo, "commit", "-q", "-m", "v1")
    train.run("--kwargs", "steps=30000")
    train.run("--kwargs", "steps=3")
    opened = schema.connect
    steps = [0]

    def counted(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        conn = opened(*args, **kwargs)  # type: ignore[arg-type]

        def count() -> int:
            steps[0] += 100
            return 0

        conn.set_progress_handler(count, 100)
        return conn

    monkeypatch.setattr(schema, "connect", counted)
    found = last_values({"loss"})
    assert sorted(v["loss"] for v in found.values()) == [1 / 30000, 1 / 3]
    assert steps[0] < 30_000
