"""Recording from IPython and Jupyter: one `flor.commit()` after each cell that logged.

A notebook is a long-running process, so its values become visible cell by cell: after a
cell that logged anything (`flor.log`, `flor.arg`, values in a `flor.loop`), the session
commits, which flushes, snapshots the work tree (a saved `.ipynb` included) and starts a
new `tstamp`. Cells run in memory are not in any file, so the snapshot recorded for the
tstamp the cell closed also holds `.flor-notebook/<name>.py`: every cell executed so far,
in execution order. The user's work tree, index and HEAD are never touched.

`install(session)` is called at session start, before anything is logged; it does nothing
outside IPython and never imports IPython itself (that would make `import flor` slow).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flor.runtime.session import Session

CELLS_DIR = ".flor-notebook"


class _WatchedLogs(deque[tuple[int | None, str, Any]]):
    """The session's log buffer, noting whether anything was logged since the last commit."""

    logged = False

    def append(self, item: tuple[int | None, str, Any]) -> None:
        self.logged = True
        super().append(item)


class CellCommitter:
    """The `post_run_cell` callback: keeps the cell history, commits after logging cells."""

    def __init__(self, session: Session, logs: _WatchedLogs, earlier: list[str]) -> None:
        self.session = session
        self.logs = logs
        self.cells = [cell for cell in earlier if cell.strip()]
        self.commits = 0
        self._seeded = bool(self.cells)
        self._warned = False

    def __call__(self, result: Any) -> None:
        cell = getattr(getattr(result, "info", None), "raw_cell", None)
        # The cell that started the session is already in the history it was seeded from.
        repeat = self._seeded and self.cells[-1] == cell
        self._seeded = False
        if cell and cell.strip() and not repeat:
            self.cells.append(cell)
        if not self.logs.logged or self.session._closed:
            return
        self.logs.logged = False
        closed = self.session.tstamp
        try:
            self.session.commit()
            self.commits += 1
            self._snapshot_cells(closed)
        except Exception as exc:  # noqa: BLE001 - a failed commit must not break the notebook
            if not self._warned:
                self._warned = True
                print(f"flor: warning: could not commit after the cell: {exc}", file=sys.stderr)

    def cells_path(self) -> str:
        stem = PurePosixPath(self.session.filename).stem.strip("<>") or "interactive"
        return f"{CELLS_DIR}/{stem}.py"

    def cells_source(self) -> str:
        return "".join(f"# In[{i}]:\n{cell.rstrip()}\n\n" for i, cell in enumerate(self.cells, 1))

    def _snapshot_cells(self, tstamp: str) -> None:
        """Record, for the tstamp just closed, the work tree plus the cells run so far."""
        session = self.session
        if session.root is None:
            return
        base = session.writer.commit_snapshot(session.run_id, session.tstamp)
        if not base:
            return
        commit = _commit_with_file(
            session.root,
            base,
            self.cells_path(),
            self.cells_source(),
            f"flor run {session.run_id}: cells through {tstamp}",
            f"refs/flor/runs/{session.run_id}-cells-{self.commits}",
        )
        session.writer.set_commit_snapshot(session.run_id, tstamp, commit)


def _git(root: Path, env: dict[str, str], *args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=root, env=env, input=stdin, capture_output=True, check=True
    )
    return done.stdout.decode().strip()


def _commit_with_file(root: Path, base: str, path: str, text: str, message: str, ref: str) -> str:
    """A commit whose tree is `base`'s plus `path`, built in a temporary index."""
    with tempfile.TemporaryDirectory(prefix="flor-nb-") as tmp:
        env = {
            **os.environ,
            "GIT_INDEX_FILE": str(Path(tmp) / "index"),
            "GIT_AUTHOR_NAME": "flor",
            "GIT_AUTHOR_EMAIL": "flor@localhost",
            "GIT_COMMITTER_NAME": "flor",
            "GIT_COMMITTER_EMAIL": "flor@localhost",
        }
        _git(root, env, "read-tree", base)
        blob = _git(root, env, "hash-object", "-w", "--stdin", stdin=text.encode())
        _git(root, env, "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}")
        tree = _git(root, env, "write-tree")
        commit = _git(root, env, "commit-tree", tree, "-p", base, "-m", message)
        _git(root, env, "update-ref", ref, commit)
    return commit


def install(session: Session, shell: Any = None) -> CellCommitter | None:
    """Commit after every IPython cell that logged; None when not running under IPython."""
    if session.replay_id is not None:
        return None
    if shell is None:
        if "IPython" not in sys.modules:
            return None
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            return None
    existing = getattr(session, "notebook", None)
    if isinstance(existing, CellCommitter):
        return existing
    logs = _WatchedLogs(session.logs)
    logs.logged = bool(logs)
    session.logs = logs
    history = shell.user_ns.get("In") if hasattr(shell, "user_ns") else None
    earlier = [c for c in history[1:] if isinstance(c, str)] if isinstance(history, list) else []
    committer = CellCommitter(session, logs, earlier)
    shell.events.register("post_run_cell", committer)
    session.notebook = committer  # type: ignore[attr-defined]
    return committer
