"""Where a project's store lives: `<repo root>/.flor/`, or `FLOR_HOME`."""

from __future__ import annotations

import os
from pathlib import Path

from flor.errors import NotInGitRepo

DB_FILENAME = "flor.db"


def find_repo_root(start: Path | None = None) -> Path | None:
    """The nearest enclosing git work tree, found without importing git (import stays cheap)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return None


def home_dir(start: Path | None = None, *, required: bool = True) -> Path:
    """The store folder: `FLOR_HOME` if set, else `.flor/` in the repository root."""
    override = os.environ.get("FLOR_HOME")
    if override:
        return Path(override).expanduser().resolve()
    root = find_repo_root(start)
    if root is None:
        if not required:
            return (start or Path.cwd()).resolve() / ".flor"
        where = (start or Path.cwd()).resolve()
        raise NotInGitRepo(
            f"{where} is not inside a git repository: cd into your project, "
            "run `git init`, or set FLOR_HOME to a store folder"
        )
    return root / ".flor"


def ensure_home(home: Path) -> Path:
    """Create the store folder; it ignores itself so snapshots and `git status` never see it."""
    home.mkdir(parents=True, exist_ok=True)
    ignore = home / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return home


def db_path(home: Path) -> Path:
    return home / DB_FILENAME


def checkpoint_root(home: Path) -> Path:
    """Checkpoint blobs live beside the database (and so on a shared path for clusters)."""
    return home / "checkpoints"
