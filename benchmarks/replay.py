"""Replay against re-running from scratch (issue 5's workload).

Three recorded versions of a PyTorch CPU training script, 6 epochs each, the inner step
loop taking over 90 % of the time. A hindsight statement is added to the newest version
and replayed into all three, compared with re-executing the three patched versions from
scratch, serially:

- outer-loop statement (weight norm at the start of every epoch), `--jobs 1` and 2;
- nested statement (gradient norm at every step) with `--jobs 1` and `--jobs 2`
  (values must be identical);
- the plan's estimate against the time of what it estimates: the replay after planning
  (`execute`; the replay's wall time, in the speedup, includes planning);
- per-task start-up (task start -> its first replayed iteration), median and slowest:
  tasks fork from a warm interpreter that has torch imported;
- cold and warm: the first replay of each row starts with no warm server (the last one
  retired; what it learned stays listed, except before the very first replay, which starts
  from nothing), the others find the server the last replay left, as a user's next replay
  within FLOR_WARM_IDLE_S does;
- short runs (`--short-runs N`, 0 to skip): N recorded runs of about `--short-seconds`
  each, an outer-level statement replayed into all of them with `--jobs 2` against
  re-running them from scratch (issue 17: at most half the time).

The machine may be shared: each row also gives the CPU seconds it used (this process and
every process it waited for: tasks, warm servers, scripts) and the load average when it
started.

Usage: python benchmarks/replay.py [--steps N] [--repeat K] [--short-runs N]
                                  [--statements weight_norm,grad_norm]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = """\
import torch
from torch import nn
import flor

torch.manual_seed(flor.arg("seed", 0))
hidden = flor.arg("hidden", HIDDEN)
steps = flor.arg("steps", STEPS)
features = torch.randn(4096, 64)
labels = (features[:, :8].sum(dim=1) > 0).long()
net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                    nn.Linear(hidden, 2))
optimizer = torch.optim.SGD(net.parameters(), lr=LR, momentum=0.9)
criterion = nn.CrossEntropyLoss()
with flor.checkpointing(model=net, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(6)):
        for step in flor.loop("step", range(steps)):
            batch = torch.randint(0, 4096, (256,))
            optimizer.zero_grad()
            loss = criterion(net(features[batch]), labels[batch])
            loss.backward()
            optimizer.step()
            flor.log("loss", loss.item())
