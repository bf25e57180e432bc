"""Values and rows a backend refuses, on SQLite and on PostgreSQL: later logging goes on."""

from __future__ import annotations

import json
from pathlib import Path

from store import pgfixtures

import flor

backend, pg_server, pg_url = pgfixtures.backend, pgfixtures.pg_server, pgfixtures.pg_url

SCRIPT = """
import flor
for step in flor.loop("step", range(5)):
    flor.log("text", f"nul \\x00 at {step}")  # PostgreSQL refuses NUL in text
    if step == 2:
        flor.log("bad \\udc80 name", step)  # no driver can send a lone surrogate
flor.log("after", "end")
"""


def test_refused_rows_are_quarantined_and_unstorable_text_is_escaped(
    backend, script, tmp_path
) -> None:
    done = script("t.py", SCRIPT).run()
    assert "Traceback" not in done.stderr
    frame = flor.dataframe("text")
    assert frame["text"].tolist() == [f"nul \x00 at {step}" for step in range(5)]
    assert flor.dataframe("after")["after"].tolist() == ["end"]
    run = flor.query("SELECT run_id, status, note FROM runs")
    assert run["status"].item() == "finished" and "1 logged values" in run["note"].item()
    kept = Path(tmp_path / "flor-home" / "quarantine" / f"{run['run_id'].item()}.jsonl")
    records = [json.loads(line) for line in kept.read_text().splitlines()]
    assert [r["name"] for r in records] == ["bad \udc80 name"]


CHECKPOINTED = """
import flor, numpy as np
w = np.zeros(4)
with flor.checkpointing(w=w, budget=1):
    for epoch in flor.loop("epoch", range(6)):
        w += 1
        flor.log("loss", float(w.sum()))
"""


def _reject_checkpoint_rows(backend: str, tmp_path: Path) -> None:
    if backend == "postgresql":
        import os

        import psycopg

        with psycopg.connect(os.environ["FLOR_STORE"], autocommit=True) as conn:
            conn.execute(
                "CREATE FUNCTION reject() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'could not extend file: No space left on device'; END $$ "
                "LANGUAGE plpgsql"
            )
            conn.execute(
                "CREATE TRIGGER reject BEFORE INSERT ON checkpoints "
                "FOR EACH ROW EXECUTE FUNCTION reject()"
            )
        return
    import sqlite3

    conn = sqlite3.connect(tmp_path / "flor-home" / "flor.db")
    conn.execute(
        "CREATE TRIGGER reject BEFORE INSERT ON checkpoints "
        "BEGIN SELECT RAISE(ABORT, 'No space left on device'); END"
    )
    conn.commit()
    conn.close()


def test_a_store_refusing_checkpoints_never_stops_training(backend, script, tmp_path) -> None:
    script("first.py", "import flor\nflor.log('x', 1)\n").run()  # creates the store
    _reject_checkpoint_rows(backend, tmp_path)
    done = script("t.py", CHECKPOINTED).run()  # a hang fails by the runner's timeout
    warnings = [line for line in done.stderr.splitlines() if "checkpoints disabled" in line]
    assert len(warnings) == 1 and "No space left on device" in warnings[0]
    assert "Traceback" not in done.stderr
    run = flor.query("SELECT status, note FROM runs WHERE filename = 't.py'")
    assert run["status"].item() == "finished" and "checkpoints disabled" in run["note"].item()
    assert flor.dataframe("loss")["loss"].dropna().tolist() == [4, 8, 12, 16, 20, 24]
