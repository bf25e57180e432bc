"""`flor ui` performance (issue 16): start-up, API latency and browser rendering on a
large SQLite store.

    python benchmarks/ui_bench.py [--runs 10000] [--steps 1000] [--repeat 5] [--no-browser]
                                  [--no-summary] [--only sql]

The store is written through `StoreWriter` into a throwaway repository:
`--runs` recorded runs (args lr and bs, `acc` for 10 epochs each: the runs page), and one
run of 1,000 epochs x `--steps` steps of `loss` (10^6 values by default: the curves).
Figures (medians of `--repeat`):
1. start-up: launching `flor ui` until it prints its URL, and until `/` answers;
2. each API response the pages make, cold (first request after start) and warm, and the
   server's CPU time (all its threads, from /proc) while it answered the cold one: on a
   loaded machine the figure to compare;
3. in Debian's chromium (Playwright): the runs page until its first rows are on screen,
   and the big run's page until its curves are drawn, both from navigation start: the
  first visit right after the server printed its URL, and the next visit.
`--only sql` times only the SQL console's statements (2), without start-up or browser.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

from _common import Workspace

FILL = """\
import json, random, sys, time
from flor.store.writer import StoreWriter

runs, steps = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(7)
writer = StoreWriter()
start = time.time() - runs * 10


def run_row(run_id, started, args):
    return {"run_id": run_id, "projid": "bench", "filename": "train.py", "tstamp": str(started),
            "status": "finished", "mode": "record", "started": started, "ended": started + 5,
            "heartbeat": started + 5, "args": json.dumps(args), "argv": "[]"}


for index in range(runs):
    run_id = f"r{index:011d}"
    args = {"lr": rng.choice([1e-4, 3e-4, 1e-3, 3e-3]), "bs": rng.choice([32, 64, 128])}
    writer.insert_run(run_row(run_id, start + index * 10, args))
    loops = [(run_id, e + 1, None, "epoch", e, None) for e in range(10)]
    logs = [(run_id, "t", None, k, str(v), type(v).__name__, i, None, "")
            for i, (k, v) in enumerate(args.items())]
    logs += [(run_id, "t", e + 1, "acc", repr(0.5 + 0.04 * e + rng.random() * 0.05), "float",
              10 + e, None, "") for e in range(10)]
    writer.write_batch(run_id, loops, logs, [], start + index * 10 + 5)
big = "big000000000"
writer.insert_run(run_row(big, time.time(), {"lr": 1e-3, "bs": 64}))
seq = 0
for epoch in range(1000):
    outer = epoch * (steps + 1) + 1
    loops = [(big, outer, None, "epoch", epoch, None)]
    logs = []
    for step in range(steps):
        ctx = outer + 1 + step
        loops.append((big, ctx, outer, "step", step, None))
        seq += 1
        logs.append((big, "t", ctx, "loss", repr(1.0 / (1 + epoch + step / steps) +
                     rng.random() * 0.01), "float", seq, None, ""))
    writer.write_batch(big, loops, logs, [], time.time())
if "--no-summary" not in sys.argv:  # what a recorded run's end does (flor ui's first curve)
    from flor.store.browse import store_curves
    store_curves(writer, big)
