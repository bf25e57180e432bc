"""Fault injection: flor's guarantees as counts that must all be zero.

    python benchmarks/faults.py [--trials 100] [--seed 0] [--json]

Scenarios (each in throwaway git repositories; HOME points at a temporary folder):
  kill       SIGKILL / SIGTERM / SIGINT at a random step of a recording (chosen from the
             script's own output, not by a timer): values lost (for SIGKILL, only values
             logged more than 1 s before the kill count), hangs, unreadable stores
  store      the store fails mid-run: SQLite locked by another process for a while,
             ENOSPC on checkpoint blobs, checkpoint rows refused, some log rows refused:
             training completes, nothing recorded is lost (refused rows are quarantined)
  values     values that cannot be encoded (raising repr, deep nesting, lone surrogates,
             NUL): every logged value has a row
  gc         `flor gc --grace 0` in a loop while 4 processes record with checkpoints that
             share blobs with a deleted run: referenced blobs removed
  sandbox    replays writing into outputs/ and checkpoints/ of a project whose path holds
             `#?`, a non-UTF-8 file name and a 10,000-entry ignored folder: files of the
             user changed (hash before and after), failed tasks
  pg         the PostgreSQL server (a throwaway cluster of its own, when PostgreSQL is
             installed) stopped while a run logs 20 epochs, then restarted: values lost
  rkill      kill -9 of a replay task, or of `flor replay` itself, while its tasks run:
             runs stored in part (lost), reruns that fail (failed)

Prints a matrix; `--json` prints it as JSON (the test suite runs a few trials of it).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Workspace  # noqa: E402

HANG_S = 60.0  # a child still alive this long after its fault counts as a hang


@dataclass
class Row:
    scenario: str
    trials: int = 0
    lost: int = 0
    hangs: int = 0
    touched: int = 0
    unreadable: int = 0
    failed: int = 0
    notes: list[str] = field(default_factory=list)


def _db(repo: Path) -> Path:
    return repo / ".flor" / "flor.db"


def _readable(repo: Path) -> bool:
    try:
        conn = sqlite3.connect(f"{_db(repo).absolute().as_uri()}?mode=ro", uri=True)
        try:
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            conn.execute("SELECT COUNT(*) FROM logs").fetchone()
            return bool(ok)
        finally:
            conn.close()
    except sqlite3.Error:
        return False


def _values(repo: Path, name: str, filename: str | None = None) -> list[str]:
    conn = sqlite3.connect(f"{_db(repo).absolute().as_uri()}?mode=ro", uri=True)
    try:
        sql = "SELECT l.value FROM logs l JOIN runs r ON r.run_id = l.run_id WHERE l.name = ?"
        params: tuple[str, ...] = (name,)
        if filename:
            sql += " AND r.filename = ?"
            params += (filename,)
        return [row[0] for row in conn.execute(sql + " ORDER BY l.seq", params)]
    finally:
        conn.close()


def _run(ws: Workspace, repo: Path, script: str, timeout: float = HANG_S) -> tuple[int, str]:
    """(exit status, stderr); -999 when the child had to be killed (a hang)."""
    try:
        done = subprocess.run(
            [sys.executable, script],
            cwd=repo,
            env=ws.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return -999, "hang"
    return done.returncode, done.stderr


# -- kill ----------------------------------------------------------------------------------

KILL_SCRIPT = """\
import time, flor
for step in flor.loop("step", range(100_000)):
    flor.log("v", step)
    print(step, time.time(), flush=True)
    time.sleep(0.01)
