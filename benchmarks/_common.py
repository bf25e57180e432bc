"""Helpers shared by the benchmark scripts: throwaway git repos, timed children, tables.

Every benchmark child runs in a fresh temporary git repository with HOME pointed at a
temporary folder, so neither flor nor flordb can touch the user's repositories or config.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "flor-bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "flor-bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


# Shared across benchmark invocations so only the very first one compiles torch, pandas...
PYCACHE = Path(tempfile.gettempdir()) / "flor-bench-pycache"


class Workspace:
    """A temporary folder holding a fake HOME and any number of throwaway repos."""

    def __init__(self, keep: bool = False, prefix: str = "flor-bench-") -> None:
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.home = self.root / "home"
        self.home.mkdir()
        self.keep = keep
        self._count = 0

    def env(self, **extra: str) -> dict[str, str]:
        # FLOR_WARM_IDLE_S passes: a test running a benchmark (FLOR_WARM_IDLE_S=0) must
        # not leave a replay's shared warm server idling after it
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("FLOR_", "GIT_")) or k == "FLOR_WARM_IDLE_S"
        }
        env.update(GIT_IDENTITY)
        env["HOME"] = str(self.home)
        # Bytecode is cached (as on a user's machine) but outside the source trees.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
        env.update(extra)
        return env

    def repo(self, files: dict[str, str], name: str = "repo") -> Path:
        """A fresh git repository (branch main) with `files` committed."""
        self._count += 1
        path = self.root / f"{name}{self._count}"
        path.mkdir()
        for rel, text in files.items():
            (path / rel).write_text(text)
        env = self.env()
        for cmd in (
            ["git", "init", "-q", "-b", "main"],
            ["git", "add", "-A"],
            ["git", "commit", "-q", "-m", "init"],
        ):
            subprocess.run(cmd, cwd=path, env=env, check=True, stdout=subprocess.DEVNULL)
        return path

    def warm_up(self, python: str, modules: str) -> None:
        """Import `modules` once so bytecode is cached before anything is timed."""
        repo = self.repo({"README": "warm-up\n"}, name="warmup-")
        subprocess.run([python, "-c", f"import {modules}"], cwd=repo, env=self.env(),
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip

    def close(self) -> None:
        if self.keep:
            print(f"(kept work folder {self.root})")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class ChildResult:
    seconds: float
    max_rss_kb: int
    returncode: int
    stderr: str


def run_child(
    argv: Sequence[str],
    cwd: Path,
    env: dict[str, str],
    *,
    stdout_to: Path | None = None,
    timeout: float = 3600,
) -> ChildResult:
    """Run one child, timing its wall clock and reading its own peak RSS (wait4)."""
    out = open(stdout_to, "wb") if stdout_to else subprocess.DEVNULL  # noqa: SIM115
    err_path = Path(tempfile.mkstemp(prefix="bench-err-")[1])
    try:
        with open(err_path, "wb") as err:
            started = time.perf_counter()
            proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=out, stderr=err)
            deadline = started + timeout
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.002)
            seconds = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)
        stderr = err_path.read_text(errors="replace")
    finally:
        if stdout_to:
            out.close()  # type: ignore[union-attr]
        err_path.unlink(missing_ok=True)
    return ChildResult(seconds, int(usage.ru_maxrss), proc.returncode, stderr)


def check(result: ChildResult, what: str) -> None:
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"{what} failed (exit {result.returncode}):\n{tail}")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def flordb_python(path: str | None) -> tuple[str | None, str]:
    """The flordb venv's python if it can import flordb 4.0.1, else (None, why not)."""
    if not path:
        return None, "flordb column skipped: pass --flordb-python PATH (a venv with flordb==4.0.1)"
    if not Path(path).exists():
        return None, f"flordb column skipped: {path} does not exist"
    probe = subprocess.run(
        [path, "-c", "import importlib.metadata as m; print(m.version('flordb'))"],
        capture_output=True, text=True,
    )  # fmt: skip
    if probe.returncode != 0:
        return None, f"flordb column skipped: {path} cannot see flordb ({probe.stderr.strip()})"
    version = probe.stdout.strip()
    if version != "4.0.1":
        return path, f"note: {path} has flordb {version}, not 4.0.1"
    return path, f"flordb {version} from {path}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def fmt_ratio(a: float, b: float) -> str:
    if not (a == a and b == b) or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"


def machine_note() -> str:
    import platform

    src = Path(__file__).resolve().parent.parent
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=src,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "src"],
                           cwd=src, capture_output=True, text=True).stdout.strip()  # fmt: skip
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {load:.1f}, {platform.platform()}\n"
        f"flor source: {src} at {head or '?'}{' + uncommitted changes in src/' if dirty else ''}"
        f"\nargv: {' '.join(sys.argv)}"
    )
