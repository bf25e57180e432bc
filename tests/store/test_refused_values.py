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
