"""One bad value never stops later logging, and nothing logged is silently missing."""

from __future__ import annotations

import json
import signal
import sqlite3

import flor

BAD_VALUES = """
import flor
class RaisingRepr:
    def __repr__(self):
        raise RuntimeError("no repr today")
deep = []
for _ in range(100_000):
    deep = [deep]
for step in flor.loop("step", range(4)):
    flor.log("loss", step / 2)
    if step == 1:
        flor.log("odd", RaisingRepr())
    if step == 2:
        flor.log("odd", deep)
        flor.log("text", "lone \\ud800 surrogate")
flor.log("after", "end")
"""


def test_values_that_cannot_be_encoded_are_tagged_and_later_values_are_kept(script) -> None:
    done = script("t.py", BAD_VALUES).run()
    assert "Traceback" not in done.stderr
    assert flor.query("SELECT status FROM runs")["status"].tolist() == ["finished"]
    frame = flor.dataframe("loss", "odd", "text")
    assert frame["loss"].tolist() == [0, 0.5, 1, 1.5]
    assert frame["text"].dropna().tolist() == ["lone \ud800 surrogate"]
    odd = flor.query("SELECT type FROM logs WHERE name = 'odd' ORDER BY seq")["type"].tolist()
    assert odd == ["unrepresentable:__main__.RaisingRepr", "unrepresentable:builtins.list"]
    assert flor.dataframe("after")["after"].tolist() == ["end"]


REFUSED_ROWS = """
import flor
for step in flor.loop("step", range(6)):
    flor.log("loss", step)
    if step == 2:
        flor.log("poison", 1)  # refused by the store's trigger
        flor.log("bad \\udc80 name", 2)  # refused by SQLite's driver
flor.log("after", 7)
"""


def test_rows_the_store_refuses_are_quarantined_and_reported(script, repo) -> None:
    script("first.py", "import flor\nflor.log('x', 1)\n").run()  # creates the store
    conn = sqlite3.connect(repo / ".flor" / "flor.db")
    conn.execute(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON logs WHEN NEW.name = 'poison' "
        "BEGIN SELECT RAISE(ABORT, 'value refused'); END"
    )
    conn.commit()
    conn.close()
    done = script("t.py", REFUSED_ROWS).run()
    assert "Traceback" not in done.stderr
    run = flor.query("SELECT run_id, status, note FROM runs WHERE filename = 't.py'")
    run_id = run["run_id"].item()
    assert run["status"].item() == "finished"
    assert flor.dataframe("loss")["loss"].dropna().tolist() == [0, 1, 2, 3, 4, 5]
    assert flor.dataframe("after")["after"].dropna().tolist() == [7]
    kept = repo / ".flor" / "quarantine" / f"{run_id}.jsonl"
    records = [json.loads(line) for line in kept.read_text().splitlines()]
    assert sorted(r["name"] for r in records) == ["bad \udc80 name", "poison"]
    assert all(r["run_id"] == run_id and r["type"] == "int" for r in records)
    assert {r["value"] for r in records} == {"1", "2"}
    assert any("value refused" in r["error"] for r in records)
    assert "2 logged values are not in the store" in run["note"].item()
    assert str(kept) in done.stderr


INTERRUPTED_FLUSH = """
import threading
from flor.store import sqlite as backend
_real_insert = backend.SQLiteWriter.insert_rows
_interrupted = []
def _insert_then_interrupt(self, conn, table, columns, rows, **options):
    if table == "logs" and threading.current_thread() is threading.main_thread():
        if not _interrupted:
            _interrupted.append(True)
            _real_insert(self, conn, table, columns, rows, **options)
            raise KeyboardInterrupt  # Ctrl-C in the middle of flor.commit's flush
    return _real_insert(self, conn, table, columns, rows, **options)
backend.SQLiteWriter.insert_rows = _insert_then_interrupt
import flor
from flor.runtime import context
session = context.current()
session._stop.set()  # no background flusher: the commit below is the only writer
session._wake.set()
session._flusher.join()
for epoch in flor.loop("epoch", range(1)):
    for k in range(50):
        flor.log("v", k)
flor.commit()
"""


def test_ctrl_c_during_a_flush_keeps_the_batch_in_flight(script) -> None:
    done = script("t.py", INTERRUPTED_FLUSH).run(check=False)
    assert "KeyboardInterrupt" in done.stderr and done.returncode != 0
    assert flor.query("SELECT status FROM runs")["status"].tolist() == ["killed"]
    stored = flor.query("SELECT value FROM logs WHERE name = 'v' ORDER BY seq")["value"]
    assert stored.astype(int).tolist() == list(range(50))


INTERRUPTED_BACKGROUND_FLUSH = """
import os, signal, threading, time
from flor.store import sqlite as backend
_real_insert = backend.SQLiteWriter.insert_rows
_interrupted = []
def _insert_then_interrupt(self, conn, table, columns, rows, **options):
    _real_insert(self, conn, table, columns, rows, **options)
    if table == "logs" and threading.current_thread().name == "flor-flush":
        if not _interrupted:
            _interrupted.append(True)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the flusher writes the loop
backend.SQLiteWriter.insert_rows = _insert_then_interrupt
import flor
for epoch in flor.loop("epoch", range(1)):
    for k in range(50):
        flor.log("v", k)
while True:  # training goes on while the loop's rows are written
    time.sleep(0.01)
"""


def test_ctrl_c_while_the_flusher_writes_a_loops_rows_loses_nothing(script) -> None:
    done = script("t.py", INTERRUPTED_BACKGROUND_FLUSH).run(
        check=False,
        # a suite started in the background ignores SIGINT, and children inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert "KeyboardInterrupt" in done.stderr and done.returncode != 0
    assert flor.query("SELECT status FROM runs")["status"].tolist() == ["killed"]
    stored = flor.query("SELECT value FROM logs WHERE name = 'v' ORDER BY seq")["value"]
    assert stored.astype(int).tolist() == list(range(50))
