"""Benchmark `flor.propagate`: time per version pair, and the repository form over 100 versions.

Usage: python benchmarks/propagate_bench.py [--cases DIR] [--real DIR] [--repeat N]
       [--versions N]

1. For the public suite's largest cases (300+ lines), the median seconds of
   `propagate_source(new, old)` per pair over `--repeat` runs.
2. For every case of the real-history suite (`--real`, rebuilt from the git mirrors its
   README names: `$PROPAGATION_MIRROR_ROOT`, else `/work/.mirror`), the seconds per pair,
   and their median (target: <= 0.3 s).
3. The repository form: a throwaway git repository holding a synthetic 500-line training
   script committed in `--versions` older versions (lines dropped, variables renamed,
   literals edited), the newest in the working tree, propagated by `propagate_history`
   with its progress bar (target: <= 15 s for 100 versions).
Wall and CPU time are both printed: on a busy machine the CPU time is the fair figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flor.errors import PropagateError
from flor.propagate import propagate_source

DEFAULT_CASES = Path("/work/shared/bench/propagation/cases")
DEFAULT_REAL = Path("/work/shared/bench/propagation-real")
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "flor-bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "flor-bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


def largest_cases(cases: Path, min_lines: int = 300) -> list[Path]:
    found = []
    for case in sorted(cases.iterdir()):
        new = case / "new.py"
        if new.exists() and len(new.read_text(encoding="utf-8").splitlines()) >= min_lines:
            found.append(case)
    return found


def time_pair(new: str, old: str, repeat: int) -> float:
    propagate_source(new, old)  # warm-up: imports and caches
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        propagate_source(new, old)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def synthetic_script(rng: random.Random, lines: int = 500) -> list[str]:
    """A plausible training script of about `lines` lines, without any flor.log."""
    out = ['"""Synthetic training script for the propagation benchmark."""', "import math"]
    out += ["import random", "", "import flor", "", 'lr = flor.arg("lr", 0.01)', ""]
    index = 0
    while len(out) < lines - 40:
        index += 1
        out += [
            "",
            f"def helper_{index}(values, scale={index}):",
            f"    total_{index} = 0.0",
            "    for item in values:",
            f"        weight = math.sqrt(abs(item) + {index})",
            f"        total_{index} += weight * scale",
            "        if weight > scale:",
            f"            total_{index} -= {index} * 0.5",
            f"    mean_{index} = total_{index} / max(len(values), 1)",
            f"    return mean_{index} + random.random() * {rng.randint(1, 9)}",
        ]
    out += [
        "",
        "",
        "class Trainer:",
        "    def __init__(self, rate):",
        "        self.rate = rate",
        "        self.history = []",
        "",
        "    def step(self, batch):",
        "        grad = sum(batch) * self.rate",
        "        loss = grad * grad / (len(batch) + 1)",
        "        self.history.append(loss)",
        "        return loss",
        "",
        "",
        "trainer = Trainer(lr)",
        "data = [[random.random() for _ in range(8)] for _ in range(32)]",
        "with flor.checkpointing(trainer=trainer):",
        '    for epoch in flor.loop("epoch", range(5)):',
        "        running = 0.0",
        '        for batch in flor.loop("step", data):',
        "            loss = trainer.step(batch)",
        "            running += loss",
        "            score = helper_1(batch)",
        "        avg = running / len(data)",
        '        print("epoch", epoch, avg)',
        'print("done")',
    ]
    return out


def older_version(rng: random.Random, lines: list[str], age: int) -> str:
    """An older version: more edits the older it is; training loop kept."""
    out = list(lines)
    for _ in range(age // 4):
        index = rng.randrange(8, len(out) - 30)
        stripped = out[index].strip()
        if stripped.startswith("weight =") or (stripped.startswith("total_") and "+=" in stripped):
            del out[index]
    for _ in range(age // 3):
        index = rng.randrange(8, len(out) - 30)
        out[index] = out[index].replace("0.5", str(rng.randint(2, 9) / 10))
    if age % 2:
        out = [line.replace("running", "run_loss") for line in out]
    if age % 5 == 0:
        out = [line.replace("batch", "mb") for line in out]
    return "\n".join(out) + "\n"


def newest_version(lines: list[str]) -> str:
    out = []
    for line in lines:
        out.append(line)
        if line.strip() == "running += loss":
            out.append('            flor.log("loss", loss)')
        if line.strip() == "avg = running / len(data)":
            out.append('        flor.log("avg", avg)')
        if line.strip() == "grad = sum(batch) * self.rate":
            out.append('        flor.log("grad", grad)')
    return "\n".join(out) + "\n"


def _git(repo: Path, *args: str, mirror: Path | None = None) -> str:
    prefix = ["git", "--git-dir", str(mirror)] if mirror else ["git"]
    done = subprocess.run(
        [*prefix, *args], cwd=repo, capture_output=True, text=True, check=True,
        env={**os.environ, **GIT_IDENTITY},
    )  # fmt: skip
    return done.stdout


def real_pairs(real: Path) -> list[tuple[str, str, str]]:
    """(id, new with the statement, old) of each real-history case whose mirror is here."""
    root = Path(os.environ.get("PROPAGATION_MIRROR_ROOT", "/work/.mirror"))
    pairs = []
    for case in json.loads((real / "cases.json").read_text(encoding="utf-8")):
        mirror = root / case["repo"].replace("/", "+") / "repo"
        if not mirror.is_dir():
            continue
        show = [f"{case[k]}:{case['path']}" for k in ("new_commit", "old_commit")]
        new, old = (_git(real, "show", ref, mirror=mirror) for ref in show)
        lines = new.splitlines(keepends=True)
        at = case["insert_after_line"]
        lines.insert(at, case["indent"] + case["statement"] + "\n")
        pairs.append((case["id"], "".join(lines), old))
    return pairs


def repository_form(new: str, olds: list[str]) -> tuple[float, float, dict[str, int]]:
    """Wall and CPU seconds of `propagate_history` over `olds` committed in a fresh repo."""
    from flor.replay.versions import propagate_history

    with tempfile.TemporaryDirectory(prefix="flor-propagate-bench-") as folder:
        repo = Path(folder)
        _git(repo, "init", "-q", "-b", "main")
        script = repo / "train.py"
        for old in reversed(olds):  # the oldest version first
            script.write_text(old, encoding="utf-8")
            _git(repo, "add", "train.py")
            _git(repo, "commit", "-q", "--allow-empty", "-m", "version")
        script.write_text(new, encoding="utf-8")
        cwd = Path.cwd()
        os.chdir(repo)
        try:
            start, cpu = time.perf_counter(), time.process_time()
            results = propagate_history(Path("train.py"), store=False, progress=True)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        finally:
            os.chdir(cwd)
    counts = {"placed": 0, "declined": 0, "error": 0}
    for result in results:
        counts["error" if result.error else "declined" if result.declined else "placed"] += 1
    return elapsed, cpu, counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    parser.add_argument("--real", type=Path, default=DEFAULT_REAL)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--versions", type=int, default=100)
    args = parser.parse_args(argv)

    if args.cases.is_dir():
        medians = []
        for case in largest_cases(args.cases):
            new = (case / "new.py").read_text(encoding="utf-8")
            old = (case / "old.py").read_text(encoding="utf-8")
            median = time_pair(new, old, args.repeat)
            medians.append(median)
            print(f"{case.name:45s} median {median:.3f} s per pair")
        if medians:
            print(f"largest suite cases: median {statistics.median(medians):.3f} s per pair")
    else:
        print(f"suite not found at {args.cases}; skipping the per-pair timings")

    if (args.real / "cases.json").is_file():
        cold: list[float] = []
        warm: list[float] = []
        cpu_cold: list[float] = []
        for case_id, new, old in real_pairs(args.real):
            for times in (cold, warm):  # cold parses the source; warm has it cached
                start, cpu = time.perf_counter(), time.process_time()
                with contextlib.suppress(PropagateError):
                    propagate_source(new, old)
                times.append(time.perf_counter() - start)
                if times is cold:
                    cpu_cold.append(time.process_time() - cpu)
            print(
                f"{case_id:45s} {cold[-1]:.3f} s cold ({cpu_cold[-1]:.3f} CPU), {warm[-1]:.3f} warm"
            )
        if cold:
            print(
                f"real-history suite: {len(cold)} pairs, median per pair "
                f"{statistics.median(cold):.3f} "
                f"s wall / {statistics.median(cpu_cold):.3f} s CPU cold (max {max(cold):.3f} s "
                f"wall), {statistics.median(warm):.3f} s wall warm"
            )
    else:
        print(f"real-history suite not found at {args.real}; skipping it")

    rng = random.Random(0)
    base = synthetic_script(rng)
    new = newest_version(base)
    olds = [older_version(rng, base, age) for age in range(1, args.versions + 1)]
    elapsed, cpu, counts = repository_form(new, olds)
    print(
        f"repository form: {len(new.splitlines())}-line script, {len(olds)} versions in "
        f"{elapsed:.2f} s wall, {cpu:.2f} s CPU ({elapsed / max(len(olds), 1):.3f} s per "
        f"version; {counts})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
