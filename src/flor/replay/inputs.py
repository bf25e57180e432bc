"""Files a recorded run read that hold other content now.

A replay task sees the user's ignored files (data, models) as they are today, not as the
run read them (`flor.replay.sandbox`). A run whose `flor.input` file changed since would
compute its hindsight values from other data, and the guard cannot tell when the run
recorded nothing to compare in that region: such a run is declined, naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from flor import vcs
from flor.paths import db_path
from flor.runtime.artifacts import CACHE_FILENAME
from flor.runtime.digest import StatCache, Unreadable, content
from flor.store import artifacts
from flor.store.backend import ReadConnection, open_backend, resolve


class InputCheck:
    """Compares runs' inputs with the files as they are now, for one plan: one reader of the
    store and one digest cache however many runs it checks (opened on first use)."""

    def __init__(self, root: Path, home: Path) -> None:
        self.root = root
        self.home = home
        self._conn: ReadConnection | None = None
        self._cache: StatCache | None = None

    def __enter__(self) -> InputCheck:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._cache is not None:
            self._cache.close()

    def changed(self, run_id: str, snapshot: str) -> str | None:
        """Why the run's inputs differ from what it read, naming each one that does (None
        when every one is the same). Skipped: files the snapshot holds (the task reads the
        recorded version), checkpoints (content-addressed), and paths the run itself wrote
        before reading them."""
        if self._conn is None:
            self._conn = open_backend(resolve(db_path(self.home))).reader()
            self._cache = StatCache(self.home / CACHE_FILENAME)
        assert self._cache is not None
        written: set[str] = set()
        seen: set[str] = set()
        differ: list[str] = []
        for event in artifacts.events_of_run(self._conn, run_id):
            if event.role == "output":
                written.add(event.path)
                continue
            path = event.path
            if (
                event.status != "ok"
                or event.digest is None
                or path.startswith("checkpoint:")
                or path in written
                or path in seen
            ):
                continue
            seen.add(path)
            relative = not Path(path).is_absolute()
            if relative and vcs.contains(self.root, snapshot, path):
                continue
            where = self.root / path if relative else Path(path)
            why = _difference(where, event.digest, self._cache)
            if why:
                differ.append(f"{path} {why}")
                read = event.digest[:12]
        if not differ:
            return None
        if len(differ) == 1:  # (every one is named: put them all back in one go)
            return f"its input {differ[0]} since the run read it (@{read})"
        return f"{len(differ)} of its inputs differ from what it read: {'; '.join(differ)}"


def _difference(where: Path, recorded: str, cache: StatCache) -> str | None:
    if not os.path.lexists(where):
        return "is gone"
    try:
        now = content(str(where), cache).digest
    except Unreadable as exc:
        return f"cannot be read ({exc})"
    return None if now == recorded else f"has changed (now @{now[:12]})"
