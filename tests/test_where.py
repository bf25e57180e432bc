"""`flor.where`: one meaning of `--where` for replay, plot and the web UI's filter."""

from __future__ import annotations

import time
from pathlib import Path

from gitutil import git

from flor.paths import db_path, home_dir
from flor.store.values import encode
from flor.store.writer import LOG_COLUMNS, StoreWriter
from flor.where import last_values, matching_runs

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
