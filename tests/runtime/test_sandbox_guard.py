"""The replay task's guard: writes through links copy first, the user's folders refuse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from flor.replay.sandbox import mirror

TASK = """
import os, flor
from pathlib import Path
user = Path(os.environ["USER_ROOT"])
with open("outputs/log.txt", "a") as f:       # through a link: copied, then appended
    f.write("replayed\\n")
Path("outputs/best.txt").write_text("new")     # through a link, truncating: replaced
Path("outputs/fresh.txt").write_text("fresh")  # new: lands in the tree
os.remove("outputs/old.txt")                   # removes the tree's link only
refused = []
for attempt in (
    lambda: (user / "outputs" / "best.txt").write_text("direct"),
    lambda: os.remove(user / "outputs" / "log.txt"),
    lambda: os.rename(user / "outputs" / "best.txt", user / "moved.txt"),
    lambda: os.truncate(user / "outputs" / "log.txt", 0),
):
    try:
        attempt()
    except PermissionError as exc:
        refused.append("flor replay sandbox" in str(exc))
print(refused)
"""


def _files(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): ("link" if p.is_symlink() else p.read_text())
        for p in sorted(root.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


def test_writes_land_in_the_tree_and_the_users_files_never_change(tmp_path) -> None:
    user = tmp_path / "user"
    (user / "outputs").mkdir(parents=True)
    for name, text in {"log.txt": "recorded\n", "best.txt": "best", "old.txt": "old"}.items():
        (user / "outputs" / name).write_text(text)
    tree = tmp_path / "tree"
    tree.mkdir()
    assert mirror(tree, user) == 3
    (tree / "task.py").write_text(TASK)
    before = _files(user)
    manifest = {"tree": str(tree), "protected": [str(user)]}
    env = {**os.environ, "FLOR_SANDBOX": json.dumps(manifest), "USER_ROOT": str(user)}
    done = subprocess.run(
        [sys.executable, "task.py"], cwd=tree, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[True, True, True, True]"
    assert _files(user) == before
    assert (tree / "outputs" / "log.txt").read_text() == "recorded\nreplayed\n"
    assert not (tree / "outputs" / "log.txt").is_symlink()
    assert (tree / "outputs" / "best.txt").read_text() == "new"
    assert (tree / "outputs" / "fresh.txt").read_text() == "fresh"
    assert not os.path.lexists(tree / "outputs" / "old.txt")


def test_a_virtualenv_in_the_project_is_mirrored_as_one_link(tmp_path) -> None:
    user = tmp_path / "user"
    (user / ".venv" / "lib").mkdir(parents=True)
    (user / ".venv" / "pyvenv.cfg").write_text("home = /usr\n")
    for i in range(50):
        (user / ".venv" / "lib" / f"m{i}.py").write_text("")
    (user / "data").mkdir()
    (user / "data" / "a.txt").write_text("a")
    tree = tmp_path / "tree"
    tree.mkdir()
    assert mirror(tree, user) == 2
    assert (tree / ".venv").is_symlink() and not (tree / "data").is_symlink()