"""


def kill(ws: Workspace, trials: int, rng: random.Random, window_s: float = 1.0) -> Row:
    row = Row("kill (SIGKILL/SIGTERM/SIGINT at a random step)")
    signals = [signal.SIGKILL, signal.SIGTERM, signal.SIGINT]
    for trial in range(trials):
        repo = ws.repo({"train.py": KILL_SCRIPT})
        signum = signals[trial % 3]
        stop_at = rng.randint(0, 150)
        proc = subprocess.Popen(
            [sys.executable, "train.py"],
            cwd=repo,
            env=ws.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            # a harness started in the background by a non-interactive shell ignores SIGINT
            # and its children inherit that: give the script the default a terminal would
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        assert proc.stdout is not None
        printed: list[tuple[int, float]] = []
        killed_at = 0.0
        for line in proc.stdout:
            step, stamp = line.split()
            printed.append((int(step), float(stamp)))
            if int(step) == stop_at:
                killed_at = time.time()
                proc.send_signal(signum)
                break
        printed += [(int(s), float(t)) for s, t in (ln.split() for ln in proc.stdout)]
        try:
            proc.wait(timeout=HANG_S)
        except subprocess.TimeoutExpired:
            row.hangs += 1
            proc.kill()
            proc.wait()
        row.trials += 1
        if not _readable(repo):
            row.unreadable += 1
            continue
        stored = {int(v) for v in _values(repo, "v")}
        window = window_s if signum == signal.SIGKILL else 0.0
        row.lost += sum(
            1 for step, stamp in printed if step not in stored and stamp < killed_at - window
        )
    return row


# -- store failures ---------------------------------------------------------------------------

TRAIN = """\
import time, flor, numpy as np
w = np.zeros(8)
with flor.checkpointing(w=w, budget=1):
    for epoch in flor.loop("epoch", range(40)):
        w += 1
        flor.log("v", epoch)
        print(epoch, flush=True)
        time.sleep(0.01)
"""
ENOSPC = """\
import errno
from flor import blobs
_calls = []
def _full(self, key, data):
    _calls.append(key)
    if len(_calls) > 2:
        raise OSError(errno.ENOSPC, "No space left on device")
    return _real(self, key, data)
