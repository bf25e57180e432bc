"""Hindsight replay with flor against flordb 4.0.1, side by side on issue 5's workload.

The workload of benchmarks/replay.py: three recorded versions of a PyTorch CPU training
script, 6 epochs each. Each tool records the three versions in its own throwaway git repo
(HOME pointed at a temporary folder), then a hindsight statement is added to the newest
version and replayed into the past runs:

- `weight_norm`, an outer-loop statement (once per epoch);
- `grad_norm`, a nested statement (every step), added on top of it.

flor: `flor replay NAME --yes` (the CLI of the flor venv). flordb: `python -m flordb replay
NAME`, answering `y` to its confirmation prompt; it re-executes the recorded versions from
iteration 0 (it keeps no checkpoints), running `python` from PATH, so the flordb venv's
bin/ comes first there. flordb's recorded runs are started with FLOR_CAPTURE=0 and their
stdout (flordb echoes every logged value) goes to a file.

For each tool and statement: wall seconds of the replay command, how many of the 3 past
runs have the new values in that tool's `flor.dataframe(NAME)`, how many values it holds,
and whether they agree with flor's at the same (epoch, step). A failing or partial flordb
replay is reported (the versions it entered and the tail of its output), not raised.

What flordb 4.0.1 did here: it commits the edited script, then walks the recorded runs
oldest first; for each it checks out the run's auto-commit, writes the new statement into
that version's script (in the working tree) and re-runs it from scratch. The edit is still
there when it checks out the second run's commit, git refuses ("local changes would be
overwritten"), flordb resets and exits 1: only the oldest run gets values. For the nested
statement it also logs only the last step of each epoch (`--iter step=last` by default).

Usage: python benchmarks/replay_flordb.py [--steps N] [--keep]
           [--flor-python PATH] [--flordb-python /tmp/flordb-venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import replay as issue5  # noqa: E402
from _common import Workspace, flordb_python, fmt_ratio, machine_note, table  # noqa: E402

DEFAULT_FLOR_PYTHON = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"
DEFAULT_FLORDB_PYTHON = "/tmp/flordb-venv/bin/python"
TOOLS = ("flor", "flordb")
OUTER_NAME, NESTED_NAME = "weight_norm", "grad_norm"

# Reads one name back through the tool's own dataframe; run with -c in the tool's repo.
# One list per recorded run, in the order the versions were recorded (runs without the
# name included, empty), of [epoch, step, value] rows, so the two tools can be compared.
READER = """\
import json, os
import pandas as pd
name = os.environ["BENCH_NAME"]
if os.environ["BENCH_LIB"] == "flor":
    import flor
    recorded = flor.query("SELECT run_id AS run FROM runs WHERE mode = 'record' ORDER BY tstamp")
    key = "runid"
else:
    import flordb as flor
    recorded = flor.query(
        "SELECT DISTINCT tstamp AS run FROM logs WHERE source = 'forward' ORDER BY tstamp")
    key = "tstamp"
order = [str(pd.Timestamp(r)) if key == "tstamp" else str(r) for r in recorded["run"]]
df = flor.dataframe(name)
runs = {run: [] for run in order}
if name in df.columns:
    df = df.dropna(subset=[name])
    loops = [c for c in ("epoch", "step") if c in df.columns]
    for run, group in df.groupby(key):
        run = str(pd.Timestamp(run)) if key == "tstamp" else str(run)
        group = group.sort_values(loops) if loops else group
        coords = group[loops].astype(int).values.tolist() if loops else [[]] * len(group)
        values = pd.to_numeric(group[name]).tolist()
        runs.setdefault(run, []).extend([*c, float(v)] for c, v in zip(coords, values))
