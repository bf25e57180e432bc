"""The PostgreSQL server stopped and restarted while a run records: training goes on, every
value logged meanwhile reaches the store once the server is back (docs/store.md, "When the
store refuses a write"). The test runs its own server, the only one it may stop."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gitutil import git
from store.pgfixtures import PASSWORD, _free_port, _pg_bin

import flor

# The script waits at two points for the test's gates: the server is stopped while it waits
# at the first, and restarted while it waits at the second; it logs 20 epochs in between.
SCRIPT = """\
import os
import time
import numpy as np
import flor

def wait_for(gate):
    while not os.path.exists(gate):
        time.sleep(0.01)

w = np.zeros(100)
with flor.checkpointing(w=w, budget=1):
    for epoch in flor.loop("epoch", range(40)):
        if epoch == 10:
            wait_for(DOWN)
        if epoch == 30:
            wait_for(UP)
        w += 1
        flor.log("v", epoch)
        print(epoch, flush=True)
"""
WARNING = "flor: warning: could not write logs yet"


class Server:
    """A throwaway PostgreSQL cluster in a folder, stopped and started at will."""

    def __init__(self, base: Path) -> None:
        self.bin = _pg_bin()
        self.base = base
        self.data = base / "data"
        self.port = _free_port()
        self.as_user = {"user": "postgres"} if os.geteuid() == 0 else {}
        if self.as_user:
            shutil.chown(base, "postgres")
        (base / "pw").write_text(PASSWORD + "\n")
        if self.as_user:
            shutil.chown(base / "pw", "postgres")
        self._pg(
            "initdb", "-D", str(self.data), "-U", "flor", f"--pwfile={base / 'pw'}",
            "--auth-host=scram-sha-256", "--auth-local=trust", "--no-locale", "-E", "UTF8",
        )  # fmt: skip
        self.url = f"postgresql://flor:{PASSWORD}@127.0.0.1:{self.port}/postgres"

    def _pg(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin / tool), *args],
            check=True,
            capture_output=True,
            timeout=120,
            **self.as_user,  # type: ignore[call-overload]
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.base / "log"), "-w", "-o",
                 options, "start")  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")


@pytest.fixture
def server() -> Iterator[Server]:
    pytest.importorskip("psycopg")  # the dev extra installs it
    # not under pytest's tmp folder, which only root may enter: the server runs as postgres
    base = Path(tempfile.mkdtemp(prefix="flor-pg-faults-"))
    server = Server(base)
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            server.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


def _wait_for_line(stream, wanted: str) -> None:  # type: ignore[no-untyped-def]
    for line in stream:
        if line.strip() == wanted:
            return
    raise AssertionError(f"the script ended before printing {wanted}")


@pytest.mark.timeout(600)
def test_a_postgresql_restart_mid_run_loses_no_value(
    server: Server, repo: Path, script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOR_STORE", server.url)
    down, up = tmp_path / "down", tmp_path / "up"
    train = script("train.py", SCRIPT.replace("DOWN", repr(str(down))).replace("UP", repr(str(up))))
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    errors = tmp_path / "stderr.txt"
    with (
        open(errors, "w") as err,
        subprocess.Popen(
            train.command(), cwd=repo, stdout=subprocess.PIPE, stderr=err, text=True
        ) as proc,
    ):
        assert proc.stdout is not None
        _wait_for_line(proc.stdout, "9")
        server.stop()
        down.touch()
        _wait_for_line(proc.stdout, "29")
        while WARNING not in errors.read_text():  # a flush hit the stopped server
            assert proc.poll() is None, errors.read_text()
            time.sleep(0.05)
        server.start()
        up.touch()
        assert proc.stdout.read().split() == [str(e) for e in range(30, 40)]
        assert proc.wait(timeout=300) == 0, errors.read_text()
    assert errors.read_text().count(WARNING) == 1  # one warning, not one per flush
    values = flor.query("SELECT value FROM logs WHERE name = 'v' ORDER BY seq")["value"]
    assert [int(v) for v in values] == list(range(40))  # each once, in logging order
    status = flor.query("SELECT status FROM runs")["status"].tolist()
    assert status == ["finished"]
    assert not (repo / ".flor" / "quarantine").exists()
    assert "Traceback" not in errors.read_text()


@pytest.mark.timeout(600)
def test_a_postgresql_server_that_stays_down_keeps_the_values_beside_the_store(
    server: Server, repo: Path, script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOR_STORE", server.url)
    down, up = tmp_path / "down", tmp_path / "up"
    up.touch()
    train = script("train.py", SCRIPT.replace("DOWN", repr(str(down))).replace("UP", repr(str(up))))
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    proc = subprocess.Popen(
        train.command(), cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    _wait_for_line(proc.stdout, "9")
    server.stop()
    down.touch()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert out.split() == [str(e) for e in range(10, 40)]  # training completed
    assert "Traceback" not in err
    server.start()
    stored = {int(v) for v in flor.query("SELECT value FROM logs WHERE name = 'v'")["value"]}
    rows = [
        json.loads(line)
        for path in (repo / ".flor" / "quarantine").glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    kept = {int(row["value"]) for row in rows if row["name"] == "v"}
    assert stored | kept == set(range(40)) and not stored & kept
    assert "quarantine" in err
