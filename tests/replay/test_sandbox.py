"""Replays never change the user's files, and a bad snapshot fails only its own task."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from gitutil import git

import flor
from flor.replay import execute, plan

TRAIN = """\
from pathlib import Path
import flor

data = Path("data/input.txt").read_text()
state = {"total": 0.0}
Path("outputs").mkdir(exist_ok=True)
with flor.checkpointing(state=state, budget=1):
    for epoch in flor.loop("epoch", range(3)):
        state["total"] += len(data) * (epoch + 1)
        Path("outputs/best.txt").write_text(f"epoch {epoch}: {state['total']}")
        with open("outputs/log.txt", "a") as log:
            log.write(f"{epoch}\\n")
        Path("checkpoints").mkdir(exist_ok=True)
        Path(f"checkpoints/e{epoch}.bin").write_bytes(bytes([epoch]) * 10)
        flor.log("total", state["total"])
"""
HINDSIGHT = (
    '        flor.log("total", state["total"])\n',
    '        flor.log("twice", 2 * state["total"])\n',
)


def _tree_digest(root: Path) -> dict[str, str]:
    """Every file and link under `root` but the store, by content or link target."""
    found = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".flor"]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = Path(folder, name)
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[key] = "link:" + os.readlink(path)
            else:
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _project(repo: Path) -> None:
    (repo / ".gitignore").write_text("data/\noutputs/\ncheckpoints/\n")
    (repo / "data").mkdir()
    (repo / "data" / "input.txt").write_text("twelve bytes")
    (repo / "train.py").write_text(TRAIN)
    git(repo, "add", ".gitignore", "train.py")
    git(repo, "commit", "-q", "-m", "train")


def _record(repo: Path, cwd: Path | None = None) -> None:
    subprocess.run(
        [sys.executable, str(repo / "train.py")],
        cwd=cwd or repo,
        check=True,
        capture_output=True,
        timeout=120,
    )


def _add_hindsight(repo: Path) -> None:
    source = (repo / "train.py").read_text()
    anchor, line = HINDSIGHT
    (repo / "train.py").write_text(source.replace(anchor, anchor + line))


def test_a_replay_writing_into_ignored_folders_changes_none_of_the_users_files(repo) -> None:
    _project(repo)
    _record(repo)
    _record(repo)
    _add_hindsight(repo)
    before = _tree_digest(repo)
    assert (repo / "outputs" / "log.txt").read_text() == "0\n1\n2\n0\n1\n2\n"
    summary = execute(plan(["twice"], jobs=2))
    assert not summary.failed, [r.tail for r in summary.failed]
    frame = flor.dataframe("total", "twice")
    assert frame["twice"].tolist() == (2 * frame["total"]).tolist()
    assert frame["total"].tolist() == [12.0, 36.0, 72.0] * 2  # the replay read data/
    assert _tree_digest(repo) == before


def test_a_run_recorded_outside_the_repository_replays_outside_the_users_folder(
    repo, tmp_path
) -> None:
    _project(repo)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "data").mkdir(parents=True)
    (elsewhere / "data" / "input.txt").write_text("twelve bytes")
    _record(repo, cwd=elsewhere)
    _add_hindsight(repo)
    before = _tree_digest(elsewhere), _tree_digest(repo)
    summary = execute(plan(["twice"], jobs=1))
    assert not summary.failed, [r.tail for r in summary.failed]
    assert flor.dataframe("twice")["twice"].tolist() == [24.0, 72.0, 144.0]
    assert (_tree_digest(elsewhere), _tree_digest(repo)) == before


def test_a_tracked_link_out_of_the_repository_fails_only_its_task(repo, tmp_path) -> None:
    _project(repo)
    _record(repo)
    (tmp_path / "shared.txt").write_text("outside")
    (repo / "shared.txt").symlink_to(tmp_path / "shared.txt")
    git(repo, "add", "shared.txt")
    git(repo, "commit", "-q", "-m", "a link out of the repository")
    _record(repo)
    _add_hindsight(repo)
    summary = execute(plan(["twice"], jobs=2))
    assert len(summary.failed) == 1
    tail = summary.failed[0].tail
    assert "shared.txt points outside the repository" in tail and "\n" not in tail
    good = {r.run_id for r in summary.results} - {summary.failed[0].run_id}
    frame = flor.dataframe("twice")
    assert set(frame.dropna(subset=["twice"])["runid"]) == good


def test_a_replay_task_does_not_hand_its_replay_to_child_processes(repo) -> None:
    _project(repo)
    _record(repo)
    source = (repo / "train.py").read_text()
    anchor = HINDSIGHT[0]
    # one flor.log statement (only those are propagated) that asks a child process
    ask = 'import os; print("FLOR_REPLAY" in os.environ)'
    child = f"[__import__('sys').executable, '-c', '{ask}']"
    probe = (
        f'        flor.log("leak", __import__("subprocess").run({child}, '
        "capture_output=True, text=True).stdout)\n"
    )
    (repo / "train.py").write_text(source.replace(anchor, anchor + probe))
    summary = execute(plan(["leak"], jobs=1))
    assert not summary.failed, [r.tail for r in summary.failed]
    assert flor.dataframe("leak")["leak"].tolist() == ["False\n"] * 3