print(json.dumps({"total": len(order), "runs": list(runs.values())}))
"""


@dataclass
class Outcome:
    tool: str
    name: str
    seconds: float = float("nan")
    returncode: int = 0
    total: int = 0
    runs: list[list[list[float]]] = field(default_factory=list)
    output: str = ""
    note: str = ""

    @property
    def filled(self) -> int:
        return sum(1 for values in self.runs if values)

    @property
    def values(self) -> int:
        return sum(len(values) for values in self.runs)


def timed(argv: list[str], cwd: Path, env: dict[str, str], *, stdin: str = "",
          timeout: float = 7200) -> tuple[float, int, str]:  # fmt: skip
    """Wall seconds, exit code and combined stdout + stderr of one command."""
    started = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, input=stdin, capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip
        code, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        parts = [p.decode(errors="replace") if isinstance(p, bytes) else p or ""
                 for p in (exc.stdout, exc.stderr)]  # fmt: skip
        code, out = -9, "".join(parts) + f"\n(timed out after {timeout} s)"
    return time.perf_counter() - started, code, out


def tail(text: str, lines: int = 15) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join("    " + line[:200] for line in kept[-lines:])


def sh(cwd: Path, env: dict[str, str], *argv: str) -> str:
    return subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout  # fmt: skip


class RecordError(Exception):
    pass


class Tool:
    def __init__(self, tool: str, python: str, ws: Workspace, steps: int) -> None:
        self.tool, self.python, self.steps = tool, python, steps
        self.repo = ws.repo({"train.py": ""}, name=f"{tool}-")
        bin_dir = str(Path(python).parent)
        extra = {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
        if tool == "flordb":
            extra["FLOR_CAPTURE"] = "0"
        self.env = ws.env(**extra)
        self.log = ws.root / f"{tool}-output.log"

    def source(self, hidden: str, lr: str, statements: tuple[tuple[str, str], ...] = ()) -> str:
        text = issue5.version(hidden, lr, self.steps)
        for anchor, line in statements:
            text = text.replace(anchor, anchor + line)
        if self.tool == "flordb":
            text = text.replace("import flor\n", "import flordb as flor\n")
        return text

    def record(self) -> list[float]:
        durations = []
        for hidden, lr in issue5.VERSIONS:
            (self.repo / "train.py").write_text(self.source(hidden, lr))
            if self.tool == "flor":
                sh(self.repo, self.env, "git", "commit", "-qam", f"hidden {hidden} lr {lr}")
            # flordb switches to its own branch and commits the edited script itself.
            seconds, code, out = timed([self.python, "train.py"], self.repo, self.env)
            with open(self.log, "a") as f:
                f.write(f"\n### record {hidden} {lr}: exit {code}\n{out}")
            if code != 0:
                raise RecordError(f"{self.tool}: recording version {hidden}/{lr} failed "
                                  f"(exit {code}):\n{tail(out)}")  # fmt: skip
            durations.append(seconds)
            time.sleep(1.1)  # flordb keys runs by a timestamp in whole seconds
        return durations

    def replay(self, name: str, statements: tuple[tuple[str, str], ...]) -> Outcome:
        (self.repo / "train.py").write_text(self.source(*issue5.VERSIONS[-1], statements))
        if self.tool == "flor":
            argv = [str(Path(self.python).with_name("flor")), "replay", name, "--yes"]
            stdin = ""
        else:
            argv = [self.python, "-m", "flordb", "replay", name]
            stdin = "y\n"  # flordb asks "Continue replay estimated to finish in ... [y/N]?"
        seconds, code, out = timed(argv, self.repo, self.env, stdin=stdin)
        with open(self.log, "a") as f:
            f.write(f"\n### replay {name}: exit {code}, {seconds:.1f} s\n{out}")
        outcome = Outcome(self.tool, name, seconds, code, output=out)
        read_s, read_code, read_out = timed(
            [self.python, "-c", READER], self.repo,
            {**self.env, "BENCH_LIB": self.tool, "BENCH_NAME": name}, timeout=600,
        )  # fmt: skip
        try:
            found = json.loads(read_out.strip().splitlines()[-1])
            outcome.total, outcome.runs = found["total"], found["runs"]
        except (ValueError, IndexError, KeyError):
            outcome.note = f"could not read its dataframe (exit {read_code}):\n{tail(read_out)}"
        if self.tool == "flordb":
            outcome.note += flordb_trace(out, nested=name == NESTED_NAME)
        return outcome


def flordb_trace(out: str, nested: bool) -> str:
    """Which recorded versions flordb's replay checked out, and which it re-executed."""
    steps = []
    for match in re.finditer(r"entering (.+?) ([0-9a-f]{40})|^(python \S+ --replay_flor.*)$", out,
                             re.M):  # fmt: skip
        if match.group(2):
            steps.append(f"entered run {match.group(1)} (commit {match.group(2)[:8]})")
        else:
            steps.append(f"ran `{match.group(3)}`")
    executed = sum(1 for step in steps if step.startswith("ran"))
    lines = "".join(f"\n    {step}" for step in steps)
    text = f"Re-executed {executed} of {len(issue5.VERSIONS)} recorded versions:{lines}"
    if "would be overwritten by checkout" in out:
        text += (
            "\n  Why it stopped: flordb writes the hindsight statement into the checked-out "
            "version's script\n  (backprop) and runs it, then `git checkout`s the next recorded "
            "commit with that edit still\n  in the working tree; git refuses, flordb resets "
            "(`git reset --hard`) and exits 1."
        )
    if nested and "defaulting to 'last'" in out:
        text += (
            "\n  flordb's child printed: --iter step=... not given; defaulting to 'last' (the "
            "nested loop runs in\n  full but logs only its last iteration unless `--iter "
            "step=all` is passed)."
        )
    return text


