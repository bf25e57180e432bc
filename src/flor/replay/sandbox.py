"""A replay task's tree: the run's snapshot plus a read-only view of the user's other files.

The snapshot leaves out ignored data (`data/`, `outputs/`, `checkpoints/`, ...) that a
script reads. The tree mirrors those entries as real folders holding links to the user's
files, so a file the script creates always lands in the task's temporary tree, and a
file it overwrites is copied first (copy-on-write, `flor.runtime.sandbox`): parallel
tasks never write the same file and the user's files never change. A run recorded outside
the repository gets a mirror of its working directory inside the tree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from flor.runtime.sandbox import MANIFEST

_SKIP = (".git", ".flor")


def mirror(tree: Path, source: Path, skip: tuple[str, ...] = _SKIP) -> int:
    """Make `source`'s entries that `tree` lacks visible in it: real folders, links to
    files (and to links); a virtualenv or node_modules is one link to the whole folder
    (the guard still refuses writes through it). Returns the number of links made."""
    made = 0
    with os.scandir(source) as entries:
        for entry in entries:
            if entry.name in skip:
                continue
            target = tree / entry.name
            if entry.is_dir(follow_symlinks=False) and _environment(Path(entry.path)):
                if not os.path.lexists(target):  # nobody trains into a virtualenv: one link
                    target.symlink_to(entry.path)
                    made += 1
            elif entry.is_dir(follow_symlinks=False):
                if os.path.lexists(target) and not (target.is_dir() and not target.is_symlink()):
                    continue  # the snapshot has a file or link of that name: it wins
                target.mkdir(exist_ok=True)
                made += mirror(target, Path(entry.path), ())
            elif not os.path.lexists(target):
                target.symlink_to(entry.path)
                made += 1
    return made


def _environment(folder: Path) -> bool:
    """A Python virtualenv or node_modules: thousands of files no script writes."""
    return folder.name == "node_modules" or (folder / "pyvenv.cfg").is_file()


def build(tree: Path, user_root: Path, cwd: str) -> Path:
    """Mirror the user's files into `tree`, write the task's sandbox manifest, and return
    the folder the task runs in (`cwd` relative to the repository, or an absolute folder
    outside it, which is mirrored into the tree too)."""
    protected = [str(user_root)]
    if user_root.is_dir():
        mirror(tree, user_root)
    if Path(cwd).is_absolute():
        outside = Path(cwd)
        run_dir = tree / ".flor-outside-cwd"
        run_dir.mkdir(exist_ok=True)
        if outside.is_dir():
            mirror(run_dir, outside, ())
        protected.append(str(outside))
    else:
        run_dir = tree / cwd
        run_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"tree": str(tree), "protected": protected}
    (tree / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return run_dir
