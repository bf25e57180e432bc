"""Finding a replay's task processes, for tests that kill them.

A task runs in a `flor-task-*` folder. A cold task shows it in its command line; a task
forked from a warm server keeps the server's command line, so its working directory is
what says it is a task.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def task_pids(session: int, script: str = "train.py") -> dict[int, int]:
    """{pid: parent pid} of the task processes in process session `session`."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ProcessLookupError):
            pid = int(entry)
            if os.getsid(pid) != session:
                continue
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            cold = any(b"/flor-task-" in a and a.endswith(script.encode()) for a in argv)
            forked = "/flor-task-" in os.readlink(f"/proc/{pid}/cwd")
            if cold or forked:
                stat = Path(f"/proc/{pid}/stat").read_text()
                found[pid] = int(stat.rsplit(")", 1)[1].split()[1])
    return found
