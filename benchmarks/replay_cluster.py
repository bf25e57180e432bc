"""Replay on a dask cluster against loky (issue 6's performance goals).

The nested-statement workload of benchmarks/replay.py (three recorded versions of a
PyTorch CPU training script, `grad_norm` added at every step) replayed

- (a) with loky, `--jobs 2`;
- (b) on a local dask cluster this script starts: `dask scheduler` and two
  `dask worker --nthreads 1` on 127.0.0.1, at free ports; `--jobs 2`;
- (c) on such a cluster with one worker; `--jobs 1`.

Every worker gets one BLAS/OpenMP thread, so a worker stands for one core (loky's tasks get
cores/jobs threads anyway). Each cluster imports flor's executor on its workers before
anything is timed, as a cluster that has served a replay before would have. Configurations
are interleaved in every repetition, so a noisy neighbour hurts them alike. Goals: dask /
loky <= 1.15 and scaling from 1 to 2 workers >= 1.7x.

Usage: python benchmarks/replay_cluster.py [--steps N] [--repeat K]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import replay as issue5  # noqa: E402
from _common import Workspace, machine_note, median, table  # noqa: E402

DASK = str(Path(sys.executable).with_name("dask"))
NAME = "grad_norm"
LOKY, DASK_2, DASK_1 = "loky, --jobs 2", "dask, 2 workers, --jobs 2", "dask, 1 worker, --jobs 1"
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _import_executor() -> None:
    import flor.replay.executor  # noqa: F401


@contextmanager
def dask_cluster(workers: int, log: Path) -> Iterator[str]:
    """A scheduler and `workers` single-threaded workers on 127.0.0.1; yields the address."""
    from dask.distributed import Client

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    with open(log, "ab") as out:
        procs = [
            subprocess.Popen(
                [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                stdout=out,
                stderr=out,
            )
        ]
        procs += [
            subprocess.Popen(
                [DASK, "worker", address, "--nthreads", "1", "--no-dashboard", "--host",
                 "127.0.0.1"],
                stdout=out, stderr=out, env={**os.environ, **ONE_THREAD},
            )
            for _ in range(workers)
        ]  # fmt: skip
        try:
            with Client(address, timeout=30) as client:
                client.wait_for_workers(workers, timeout=120)
                client.run(_import_executor)
            yield address
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def timed_replay(jobs: int, scheduler: str | None) -> tuple[float, list[float]]:
    """Seconds to execute the nested statement's plan, and the values it wrote."""
    import flor
    from flor.replay import execute, plan

    the_plan = plan([NAME], jobs=jobs)
    started = time.perf_counter()
    if scheduler is None:
        summary = execute(the_plan)
    else:
        summary = execute(the_plan, backend="dask", scheduler=scheduler)
    elapsed = time.perf_counter() - started
    if summary.failed:
        raise SystemExit(f"replay failed: {summary.failed[0].tail}")
    return elapsed, flor.dataframe(NAME).dropna(subset=[NAME])[NAME].tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="steps per epoch")
    parser.add_argument("--repeat", type=int, default=2, help="repetitions (median)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    options = parser.parse_args()
    print(machine_note())
    work = Workspace(keep=options.keep, prefix="flor-bench-cluster-")
    try:
        repo = work.repo({"train.py": ""})
        clean = work.env()  # no FLOR_* or GIT_* settings of the caller; a throwaway HOME
        os.environ.clear()
        os.environ.update(clean)
        os.chdir(repo)
        recorded = issue5.record(repo, options.steps)
        (repo / "train.py").write_text(
            issue5.patched(issue5.version(*issue5.VERSIONS[-1], options.steps))
        )
        print(f"recorded 3 versions of {options.steps} steps x 6 epochs: "
              f"{', '.join(f'{d:.1f}' for d in recorded)} s")  # fmt: skip
        with ExitStack() as stack:
            log = work.root / "cluster.log"
            configs = {
                LOKY: (2, None),
                DASK_2: (2, stack.enter_context(dask_cluster(2, log))),
                DASK_1: (1, stack.enter_context(dask_cluster(1, log))),
            }
            seconds: dict[str, list[float]] = {label: [] for label in configs}
            values: dict[str, list[float]] = {}
            for round_ in range(options.repeat):
                for label, (jobs, scheduler) in configs.items():
                    elapsed, values[label] = timed_replay(jobs, scheduler)
                    seconds[label].append(elapsed)
                    print(f"round {round_ + 1}: {label}: {elapsed:.1f} s", flush=True)
        report(seconds, values)
    finally:
        work.close()


def report(seconds: dict[str, list[float]], values: dict[str, list[float]]) -> None:
    medians = {label: median(times) for label, times in seconds.items()}
    rows = [
        (label, f"{medians[label]:.1f}", ", ".join(f"{t:.1f}" for t in times))
        for label, times in seconds.items()
    ]
    print()
    print(table(["replay of the nested statement", "median s", "all runs s"], rows))
    ratio = medians[DASK_2] / medians[LOKY]
    print(f"\ndask (2 workers) / loky (--jobs 2): {ratio:.2f} (goal <= 1.15)")
    print(f"scaling, 1 -> 2 dask workers: {medians[DASK_1] / medians[DASK_2]:.2f}x (goal >= 1.7x)")
    reference = next(iter(values.values()))
    same = all(v == reference for v in values.values())
    print(f"{NAME} values identical in every configuration: {same} ({len(reference)} values)")


if __name__ == "__main__":
    main()
