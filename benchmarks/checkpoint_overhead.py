"""What recording with checkpoints costs a real training script (issue 3's workload).

    python benchmarks/checkpoint_overhead.py [--seconds 15] [--reps 3] \
        [--flordb-python /tmp/flordb-venv/bin/python]

A PyTorch CPU MLP on synthetic data, loss logged every step, model and optimizer inside
`flor.checkpointing`, run as:
  plain        the same script without flor (no import, no loop wrappers, no checkpoints)
  flor         flor with the default checkpoint budget
  flor-b1      flor with FLOR_CKPT_BUDGET=1 (checkpoint every outer iteration)
  flordb       flordb 4.0.1 from PyPI on the same script (`import flordb as flor`)
Each run is a fresh process in a fresh temporary git repo; variants are interleaved and
their order rotated every repetition. Wall time includes interpreter start and torch import
(the same for every variant). CPU time is the child's own, all threads (user + system, from
wait4): on a loaded machine it is the steadier figure, since a variant's wall time then
depends on what else runs. Peak RSS is the child's own (wait4). Prints figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
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

from flor.units import human_bytes  # noqa: E402

TEMPLATE = """\
import os
import time

import torch
{import_line}
if {threads}:
    torch.set_num_threads({threads})
IN, HIDDEN, OUT, BATCH = {d_in}, {hidden}, {d_out}, {batch}
epochs = {epochs_expr}
steps = {steps_expr}
lr = {lr_expr}

torch.manual_seed(0)
X = torch.randn(steps * BATCH, IN)
y = (X @ torch.randn(IN, OUT)).argmax(dim=1)
net = torch.nn.Sequential(
    torch.nn.Linear(IN, HIDDEN), torch.nn.ReLU(),
    torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(),
    torch.nn.Linear(HIDDEN, OUT),
)
opt = torch.optim.Adam(net.parameters(), lr=lr)
criterion = torch.nn.CrossEntropyLoss()