_real = blobs._LocalFiles.write
blobs._LocalFiles.write = _full
"""


def _trigger(repo: Path, sql: str) -> None:
    conn = sqlite3.connect(_db(repo))
    conn.execute(sql)
    conn.commit()
    conn.close()


def _complete(row: Row, repo: Path, code: int, expected: int, quarantined: int = 0) -> None:
    row.trials += 1
    if code == -999:
        row.hangs += 1
        return
    if code != 0:
        row.failed += 1
    if not _readable(repo):
        row.unreadable += 1
        return
    row.lost += expected - len(_values(repo, "v", "train.py")) - quarantined


def store(ws: Workspace, trials: int) -> Row:
    row = Row("store fails mid-run (locked, ENOSPC, rows refused)")
    for trial in range(trials):
        kind = ("locked", "enospc", "checkpoint rows", "log rows")[trial % 4]
        repo = ws.repo({"first.py": "import flor\nflor.log('x', 1)\n"})
        _run(ws, repo, "first.py")
        source = TRAIN if kind != "enospc" else ENOSPC + TRAIN
        (repo / "train.py").write_text(source)
        if kind == "checkpoint rows":
            _trigger(
                repo,
                "CREATE TRIGGER f BEFORE INSERT ON checkpoints "
                "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
            )
        if kind == "log rows":
            _trigger(
                repo,
                "CREATE TRIGGER f BEFORE INSERT ON logs WHEN NEW.name = 'v' AND NEW.value = '7' "
                "BEGIN SELECT RAISE(ABORT, 'refused'); END",
            )
        if kind == "locked":
            code = _run_while_locked(ws, repo)
        else:
            code, _ = _run(ws, repo, "train.py")
        quarantine = repo / ".flor" / "quarantine"
        kept = sum(len(p.read_text().splitlines()) for p in quarantine.glob("*.jsonl"))
        _complete(row, repo, code, 40, kept)
    return row


def _run_while_locked(ws: Workspace, repo: Path) -> int:
    """Another process holds the store's write lock for a while in the middle of training."""
    proc = subprocess.Popen(
        [sys.executable, "train.py"],
        cwd=repo,
        env=ws.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() == "5":
            break
    conn = sqlite3.connect(_db(repo), isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    time.sleep(2.0)
    conn.execute("COMMIT")
    conn.close()
    proc.stdout.read()
    try:
        return proc.wait(timeout=HANG_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -999


# -- values --------------------------------------------------------------------------------

VALUES = """\
import flor
class RaisingRepr:
    def __repr__(self):
        raise RuntimeError("no repr")
deep = []
for _ in range(100_000):
    deep = [deep]
odd = [RaisingRepr(), deep, "lone \\ud800", "nul \\x00", float("nan"), b"\\xff", {1, 2}]
for epoch in flor.loop("epoch", range(40)):
    flor.log("v", odd[epoch % len(odd)] if epoch % 3 == 0 else epoch)
"""


def values(ws: Workspace, trials: int) -> Row:
    row = Row("values that cannot be encoded")
    for _ in range(trials):
        repo = ws.repo({"train.py": VALUES})
        code, _ = _run(ws, repo, "train.py")
        _complete(row, repo, code, 40)
    return row


# -- gc ------------------------------------------------------------------------------------

GC_TRAIN = """\
import flor, numpy as np
w = np.zeros(1000)
with flor.checkpointing(w=w, budget=1):
    for epoch in flor.loop("epoch", range(30)):
        w += 1
        flor.log("v", epoch)
"""


def _collect_until(home: Path, stop: threading.Event) -> None:
    from flor.store.admin import collect_garbage

    while not stop.is_set():
        collect_garbage(home, grace=0)


def gc(ws: Workspace, trials: int) -> Row:
    from flor.blobs import BlobStore

    row = Row("gc while 4 processes record")
    for _ in range(trials):
        repo = ws.repo({"train.py": GC_TRAIN})
        _run(ws, repo, "train.py")  # a run whose blobs the next runs share, then deleted
        conn = sqlite3.connect(_db(repo))
        for table in ("logs", "loops", "checkpoints", "commits", "runs"):
            conn.execute(f"DELETE FROM {table}")
        conn.commit()
        conn.close()
        procs = [
            subprocess.Popen([sys.executable, "train.py"], cwd=repo, env=ws.env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for _ in range(4)
        ]  # fmt: skip
        stop = threading.Event()

        collector = threading.Thread(target=_collect_until, args=(repo / ".flor", stop))
        collector.start()
        for proc in procs:
            try:
                proc.wait(timeout=HANG_S * 2)
            except subprocess.TimeoutExpired:
                row.hangs += 1
                proc.kill()
                proc.wait()
        stop.set()
        collector.join()
        row.trials += 1
        blobs = BlobStore(repo / ".flor" / "checkpoints")
        conn = sqlite3.connect(_db(repo))
        digests = {d for (d,) in conn.execute("SELECT DISTINCT digest FROM checkpoints")}
        conn.close()
        for digest in digests:
            try:
                blobs.get(digest)
            except Exception:  # noqa: BLE001 - a missing or corrupt blob is the failure counted
                row.lost += 1
    return row


# -- sandbox -------------------------------------------------------------------------------

SANDBOX = """\
import os
from pathlib import Path
import flor

files = len(os.listdir("data"))
state = {"total": 0.0}
Path("outputs").mkdir(exist_ok=True)
with flor.checkpointing(state=state, budget=1):
    for epoch in flor.loop("epoch", range(3)):
        state["total"] += files * (epoch + 1)
        Path("outputs/best.txt").write_text(str(state["total"]))
        with open("outputs/log.txt", "a") as log:
            log.write(f"{epoch}\\n")
        Path("checkpoints").mkdir(exist_ok=True)
        Path(f"checkpoints/e{epoch}.bin").write_bytes(bytes([epoch]) * 10)
        flor.log("total", state["total"])
"""


def _digest_tree(root: Path) -> dict[bytes, str]:
    found = {}
    for folder, dirs, files in os.walk(os.fsencode(root)):
        dirs[:] = [d for d in dirs if d != b".flor"]
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                found[path] = "link:" + os.fsdecode(os.readlink(path))
            else:
                with open(path, "rb") as f:
                    found[path] = hashlib.sha256(f.read()).hexdigest()
    return found


def sandbox(ws: Workspace, trials: int) -> Row:
    row = Row("replay sandbox (#? path, non-UTF-8 name, 10,000-entry folder)")
    for _ in range(trials):
        repo = ws.repo({"train.py": SANDBOX, ".gitignore": "data/\noutputs/\ncheckpoints/\n"})
        odd = repo.with_name(repo.name + " #3?")
        repo.rename(odd)
        repo = odd
        (repo / "data").mkdir()
        for i in range(10_000):
            (repo / "data" / f"{i}.txt").write_bytes(b"x")
        (repo / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"latin-1 name\n")
        for _ in range(2):
            _run(ws, repo, "train.py")
        source = (repo / "train.py").read_text()
        anchor = '        flor.log("total", state["total"])\n'
        (repo / "train.py").write_text(
            source.replace(anchor, anchor + '        flor.log("twice", 2 * state["total"])\n')
        )
        before = _digest_tree(repo)
        done = subprocess.run(
            [sys.executable, "-m", "flor", "replay", "twice", "--jobs", "2", "--yes"],
            cwd=repo, env=ws.env(), capture_output=True, text=True, timeout=HANG_S * 5,
        )  # fmt: skip
        row.trials += 1
        row.failed += done.returncode != 0
        after = _digest_tree(repo)
        row.touched += sum(1 for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        replayed = _values(repo, "twice")
        row.lost += 6 - len(replayed)
    return row


# -- PostgreSQL stopped and restarted mid-run ---------------------------------------------

GATED = """\
import os, time, flor

def wait_for(gate):
    while not os.path.exists(gate):
        time.sleep(0.01)

for epoch in flor.loop("epoch", range(40)):
    if epoch == 10:
        wait_for("down")
    if epoch == 30:
        wait_for("up")
    flor.log("v", epoch)
    print(epoch, flush=True)
"""


class _PgServer:
    """A throwaway PostgreSQL cluster, stopped and started at will (as postgres when root)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.base = Path(tempfile.mkdtemp(prefix="flor-faults-pg-"))
        self.as_user = {"user": "postgres"} if os.geteuid() == 0 else {}
        (self.base / "pw").write_text("pw\n")
        if self.as_user:
            shutil.chown(self.base, "postgres")
            shutil.chown(self.base / "pw", "postgres")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._pg("initdb", "-D", str(self.base / "data"), "-U", "flor",
                 f"--pwfile={self.base / 'pw'}", "--auth-host=scram-sha-256",
                 "--auth-local=trust", "--no-locale", "-E", "UTF8")  # fmt: skip
        self.url = f"postgresql://flor:pw@127.0.0.1:{self.port}/postgres"

    def _pg(self, tool: str, *args: str) -> None:
        subprocess.run([str(self.bin / tool), *args], check=True, capture_output=True,
                       timeout=120, **self.as_user)  # type: ignore[call-overload]  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg("pg_ctl", "-D", str(self.base / "data"), "-l", str(self.base / "log"), "-w",
                 "-o", options, "start")  # fmt: skip

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.base / "data"), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def _pg_values(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        return [v for (v,) in conn.execute("SELECT value FROM logs WHERE name = 'v' ORDER BY seq")]


def _lines_until(stream, wanted: str) -> bool:  # type: ignore[no-untyped-def]
    return any(line.strip() == wanted for line in stream)


def pg(ws: Workspace, trials: int) -> Row:
    row = Row("pg server stopped and restarted mid-run")
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        row.notes.append("PostgreSQL is not installed: not run")
        return row
    for _ in range(trials):
        server = _PgServer(Path(found[-1]).parent)
        try:
            server.start()
            repo = ws.repo({"train.py": GATED})
            proc = subprocess.Popen([sys.executable, "train.py"], cwd=repo,
                                    env=ws.env(FLOR_STORE=server.url), stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)  # fmt: skip
            assert proc.stdout is not None
            row.trials += 1
            if _lines_until(proc.stdout, "9"):
                server.stop()
                (repo / "down").touch()
                _lines_until(proc.stdout, "29")
                server.start()
                (repo / "up").touch()
            proc.stdout.read()
            try:
                row.failed += proc.wait(timeout=HANG_S) != 0
            except subprocess.TimeoutExpired:
                row.hangs += 1
                proc.kill()
                proc.wait()
            row.lost += 40 - len(set(_pg_values(server.url)))
        finally:
            server.close()
    return row


# -- kill -9 of a replay task or of the replay command -------------------------------------

RKILL = """\
import os, time, flor, numpy as np

np.random.seed(flor.arg("seed", 0))
w = np.zeros(3)
with flor.checkpointing(w=w, budget=1):
    for epoch in flor.loop("epoch", range(4)):
        for step in flor.loop("step", range(5)):
            while not os.path.exists(GATE):
                time.sleep(0.01)
            grad = np.random.randn(3)
            w -= 0.1 * grad
        flor.log("w0", float(w[0]))
"""
RKILL_ANCHOR = "            w -= 0.1 * grad\n"


def _session(sid: int) -> dict[int, bytes]:
    found = {}
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError, ProcessLookupError):
            if entry.isdigit() and os.getsid(int(entry)) == sid:
                found[int(entry)] = Path(f"/proc/{entry}/cmdline").read_bytes()
    return found


def _replay_tasks(gate: Path) -> list[int]:
    """This trial's tasks: processes working in a flor-task- folder whose script waits on
    this trial's gate. A task forked by a shared warm server is in the server's session,
    not the replay's, so the whole machine is searched."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            cwd = os.readlink(entry / "cwd") if entry.name.isdigit() else ""
            if "/flor-task-" in cwd and str(gate) in (Path(cwd) / "train.py").read_text():
                found.append(int(entry.name))
    return found


def _per_run(repo: Path) -> list[int]:
    conn = sqlite3.connect(f"{_db(repo).absolute().as_uri()}?mode=ro", uri=True)
    try:
        sql = "SELECT COUNT(*) FROM logs WHERE name = 'g0' GROUP BY run_id"
        return [n for (n,) in conn.execute(sql)]
    finally:
        conn.close()


def rkill(ws: Workspace, trials: int, rng: random.Random) -> Row:
    row = Row("rkill (kill -9 of a replay task or of flor replay)")
    for trial in range(trials):
        gate = ws.root / f"gate{trial}"
        gate.touch()
        repo = ws.repo({"train.py": RKILL.replace("GATE", repr(str(gate)))})
        for seed in (0, 1):
            record = [sys.executable, "train.py", "--kwargs", f"seed={seed}"]
            env = ws.env(FLOR_CKPT_BUDGET="1")
            subprocess.run(record, cwd=repo, env=env, capture_output=True, check=True)
        source = (repo / "train.py").read_text()
        hindsight = RKILL_ANCHOR + '            flor.log("g0", float(grad[0]))\n'
        (repo / "train.py").write_text(source.replace(RKILL_ANCHOR, hindsight))
        gate.unlink()
        command = [sys.executable, "-m", "flor", "replay", "g0", "--jobs", "2", "--yes"]
        replay = subprocess.Popen(command, cwd=repo, env=ws.env(), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        row.trials += 1
        try:
            deadline = time.monotonic() + HANG_S * 5
            while len(tasks := _replay_tasks(gate)) < 2 and replay.poll() is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            if len(tasks) < 2:  # the tasks never started
                row.hangs += 1
                continue
            the_command = trial % 2 == 1
            os.kill(replay.pid if the_command else rng.choice(tasks), signal.SIGKILL)
            gate.touch()
            try:
                replay.wait(timeout=HANG_S * 5)
            except subprocess.TimeoutExpired:
                row.hangs += 1
            while _replay_tasks(gate):  # orphaned tasks end: they must not store
                time.sleep(0.05)
            row.lost += sum(1 for n in _per_run(repo) if n != 20)
            if the_command and _per_run(repo):
                row.lost += 1  # the killed command stored something
            rerun = subprocess.run(command, cwd=repo, env=ws.env(), capture_output=True,
                                   timeout=HANG_S * 5)  # fmt: skip
            row.failed += rerun.returncode != 0 or _per_run(repo) != [20, 20]
        finally:
            for pid in _session(replay.pid):  # the killed command's joblib workers linger
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100, help="kill trials (others fewer)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--sigkill-window",
        type=float,
        default=1.0,
        help="seconds of logs a SIGKILL may lose (the bar is 1; the test suite allows more "
        "so that a machine too busy to schedule the flush thread does not fail it)",
    )
    parser.add_argument(
        "--scenarios",
        default="kill,store,values,gc,sandbox,pg,rkill",
        help="comma-separated subset to run",
    )
    args = parser.parse_args()
    chosen = set(args.scenarios.split(","))
    rng = random.Random(args.seed)
    ws = Workspace(prefix="flor-faults-")
    started = time.perf_counter()
    try:
        few = max(1, args.trials // 10)
        runs = {
            "kill": lambda: kill(ws, args.trials, rng, args.sigkill_window),
            "store": lambda: store(ws, max(4, few)),
            "values": lambda: values(ws, few),
            "gc": lambda: gc(ws, max(1, few // 2)),
            "sandbox": lambda: sandbox(ws, 1),
            "pg": lambda: pg(ws, max(2, few // 2)),
            "rkill": lambda: rkill(ws, max(2, few // 2), rng),
        }
        rows = [run() for name, run in runs.items() if name in chosen]
    finally:
        ws.close()
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps({"rows": [asdict(r) for r in rows], "seconds": seconds}))
        return
    print(f"fault injection, {seconds:.0f} s (python {sys.version.split()[0]})")
    header = ("scenario", "trials", "lost", "hangs", "touched", "unreadable", "failed")
    print(" | ".join(header))
    for r in rows:
        print(
            " | ".join(
                str(x)
                for x in (r.scenario, r.trials, r.lost, r.hangs, r.touched, r.unreadable, r.failed)
            )
        )


if __name__ == "__main__":
    main()