def agreement(outcome: Outcome, reference: Outcome) -> str:
    """Largest relative difference to flor's values, over the values both tools hold."""
    if outcome is reference:
        return "-"
    worst, compared = 0.0, 0
    for mine, theirs in zip(outcome.runs, reference.runs, strict=False):
        by_coords = {tuple(row[:-1]): row[-1] for row in theirs}
        for *coords, value in mine:
            other = by_coords.get(tuple(coords))
            if other is not None:
                worst = max(worst, abs(value - other) / max(abs(other), 1e-12))
                compared += 1
    return f"max rel. diff {worst:.1e} ({compared} values)" if compared else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="steps per epoch (300)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--flor-python", default=str(DEFAULT_FLOR_PYTHON) if
                        DEFAULT_FLOR_PYTHON.exists() else sys.executable,
                        help="python of the flor venv (its bin/flor runs the replay)")  # fmt: skip
    parser.add_argument("--flordb-python", default=DEFAULT_FLORDB_PYTHON,
                        help="python of a venv with flordb==4.0.1 and torch")  # fmt: skip
    parser.add_argument("--outer-only", action="store_true",
                        help=f"replay only {OUTER_NAME}, not {NESTED_NAME}")  # fmt: skip
    options = parser.parse_args()
    print(f"# hindsight replay, flor vs flordb, {datetime.now().isoformat(timespec='seconds')}")
    print(machine_note())
    flordb, note = flordb_python(options.flordb_python)
    print(note, flush=True)
    if flordb is None:
        raise SystemExit(1)
    pythons = {"flor": options.flor_python, "flordb": flordb}
    statements = [(OUTER_NAME, (issue5.OUTER,))]
    if not options.outer_only:
        statements.append((NESTED_NAME, (issue5.OUTER, issue5.NESTED)))

    ws = Workspace(keep=options.keep, prefix="flor-bench-vs-flordb-")
    outcomes: list[Outcome] = []
    try:
        ws.warm_up(pythons["flor"], "torch, pandas, flor, flor.cli, flor.replay")
        ws.warm_up(pythons["flordb"], "torch, pandas, flordb")
        tools = {tool: Tool(tool, pythons[tool], ws, options.steps) for tool in TOOLS}
        for tool in list(tools.values()):
            try:
                recorded = tool.record()
            except RecordError as exc:
                if tool.tool == "flor":
                    raise SystemExit(str(exc)) from None
                print(f"{exc}\nflordb left out of the comparison.", flush=True)
                del tools[tool.tool]
                continue
            print(f"{tool.tool}: recorded 3 versions of {options.steps} steps x 6 epochs: "
                  f"{', '.join(f'{d:.1f}' for d in recorded)} s", flush=True)  # fmt: skip
        for name, added in statements:
            for tool in tools.values():
                outcome = tool.replay(name, added)
                outcomes.append(outcome)
                print(f"{tool.tool} replay {name}: {outcome.seconds:.1f} s, exit "
                      f"{outcome.returncode}, {outcome.filled}/{outcome.total} runs filled, "
                      f"{outcome.values} values", flush=True)  # fmt: skip
        report(outcomes, options.steps)
        if options.keep:
            print(f"outputs of every command: {', '.join(str(t.log) for t in tools.values())}")
    finally:
        ws.close()


def report(outcomes: list[Outcome], steps: int) -> None:
    expected = {OUTER_NAME: 6, NESTED_NAME: 6 * steps}
    rows = []
    for outcome in outcomes:
        flor = next(o for o in outcomes if o.tool == "flor" and o.name == outcome.name)
        rows.append([
            outcome.tool, outcome.name, f"{outcome.seconds:.1f}", outcome.returncode,
            f"{outcome.filled}/{outcome.total or len(issue5.VERSIONS)}",
            f"{outcome.seconds / outcome.filled:.1f}" if outcome.filled else "-",
            f"{outcome.values} / {expected[outcome.name] * len(issue5.VERSIONS)}",
            ", ".join(str(len(v)) for v in outcome.runs) or "-",
            fmt_ratio(outcome.seconds, flor.seconds) if outcome is not flor else "-",
            agreement(outcome, flor),
        ])  # fmt: skip
    print()
    print(table(["tool", "statement", "wall s", "exit", "runs filled",
                 "s per filled run", "values written / expected", "values per run", "flordb / flor",
                 "agrees with flor"], rows))  # fmt: skip
    for outcome in outcomes:
        complete = (outcome.returncode == 0 and outcome.total
                    and outcome.filled == outcome.total
                    and outcome.values == expected[outcome.name] * outcome.total)  # fmt: skip
        if outcome.tool == "flordb" or not complete:
            print(f"\n{outcome.tool} replay {outcome.name}: exit {outcome.returncode}, "
                  f"{outcome.filled}/{outcome.total} runs filled. {outcome.note}")  # fmt: skip
            if not complete:
                print("  tail of its output:\n" + tail(outcome.output, 6))


if __name__ == "__main__":
    main()
