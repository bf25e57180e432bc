"""Git: snapshot a run's sources under refs/flor/, list versions, materialize a version.

Snapshots are built in a temporary index file, so the user's branch, HEAD, index and
working tree are never touched.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import git

from flor.errors import FlorError, NotInGitRepo, UsageError

SNAPSHOT_REF_PREFIX = "refs/flor/runs/"
DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024
_IDENTITY = {
    "GIT_AUTHOR_NAME": "flor",
    "GIT_AUTHOR_EMAIL": "flor@localhost",
    "GIT_COMMITTER_NAME": "flor",
    "GIT_COMMITTER_EMAIL": "flor@localhost",
}


@dataclass(frozen=True)
class Snapshot:
    commit: str
    base_commit: str | None
    branch: str | None
    skipped: tuple[str, ...]


def open_repo(path: Path) -> git.Repo:
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise NotInGitRepo(
            f"{path} is not inside a git repository: cd into your project or run `git init`"
        ) from exc


def repo_root(start: Path | None = None) -> Path:
    """The work tree enclosing `start` (default: the current directory)."""
    from flor.store.location import find_repo_root

    root = find_repo_root(start)
    if root is None:
        where = (start or Path.cwd()).resolve()
        raise NotInGitRepo(f"{where} is not inside a git repository: cd into your project")
    return root


def _max_file_bytes() -> int:
    return int(os.environ.get("FLOR_SNAPSHOT_MAX_BYTES", DEFAULT_MAX_FILE_BYTES))


def _head(repo: git.Repo) -> tuple[str | None, str | None]:
    try:
        base = repo.head.commit.hexsha
    except ValueError:  # no commits yet
        base = None
    branch = None if repo.head.is_detached else repo.head.ref.name
    return base, branch


def snapshot(root: Path, run_id: str, message: str) -> Snapshot:
    """Commit the work tree as it is now (ignored and oversized files left out)."""
    repo = open_repo(root)
    base, branch = _head(repo)
    limit = _max_file_bytes()
    work_tree = Path(repo.working_tree_dir or root)
    fd, index_file = tempfile.mkstemp(prefix="flor-index-")
    os.close(fd)
    os.unlink(index_file)
    env = {**_IDENTITY, "GIT_INDEX_FILE": index_file}
    try:
        if base is not None:
            repo.git.execute(["git", "read-tree", base], env=env)
        listing = repo.git.execute(
            ["git", "ls-files", "-z", "--others", "--modified", "--deleted", "--exclude-standard"],
            env=env,
        )
        to_add, skipped = [], []
        for rel in dict.fromkeys(p for p in str(listing).split("\0") if p):
            target = work_tree / rel
            if target.is_file() and not target.is_symlink() and target.stat().st_size > limit:
                skipped.append(rel)
            else:
                to_add.append(rel)
        for rel in skipped:
            print(
                f"flor: warning: {rel} is larger than {limit} bytes and is left out of the "
                "run's snapshot (set FLOR_SNAPSHOT_MAX_BYTES to raise the cap)",
                file=sys.stderr,
            )
        if to_add:
            with tempfile.TemporaryFile() as paths:
                paths.write("\0".join(to_add).encode())
                paths.seek(0)
                repo.git.execute(
                    ["git", "add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul"],
                    env=env,
                    istream=paths,
                )
        tree = repo.git.execute(["git", "write-tree"], env=env)
        parents = ["-p", base] if base else []
        commit = repo.git.execute(
            ["git", "commit-tree", str(tree), *parents, "-m", message], env=env
        )
        repo.git.execute(["git", "update-ref", SNAPSHOT_REF_PREFIX + run_id, str(commit)])
    except git.GitCommandError as exc:
        raise FlorError(f"could not snapshot {work_tree} with git: {exc.stderr.strip()}") from exc
    finally:
        repo.close()
        if os.path.exists(index_file):
            os.unlink(index_file)
    return Snapshot(str(commit), base, branch, tuple(skipped))


def read_file(root: Path, commit: str, rel_path: str) -> str | None:
    """The text of `rel_path` at `commit`, or None when that version has no such file."""
    with open_repo(root) as repo:
        try:
            blob = repo.commit(commit).tree / rel_path
        except (KeyError, ValueError, git.BadName):
            return None
        data: bytes = blob.data_stream.read()
    return data.decode("utf-8", errors="surrogateescape")


def archive(root: Path, commit: str) -> bytes:
    """The tree of `commit` as a tar archive: a snapshot that can travel to another machine."""
    buffer = io.BytesIO()
    with open_repo(root) as repo:
        repo.archive(buffer, treeish=commit, format="tar")
    return buffer.getvalue()


def extract(data: bytes, destination: Path) -> Path:
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(destination, filter="data")
    return destination


def commits_touching(root: Path, rel_path: str, since: str | None = None) -> list[str]:
    """Plain git commits (newest first) that changed `rel_path`: versions without runs."""
    args = ["--format=%H"]
    if since:
        args.append(f"--since={since}")
    with open_repo(root) as repo:
        try:
            out = repo.git.log(*args, "--", rel_path)
        except git.GitCommandError:
            return []
    return [line for line in out.splitlines() if line]


def since_cutoff(root: Path, since: str, run_starts: dict[str, float]) -> float:
    """The moment `--since` names: a run id (prefix), a git revision, or an ISO date."""
    matches = [start for run_id, start in run_starts.items() if run_id.startswith(since)]
    if len(matches) == 1:
        return matches[0]
    try:
        with open_repo(root) as repo:
            return float(repo.commit(since).committed_date)
    except (git.BadName, git.BadObject, ValueError, NotInGitRepo):
        pass
    try:
        return datetime.fromisoformat(since).timestamp()
    except ValueError:
        raise UsageError(
            f"--since {since!r} is not a run id, git revision or date (YYYY-MM-DD)"
        ) from None


def trees(root: Path, commits: list[str]) -> dict[str, str]:
    """The tree of each commit (one git process for all); unknown commits are left out."""
    if not commits:
        return {}
    done = subprocess.run(
        ["git", "-C", str(root), "cat-file", "--batch-check=%(objectname) %(objecttype)"],
        input="".join(f"{c}^{{tree}}\n" for c in commits),
        capture_output=True,
        text=True,
    )
    found = {}
    for commit, line in zip(commits, done.stdout.splitlines(), strict=False):
        if line.endswith(" tree"):
            found[commit] = line.split()[0]
    return found
