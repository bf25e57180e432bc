"""Recording from IPython and Jupyter: one `flor.commit()` after each cell that logged.

A notebook is a long-running process, so its values become visible cell by cell: after a
cell that logged anything (`flor.log`, `flor.arg`, values in a `flor.loop`), the session
commits, which flushes, snapshots the work tree (a saved `.ipynb` included) and starts a
new `tstamp`. Cells run in memory are not in any file, so the snapshot recorded for the
tstamp a commit closed (a cell's, or the user's own `flor.commit()`: a session commit
hook) also holds `.flor-notebook/<name>.py`: every cell executed so far, in execution
order. The user's work tree, index and HEAD are never touched.

`install(session)` is called at session start, before anything is logged; it does nothing
outside IPython and never imports IPython itself (that would make `import flor` slow).
"""

from __future__ import annotations

import sys
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flor.runtime.session import Session

CELLS_DIR = ".flor-notebook"


class CellCommitter:
    """The `post_run_cell` callback: keeps the cell history, commits after logging cells;
    and the session's commit hook that records the cells run so far with each commit."""

    def __init__(self, session: Session, earlier: list[str]) -> None:
        self.session = session
        self.cells = [cell for cell in earlier if cell.strip()]
        self.commits = 0
        self._logged = 0  # values the session had logged at the last commit
        self._seeded = bool(self.cells)
        self._warned = False

    def __call__(self, result: Any) -> None:
        cell = getattr(getattr(result, "info", None), "raw_cell", None)
        # The cell that started the session is already in the history it was seeded from.
        repeat = self._seeded and self.cells[-1] == cell
        self._seeded = False
        if cell and cell.strip() and not repeat:
            self.cells.append(cell)
        logged = self.session.values_logged()
        if logged == self._logged or self.session.closed:
            return
        self._logged = logged
        try:
            self.session.commit()
        except Exception as exc:  # noqa: BLE001 - a failed commit must not break the notebook
            self._warn(exc)

    def committed(self, tstamp: str) -> None:
        """After any commit (a cell's or `flor.commit()`): the cells that led to it."""
        self.commits += 1
        try:
            self._snapshot_cells(tstamp)
        except Exception as exc:  # noqa: BLE001 - a failed snapshot must not break the notebook
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
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
        from flor import vcs

        commit = vcs.commit_with_file(
            session.root,
            base,
            self.cells_path(),
            self.cells_source(),
            f"flor run {session.run_id}: cells through {tstamp}",
            f"refs/flor/runs/{session.run_id}-cells-{self.commits}",
        )
        session.writer.set_commit_snapshot(session.run_id, tstamp, commit)


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
    for hook in session.commit_hooks:
        existing = getattr(hook, "__self__", None)
        if isinstance(existing, CellCommitter):
            return existing
    history = shell.user_ns.get("In") if hasattr(shell, "user_ns") else None
    earlier = [c for c in history[1:] if isinstance(c, str)] if isinstance(history, list) else []
    committer = CellCommitter(session, earlier)
    shell.events.register("post_run_cell", committer)
    session.commit_hooks.append(committer.committed)
    return committer
