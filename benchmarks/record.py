"""Recording and reading costs of flor, side by side with flordb 4.0.1 from PyPI.

    python benchmarks/record.py [--quick] [--flordb-python /tmp/flordb-venv/bin/python]

(a) `flor.log` inside a `flor.loop`: cost per call, median over repetitions (fresh process each)
(b) `python -c "import flor"`: wall time, median over runs
(c) `flor.dataframe("loss", "acc")` on stores of 10^4, 10^5, 10^6 logged values across 50 runs

Prints figures only; nothing here asserts a time. Every child runs in a throwaway git repo
with HOME pointed at a temporary folder (flordb switches branches, runs `git add -A` and
auto-commits in the repo it runs in).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    Workspace,
    check,
    flordb_python,
    fmt_ratio,
    machine_note,
    median,
    run_child,
    table,
)

# (a) ---------------------------------------------------------------------------------------
LOG_WORKER = """\
import json, os, time
if os.environ["BENCH_LIB"] == "flor":
    import flor
else:
    import flordb as flor
n = int(os.environ["BENCH_N"])
perf = time.perf_counter
log = flor.log
res = {}
for _ in flor.loop("warmup", range(1)):  # starts the run (session, snapshot): not timed
    log("warmup", 0)

def noop(name, value):
    return value

t = perf()
for i in range(n):
    noop("loss", 0.5)
res["noop"] = (perf() - t) / n

for _ in flor.loop("outer", range(1)):  # n calls inside one iteration of a flor.loop
    t, c = perf(), time.thread_time()
    for i in range(n):
        log("loss", 0.5)
    res["hot"], res["hot_cpu"] = (perf() - t) / n, (time.thread_time() - c) / n

cpu = time.thread_time  # the training thread's own CPU: what a busy machine cannot inflate
proc = time.process_time  # every thread's CPU: the background flusher's included
# flor: write out what is buffered (waiting for its flusher), so each measure starts idle and
# its process CPU includes writing its own rows; flordb writes at commit (timed apart).
flush = flor.runtime.api._active.flush if os.environ["BENCH_LIB"] == "flor" else lambda: None
flush()
t, c, p = perf(), cpu(), proc()
for i in flor.loop("step", range(n)):  # one call per iteration, including the loop's end
    log("loss", i * 0.5)
res["loop_log"], res["loop_log_cpu"] = (perf() - t) / n, (cpu() - c) / n
flush()
res["loop_log_proc"] = (proc() - p) / n

t, c, p = perf(), cpu(), proc()
for i in flor.loop("bare", range(n)):
    pass
res["loop_bare"], res["loop_bare_cpu"] = (perf() - t) / n, (cpu() - c) / n
flush()
res["loop_bare_proc"] = (proc() - p) / n

t = perf()
flor.commit()  # persistence: flor flushes + snapshots, flordb writes JSONL + sqlite + git
res["commit"] = perf() - t
with open(os.environ["BENCH_OUT"], "w") as f:
    json.dump(res, f)
"""

# (c) ---------------------------------------------------------------------------------------
FLOR_STORE_WORKER = """\
import os
import flor
steps = int(os.environ["BENCH_STEPS"])
for step in flor.loop("step", range(steps)):
    flor.log("loss", 1.0 / (step + 1))
    flor.log("acc", step / steps)
"""

# flordb: one process, one flor.commit() per run (each commit is a new tstamp, i.e. a run in
# flordb's model), with flordb's per-call echo of every value (tqdm.write) switched off:
# building a 10^6 store through 50 separate flordb processes with the echo on takes ~10 min.
# The rows are written by flordb's own commit path (JSONL + sqlite + git auto-commit).
FLORDB_STORE_WORKER = """\
import os
import flordb as flor
from flordb import api

class _Quiet(api.tqdm):
    @classmethod
    def write(cls, *args, **kwargs):
        pass

