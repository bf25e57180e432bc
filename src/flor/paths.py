"""Where things are: the repository root, the store folder (`<repo root>/.flor/`, or
`FLOR_HOME`), the SQLite file in it, and the checkpoint blobs beside it (or at
`FLOR_CHECKPOINTS`). A leaf: every layer may import it, it imports only `flor.errors`."""

from __future__ import annotations

import os
from pathlib import Path

from flor.errors import NotInGitRepo, UsageError

DB_FILENAME = "flor.db"
CHECKPOINTS_ENV = "FLOR_CHECKPOINTS"


def find_repo_root(start: Path | None = None) -> Path | None:
    """The nearest enclosing git work tree, found without importing git (import stays cheap)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return None


def repo_root(start: Path | None = None) -> Path:
    """The work tree enclosing `start` (default: the current directory), or a clear error:
    for code that needs git (replay, propagation, dropping snapshots)."""
    root = find_repo_root(start)
    if root is None:
        where = (start or Path.cwd()).resolve()
        raise NotInGitRepo(
            f"{where} is not inside a git repository: cd into your project or run `git init`"
        )
    return root


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


def checkpoint_home(home: Path) -> str:
    """Where checkpoint blobs live: `FLOR_CHECKPOINTS` (a folder, or an fsspec URL such as
    s3://bucket/prefix for cluster workers that share no filesystem), else beside the db."""
    setting = os.environ.get(CHECKPOINTS_ENV, "").strip()
    if not setting:
        return str(home / "checkpoints")
    if setting.startswith("file://") and not setting.startswith("file:///"):
        raise UsageError(
            f"{CHECKPOINTS_ENV}={setting} is not an absolute file URL: write "
            "file:///absolute/path, so every worker finds the same folder"
        )
    if "://" in setting:
        return setting
    return str(Path(setting).expanduser().resolve())