writer.close()
"""


OBSERVER = """
window.__florShown = null;
new MutationObserver(() => {
  if (window.__florShown === null && document.querySelector(SELECTOR)) {
    window.__florShown = performance.now();
  }
}).observe(document, { subtree: true, childList: true, attributes: true });
"""
COUNT_SQL = "SELECT name, COUNT(*) AS n FROM logs GROUP BY name"
TOTAL_SQL = "SELECT COUNT(*) AS n FROM logs"


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:8.1f} ms"


def start(repo: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str, float, float]:
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "flor", "ui", "--port", "0", "--no-open"],
        cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    printed = time.perf_counter() - began
    found = re.search(r"(http://\S+)", line)
    if not found:
        raise SystemExit(f"flor ui did not start: {line}")
    url = found.group(1)
    urllib.request.urlopen(url, timeout=60).read()
    return process, url, printed, time.perf_counter() - began


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system time of a process so far, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fetch(url: str) -> tuple[float, bytes]:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = response.read()
    return time.perf_counter() - began, body


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument(
        "--no-summary", action="store_true", help="no stored curve summary (as before it existed)"
    )
    parser.add_argument("--only", choices=["sql"], help="only the SQL console's statements")
    options = parser.parse_args()
    work = Workspace(keep=options.keep, prefix="flor-ui-bench-")
    try:
        repo = work.repo({"train.py": "import flor\n"})
        env = work.env()
        work.warm_up(sys.executable, "flor.cli, flor.ui.server, flor.store.reader")
        began = time.perf_counter()
        flags = ["--no-summary"] if options.no_summary else []
        subprocess.run([sys.executable, "-c", FILL, str(options.runs), str(options.steps), *flags],
                       cwd=repo, env=env, check=True)  # fmt: skip
        values = options.runs * 12 + 1000 * options.steps
        print(f"store: {options.runs} runs + 1 run of {1000 * options.steps} values "
              f"({values} values) written in {time.perf_counter() - began:.0f} s")  # fmt: skip

        printed, answered = [], []
        for _ in range(0 if options.only else options.repeat):
            process, url, until_print, until_answer = start(repo, env)
            printed.append(until_print)
            answered.append(until_answer)
            stop(process)
        if printed:
            print(f"start-up: URL printed {median_ms(printed)}, / answered {median_ms(answered)}")
        big = "big000000000"
        first = "r00000000000"
        endpoints = [
            ("runs page 1", "/api/runs?limit=100"),
            ("runs by acc, where lr < 1e-3", "/api/runs?sort=values.acc&where=lr+%3C+0.001"),
            ("runs last page", f"/api/runs?offset={max(0, options.runs - 100)}&sort=args.lr"),
            ("info", "/api/info"),
            ("run (10^6 values)", f"/api/runs/{big}"),
            ("curve (10^6 values)", f"/api/runs/{big}/series?name=loss&points=1200"),
            ("run (small)", f"/api/runs/{first}"),
            ("curve (small)", f"/api/runs/{first}/series?name=acc"),
            ("compare small + big", f"/api/compare?runs={first},{big}"),
            ("versions", "/api/versions"),
            ("params", "/api/params"),
            ("sql: count logs by name", "/api/sql?q=" + quote(COUNT_SQL)),
            ("sql: count logs", "/api/sql?q=" + quote(TOTAL_SQL)),
        ]  # fmt: skip
        if options.only:
            endpoints = [e for e in endpoints if e[0].startswith(f"{options.only}:")]
        cold: dict[str, list[float]] = {label: [] for label, _ in endpoints}
        cold_cpu: dict[str, list[float]] = {label: [] for label, _ in endpoints}
        warm: dict[str, list[float]] = {label: [] for label, _ in endpoints}
        sizes: dict[str, int] = {}
        for _ in range(options.repeat):
            process, url, _, _ = start(repo, env)
            base = url.rstrip("/")
            if options.only:  # as in the full run: after the start-up pass (runs page 1)
                fetch(base + "/api/runs?limit=100")
            for label, path in endpoints:
                before = cpu_seconds(process.pid)
                seconds, body = fetch(base + path)
                cold_cpu[label].append(cpu_seconds(process.pid) - before)
                cold[label].append(seconds)
                sizes[label] = len(body)
            for label, path in endpoints:
                warm[label].append(fetch(base + path)[0])
            stop(process)
        print(f"\n{'API response':36} {'cold':>11} {'cold CPU':>11} {'warm':>11} {'bytes':>9}")
        for label, _ in endpoints:
            print(f"{label:36} {median_ms(cold[label])} {median_ms(cold_cpu[label])} "
                  f"{median_ms(warm[label])} {sizes[label]:9d}")  # fmt: skip

        if not options.no_browser and not options.only:
            browser_figures(repo, env, options.repeat, big)
    finally:
        work.close()


def browser_figures(repo: Path, env: dict[str, str], repeat: int, big: str) -> None:
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]  # fmt: skip
    runs_paint, runs_warm, run_curves, run_warm = [], [], [], []
    note = ""

    def timed(url: str, selector: str) -> float:
        """When `selector` first matched, as the page's own clock saw it (a mutation
        observer installed before the page loads), not when Playwright polled it."""
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.add_init_script(OBSERVER.replace("SELECTOR", json.dumps(selector)))
        page.goto(url)
        page.wait_for_selector(selector, timeout=120_000)
        seconds = page.evaluate("window.__florShown") / 1000
        nonlocal note
        if page.locator("#curves .note").count():
            note = page.text_content("#curves .note") or ""
        page.close()
        return float(seconds)

    rows, curves = "#runs tbody tr[data-run]", '#curves[data-ready="1"] path.series'
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        for _ in range(repeat):
            process, url, _, _ = start(repo, env)  # a fresh server: cold caches each time
            runs_paint.append(timed(url + "#/runs", rows))
            runs_warm.append(timed(url + "#/runs", rows))
            run_curves.append(timed(url + f"#/run/{big}", curves))
            run_warm.append(timed(url + f"#/run/{big}", curves))
            stop(process)
        browser.close()
    print("\nbrowser (chromium), from navigation start     first visit   next visit")
    print(
        f"runs page, first rows on screen:        {median_ms(runs_paint)}  {median_ms(runs_warm)}"
    )
    print(f"run page of 10^6 values, curves drawn:  {median_ms(run_curves)}  {median_ms(run_warm)}")
    print(f"({note})")


if __name__ == "__main__":
    random.seed(0)
    main()
