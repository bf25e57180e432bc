"""Costs of recording artifacts and of walking lineage.

    python benchmarks/artifacts_bench.py [--quick] [--lineage-only]

(a) digest throughput of one large file on a warm page cache (BLAKE3, and sha256 beside it)
(b) an unchanged large file declared again: the stat-cache hit (the work flor does) and the
    time `flor.input` takes on the user's thread
(c) a training loop's time with nothing declared, and with a large input and an output
    declared before the loop (the input hashed cold, in the background, while it trains)
(d) a folder of many small files: hashed cold and warm, with the child's peak memory
(e) `flor.lineage` and `flor lineage` (CLI, each format) over a SQLite store of 10,000
    runs and 50,000 artifacts, wall and CPU time (the figure to compare on a busy machine)
(f) every form of `flor lineage` over that store as a user runs it (a fresh process, start
    to output written, wall and CPU): the default tree (1,000 lines and a count of the
    rest), the full tree (--limit 0), JSON and DOT, for the widest targets; the Python API
    with its edges frame; and the `--downstream-of` selection
(g) the same over another shape: one chain of 10,000 fine-tuning runs (50,000 artifacts)

Prints figures only (medians); nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Workspace, check, machine_note, median, run_child, table  # noqa: E402

from flor.runtime import digest  # noqa: E402
from flor.runtime.digest import StatCache  # noqa: E402

OLD = time.time() - 3600  # mtimes an hour old: outside the stat cache's racy window


def big_file(path: Path, size: int) -> Path:
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(size >> 20):
            f.write(block)
    os.utime(path, (OLD, OLD))
    return path


def throughput(path: Path, repeats: int) -> list[list[object]]:
    size = path.stat().st_size
    path.read_bytes()  # warm the page cache
    rows: list[list[object]] = []
    for name, work in (
        ("blake3 (flor)", lambda: digest.hash_file(str(path))),
        ("sha256 (hashlib)", lambda: _sha256(path)),
    ):
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            work()
            times.append(time.perf_counter() - started)
        rows.append([name, f"{size / 1e9:.2f} GB", f"{size / median(times) / 1e9:.2f} GB/s"])
    return rows


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


INPUT_AGAIN = """\
import json, sys, time
import flor
path = sys.argv[1]
flor.log("start", 1)
times = []
for _ in range(50):
    t = time.perf_counter()
    flor.input(path)
    times.append(time.perf_counter() - t)
