"""Store performance on SQLite and PostgreSQL (issue 7).

    python benchmarks/store_bench.py [--pg postgresql://user:pass@host:port/db] [--quick]
    FLOR_HOME=/tmp/bench python benchmarks/store_bench.py --dataframe-only 3

1. Recording throughput: values per second written through `StoreWriter.write_batch` in
   the batches the runtime flushes (500 values with their loop rows), median of 5.
2. `flor.dataframe("loss", "acc")` over 10^6 logged values (50 runs x 20 epochs x 1,000
   steps of `loss`, plus `acc` per epoch), median of 3. `--dataframe-only N` does only
   this, N times, on the SQLite store in FLOR_HOME (filled on first use), and prints the
   median wall and CPU seconds (user + system, reader threads included; the system part
   and the calling thread's part apart) and the peak RSS.
3. Many writers: wall time of 8 processes writing 20,000 values each at once.

Without `--pg` (or FLOR_TEST_PG_URL) a throwaway PostgreSQL cluster is started on
127.0.0.1 and removed afterwards.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote

WRITER = """\
import sys, time
from flor.store.writer import StoreWriter

run_id, count = sys.argv[1], int(sys.argv[2])
writer = StoreWriter()
now = time.time()
writer.insert_run({"run_id": run_id, "projid": "p", "filename": "w.py", "tstamp": "t",
                   "status": "running", "mode": "record", "started": now, "heartbeat": now})
for start in range(0, count, 500):
    ids = range(start, min(start + 500, count))
    loops = [(run_id, i + 1, None, "i", i, None) for i in ids]
    logs = [(run_id, "t", i + 1, "v", str(i), "int", i + 1, None, "") for i in ids]
    writer.write_batch(run_id, loops, logs, [], time.time())
writer.update_run(run_id, status="finished", ended=time.time())
writer.close()
"""


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")) or [shutil.which("pg_ctl")]
    if not found or not found[-1]:
        raise SystemExit("PostgreSQL is not installed: pass --pg URL")
    bin_dir = Path(str(found[-1])).parent
    base = Path(tempfile.mkdtemp(prefix="flor-bench-pg-"))
    as_user = {"user": "postgres"} if os.geteuid() == 0 else {}
    (base / "pw").write_text("bench\n")
    if as_user:
        shutil.chown(base, "postgres")
        shutil.chown(base / "pw", "postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = base / "data"
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "flor", f"--pwfile={base / 'pw'}"]
    initdb += ["--auth-host=scram-sha-256", "--auth-local=trust", "--no-locale", "-E", "UTF8"]
    subprocess.run(initdb, check=True, capture_output=True, **as_user)  # type: ignore[call-overload]
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"
    pg_ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w"]
    subprocess.run([*pg_ctl, "-o", options, "start"], check=True, capture_output=True, **as_user)  # type: ignore[call-overload]
    try:
        yield f"postgresql://flor:bench@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "stop"], capture_output=True, **as_user)  # type: ignore[call-overload]
        shutil.rmtree(base, ignore_errors=True)


def fresh_schema(server: str) -> str:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    joiner = "&" if "?" in server else "?"
    return f"{server}{joiner}options={quote(f'-csearch_path={schema}')}"


def use(backend: str, server: str, folder: Path) -> None:
    """Point FLOR_STORE / FLOR_HOME at a new, empty store of `backend`."""
    os.environ["FLOR_HOME"] = str(folder / uuid.uuid4().hex[:8])
    if backend == "postgresql":
        os.environ["FLOR_STORE"] = fresh_schema(server)
    else:
        os.environ.pop("FLOR_STORE", None)


def throughput(total: int) -> float:
    from flor.store.writer import StoreWriter

    writer = StoreWriter()
    run_id = uuid.uuid4().hex[:12]
    now = time.time()
    writer.insert_run(
        {"run_id": run_id, "projid": "p", "filename": "b.py", "tstamp": "t", "status": "running",
         "mode": "record", "started": now, "heartbeat": now}
    )  # fmt: skip
    batches = []
    for start in range(0, total, 500):
        ids = range(start, min(start + 500, total))
        loops = [(run_id, i + 1, None, "step", i, None) for i in ids]
        logs = [(run_id, "t", i + 1, "loss", repr(i * 0.5), "float", i + 1, None, "") for i in ids]
        batches.append((loops, logs))
    started = time.perf_counter()
    for loops, logs in batches:
        writer.write_batch(run_id, loops, logs, [], time.time())
    seconds = time.perf_counter() - started
    writer.close()
    return total / seconds


def fill(runs: int, epochs: int, steps: int) -> None:
    from flor.store.writer import StoreWriter

    writer = StoreWriter()
    for r in range(runs):
        run_id = f"run{r:04d}"
        writer.insert_run(
            {"run_id": run_id, "projid": "p", "filename": "b.py", "tstamp": f"t{r:04d}",
             "status": "finished", "mode": "record", "started": float(r), "heartbeat": float(r)}
        )  # fmt: skip
        ctx = 0
        for e in range(epochs):
            ctx += 1
            epoch_ctx = ctx
            loops = [(run_id, epoch_ctx, None, "epoch", e, None)]
            logs = []
            for s in range(steps):
                ctx += 1
                loops.append((run_id, ctx, epoch_ctx, "step", s, None))
                logs.append(
                    (
                        run_id,
                        f"t{r:04d}",
                        ctx,
                        "loss",
                        repr(1.0 / (ctx + 1)),
                        "float",
                        ctx,
                        None,
                        "",
                    )
                )
            logs.append(
                (
                    run_id,
                    f"t{r:04d}",
                    epoch_ctx,
                    "acc",
                    repr(e / epochs),
                    "float",
                    ctx + 1,
                    None,
                    "",
                )
            )
            writer.write_batch(run_id, loops, logs, [], 0.0)
    writer.close()


class Read(NamedTuple):
    """Medians of `flor.dataframe("loss", "acc")`: wall seconds; CPU seconds of the whole
    process (user + system, so the reader threads count), of its system part alone, and of
    the calling thread (the rest is the reader threads'); and the rows it returned."""

    wall: float
    cpu: float
    rows: int
    system: float = 0.0
    main: float = 0.0


def dataframe_seconds(repeats: int) -> Read:
    import resource

    import flor

    walls, cpus, systems, mains, rows = [], [], [], [], 0
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_SELF)
        wall, main = time.perf_counter(), time.thread_time()
        rows = len(flor.dataframe("loss", "acc"))
        walls.append(time.perf_counter() - wall)
        mains.append(time.thread_time() - main)
        after = resource.getrusage(resource.RUSAGE_SELF)
        systems.append(after.ru_stime - before.ru_stime)
        cpus.append(after.ru_utime - before.ru_utime + systems[-1])
    median = statistics.median
    return Read(median(walls), median(cpus), rows, median(systems), median(mains))


