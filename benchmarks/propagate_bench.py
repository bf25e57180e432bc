"""Benchmark `flor.propagate`: time per version pair, and across 100 synthetic versions.

Usage: python benchmarks/propagate_bench.py [--cases DIR] [--repeat N] [--versions N]

1. For the public suite's largest cases (300+ lines), the median seconds of
   `propagate_source(new, old)` per pair over `--repeat` runs (target: <= 0.5 s).
2. A synthetic 500-line training script and `--versions` older versions of it (lines
   dropped, variables renamed, literals edited, blocks reordered), propagated one after the
   other as `flor propagate` does for a history (target: <= 30 s for 100 versions).
   Wall and CPU time are both printed: on a busy machine the CPU time is the fair figure.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

from flor.errors import PropagateError
from flor.propagate import propagate_source

DEFAULT_CASES = Path("/work/shared/bench/propagation/cases")


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES)
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

    rng = random.Random(0)
    base = synthetic_script(rng)
    new = newest_version(base)
    olds = [older_version(rng, base, age) for age in range(1, args.versions + 1)]
    counts = {"placed": 0, "declined": 0, "error": 0}
    start, cpu = time.perf_counter(), time.process_time()
    for old in olds:
        try:
            result = propagate_source(new, old)
        except PropagateError:
            counts["error"] += 1
            continue
        counts["placed" if result.ok else "declined"] += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(
        f"synthetic: {len(new.splitlines())}-line script, {len(olds)} versions in "
        f"{elapsed:.2f} s wall, {cpu:.2f} s CPU ({elapsed / max(len(olds), 1):.3f} s per "
        f"version; {counts})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
