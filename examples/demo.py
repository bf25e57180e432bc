"""The whole flor loop on the embedded defaults, in a fresh temporary git repository.

1. record three runs of a PyTorch training script across two code versions;
2. add hindsight log statements to the newest version only;
3. `flor propagate` them into the past versions (renaming `model` to the old `net`);
4. `flor replay` the past runs from their checkpoints, in parallel;
5. `flor dataframe` shows recorded and hindsight values side by side.

Run: python examples/demo.py [--epochs N] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLE = Path(__file__).with_name("train_mlp.py")
HINDSIGHT = {
    # after the epoch's accuracy: an outer-loop statement (replayed from checkpoints)
    '        flor.log("acc", accuracy)\n': '        flor.log("acc", accuracy)\n'
    '        flor.log("weight_norm", '
    "sum(p.norm() ** 2 for p in model.parameters()).item() ** 0.5)\n",
    # inside the step loop: a nested statement (iterations re-executed in parallel)
    "            optimizer.step()\n": '            flor.log("grad_norm", '
    "sum(p.grad.norm() ** 2 for p in model.parameters()).item() ** 0.5)\n"
    "            optimizer.step()\n",
}


def show(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def run(cwd: Path, *command: str, quiet: bool = False) -> None:
    printable = shlex.join(command).replace(sys.executable, "python")
    print(f"$ {printable}", flush=True)
    done = subprocess.run(command, cwd=cwd, capture_output=quiet, text=True)
    if done.returncode != 0:
        if quiet:
            print(done.stdout, done.stderr, file=sys.stderr)
        raise SystemExit(f"demo step failed: {printable}")


def flor(cwd: Path, *args: str) -> None:
    run(cwd, sys.executable, "-m", "flor", *args)


def version_two(source: str) -> str:
    """The edit an engineer makes between runs: rename the model, add weight decay."""
    source = source.replace("net", "model").replace(
        "model.parameters(), lr=lr, momentum=0.9",
        'model.parameters(), lr=lr, momentum=0.9, weight_decay=flor.arg("wd", 1e-4)',
    )
    return source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the demo repository")
    options = parser.parse_args()
    repo = Path(tempfile.mkdtemp(prefix="flor-demo-"))
    os.environ.update(
        GIT_AUTHOR_NAME="flor demo",
        GIT_AUTHOR_EMAIL="demo@localhost",
        GIT_COMMITTER_NAME="flor demo",
        GIT_COMMITTER_EMAIL="demo@localhost",
    )
    os.environ.pop("FLOR_HOME", None)
    try:
        show(f"a fresh git repository: {repo}")
        script = repo / "train.py"
        script.write_text(EXAMPLE.read_text())
        run(repo, "git", "init", "-q", "-b", "main")
        run(repo, "git", "add", "train.py")
        run(repo, "git", "commit", "-q", "-m", "version 1")

        show("record two runs of version 1 (logs, git snapshot, adaptive checkpoints)")
        epochs = f"epochs={options.epochs}"
        for lr in ("0.01", "0.05"):
            run(repo, sys.executable, "train.py", "--kwargs", f"lr={lr}", epochs)

        show("edit the code (rename net -> model, add weight decay) and record again")
        script.write_text(version_two(script.read_text()))
        run(repo, "git", "commit", "-q", "-am", "version 2")
        run(repo, sys.executable, "train.py", "--kwargs", "lr=0.02", epochs)
        flor(repo, "runs")

        show("days later: add hindsight statements to the newest version only")
        source = script.read_text()
        for anchor, replacement in HINDSIGHT.items():
            source = source.replace(anchor, replacement)
        script.write_text(source)
        run(repo, "git", "--no-pager", "diff", "--stat")

        show("propagate them into every past version (the working tree is not touched)")
        flor(repo, "propagate", "train.py", "--diff")

        show("replay the past runs from their checkpoints, in parallel")
        flor(repo, "replay", "weight_norm", "grad_norm", "--jobs", str(options.jobs), "--yes")

        show("one table: recorded values (lr, acc) and hindsight values (weight_norm)")
        flor(repo, "dataframe", "lr", "acc", "weight_norm")
        show("and the nested hindsight value at every step, counted per run with SQL")
        flor(
            repo,
            "query",
            "SELECT run_id, name, COUNT(*) AS n FROM logs "
            "WHERE name IN ('loss', 'grad_norm') GROUP BY run_id, name ORDER BY run_id, name",
        )
    finally:
        if options.keep:
            print(f"\nkept {repo}")
        else:
            shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