times.sort()
print(json.dumps({"median_s": times[len(times) // 2]}))
"""

TRAIN = """\
import json, os, sys, time
import torch
import flor
torch.manual_seed(0)
torch.set_num_threads(1)
if sys.argv[1] != "-":
    flor.input(sys.argv[1])
    out = flor.output("model.pt")
flor.log("started", 1)  # the run starts (git snapshot, store) before the timed loop
net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 1))
opt = torch.optim.SGD(net.parameters(), lr=1e-3)
x, y = torch.randn(256, 64), torch.randn(256, 1)
t = time.perf_counter()
for epoch in flor.loop("epoch", range(4)):
    for step in flor.loop("step", range(int(os.environ["STEPS"]))):
        opt.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        flor.log("loss", loss.item())
seconds = time.perf_counter() - t
if sys.argv[1] != "-":
    torch.save(net.state_dict(), out)
print(json.dumps({"loop_s": seconds}))
"""

FOLDER = """\
import json, sys, time
from pathlib import Path
from flor.runtime import digest
from flor.runtime.digest import StatCache
cache = StatCache(Path(sys.argv[2]))
t = time.perf_counter()
found = digest.content(sys.argv[1], cache)
seconds = time.perf_counter() - t
# VmHWM: this process's own peak (ru_maxrss would include the parent's, kept across exec)
status = Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]
print(json.dumps({"s": seconds, "files": found.files, "peak_kb": int(status)}))
"""


def child_json(ws: Workspace, repo: Path, code: str, *args: str, **env: str) -> tuple[dict, int]:
    script = repo / "child.py"
    script.write_text(code)
    out = repo / "child.out"
    result = run_child([sys.executable, str(script), *args], repo, ws.env(**env), stdout_to=out)
    check(result, "benchmark child")
    return json.loads(out.read_text().strip().splitlines()[-1]), result.max_rss_kb


def write_rows(path: Path, runs: list[Any], arts: list[Any], events: list[Any]) -> None:
    """Runs (run_id, projid, filename, tstamp, status, mode, started), artifacts and events
    written into the SQLite store at `path` in one transaction."""
    from flor.store.artifacts import record
    from flor.store.writer import StoreWriter

    writer = StoreWriter(path)

    def work(conn):  # type: ignore[no-untyped-def]
        conn.executemany(
            "INSERT INTO runs (run_id, projid, filename, tstamp, status, mode, started) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            runs,
        )
        record(conn, writer.dialect, arts, events)

    writer.transaction(work)
    writer.close()


def synthetic_store(path: Path, pipelines: int, share: int) -> dict[str, str]:
    """`pipelines` five-stage pipelines (prep, train, eval, infer, report), each stage
    writing 5 files that the next stage reads; every `share` pipelines read one shared
    dataset, and all datasets derive from one raw dump. Returns targets to query."""
    stages = ("prep.py", "train.py", "eval.py", "infer.py", "report.py")
    runs, arts, events = [], [], []
    raw = "f" * 64
    arts.append((raw, "file", 1 << 30, 1))
    now = time.time()
    for p in range(pipelines):
        dataset = hashlib.blake2b(f"dataset {p // share}".encode(), digest_size=32).hexdigest()
        if p % share == 0:
            arts.append((dataset, "file", 1 << 20, 1))
            events.append(
                (f"d{p:011d}", 1, "t", None, "input", "raw.bin", raw, "ok", None, now, None)
            )
            events.append(
                (f"d{p:011d}", 2, "t", None, "output", "data.csv", dataset, "ok", None, now, None)
            )
            runs.append((f"d{p:011d}", "split.py"))
        reads = [("data.csv", dataset)]
        for s, stage in enumerate(stages):
            run_id = f"{p:06d}{s:06d}"
            runs.append((run_id, stage))
            seq = 0
            for path_name, art in reads:
                seq += 1
                events.append(
                    (run_id, seq, "t", None, "input", path_name, art, "ok", None, now, None)
                )
            reads = []
            for k in range(5):
                seq += 1
                art = hashlib.blake2b(f"{run_id}/{k}".encode(), digest_size=32).hexdigest()
                arts.append((art, "file", 1000, 1))
                events.append(
                    (
                        run_id,
                        seq,
                        "t",
                        (k or None),
                        "output",
                        f"{stage[:-3]}/{k}.bin",
                        art,
                        "ok",
                        None,
                        now,
                        None,
                    )
                )
                reads.append((f"{stage[:-3]}/{k}.bin", art))
    run_rows = [(r, "bench", f, "2026-12-01 00:00:00", "finished", "record", now) for r, f in runs]
    write_rows(path, run_rows, arts, events)
    model = hashlib.blake2b(f"{pipelines // 2:06d}{1:06d}/0".encode(), digest_size=32).hexdigest()
    first_dataset = hashlib.blake2b(b"dataset 0", digest_size=32).hexdigest()
    return {
        "one model (train/0.bin@digest), both ways": f"train/0.bin@{model[:16]}",
        f"one shared dataset, downstream ({share} pipelines)": f"data.csv@{first_dataset[:16]}",
        "the raw dump, downstream (every run)": "raw.bin",
    }


def chain_store(path: Path, length: int) -> dict[str, str]:
    """Another shape: `length` fine-tuning runs in one chain, each reading the model the one
    before wrote (and one of 20 label files), writing the next model and 4 reports, with
    real timestamps. Returns targets to query."""

    def digest_of(name: str) -> str:
        return hashlib.blake2b(name.encode(), digest_size=32).hexdigest()

    arts = [(digest_of(f"labels {k}"), "file", 1 << 20, 1) for k in range(20)]
    runs, events = [], []
    now = time.time()
    for i in range(length):
        run_id = f"c{i:011d}"
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now - (length - i) * 60))
        runs.append((run_id, "bench", "tune.py", when, "finished", "record", now + i))
        labels = digest_of(f"labels {i % 20}")
        rows = [("input", "model.pt", digest_of(f"model {i}")), ("input", "labels.csv", labels),
                ("output", "model.pt", digest_of(f"model {i + 1}"))]  # fmt: skip
        rows += [("output", f"reports/{k}.json", digest_of(f"report {i}/{k}")) for k in range(4)]
        for seq, (role, at, art) in enumerate(rows, start=1):
            events.append((run_id, seq, when, seq if role == "output" else None, role, at, art,
                           "ok", None, now + i, None))  # fmt: skip
            if role == "output":
                arts.append((art, "file", 4096, 1))
    arts.append((digest_of("model 0"), "file", 4096, 1))
    write_rows(path, runs, arts, events)
    return {
        "first model, downstream (the whole chain)": f"model.pt@{digest_of('model 0')[:16]}",
        "middle run, both ways": f"c{length // 2:011d}",
        "one label file, downstream": f"labels.csv@{digest_of('labels 3')[:16]}",
        f"every model ({length + 1:,} roots)": "model.pt",
    }


def chain_figures(ws: Workspace, length: int, repeats: int) -> list[list[object]]:
    """(g): the forms of `flor lineage` over a chain, each in a fresh process."""
    repo = ws.repo({"README": "chain\n"}, name="chain-")
    home = repo / ".flor"
    targets = chain_store(home / "flor.db", length)
    rows: list[list[object]] = []
    for label, target in targets.items():
        flags = ["--downstream"] if "downstream" in label else []
        for form in ([], ["--format", "json"]):
            out = repo / "lineage.out"
            wall, cpu = cli_seconds(ws, repo, home, [target, *flags, *form], repeats, stdout=out)
            what = f"{label}, {'tree' if not form else 'json'}"
            rows.append([what, f"{out.stat().st_size / 1e6:.1f} MB", f"{wall:.2f} / {cpu:.2f} s"])
    return rows


def cli_seconds(
    ws: Workspace, repo: Path, home: Path, args: list[str], repeats: int, stdout: Path | None = None
) -> tuple[float, float]:
    """Medians of `flor lineage ARGS` in a fresh process: wall and the child's CPU time
    (its output to `stdout`, a file, else thrown away)."""
    walls, cpus = [], []
    for _ in range(max(1, repeats // 2)):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        command = [sys.executable, "-m", "flor", "lineage", *args]
        env = ws.env(FLOR_HOME=str(home))
        with open(stdout or os.devnull, "wb") as sink:
            subprocess.run(command, cwd=repo, env=env, check=True, stdout=sink)
        walls.append(time.perf_counter() - t)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return median(walls), median(cpus)


def lineage_figures(
    ws: Workspace, pipelines: int, share: int, repeats: int
) -> tuple[list[list[object]], list[list[object]]]:
    import flor
    from flor.graph import downstream_runs

    repo = ws.repo({"README": "lineage\n"}, name="lineage-")
    home = repo / ".flor"
    started = time.perf_counter()
    targets = synthetic_store(home / "flor.db", pipelines, share)
    print(f"(synthetic store: {time.perf_counter() - started:.1f} s to write)")
    rows: list[list[object]] = []
    os.environ["FLOR_HOME"] = str(home)
    try:
        from flor.store import reader

        n_runs = int(reader.query("SELECT COUNT(*) AS n FROM runs", home=home)["n"][0])
        n_arts = int(reader.query("SELECT COUNT(*) AS n FROM artifacts", home=home)["n"][0])
        print(f"(store: {n_runs} runs, {n_arts} artifacts)")
        for label, target in targets.items():
            direction = "both" if "both" in label else "downstream"
            times, cpu, size = [], [], 0
            for _ in range(repeats):
                t, c = time.perf_counter(), time.process_time()
                graph = flor.lineage(target, direction=direction, home=home)  # type: ignore[attr-defined]
                size = len(graph.runs())
                times.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            flags = [f"--{direction}"] if direction != "both" else []
            cli = [
                cli_seconds(ws, repo, home, [target, *flags, "--format", fmt], repeats)
                for fmt in ("json", "dot", "table")
            ]
            rows.append([label, size, f"{median(times) * 1000:.0f} / {median(cpu) * 1000:.0f} ms",
                         *(f"{wall:.2f} / {used:.2f} s" for wall, used in cli)])  # fmt: skip
        t = time.perf_counter()
        downstream_runs(targets[f"one shared dataset, downstream ({share} pipelines)"], home=home)
        rows.append(
            [
                "--downstream-of selection (shared dataset)",
                "",
                f"{(time.perf_counter() - t) * 1000:.0f} ms",
                "",
                "",
                "",
            ]
        )
        forms = every_form(ws, repo, home, targets, repeats)
    finally:
        os.environ.pop("FLOR_HOME", None)
    return rows, forms


def every_form(
    ws: Workspace, repo: Path, home: Path, targets: dict[str, str], repeats: int
) -> list[list[object]]:
    """(f): each command in a fresh process, timed from its start to its output written."""
    import flor
    from flor.graph import downstream_runs

    widest = targets["the raw dump, downstream (every run)"]
    shared = next(t for label, t in targets.items() if "shared dataset" in label)
    forms = [
        ("whole store, default tree", [widest]),
        ("whole store, --downstream tree", [widest, "--downstream"]),
        ("whole store, full tree (--limit 0)", [widest, "--limit", "0"]),
        ("whole store, --format json", [widest, "--format", "json"]),
        ("whole store, --format dot", [widest, "--format", "dot"]),
        ("shared dataset, --downstream tree", [shared, "--downstream"]),
        (
            "shared dataset, --downstream --format json",
            [shared, "--downstream", "--format", "json"],
        ),
        ("a dataset run's id, no --depth, tree", ["d00000000000"]),
        ("a dataset run's id, no --depth, json", ["d00000000000", "--format", "json"]),
        ("one model, tree", [targets["one model (train/0.bin@digest), both ways"]]),
        ("every version of one path (2,000 roots), tree", ["train/0.bin"]),
        ("every version of one path (2,000 roots), json", ["train/0.bin", "--format", "json"]),
    ]
    rows: list[list[object]] = []
    for label, args in forms:
        out = repo / "lineage.out"
        wall, cpu = cli_seconds(ws, repo, home, args, repeats, stdout=out)
        size = out.stat().st_size
        rows.append([label, f"{size / 1e6:.1f} MB", f"{wall:.2f} / {cpu:.2f} s"])
    walls, cpus, edges = [], [], 0
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        edges = len(flor.lineage(widest, home=home).edges_frame())  # type: ignore[attr-defined]
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    rows.append(["flor.lineage(whole store).edges_frame()", f"{edges} edges",
                 f"{median(walls):.2f} / {median(cpus):.2f} s"])  # fmt: skip
    for label, target in (("shared dataset", shared), ("whole store", widest)):
        walls, cpus, found = [], [], 0
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            found = len(downstream_runs(target, home=home))
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        rows.append([f"--downstream-of selection ({label})", f"{found} runs",
                     f"{median(walls):.2f} / {median(cpus):.2f} s"])  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--lineage-only", action="store_true", help="only (e), (f) and (g)")
    opts = parser.parse_args()
    size = (256 if opts.quick else 1024) << 20
    files = 10_000 if opts.quick else 100_000
    repeats = 3 if opts.quick else 5
    print(machine_note())
    ws = Workspace()
    try:
        ws.warm_up(sys.executable, "flor, flor.cli, flor.graph, torch, pandas, blake3")
        if not opts.lineage_only:
            repo = ws.repo({"README": "bench\n", ".gitignore": "*.bin\nmodel.pt\nfiles/\n"})
            data = big_file(repo / "data.bin", size)

            print("\n(a) digest throughput, warm page cache (median of", repeats, "runs)")
            print(table(["hash", "file", "throughput"], throughput(data, repeats)))

            print("\n(b) the same file declared again (unchanged)")
            cache = StatCache(ws.root / "digests.db")
            digest.content(str(data), cache)
            cache.flush()
            hits = []
            for _ in range(50):
                t = time.perf_counter()
                digest.content(str(data), cache)
                hits.append(time.perf_counter() - t)
            cache.close()
            timed, _ = child_json(ws, repo, INPUT_AGAIN, str(data))
            print(table(["what", "median"], [
                ["stat-cache hit (the background thread's work)", f"{median(hits) * 1000:.3f} ms"],
                ["flor.input(path) on the user's thread", f"{timed['median_s'] * 1e6:.0f} us"],
            ]))  # fmt: skip

            print("\n(c) training loop (4 epochs), median of", repeats, "runs")
            steps = "50" if opts.quick else "200"
            plain, declared = [], []
            child_json(ws, repo, TRAIN, "-", STEPS=steps)  # warm-up: not counted
            for _ in range(repeats):
                os.utime(data, (OLD, OLD))
                (repo / ".flor" / "digests.db").unlink(missing_ok=True)  # the input hashed cold
                plain.append(child_json(ws, repo, TRAIN, "-", STEPS=steps)[0]["loop_s"])
                declared.append(child_json(ws, repo, TRAIN, str(data), STEPS=steps)[0]["loop_s"])
            print(table(["variant", "loop time", "ratio"], [
                ["nothing declared", f"{median(plain):.3f} s", "1.00x"],
                [f"input ({size >> 20} MB, hashed cold) + output declared before the loop",
                 f"{median(declared):.3f} s", f"{median(declared) / median(plain):.2f}x"],
            ]))  # fmt: skip

            print(f"\n(d) a folder of {files:,} files of 1 KB")
            folder = repo / "files"
            for i in range(files):
                sub = folder / f"{i // 1000:03d}"
                if i % 1000 == 0:
                    sub.mkdir(parents=True)
                (sub / f"{i:06d}.txt").write_bytes(os.urandom(1024))
            for f in folder.rglob("*.txt"):
                os.utime(f, (OLD, OLD))
            cold, _ = child_json(ws, repo, FOLDER, str(folder), str(ws.root / "folder.db"))
            warm, _ = child_json(ws, repo, FOLDER, str(folder), str(ws.root / "folder.db"))
            print(table(["pass", "seconds", "files", "peak RSS"], [
                ["cold (hash every file)", f"{cold['s']:.2f}", cold["files"],
                 f"{cold['peak_kb'] // 1024} MB"],
                ["warm (stat cache)", f"{warm['s']:.2f}", warm["files"],
                 f"{warm['peak_kb'] // 1024} MB"],
            ]))  # fmt: skip

        pipelines = 400 if opts.quick else 2000
        print(f"\n(e) lineage over {pipelines * 5} runs (+ dataset runs), median of {repeats}")
        rows, forms = lineage_figures(ws, pipelines, 100, repeats)
        print(table(["target", "runs in graph", "library (wall / CPU)",
                     "CLI --format json", "dot", "default table (wall / CPU)"], rows))  # fmt: skip
        print(f"\n(f) every form over the same store, as a user runs it (median of {repeats})")
        print(table(["what", "result", "wall / CPU"], forms))
        length = 2000 if opts.quick else 10_000
        print(f"\n(g) a chain of {length:,} runs, {length * 5:,} artifacts (median of {repeats})")
        print(table(["what", "result", "wall / CPU"], chain_figures(ws, length, repeats)))
    finally:
        ws.close()


if __name__ == "__main__":
    main()
