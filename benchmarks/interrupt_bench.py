"""How fast `flor replay` stops on Ctrl-C, and whether it ever hangs (issue 17).

Two recorded runs of a numpy script whose replay tasks wait at a gate file; each trial
starts `flor replay g0 --jobs 2 --yes` (a private warm server: FLOR_WARM_IDLE_S=0), waits
until both tasks run, sleeps a random 0-0.4 s (so the signal lands at varied points of the
tasks' start), sends SIGINT (to the command's process group, as a terminal does, or to the
command alone, alternately) and measures the time until the command has exited. A trial
that has not exited after `--hang-s` seconds counts as a hang (the defect this fixed: about
one trial in 10-25 under load, always with SIGINT to the command alone).

Prints the hangs, exit statuses, the median and slowest stop time, and the CPU seconds the
replays used (with their warm servers and tasks), with the load average at the start.

Usage: python benchmarks/interrupt_bench.py [--trials N] [--hang-s S]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = """\
import os
import time
import numpy as np
import flor

np.random.seed(flor.arg("seed", 0))
w = np.zeros(3)
with flor.checkpointing(weights=w):
    for epoch in flor.loop("epoch", range(4)):
        for step in flor.loop("step", range(5)):
            while not os.path.exists(GATE):
                time.sleep(0.01)
            grad = np.random.randn(3)
            w -= 0.1 * grad
            flor.log("g0", float(grad[0]))
        flor.log("w0", float(w[0]))
"""


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def _record(root: Path, gate: Path) -> Path:
    repo = root / "proj"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    script = repo / "train.py"
    recorded = SCRIPT.replace("GATE", repr(str(gate)))
    script.write_text(recorded.replace('            flor.log("g0", float(grad[0]))\n', ""))
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "v1")
    gate.touch()
    for seed in (0, 1):
        subprocess.run(
            [sys.executable, str(script), "--kwargs", f"seed={seed}"],
            cwd=repo,
            check=True,
            capture_output=True,
            env={**os.environ, "FLOR_CKPT_BUDGET": "1"},
        )
    script.write_text(recorded)  # the hindsight statement
    gate.unlink()
    return repo


def _tasks(session: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                in_session = os.getsid(int(entry.name)) == session
                count += in_session and "/flor-task-" in str((entry / "cwd").readlink())
            except OSError:
                continue
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--hang-s", type=float, default=60.0)
    options = parser.parse_args()
    rng = random.Random(17)
    load = os.getloadavg()[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOR_")}
    env["FLOR_WARM_IDLE_S"] = "0"
    with tempfile.TemporaryDirectory(prefix="flor-interrupt-") as tmp:
        gate = Path(tmp) / "gate"
        env["FLOR_HOME"] = str(Path(tmp) / "home")
        os.environ.update(env)
        repo = _record(Path(tmp), gate)
        stops, statuses, hangs = [], [], 0
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for trial in range(options.trials):
            replay = subprocess.Popen(
                [sys.executable, "-m", "flor", "replay", "g0", "--jobs", "2", "--yes"],
                cwd=repo,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )
            while _tasks(replay.pid) < 2 and replay.poll() is None:
                time.sleep(0.02)
            time.sleep(rng.uniform(0, 0.4))
            started = time.perf_counter()
            if trial % 2:
                os.kill(replay.pid, signal.SIGINT)
            else:
                os.killpg(replay.pid, signal.SIGINT)
            try:
                statuses.append(replay.wait(options.hang_s))
                stops.append(time.perf_counter() - started)
            except subprocess.TimeoutExpired:
                hangs += 1
                os.killpg(replay.pid, signal.SIGKILL)
                replay.wait()
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    print(f"trials {options.trials}, load average at start {load:.1f}")
    print(f"hangs (> {options.hang_s:g} s): {hangs}")
    print(f"exit statuses: {sorted(set(statuses))}")
    if stops:
        print(
            f"SIGINT -> exited: median {statistics.median(stops):.2f} s, slowest {max(stops):.2f} s"
        )
    print(
        f"CPU of the replays, servers and tasks: {cpu:.1f} s ({cpu / options.trials:.2f} per trial)"
    )


if __name__ == "__main__":
    main()