"""
VERSIONS = [("256", "0.01"), ("384", "0.01"), ("384", "0.02")]
OUTER = (
    '    for epoch in flor.loop("epoch", range(6)):\n',
    '        flor.log("weight_norm", sum(p.norm() ** 2 for p in net.parameters()).item() ** 0.5)\n',
)
NESTED = (
    "            loss.backward()\n",
    '            flor.log("grad_norm", '
    "sum(p.grad.norm() ** 2 for p in net.parameters()).item() ** 0.5)\n",
)


def cpu_seconds() -> float:
    """CPU time of this process and of the processes it has waited for."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def process_cpu(pid: int) -> float:
    """CPU time of a process that is not this one's child (the warm server) and of the
    children it has waited for (its tasks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def load() -> float:
    return os.getloadavg()[0]


def sh(cwd: Path, *command: str) -> None:
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)


def version(hidden: str, lr: str, steps: int) -> str:
    return SCRIPT.replace("HIDDEN", hidden).replace("LR", lr).replace("STEPS", str(steps))


def patched(source: str) -> str:
    for anchor, line in (OUTER, NESTED):
        source = source.replace(anchor, anchor + line)
    return source


def record(repo: Path, steps: int) -> list[float]:
    durations = []
    for hidden, lr in VERSIONS:
        (repo / "train.py").write_text(version(hidden, lr, steps))
        sh(repo, "git", "commit", "-qam", f"hidden {hidden} lr {lr}")
        started = time.perf_counter()
        sh(repo, sys.executable, "train.py")
        durations.append(time.perf_counter() - started)
    return durations


def from_scratch(repo: Path, steps: int) -> tuple[float, float]:
    """Re-execute the three patched versions in full, one after another: (wall, CPU s)."""
    scratch = Path(tempfile.mkdtemp(prefix="flor-scratch-"))
    env = {**os.environ, "FLOR_HOME": str(scratch / "store"), "FLOR_CKPT_BUDGET": "0"}
    cpu = cpu_seconds()
    started = time.perf_counter()
    for hidden, lr in VERSIONS:
        (scratch / "train.py").write_text(patched(version(hidden, lr, steps)))
        subprocess.run([sys.executable, "train.py"], cwd=scratch, env=env, check=True,
                       capture_output=True)  # fmt: skip
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    shutil.rmtree(scratch)
    return elapsed, cpu


def retire_server(jobs: int) -> None:
    """End the warm server a replay with `jobs` tasks at a time would use (its tasks' threads
    may wait passively: a server of its own), so the next replay starts it anew."""
    from flor.replay import warm

    pid = warm.retire(warm.local_environment(jobs))
    while pid is not None and running(pid):
        time.sleep(0.05)


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def replay(
    name: str, jobs: int, *, cold: bool = False
) -> tuple[float, float, list[float], list[float], float]:
    """(seconds, the plan's estimate, the values, each task's start-up seconds, CPU s,
    seconds after planning); `cold`: with no warm server running (the replay starts one)."""
    import flor
    from flor.replay import execute, plan, warm_up

    if cold:
        retire_server(jobs)
    cpu = cpu_seconds()
    started = time.perf_counter()
    server = warm_up(jobs)  # as `flor replay` does: the server imports while the replay plans
    server_cpu = 0.0 if cold else process_cpu(server.pid)
    the_plan = plan([name], jobs=jobs)
    summary = execute(the_plan)
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds() - cpu + process_cpu(server.pid) - server_cpu
    assert not summary.failed, [r.tail for r in summary.failed]
    df = flor.dataframe(name).dropna(subset=[name])
    startups = [r.startup_s for r in summary.results if r.startup_s is not None]
    return elapsed, the_plan.estimate_s, df[name].tolist(), startups, cpu, summary.seconds


def short_runs(count: int, seconds: float) -> None:
    """Several short recorded runs: replay an outer statement into all of them with
    --jobs 2, against re-running them from scratch one after another."""
    repo = Path(tempfile.mkdtemp(prefix="flor-bench-short-"))
    os.environ["FLOR_HOME"] = str(repo / ".flor")
    sh(repo, "git", "init", "-q")
    # calibrate: steps per epoch for a run of about `seconds`
    probe_steps = 40
    (repo / "train.py").write_text(version("256", "0.01", probe_steps))
    sh(repo, "git", "add", "train.py")
    sh(repo, "git", "commit", "-qm", "calibrate")
    started = time.perf_counter()
    sh(repo, sys.executable, "train.py")
    per_step = (time.perf_counter() - started) / (6 * probe_steps)
    steps = max(10, int(seconds / per_step / 6))
    shutil.rmtree(repo / ".flor")
    (repo / "train.py").write_text(version("256", "0.01", steps))
    sh(repo, "git", "commit", "-qam", f"{steps} steps")
    recorded = []
    for seed in range(count):
        started = time.perf_counter()
        sh(repo, sys.executable, "train.py", "--kwargs", f"seed={seed}")
        recorded.append(time.perf_counter() - started)
    newest = patched(version("256", "0.01", steps))
    (repo / "train.py").write_text(newest)
    scratch = Path(tempfile.mkdtemp(prefix="flor-scratch-"))
    (scratch / "train.py").write_text(newest)
    env = {**os.environ, "FLOR_HOME": str(scratch / "store"), "FLOR_CKPT_BUDGET": "0"}
    rerun_load, rerun_cpu = load(), cpu_seconds()
    started = time.perf_counter()
    for seed in range(count):
        subprocess.run([sys.executable, "train.py", "--kwargs", f"seed={seed}"], cwd=scratch,
                       env=env, check=True, capture_output=True)  # fmt: skip
    rerun = time.perf_counter() - started
    rerun_cpu = cpu_seconds() - rerun_cpu
    shutil.rmtree(scratch)
    cwd = os.getcwd()
    os.chdir(repo)
    replay_load = load()
    try:
        cold = replay("weight_norm", 2, cold=True)
        warm = replay("weight_norm", 2)
    finally:
        os.chdir(cwd)
        os.environ.pop("FLOR_HOME")
        shutil.rmtree(repo, ignore_errors=True)
    print(f"\nshort runs: {count} runs of {steps} steps x 6 epochs, recorded in "
          f"{', '.join(f'{d:.1f}' for d in recorded)} s")  # fmt: skip
    print(f"re-running them from scratch, serially: {rerun:.1f} s, CPU {rerun_cpu:.1f} s, "
          f"load {rerun_load:.1f}")  # fmt: skip
    for kind, (elapsed, estimate, values, startups, cpu, executed) in (
        ("cold", cold), ("warm", warm)
    ):  # fmt: skip
        print(f"replaying weight_norm into them, --jobs 2, {kind} server: {elapsed:.1f} s "
              f"({elapsed / rerun:.2f} of re-running; goal <= 0.50), CPU {cpu:.1f} s "
              f"({cpu / rerun_cpu:.2f}), load {replay_load:.1f}, {len(values)} values, "
              f"task start-up median {statistics.median(startups):.2f} s, estimate "
              f"{estimate:.1f} s for {executed:.1f} s after planning "
              f"({estimate / executed - 1:+.0%})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=120, help="steps per epoch")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (median)")
    parser.add_argument("--short-runs", type=int, default=4, help="short runs (0: skip)")
    parser.add_argument("--short-seconds", type=float, default=10.0, help="a short run's length")
    parser.add_argument(
        "--statements",
        default="weight_norm,grad_norm",
        help="which statements to replay (weight_norm: outer, grad_norm: nested)",
    )
    options = parser.parse_args()
    repo = Path(tempfile.mkdtemp(prefix="flor-bench-replay-"))
    os.environ.update(GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b",
                      GIT_COMMITTER_EMAIL="b@b")  # fmt: skip
    os.environ.pop("FLOR_HOME", None)
    # warm servers of the benchmark's own: the first replay finds none and nothing learned
    os.environ["XDG_RUNTIME_DIR"] = sockets = tempfile.mkdtemp(prefix="fb-")
    sh(repo, "git", "init", "-q")
    (repo / "train.py").write_text("")
    sh(repo, "git", "add", "train.py")
    os.chdir(repo)
    recorded = record(repo, options.steps)
    (repo / "train.py").write_text(patched(version(*VERSIONS[-1], options.steps)))
    print(f"recorded 3 versions: {', '.join(f'{d:.1f}' for d in recorded)} s")
    scratch_load = load()
    scratches = [from_scratch(repo, options.steps) for _ in range(options.repeat)]
    scratch = statistics.median(r[0] for r in scratches)
    scratch_cpu = statistics.median(r[1] for r in scratches)
    rows = []
    values: dict[tuple[str, int], list[float]] = {}
    chosen = options.statements.split(",")
    for name, jobs in ((n, j) for n in ("weight_norm", "grad_norm") if n in chosen for j in (1, 2)):
        row_load = load()
        runs = [replay(name, jobs, cold=i == 0) for i in range(max(2, options.repeat))]
        values[(name, jobs)] = runs[-1][2]
        for kind, some in (("cold", runs[:1]), ("warm", runs[1:])):
            elapsed = statistics.median(r[0] for r in some)
            cpu = statistics.median(r[4] for r in some)
            estimate = statistics.median(r[1] for r in some)
            executed = statistics.median(r[5] for r in some)
            startups = [s for r in some for s in r[3]]
            rows.append((name, jobs, kind, elapsed, scratch / elapsed, estimate,
                         estimate / executed - 1, statistics.median(startups), max(startups),
                         cpu, scratch_cpu / cpu, row_load))  # fmt: skip
    print(f"\nre-running the 3 patched versions from scratch, serially: {scratch:.1f} s (median), "
          f"CPU {scratch_cpu:.1f} s, load {scratch_load:.1f}")  # fmt: skip
    print("cold: the row's first replay starts the warm server (the very first one with "
          "nothing learned); warm: the median of the others")  # fmt: skip
    print(f"\n{'statement':<12} {'jobs':>4} {'server':>6} {'replay s':>9} {'speedup':>8} "
          f"{'CPU s':>6} {'CPU speedup':>11} {'load':>5} {'estimate s':>10} {'est. error':>10} "
          f"{'start-up s (median / max)':>26}")  # fmt: skip
    for (name, jobs, kind, elapsed, speedup, estimate, error, startup, slowest, cpu,
         cpu_speedup, row_load) in rows:  # fmt: skip
        print(f"{name:<12} {jobs:>4} {kind:>6} {elapsed:>9.1f} {speedup:>7.1f}x {cpu:>6.1f} "
              f"{cpu_speedup:>10.1f}x {row_load:>5.1f} {estimate:>10.1f} {error:>+9.0%} "
              f"{startup:>17.2f} / {slowest:.2f}")  # fmt: skip
    for name in chosen:
        same = values[(name, 1)] == values[(name, 2)]
        print(f"\n{name} values identical for --jobs 1 and --jobs 2: {same} "
              f"({len(values[(name, 2)])} values)")  # fmt: skip
    if "grad_norm" in chosen:
        nested_1 = next(r[3] for r in rows if r[:3] == ("grad_norm", 1, "warm"))
        nested_2 = next(r[3] for r in rows if r[:3] == ("grad_norm", 2, "warm"))
        print(f"nested scale-out, --jobs 2 vs --jobs 1: {nested_1 / nested_2:.2f}x")
    os.chdir(tempfile.gettempdir())
    shutil.rmtree(repo, ignore_errors=True)
    try:
        if options.short_runs:
            short_runs(options.short_runs, options.short_seconds)
    finally:
        for jobs in (1, 2):
            retire_server(jobs)
        shutil.rmtree(sockets, ignore_errors=True)


if __name__ == "__main__":
    main()
