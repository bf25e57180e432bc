"""Git snapshots never touch the user's branch, HEAD, index or working tree."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from gitutil import as_user_who_cannot_read_everything, git

import flor
from flor import vcs
from flor.errors import FlorError, NotInGitRepo
from flor.paths import repo_root


def _fingerprint(repo: Path) -> dict[str, str]:
    """Bytes of everything a user could notice changing."""
    files = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if path.is_file() and not rel.startswith((".git/objects", ".git/refs/flor", ".flor")):
            if rel.startswith(".git/logs"):
                continue
            files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    files["status"] = git(repo, "status", "--porcelain=v2", "--branch")
    return files


def _snapshot_of_last_run(repo: Path) -> str:
    return str(flor.query("SELECT snapshot FROM runs ORDER BY started DESC LIMIT 1")["snapshot"][0])


def test_a_run_leaves_branch_head_index_and_tree_byte_for_byte_unchanged(repo, script) -> None:
    train = script("train.py", "import flor\nflor.log('x', 1)\n")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    (repo / "README.md").write_text("edited but unstaged\n")
    before = _fingerprint(repo)
    train.run()
    assert _fingerprint(repo) == before
    snap = _snapshot_of_last_run(repo)
    tree = git(repo, "ls-tree", "-r", "--name-only", snap).split()
    assert {"train.py", "staged.txt", "README.md"} <= set(tree)
    assert git(repo, "show", f"{snap}:README.md") == "edited but unstaged\n"
    assert git(repo, "rev-parse", f"{snap}^").strip() == git(repo, "rev-parse", "HEAD").strip()
    assert (
        git(repo, "for-each-ref", "--format=%(refname)", "refs/flor/")
        .strip()
        .startswith("refs/flor/runs/")
    )


def test_snapshot_is_the_code_that_ran_even_if_edited_during_the_run(repo, script) -> None:
    proc = subprocess.Popen(
        script(
            "train.py",
            "import flor, time\nflor.log('x', 1)\nprint('go', flush=True)\ntime.sleep(1)\n",
        ).command(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "go"
    (repo / "train.py").write_text("# edited while running\n")
    proc.communicate(timeout=30)
    snap = _snapshot_of_last_run(repo)
    assert "flor.log('x', 1)" in git(repo, "show", f"{snap}:train.py")


def test_gitignore_is_respected_and_big_files_are_skipped_with_a_warning(
    repo, script, monkeypatch
) -> None:
    (repo / ".gitignore").write_text("data/\n")
    (repo / "data").mkdir()
    (repo / "data" / "x.csv").write_text("1,2\n")
    (repo / "weights.bin").write_bytes(b"0" * 5000)
    monkeypatch.setenv("FLOR_SNAPSHOT_MAX_BYTES", "1000")
    done = script("train.py", "import flor\nflor.log('x', 1)\n").run()
    assert "weights.bin is larger than 1000 bytes" in done.stderr
    tree = git(repo, "ls-tree", "-r", "--name-only", _snapshot_of_last_run(repo)).split()
    assert "train.py" in tree and "weights.bin" not in tree and "data/x.csv" not in tree
    assert not any(name.startswith(".flor") for name in tree)


def test_an_unreadable_file_is_left_out_of_the_snapshot_and_the_run_goes_on(repo, script) -> None:  # type: ignore[no-untyped-def]
    (repo / "notes.txt").write_text("private\n")
    (repo / "notes.txt").chmod(0)
    (repo / "config.yaml").write_text("lr: 0.1\n")
    git(repo, "add", "config.yaml")
    git(repo, "commit", "-qm", "config")
    (repo / "config.yaml").write_text("lr: 0.2\n")  # what runs: not the committed 0.1
    (repo / "config.yaml").chmod(0)
    run = script("train.py", "import flor\nflor.log('x', 1)\n")
    as_user = as_user_who_cannot_read_everything()
    done = subprocess.run(
        [*as_user, *run.command()], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert (
        "flor: warning: notes.txt cannot be read (Permission denied) and is left out of the "
        "run's snapshot" in done.stderr
    )
    assert "config.yaml cannot be read (Permission denied)" in done.stderr
    tree = git(repo, "ls-tree", "-r", "--name-only", _snapshot_of_last_run(repo)).split()
    assert "train.py" in tree and "notes.txt" not in tree and "config.yaml" not in tree
    assert flor.dataframe("x")["x"].tolist() == [1]
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == " M config.yaml\n"


def test_detached_head_and_repository_without_commits(tmp_path, monkeypatch, script) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q")
    (empty / "s.py").write_text("import flor\nflor.log('x', 1)\n")
    subprocess.run([sys.executable, "s.py"], cwd=empty, check=True, capture_output=True)
    monkeypatch.chdir(empty)
    snap = _snapshot_of_last_run(empty)
    assert git(empty, "show", f"{snap}:s.py").startswith("import flor")
    assert subprocess.run(["git", "rev-parse", "HEAD"], cwd=empty, capture_output=True).returncode
    assert git(empty, "status", "--porcelain") == "?? s.py\n"


def test_detached_head(repo, script) -> None:
    git(repo, "checkout", "-q", "--detach")
    head = git(repo, "rev-parse", "HEAD").strip()
    script("s.py", "import flor\nflor.log('x', 1)\n").run()
    assert git(repo, "rev-parse", "HEAD").strip() == head
    record = flor.query("SELECT base_commit, branch FROM runs").iloc[0]
    assert record["base_commit"] == head and record["branch"] is None


def test_archive_and_read_file_never_touch_the_work_tree(repo, tmp_path) -> None:
    (repo / "a.py").write_text("v1\n")
    snap = vcs.snapshot(repo, "manual", "test")
    (repo / "a.py").write_text("v2\n")
    assert vcs.read_file(repo, snap.commit, "a.py") == "v1\n"
    assert vcs.read_file(repo, snap.commit, "missing.py") is None
    out = vcs.extract(vcs.archive(repo, snap.commit), tmp_path / "out")
    assert (out / "a.py").read_text() == "v1\n"
    assert (repo / "a.py").read_text() == "v2\n"
    assert git(repo, "rev-parse", "refs/flor/runs/manual").strip() == snap.commit


def test_a_file_name_that_is_not_utf8_is_snapshotted_byte_for_byte(repo, script) -> None:
    train = script("train.py", "import flor\nflor.log('x', 1)\n")
    name = b"caf\xe9 #?.txt"  # Latin-1, and URI syntax
    (repo / name.decode("utf-8", "surrogateescape")).write_bytes(b"latin-1 named\n")
    done = train.run()
    assert "Traceback" not in done.stderr
    snap = _snapshot_of_last_run(repo)
    listed = subprocess.run(
        ["git", "ls-tree", "-z", "--name-only", snap], cwd=repo, capture_output=True, check=True
    ).stdout.split(b"\0")
    assert name in listed


def test_untracked_credentials_stay_out_of_snapshots_unless_allowed(
    repo, script, monkeypatch
) -> None:
    train = script("train.py", "import flor\nflor.log('x', 1)\n")
    secrets = [".env", "keys/server.pem", "kaggle.json", ".netrc", ".aws/credentials"]
    for rel in secrets:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text("secret\n")
    (repo / "config.json").write_text("{}\n")
    (repo / "tracked.pem").write_text("the user committed this one\n")
    git(repo, "add", "tracked.pem")
    git(repo, "commit", "-q", "-m", "a committed certificate")
    done = train.run()
    tree = set(git(repo, "ls-tree", "-r", "--name-only", _snapshot_of_last_run(repo)).split())
    assert not tree & set(secrets)
    assert {"config.json", "tracked.pem", "train.py"} <= tree
    assert ".env" in done.stderr and "may hold credentials" in done.stderr
    monkeypatch.setenv("FLOR_SNAPSHOT_DENY", "")
    train.run()
    tree = set(git(repo, "ls-tree", "-r", "--name-only", _snapshot_of_last_run(repo)).split())
    assert set(secrets) <= tree


def test_commit_with_file_adds_one_file_to_a_commit_and_touches_nothing_else(repo) -> None:
    (repo / "train.py").write_text("x = 1\n")
    snap = vcs.snapshot(repo, "nb", "the run's snapshot")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    before = _fingerprint(repo)
    ref = "refs/flor/runs/nb-cells-1"
    commit = vcs.commit_with_file(
        repo, snap.commit, ".flor-cells/nb.py", "# In[1]:\nx\n", "cells", ref
    )
    assert _fingerprint(repo) == before
    assert git(repo, "rev-parse", ref).strip() == commit
    assert git(repo, "rev-parse", f"{commit}^").strip() == snap.commit
    files = git(repo, "ls-tree", "-r", "--name-only", commit).split()
    assert sorted(files) == [".flor-cells/nb.py", "README.md", "train.py"]
    assert git(repo, "show", f"{commit}:.flor-cells/nb.py") == "# In[1]:\nx\n"


def test_commit_with_file_onto_an_unknown_commit_is_one_clear_error(repo) -> None:
    with pytest.raises(FlorError, match="could not commit cells.py onto 0{40} with git"):
        vcs.commit_with_file(repo, "0" * 40, "cells.py", "x\n", "cells", "refs/flor/runs/x")


def test_repo_root_is_the_work_tree_from_any_folder_inside_it(repo, tmp_path) -> None:
    (repo / "src" / "pkg").mkdir(parents=True)
    assert repo_root(repo / "src" / "pkg") == repo.resolve()
    assert repo_root() == repo.resolve()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with pytest.raises(NotInGitRepo, match="is not inside a git repository"):
        repo_root(outside)


def test_vcs_reads_nothing_of_the_store(repo) -> None:
    code = (
        "import sys, flor; before = set(sys.modules); from flor import vcs; "
        "vcs.open_repo('.').close(); "
        "print(sorted(m for m in set(sys.modules) - before if m.startswith('flor.store')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
