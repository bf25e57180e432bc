"""The hindsight names a user may ask `flor dataframe` for without having a value yet.

A name no run logged is most likely a typo, unless a recorded script logs it (the statement
was added, not yet replayed) or `flor replay` was asked for it (and declined every run, after
which the statement may have left the working tree). The names replays were asked for are
kept in a small file beside the store."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from pathlib import Path

from flor.errors import FlorError
from flor.paths import find_repo_root, home_dir

ASKED_NAMES = "hindsight-names.json"  # in the store folder


def remember(home: Path, names: Iterable[str]) -> None:
    """Add the names a replay was asked for (best effort: a read-only folder keeps none)."""
    path = home / ASKED_NAMES
    with contextlib.suppress(OSError, ValueError, TypeError):
        known = set(json.loads(path.read_text())) if path.exists() else set()
        if not known.issuperset(names):
            path.write_text(json.dumps(sorted(known | set(names))))


def expected_names() -> set[str]:
    """Names the working-tree versions of the recorded scripts log, or a replay was asked."""
    from flor.propagate import logged_names
    from flor.store import reads

    found: set[str] = set()
    with contextlib.suppress(OSError, ValueError, TypeError):
        found.update(json.loads((home_dir(required=False) / ASKED_NAMES).read_text()))
    root = find_repo_root()
    if root is None:
        return found
    for filename in {run.filename for run in reads.recorded_runs()}:
        try:
            found.update(logged_names((root / filename).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, FlorError):
            continue
    return found