started = time.perf_counter()
{with_line}
    for epoch in {epoch_iter}:
        perm = torch.randperm(len(X))
        for step in {step_iter}:
            idx = perm[step * BATCH:(step + 1) * BATCH]
            loss = criterion(net(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            {log_line}
if os.environ.get("BENCH_OUT"):
    with open(os.environ["BENCH_OUT"], "w") as f:
        f.write(str(time.perf_counter() - started))
"""


THREADS = 1


def script(variant: str, shape: dict[str, int], epochs: int, steps: int) -> str:
    if variant == "plain":
        parts = {
            "import_line": "",
            "epochs_expr": str(epochs),
            "steps_expr": str(steps),
            "lr_expr": "1e-3",
            "with_line": "if True:  # no flor.checkpointing",
            "epoch_iter": "range(epochs)",
            "step_iter": "range(steps)",
            "log_line": "loss.item()",
        }
    else:
        module = "flordb as flor" if variant == "flordb" else "flor"
        parts = {
            "import_line": f"import {module}\n",
            "epochs_expr": f'flor.arg("epochs", {epochs})',
            "steps_expr": f'flor.arg("steps", {steps})',
            "lr_expr": 'flor.arg("lr", 1e-3)',
            "with_line": "with flor.checkpointing(model=net, optimizer=opt):",
            "epoch_iter": 'flor.loop("epoch", range(epochs))',
            "step_iter": 'flor.loop("step", range(steps))',
            "log_line": 'flor.log("loss", loss.item())',
        }
    return TEMPLATE.format(**shape, **parts, threads=THREADS)


def children_cpu() -> float:
    """User + system CPU seconds of the children this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def flor_checkpoint_stats(ws: Workspace, repo: Path) -> dict[str, int]:
    code = (
        "import json, flor\n"
        "c = flor.query('SELECT COUNT(DISTINCT iteration) AS it, COUNT(*) AS n, "
        "COALESCE(SUM(bytes), 0) AS b FROM checkpoints')\n"
        "print(json.dumps({k: int(c[k].iloc[0]) for k in ('it', 'n', 'b')}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, env=ws.env(), capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"flor query failed: {out.stderr.strip()}")
    stats: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return stats


def calibrate(ws: Workspace, shape: dict[str, int], seconds: float, epochs: int) -> int:
    """Steps per epoch so that the plain script trains for about `seconds`."""
    probe_steps = 60
    repo = ws.repo({"train.py": script("plain", shape, 1, probe_steps)}, name="calibrate-")
    per_step = []
    startup = []
    for _ in range(3):
        out = ws.root / "calibrate.txt"
        result = run_child([sys.executable, "train.py"], repo, ws.env(BENCH_OUT=str(out)))
        check(result, "calibration run")
        train = float(out.read_text())
        per_step.append(train / probe_steps)
        startup.append(result.seconds - train)
    step_s = min(per_step)
    train_s = max(1.0, seconds - min(startup))
    steps = max(5, round(train_s / (epochs * step_s)))
    print(
        f"calibration: {step_s * 1e3:.1f} ms/step, startup {min(startup):.2f} s -> "
        f"{epochs} epochs x {steps} steps for ~{seconds:g} s per plain run",
        flush=True,
    )
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="plain run's wall time")
    parser.add_argument("--epochs", type=int, default=6, help="outer iterations (5+)")
    parser.add_argument("--reps", type=int, default=3, help="runs per variant")
    parser.add_argument("--steps", type=int, help="steps per epoch (skips the calibration)")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch threads in the workload (1: robust on a shared 2-core box; 0: torch default)",
    )  # fmt: skip
    parser.add_argument("--hidden", type=int, default=1024, help="MLP width")
    parser.add_argument("--flordb-python", help="python of a venv with flordb==4.0.1 (+torch)")
    parser.add_argument("--quick", action="store_true", help="--seconds 4 --reps 1")
    parser.add_argument("--keep", action="store_true", help="keep the temporary repos")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.reps = 4.0, 1
    global THREADS
    THREADS = args.threads
    shape = {"d_in": 256, "hidden": args.hidden, "d_out": 10, "batch": 128}

    print(f"# flor checkpoint overhead benchmark, {datetime.now().isoformat(timespec='seconds')}")
    print(machine_note())
    flordb, note = flordb_python(args.flordb_python)
    print(note, flush=True)
    if flordb:
        probe = subprocess.run([flordb, "-c", "import torch; print(torch.__version__)"],
                               capture_output=True, text=True)  # fmt: skip
        if probe.returncode != 0:
            note = f"flordb column skipped: torch is not importable from {flordb}"
            print(note)
            flordb = None
    ws = Workspace(keep=args.keep)
    try:
        ws.warm_up(sys.executable, "torch, flor, flor.store.reader, flor.runtime.checkpointing")
        if flordb:
            ws.warm_up(flordb, "torch, flordb")
        # on a loaded machine the calibration over-estimates a step: pass --steps
        steps = args.steps or calibrate(ws, shape, args.seconds, args.epochs)
        variants: dict[str, tuple[str, dict[str, str]]] = {
            "plain": (sys.executable, {}),
            "flor": (sys.executable, {}),
            "flor-b1": (sys.executable, {"FLOR_CKPT_BUDGET": "1"}),
        }
        if flordb:
            variants["flordb"] = (flordb, {})
        names = list(variants)
        walls: dict[str, list[float]] = {v: [] for v in names}
        cpus: dict[str, list[float]] = {v: [] for v in names}
        rss: dict[str, list[float]] = {v: [] for v in names}
        ckpt: dict[str, list[dict[str, int]]] = {v: [] for v in names}
        store: dict[str, list[int]] = {v: [] for v in names}
        for rep in range(args.reps):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for variant in order:
                python, extra = variants[variant]
                kind = "flordb" if variant == "flordb" else variant.split("-")[0]
                repo = ws.repo({"train.py": script(kind, shape, args.epochs, steps)},
                               name=f"{variant}-")  # fmt: skip
                # stdout to /dev/null: flordb echoes every logged value to stdout
                cpu = children_cpu()
                result = run_child([python, "train.py"], repo, ws.env(**extra))
                cpus[variant].append(children_cpu() - cpu)
                check(result, f"{variant} run")
                walls[variant].append(result.seconds)
                rss[variant].append(result.max_rss_kb / 1024)
                store[variant].append(dir_bytes(repo / ".flor"))
                if variant.startswith("flor-") or variant == "flor":
                    ckpt[variant].append(flor_checkpoint_stats(ws, repo))
                extra_note = f", checkpoints {ckpt[variant][-1]}" if ckpt[variant] else ""
                print(
                    f"  rep {rep + 1} {variant:8s} {result.seconds:7.2f} s  "
                    f"CPU {cpus[variant][-1]:7.2f} s  load {os.getloadavg()[0]:5.1f}  "
                    f"{result.max_rss_kb / 1024:7.1f} MB{extra_note}",
                    flush=True,
                )
                if not args.keep:
                    shutil.rmtree(repo, ignore_errors=True)
    finally:
        ws.close()

    base_wall = median(walls["plain"])
    base_cpu = median(cpus["plain"])
    base_rss = median(rss["plain"])
    rows = []
    for variant in names:
        wall = median(walls[variant])
        if ckpt[variant]:
            its = int(median([c["it"] for c in ckpt[variant]]))
            nbytes = median([c["b"] for c in ckpt[variant]])
            ck = f"{its} ({human_bytes(nbytes)})"
        elif variant == "flordb":
            ck = "none: 4.0.1 stores no checkpoints"
        else:
            ck = "-"
        rows.append([
            variant,
            f"{wall:.2f}",
            f"{min(walls[variant]):.2f}-{max(walls[variant]):.2f}",
            fmt_ratio(wall, base_wall),
            f"{median(cpus[variant]):.2f}",
            fmt_ratio(median(cpus[variant]), base_cpu),
            f"{median(rss[variant]):.0f}",
            fmt_ratio(median(rss[variant]), base_rss),
            ck,
            human_bytes(median(store[variant])),
        ])  # fmt: skip
    headers = ["variant", "median wall (s)", "range (s)", "wall / plain", "median CPU (s)",
               "CPU / plain", "peak RSS (MB)",
               "RSS / plain", "checkpointed iterations (sum(bytes))",
               ".flor on disk"]  # fmt: skip
    print(
        f"\n# summary\n{note}\nworkload: MLP {shape['d_in']}-{args.hidden}-{args.hidden}-"
        f"{shape['d_out']}, Adam, batch {shape['batch']}, {args.epochs} epochs x {steps} steps, "
        f"loss logged every step, torch threads {args.threads or 'default'}; "
        f"{args.reps} runs per variant, interleaved\n" + table(headers, rows)
    )
    if flordb:
        print(
            "flordb 4.0.1: flor.checkpointing is a retired no-op there (it prints that it no "
            "longer has an effect and stores no checkpoints); its flor.log echoes every value "
            "to stdout (sent to /dev/null here), and it auto-commits the repo at exit."
        )


if __name__ == "__main__":
    main()
