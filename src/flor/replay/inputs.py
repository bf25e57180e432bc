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
from flor.store.backend import open_backend, resolve


def changed(root: Path, home: Path, run_id: str, snapshot: str) -> str | None:
    """Why the run's inputs differ from what it read (None when every one is the same).
    Skipped: files the snapshot holds (the task reads the recorded version), checkpoints
    (content-addressed), and paths the run itself wrote before reading them."""
    conn = open_backend(resolve(db_path(home))).reader()
    try:
        events = artifacts.events_of_run(conn, run_id)
    finally:
        conn.close()
    written: set[str] = set()
    seen: set[str] = set()
    cache = StatCache(home / CACHE_FILENAME)
    try:
        for event in events:
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
            if relative and vcs.contains(root, snapshot, path):
                continue
            where = root / path if relative else Path(path)
            why = _difference(where, event.digest, cache)
            if why:
                return f"its input {path} {why} since the run read it (@{event.digest[:12]})"
    finally:
        cache.close()
    return None


def _difference(where: Path, recorded: str, cache: StatCache) -> str | None:
    if not os.path.lexists(where):
        return "is gone"
    try:
        now = content(str(where), cache).digest
    except Unreadable as exc:
        return f"cannot be read ({exc})"
    return None if now == recorded else f"has changed (now @{now[:12]})"