api.tqdm = _Quiet
steps = int(os.environ["BENCH_STEPS"])
for run in range(int(os.environ["BENCH_RUNS"])):
    for step in flor.loop("step", range(steps)):
        flor.log("loss", 1.0 / (step + 1))
        flor.log("acc", step / steps)
    flor.commit()
"""

# Run with -c so flordb does not treat the reader as a recorded script.
READ_WORKER = """\
import json, os, time
import pandas  # imported before timing: both libraries need it for a dataframe
t = time.perf_counter()
if os.environ["BENCH_LIB"] == "flor":
    import flor
    count_sql = "SELECT COUNT(*) AS n FROM logs WHERE name IN ('loss', 'acc')"
else:
    import flordb as flor
    count_sql = "SELECT COUNT(*) AS n FROM logs WHERE value_name IN ('loss', 'acc')"
import_s = time.perf_counter() - t
times = []
for _ in range(int(os.environ["BENCH_READS"])):
    t = time.perf_counter()
    df = flor.dataframe("loss", "acc")
    times.append(time.perf_counter() - t)
stored = int(flor.query(count_sql)["n"].iloc[0])
res = {"times": times, "rows": len(df), "columns": [str(c) for c in df.columns],
       "loss_values": int(df["loss"].notna().sum()), "acc_values": int(df["acc"].notna().sum()),
       "stored": stored, "import_s": import_s}
with open(os.environ["BENCH_OUT"], "w") as f:
    json.dump(res, f)
