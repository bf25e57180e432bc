"""Kept for modules not yet importing `flor.paths` (runtime, replay, graph, ui, vcs)."""

from flor.paths import (
    CHECKPOINTS_ENV,
    DB_FILENAME,
    checkpoint_home,
    db_path,
    ensure_home,
    find_repo_root,
    home_dir,
)

__all__ = [
    "CHECKPOINTS_ENV",
    "DB_FILENAME",
    "checkpoint_home",
    "db_path",
    "ensure_home",
    "find_repo_root",
    "home_dir",
]
