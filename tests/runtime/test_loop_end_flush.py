"""A loop's end hands its rows to the background flusher (issue 14): the training thread
never writes the store, yet reads in the same process, the run's end and Ctrl-C/SIGTERM
right after the loop still see every value."""

from __future__ import annotations

import signal
import sqlite3
import threading
from pathlib import Path

import pytest

import flor
from flor.runtime.session import Identity, Session
from flor.store.writer import StoreWriter


@pytest.mark.timeout(120)
def test_the_training_thread_never_writes_the_store(tmp_path: Path) -> None:
    db = tmp_path / "flor.db"
    session = Session(StoreWriter(db), Identity("run1", "proj", "t.py"), tmp_path, None, ["t.py"])
    session.begin(None, None, None)
    writers: list[str] = []
    written = threading.Event()
    real = session.writer.write_batch

    def recording_write(row_id, loops, logs, *args, **kwargs):  # type: ignore[no-untyped-def]
        real(row_id, loops, logs, *args, **kwargs)
        writers.append(threading.current_thread().name)
        if any(row[3] == "last" for row in logs):
            written.set()

    session.writer.write_batch = recording_write  # type: ignore[method-assign]
    for epoch in session.loop("epoch", range(3)):
        for step in session.loop("step", range(50)):
            session.append_log((session.ctx, "loss", epoch + step / 100))
    with session.iteration("request", None, None):
        session.append_log((session.ctx, "last", 1))
    assert written.wait(60), "the flusher never wrote the rows the loops' ends handed it"
    assert set(writers) == {"flor-flush"}  # every batch was written off the training thread
    session.close()
    reader = sqlite3.connect(db)
    counts = reader.execute("SELECT name, COUNT(*) FROM logs GROUP BY name").fetchall()
    loops = reader.execute("SELECT COUNT(*) FROM loops").fetchone()[0]
    reader.close()
    assert sorted(counts) == [("last", 1), ("loss", 150)] and loops == 3 + 150 + 1


def test_reads_in_the_same_process_right_after_a_loop_see_every_value(script) -> None:
    done = script(
        "train.py",
        """
        import flor
        for step in flor.loop("step", range(3000)):
            flor.log("loss", step / 2)
        frame = flor.dataframe("loss")
        count = flor.query("SELECT COUNT(*) AS n FROM loops WHERE name = 'step'")["n"].item()
        print(len(frame), frame["loss"].sum(), count)
        """,
    ).run()
    assert done.stdout.split() == ["3000", str(sum(s / 2 for s in range(3000))), "3000"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_right_after_a_loop_ends_loses_nothing(script, sig) -> None:
    done = script(
        "train.py",
        f"""
        import os, time
        import flor
        for step in flor.loop("step", range(5000)):
            flor.log("loss", step)
        os.kill(os.getpid(), {int(sig)})  # the loop's rows are with the flusher, or queued
        time.sleep(60)
        """,
    ).run(
        check=False,
        # a suite started in the background ignores SIGINT, and children inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert done.returncode != 0
    assert flor.dataframe("loss")["loss"].tolist() == list(range(5000))
    assert flor.query("SELECT status FROM runs")["status"].item() == "killed"
