"""A failing or stuck checkpoint store never hangs training, the block's exit, or a signal."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
from gitutil import default_sigint

import flor

TRAIN = """
import flor, numpy as np
w = np.zeros(4)
with flor.checkpointing(w=w, budget=1):
    for epoch in flor.loop("epoch", range(EPOCHS)):
        w += 1
        flor.log("loss", float(w.sum()))
        print("epoch", epoch, flush=True)
"""

# The blob store never answers: opening the FIFO blocks until someone writes to it.
HUNG_STORE = """
import os
from flor import blobs
_real_put = blobs.BlobStore.put
def _hung_put(self, data):
    open(os.environ["HANG_FIFO"]).close()
    return _real_put(self, data)
blobs.BlobStore.put = _hung_put
"""

HANG_GUARD_S = 60  # ends a hung process only; no assertion depends on durations


def _reject_checkpoint_rows(db: Path) -> None:
    """A real store error on every checkpoint row, raised by SQLite itself."""
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TRIGGER reject_checkpoints BEFORE INSERT ON checkpoints "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )
    conn.commit()
    conn.close()


def test_store_error_in_the_writer_warns_once_and_training_completes(script, repo) -> None:
    script("first.py", "import flor\nflor.log('x', 1)\n").run()  # creates the store
    _reject_checkpoint_rows(repo / ".flor" / "flor.db")
    # a hang fails by the runner's timeout
    done = script("t.py", TRAIN.replace("EPOCHS", "6")).run()
    warnings = [line for line in done.stderr.splitlines() if "checkpoints disabled" in line]
    assert len(warnings) == 1 and "database or disk is full" in warnings[0]
    assert "Traceback" not in done.stderr
    run = flor.query("SELECT run_id, status FROM runs WHERE filename = 't.py'")
    assert run["status"].tolist() == ["finished"]
    assert flor.dataframe("loss")["loss"].dropna().tolist() == [4, 8, 12, 16, 20, 24]
    assert flor.query("SELECT COUNT(*) AS n FROM checkpoints")["n"].item() == 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_writer_is_stuck_stops_the_run_and_keeps_its_logs(
    script, repo, tmp_path, signum
) -> None:
    fifo = tmp_path / "hang"
    os.mkfifo(fifo)
    train = script("t.py", HUNG_STORE + TRAIN.replace("EPOCHS", "1000"))
    with subprocess.Popen(
        train.command(),
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "HANG_FIFO": str(fifo)},
        preexec_fn=default_sigint,
    ) as proc:
        try:
            assert proc.stdout is not None
            # epochs 0 and 1 fill the writer and its one-slot queue; epoch 2 cannot start
            assert proc.stdout.readline() == "epoch 0\n"
            assert proc.stdout.readline() == "epoch 1\n"
            proc.send_signal(signum)
            proc.wait(timeout=HANG_GUARD_S)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode != 0
    run = flor.query("SELECT status FROM runs")
    assert run["status"].tolist() == ["killed"]
    assert flor.dataframe("loss")["loss"].tolist()[:2] == [4, 8]
    assert flor.query("SELECT COUNT(*) AS n FROM checkpoints")["n"].item() == 0