def dataframe_only(repeats: int) -> None:
    """The dataframe read alone, on the SQLite store in FLOR_HOME (filled first if empty)."""
    import resource

    from flor.paths import db_path, home_dir

    filled = not db_path(home_dir()).exists()
    if filled:
        fill(50, 20, 1000)
    read = dataframe_seconds(repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"dataframe, median of {repeats}: wall {read.wall:.3f} s, CPU {read.cpu:.3f} s "
          f"(system {read.system:.3f} s; calling thread {read.main:.3f} s, reader threads "
          f"the rest), {read.rows:,} rows; peak RSS {peak:.0f} MB"
          + (" (filling the store included: run again)" if filled else ""))  # fmt: skip


def many_writers(processes: int, per_process: int) -> float:
    started = time.perf_counter()
    children = [
        subprocess.Popen([sys.executable, "-c", WRITER, f"w{n}", str(per_process)])
        for n in range(processes)
    ]
    if any(child.wait() != 0 for child in children):
        raise SystemExit("a writer failed")
    seconds = time.perf_counter() - started
    import flor

    found = int(flor.query("SELECT COUNT(*) AS n FROM logs")["n"].item())
    if found != processes * per_process:
        raise SystemExit(f"writers lost values: {found} of {processes * per_process}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=os.environ.get("FLOR_TEST_PG_URL"))
    parser.add_argument("--quick", action="store_true", help="10^5 values instead of 10^6")
    parser.add_argument(
        "--dataframe-only", type=int, metavar="REPEATS", help="only the dataframe read"
    )
    args = parser.parse_args()
    if args.dataframe_only:
        dataframe_only(args.dataframe_only)
        return
    folder = Path(tempfile.mkdtemp(prefix="flor-store-bench-"))
    steps = 100 if args.quick else 1000
    with throwaway_cluster() if not args.pg else _given(args.pg) as server:
        rows = []
        for backend in ("sqlite", "postgresql"):
            rates = []
            for _ in range(5):
                use(backend, server, folder)
                rates.append(throughput(100_000))
            use(backend, server, folder)
            fill(50, 20, steps)
            df_s, _, df_rows, *_ = dataframe_seconds(3)
            use(backend, server, folder)
            from flor.store import admin

            admin.migrate()
            writers_s = many_writers(8, 20_000)
            rows.append((backend, statistics.median(rates), df_s, df_rows, writers_s))
    shutil.rmtree(folder, ignore_errors=True)
    values = 50 * 20 * (steps + 1)
    print(f"{'backend':<11} {'values/s (median of 5)':>23} {f'dataframe {values:,} values':>26}"
          f" {'8 writers x 20,000':>19}")  # fmt: skip
    for backend, rate, df_s, df_rows, writers_s in rows:
        frame = f"{df_s:.2f} s ({df_rows:,} rows)"
        print(f"{backend:<11} {rate:>23,.0f} {frame:>26} {writers_s:>17.1f} s")


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


if __name__ == "__main__":
    main()
