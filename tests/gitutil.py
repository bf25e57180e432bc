"""Git helpers shared by the tests (a module of its own: every conftest is named conftest)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **GIT_ENV},
    )
    return done.stdout


def default_sigint() -> None:
    """`preexec_fn` for a child that gets SIGINT: a suite started in the background by a
    non-interactive shell ignores SIGINT, and children inherit that; give the child the
    default a terminal would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def as_user_who_cannot_read_everything() -> list[str]:
    """A command prefix under which permission bits hold: root reads any file, so drop the
    capabilities that let it (util-linux setpriv); nothing for another user."""
    if os.geteuid() != 0:
        return []
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}"]


def while_first_waits(repo: Path, first: Any, second: Any, ready: str, go: str) -> None:
    """Run script `second` to its end while script `first` waits: `first` touches `ready`,
    then waits for `go` (signals between processes, not delays)."""
    proc = subprocess.Popen(first.command(), cwd=repo, stderr=subprocess.PIPE, text=True)
    try:
        while not (repo / ready).exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.01)
        second.run()
        (repo / go).touch()
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()
