"""A long curve is summarized when its run ends, so its first view reads a few thousand
points instead of every value (issue 16's 10^6-value bar)."""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
from pathlib import Path

from conftest import clean_env
from gitutil import git
from store import pgfixtures

from flor.store import browse
from flor.store.backend import open_backend
from flor.store.reads import locate

backend, pg_server, pg_url = pgfixtures.backend, pgfixtures.pg_server, pgfixtures.pg_url

LONG = """\
import math
import flor

for epoch in flor.loop("epoch", range(250)):
    for step in flor.loop("step", range(100)):
        flor.log("loss", math.sin(epoch * 100 + step) / (1 + epoch))
    flor.log("acc", epoch / 250)
"""


def test_a_long_curve_is_summarized_when_its_run_ends_and_read_from_the_summary(
    backend: str, tmp_path: Path
) -> None:
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "long.py").write_text(LONG)
    git(tmp_path, "add", "long.py")
    git(tmp_path, "commit", "-q", "-m", "long")
    store = {k: v for k, v in os.environ.items() if k in ("FLOR_HOME", "FLOR_STORE")}
    subprocess.run(
        [sys.executable, "long.py"],
        cwd=tmp_path,
        env={**clean_env(), **store},
        check=True,
        timeout=300,
    )
    backend = open_backend(locate())
    conn = backend.reader()
    try:
        stored = conn.execute("SELECT run_id, name, total FROM curves").fetchall()
        assert [(name, total) for _, name, total in stored] == [("loss", 25_000)]  # not acc
        run_id = stored[0][0]
        series = functools.partial(browse.series, conn, dialect=backend.dialect)
        full = series(run_id, "loss", 30_000, stored=False)
        assert full.total == 25_000 and not full.downsampled
        summary = series(run_id, "loss", browse.SUMMARY_POINTS)
        fresh = series(run_id, "loss", browse.SUMMARY_POINTS, stored=False)
        assert (summary.y, summary.x, summary.loops) == (fresh.y, fresh.x, fresh.loops)
        page = series(run_id, "loss", 1200)
        assert len(page.y) == 1200 and page.downsampled.endswith("over 25000 values")
        assert (max(page.y), min(page.y)) == (max(full.y), min(full.y))
        assert page.x["step"] == sorted(page.x["step"]) and page.loops == ["epoch", "step"]
        assert set(page.x["step"]) <= set(full.x["step"])
        # more points than a summary holds: every value is read again
        detailed = series(run_id, "loss", 20_000)
        assert len(detailed.y) == 20_000 and detailed.total == 25_000
        assert series(run_id, "acc", 1200).y == [e / 250 for e in range(250)]
        counts = {e.name: (e.count, e.loops) for e in browse.logged(conn, run_id)}
        assert counts == {"acc": (250, ["epoch"]), "loss": (25_000, ["epoch", "step"])}
        # its last values by index seeks, the pass over `logs` going around it
        last = {"loss": math.sin(249 * 100 + 99) / 250, "acc": 249 / 250}
        assert browse.last_values(conn, backend.dialect) == {run_id: last}
    finally:
        conn.close()


MIXED = """\
import flor

values = [0, 1.5, "text", True, [1, 2], 5, float("nan")]
for epoch in flor.loop("epoch", range(len(values))):
    for step in flor.loop("step", range(2)):
        flor.log("m", values[epoch] if step == 1 else epoch * 10)
"""


def test_a_curve_keeps_numbers_in_loop_order_and_counts_what_is_not_a_number(
    backend: str, tmp_path: Path
) -> None:
    """Read without pandas: ints and floats joined by the store; text, booleans, lists and
    NaN are skipped and counted, as a curve drawn from `flor.dataframe` would."""
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "mixed.py").write_text(MIXED)
    store = {k: v for k, v in os.environ.items() if k in ("FLOR_HOME", "FLOR_STORE")}
    subprocess.run(
        [sys.executable, "mixed.py"], cwd=tmp_path, env={**clean_env(), **store}, check=True,
        timeout=300,
    )  # fmt: skip
    backend = open_backend(locate())
    conn = backend.reader()
    try:
        (run_id,) = [r for (r,) in conn.execute("SELECT run_id FROM runs").fetchall()]
        curve = browse.series(conn, run_id, "m", 1200, dialect=backend.dialect)
        assert curve.y == [0.0, 0.0, 10.0, 1.5, 20.0, 30.0, 40.0, 50.0, 5.0, 60.0]
        assert curve.x["step"] == list(range(10)) and curve.loops == ["epoch", "step"]
        assert curve.x["epoch"] == [0, 0.5, 1, 1.5, 2, 3, 4, 5, 5.5, 6]
        assert (curve.total, curve.skipped, curve.replayed) == (10, 4, False)
        assert browse.series(conn, run_id, "absent", 1200, dialect=backend.dialect).y == []
    finally:
        conn.close()


def test_every_runs_last_values_go_around_runs_with_a_stored_curve(backend: str) -> None:
    """Runs before and after (in key order) a run whose curve is stored: the pass over
    `logs` reads the ranges between them; the long run's values come from index seeks."""
    from flor.store.writer import StoreWriter

    writer = StoreWriter()
    for run_id, values in (("a1", [1, 2]), ("m1", [3, 4, 5]), ("z1", [6])):
        writer.insert_run({"run_id": run_id, "projid": "p", "filename": "t.py", "tstamp": "t",
                           "status": "finished", "mode": "record", "started": 1.0})  # fmt: skip
        logs = [(run_id, "t", None, "x", str(v), "int", i, None, "") for i, v in enumerate(values)]
        logs.append((run_id, "t", None, "x", "9", "int", 0, None, "replay1"))  # a replay's
        logs.append((run_id, "t", None, "only_replayed", "7", "int", 0, None, "replay1"))
        writer.write_batch(run_id, [], logs, [], 2.0)
    upsert = writer.dialect.upsert("curves", ("run_id", "name", "total", "body"), replace=True)
    writer.transaction(lambda c: c.execute(upsert, ("m1", "x", 3, "{}")))
    writer.close()
    backend_ = open_backend(locate())
    conn = backend_.reader()
    try:
        found = browse.last_values(conn, backend_.dialect)
    finally:
        conn.close()
    assert found == {
        "a1": {"x": 2, "only_replayed": 7},
        "m1": {"x": 5, "only_replayed": 7},
        "z1": {"x": 6, "only_replayed": 7},
    }