"""

LIB_MODULE = {"flor": "flor", "flordb": "flordb"}


def log_cost(ws: Workspace, pythons: dict[str, str], n: int, reps: dict[str, int]) -> str:
    results: dict[str, list[dict[str, float]]] = {lib: [] for lib in pythons}
    for rep in range(max(reps.values())):
        for lib, python in pythons.items():
            if rep >= reps[lib]:
                continue
            repo = ws.repo({"log_worker.py": LOG_WORKER}, name=f"log-{lib}-")
            out = ws.root / f"log-{lib}-{rep}.json"
            env = ws.env(BENCH_LIB=lib, BENCH_N=str(n), BENCH_OUT=str(out))
            # stdout to /dev/null: flordb echoes every logged value (its best case; a terminal
            # is slower)
            result = run_child([python, "log_worker.py"], repo, env)
            check(result, f"{lib} flor.log benchmark")
            results[lib].append(json.loads(out.read_text()))
            print(f"  (a) {lib} rep {rep + 1}: {results[lib][-1]}", flush=True)
    rows = []
    metrics = [
        ("hot", "flor.log per call, n calls in one iteration (µs)", 1e6),
        ("hot_cpu", "  the same, CPU of the training thread (µs)", 1e6),
        ("loop_log", "flor.loop iteration with one flor.log (µs)", 1e6),
        ("loop_bare", "flor.loop iteration without flor.log (µs)", 1e6),
        ("net", "flor.log net = loop_log - loop_bare (µs)", 1e6),
        ("loop_log_cpu", "  the same, CPU of the training thread, with one flor.log (µs)", 1e6),
        ("loop_bare_cpu", "  the same, CPU of the training thread, bare (µs)", 1e6),
        ("loop_log_proc", "  CPU of the whole process, its rows written, one log (µs)", 1e6),
        ("loop_bare_proc", "  CPU of the whole process, its rows written, bare (µs)", 1e6),
        ("noop", "plain Python call of a no-op, same loop (µs)", 1e6),
        ("commit", f"flor.commit() after {2 * n + 1:,} logs (s)", 1),
    ]
    for lib_results in results.values():
        for r in lib_results:
            r["net"] = r["loop_log"] - r["loop_bare"]
    for key, label, scale in metrics:
        values = {lib: median([r[key] for r in results[lib]]) * scale for lib in results}
        flor_v = values["flor"]
        row: list[object] = [label, f"{flor_v:.3f}"]
        if "flordb" in values:
            row += [f"{values['flordb']:.3f}", fmt_ratio(values["flordb"], flor_v)]
        rows.append(row)
    headers = ["measure (median)", f"flor ({reps['flor']} reps)"]
    if "flordb" in results:
        headers += [f"flordb 4.0.1 ({reps['flordb']} reps)", "flordb / flor"]
    return (
        f"(a) flor.log inside flor.loop, n = {n:,} calls per measure, fresh process per rep\n"
        + table(headers, rows)
    )


def import_cost(ws: Workspace, pythons: dict[str, str], runs: int) -> str:
    repo = ws.repo({"README": "import benchmark\n"}, name="import-")
    commands = {"python -c pass (flor venv)": [pythons["flor"], "-c", "pass"]}
    for lib, python in pythons.items():
        commands[f"python -c 'import {LIB_MODULE[lib]}'"] = [python, "-c", f"import {lib}"]
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(runs):
        for label, argv in commands.items():
            result = run_child(argv, repo, ws.env())
            check(result, label)
            times[label].append(result.seconds)
    probe = run_child(
        [pythons["flor"], "-c",
         "import sys, flor; heavy = [m for m in ('pandas', 'git', 'libcst', 'torch', 'numpy', "
         "'sqlite3') if m in sys.modules]; open('heavy.txt', 'w').write(' '.join(heavy))"],
        repo, ws.env(),
    )  # fmt: skip
    check(probe, "import probe")
    heavy = (repo / "heavy.txt").read_text().strip() or "none"
    base = median(times["python -c pass (flor venv)"])
    rows = [
        [label, f"{median(t) * 1e3:.1f}", f"{min(t) * 1e3:.1f}", f"{(median(t) - base) * 1e3:.1f}"]
        for label, t in times.items()
    ]
    return (
        f"(b) import wall time, {runs} runs each, interleaved\n"
        + table(["command", "median (ms)", "min (ms)", "median - python startup (ms)"], rows)
        + "\nheavy modules loaded by `import flor` (pandas, git, libcst, torch, numpy, sqlite3): "
        + heavy
    )


def build_flor_store(ws: Workspace, python: str, size: int, runs: int, jobs: int) -> Path:
    repo = ws.repo({"train.py": FLOR_STORE_WORKER}, name=f"df-flor-{size}-")
    env = ws.env(BENCH_STEPS=str(size // runs // 2))

    def one(_: int) -> None:
        check(run_child([python, "train.py"], repo, env), "flor store run")

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, range(runs)))
    return repo


def build_flordb_store(ws: Workspace, python: str, size: int, runs: int) -> Path:
    repo = ws.repo({"train.py": FLORDB_STORE_WORKER}, name=f"df-flordb-{size}-")
    env = ws.env(BENCH_STEPS=str(size // runs // 2), BENCH_RUNS=str(runs), FLOR_CAPTURE="0")
    check(run_child([python, "train.py"], repo, env), "flordb store build")
    return repo


def read_store(ws: Workspace, python: str, lib: str, repo: Path, reads: int) -> dict:
    out = ws.root / f"read-{lib}-{repo.name}.json"
    env = ws.env(BENCH_LIB=lib, BENCH_READS=str(reads), BENCH_OUT=str(out))
    check(run_child([python, "-c", READ_WORKER], repo, env), f"{lib} dataframe read")
    return json.loads(out.read_text())


def dataframe_cost(
    ws: Workspace, pythons: dict[str, str], sizes: list[int], runs: int, reads: int, jobs: int
) -> str:
    rows = []
    for size in sizes:
        line: list[object] = [f"{size:,}"]
        t = time.perf_counter()
        repo = build_flor_store(ws, pythons["flor"], size, runs, jobs)
        build_s = time.perf_counter() - t
        r = read_store(ws, pythons["flor"], "flor", repo, reads)
        flor_med = median(r["times"])
        print(f"  (c) flor {size:,}: build {build_s:.1f}s, {r}", flush=True)
        line += [r["stored"], r["rows"], f"{flor_med:.3f}", f"{r['times'][0]:.3f}"]
        if "flordb" in pythons:
            t = time.perf_counter()
            repo_db = build_flordb_store(ws, pythons["flordb"], size, runs)
            build_db = time.perf_counter() - t
            d = read_store(ws, pythons["flordb"], "flordb", repo_db, reads)
            print(f"  (c) flordb {size:,}: build {build_db:.1f}s, {d}", flush=True)
            db_med = median(d["times"])
            line += [d["stored"], d["rows"], f"{db_med:.3f}", fmt_ratio(db_med, flor_med)]
        rows.append(line)
    headers = ["logged values", "flor stored", "flor rows", "flor median (s)", "flor 1st (s)"]
    if "flordb" in pythons:
        headers += ["flordb stored", "flordb rows", "flordb median (s)", "flordb / flor"]
    return (
        f'(c) flor.dataframe("loss", "acc"), {runs} runs per store, median of {reads} reads in '
        "one process (pandas imported before timing; '1st' = first call, lazy imports)\n"
        + table(headers, rows)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--flordb-python", help="python of a venv with flordb==4.0.1")
    parser.add_argument("--log-calls", type=int, help="flor.log calls per measure (100000)")
    parser.add_argument("--log-reps", type=int, help="repetitions for flor (5)")
    parser.add_argument("--flordb-log-reps", type=int, help="repetitions for flordb (3)")
    parser.add_argument("--import-runs", type=int, help="runs per import command (20)")
    parser.add_argument("--sizes", help="comma-separated store sizes (10000,100000,1000000)")
    parser.add_argument("--runs", type=int, help="runs per store (50)")
    parser.add_argument("--reads", type=int, help="dataframe reads per store (3)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel flor runs when building")
    parser.add_argument("--only", default="abc", help="subset of parts to run, e.g. 'ac'")
    parser.add_argument("--keep", action="store_true", help="keep the temporary repos")
    args = parser.parse_args()
    quick = args.quick
    n = args.log_calls or (10_000 if quick else 100_000)
    reps = {"flor": args.log_reps or (2 if quick else 5),
            "flordb": args.flordb_log_reps or (1 if quick else 3)}  # fmt: skip
    import_runs = args.import_runs or (5 if quick else 20)
    sizes = [int(float(s)) for s in (args.sizes or ("1e4,1e5" if quick else "1e4,1e5,1e6"))
             .split(",")]  # fmt: skip
    runs = args.runs or (10 if quick else 50)
    reads = args.reads or (2 if quick else 3)

    pythons = {"flor": sys.executable}
    flordb, note = flordb_python(args.flordb_python)
    if flordb:
        pythons["flordb"] = flordb
    print(f"# flor record/read benchmark, {datetime.now().isoformat(timespec='seconds')}")
    print(machine_note())
    print(note, flush=True)
    ws = Workspace(keep=args.keep)
    sections = []
    try:
        ws.warm_up(sys.executable, "pandas, flor, flor.store.reader, flor.cli")
        if flordb:
            ws.warm_up(flordb, "pandas, flordb")
        if "a" in args.only:
            sections.append(log_cost(ws, pythons, n, reps))
            print("\n" + sections[-1] + "\n", flush=True)
        if "b" in args.only:
            sections.append(import_cost(ws, pythons, import_runs))
            print("\n" + sections[-1] + "\n", flush=True)
        if "c" in args.only:
            sections.append(dataframe_cost(ws, pythons, sizes, runs, reads, args.jobs))
            print("\n" + sections[-1] + "\n", flush=True)
    finally:
        ws.close()
    print("\n# summary\n" + note + "\n\n" + "\n\n".join(sections))
    if "flordb" in pythons:
        print(
            "\nflordb notes: its flor.log echoes every value through tqdm.write (stdout went to "
            "/dev/null here); its stores for (c) were built in one process with one "
            "flor.commit() per run and the echo disabled, written by flordb's own commit path. "
            "Its whole-process CPU in (a) covers the loop only: it writes at flor.commit()."
        )


if __name__ == "__main__":
    main()
