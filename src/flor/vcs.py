"""Git: snapshot a run's sources under refs/flor/, list versions, materialize a version.

Snapshots are built in a temporary index file, so the user's branch, HEAD, index and
working tree are never touched.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

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


def _max_file_bytes() -> int:
    return int(os.environ.get("FLOR_SNAPSHOT_MAX_BYTES", DEFAULT_MAX_FILE_BYTES))


# Untracked files that hold credentials are never snapshotted (a snapshot travels to
# cluster workers). `FLOR_SNAPSHOT_DENY` (comma-separated globs, matched against the path
# and the file name) replaces this list; set it empty to snapshot everything.
DEFAULT_DENY = (
    ".env", ".env.*", "*.pem", "*.key", "*.p12", "*.pfx", "id_rsa*", "id_dsa*", "id_ecdsa*",
    "id_ed25519*", "kaggle.json", ".netrc", "_netrc", ".pypirc", ".npmrc", ".pgpass",
    ".git-credentials", "credentials", "credentials.json", "*service-account*.json",
    ".aws/*", ".azure/*", ".config/gcloud/*", ".docker/config.json",
)  # fmt: skip


def _denied(rel: str) -> bool:
    setting = os.environ.get("FLOR_SNAPSHOT_DENY")
    patterns = DEFAULT_DENY if setting is None else [p for p in setting.split(",") if p.strip()]
    name = rel.rsplit("/", 1)[-1]
    return any(
        fnmatch.fnmatch(rel, p.strip()) or fnmatch.fnmatch(name, p.strip()) for p in patterns
    )


def _head(repo: git.Repo) -> tuple[str | None, str | None]:
    try:
        base = repo.head.commit.hexsha
    except ValueError:  # no commits yet
        base = None
    branch = None if repo.head.is_detached else repo.head.ref.name
    return base, branch


@contextlib.contextmanager
def _temporary_index(repo: git.Repo) -> Iterator[dict[str, str]]:
    """The environment for git commands that stage into a fresh index file, removed
    afterwards: commits are built without touching the user's index."""
    with tempfile.TemporaryDirectory(prefix="flor-index-") as folder:
        yield {**_IDENTITY, "GIT_INDEX_FILE": str(Path(folder) / "index")}


def _commit_index(
    repo: git.Repo, env: dict[str, str], base: str | None, message: str, ref: str
) -> str:
    """Commit what the temporary index holds, with `base` as parent, and point `ref` at it."""
    tree = repo.git.execute(["git", "write-tree"], env=env)
    parents = ["-p", base] if base else []
    commit = repo.git.execute(["git", "commit-tree", str(tree), *parents, "-m", message], env=env)
    repo.git.execute(["git", "update-ref", ref, str(commit)])
    return str(commit)


@contextlib.contextmanager
def _stdin(data: bytes) -> Iterator[BinaryIO]:
    """`data` in a real file, as git's stdin must be."""
    with tempfile.TemporaryFile() as stream:
        stream.write(data)
        stream.seek(0)
        yield stream


def _unreadable(target: Path) -> str | None:
    """Why a regular file cannot be read for its snapshot (git would fail the whole run)."""
    if not target.is_file() or target.is_symlink():
        return None
    try:
        with open(target, "rb"):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def snapshot(root: Path, run_id: str, message: str) -> Snapshot:
    """Commit the work tree as it is now (ignored, oversized and unreadable files left out)."""
    repo = open_repo(root)
    base, branch = _head(repo)
    limit = _max_file_bytes()
    work_tree = Path(repo.working_tree_dir or root)
    try:
        with _temporary_index(repo) as env:
            if base is not None:
                repo.git.execute(["git", "read-tree", base], env=env)
            listing = repo.git.execute(
                ["git", "ls-files", "-z", "--others", "--modified", "--deleted",
                 "--exclude-standard"],
                env=env,
            )  # fmt: skip
            untracked = set(
                str(
                    repo.git.execute(
                        ["git", "ls-files", "-z", "--others", "--exclude-standard"], env=env
                    )
                ).split("\0")
            )
            to_add, skipped, secret, unreadable = [], [], [], []
            for rel in dict.fromkeys(p for p in str(listing).split("\0") if p):
                target = work_tree / rel
                if rel in untracked and _denied(rel):
                    secret.append(rel)
                elif target.is_file() and not target.is_symlink() and target.stat().st_size > limit:
                    skipped.append(rel)
                elif (denied := _unreadable(target)) is not None:
                    unreadable.append((rel, denied))
                else:
                    to_add.append(rel)
            if secret:
                print(
                    f"flor: warning: {', '.join(secret)} may hold credentials and is left out "
                    "of the run's snapshot (FLOR_SNAPSHOT_DENY sets which files; commit a file "
                    "to snapshot it)",
                    file=sys.stderr,
                )
            for rel in skipped:
                print(
                    f"flor: warning: {rel} is larger than {limit} bytes and is left out of the "
                    "run's snapshot (set FLOR_SNAPSHOT_MAX_BYTES to raise the cap)",
                    file=sys.stderr,
                )
            for rel, why in unreadable:
                print(
                    f"flor: warning: {rel} cannot be read ({why}) and is left out of the run's "
                    "snapshot (make it readable, or list it in .gitignore)",
                    file=sys.stderr,
                )
            stale = [rel for rel, _ in unreadable if rel not in untracked]
            if stale:  # a tracked file: out of the snapshot, not its last committed content
                names = "\0".join(stale).encode("utf-8", "surrogateescape")
                with _stdin(names) as paths:
                    repo.git.execute(
                        ["git", "rm", "--cached", "-q", "--pathspec-from-file=-",
                         "--pathspec-file-nul"],
                        env=env,
                        istream=paths,
                    )  # fmt: skip
            if to_add:
                # names are bytes on POSIX: git gave undecodable ones back as surrogates
                names = "\0".join(to_add).encode("utf-8", "surrogateescape")
                with _stdin(names) as paths:
                    repo.git.execute(
                        ["git", "add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul"],
                        env=env,
                        istream=paths,
                    )
            commit = _commit_index(repo, env, base, message, SNAPSHOT_REF_PREFIX + run_id)
    except git.GitCommandError as exc:
        raise FlorError(f"could not snapshot {work_tree} with git: {exc.stderr.strip()}") from exc
    finally:
        repo.close()
    return Snapshot(commit, base, branch, tuple(skipped))


def commit_with_file(root: Path, base: str, path: str, text: str, message: str, ref: str) -> str:
    """A commit whose tree is `base`'s plus `path` holding `text`, stored under `ref`
    (e.g. a notebook's cells beside its run's snapshot); nothing of the user's is touched."""
    with open_repo(root) as repo:
        try:
            with _temporary_index(repo) as env:
                repo.git.execute(["git", "read-tree", base], env=env)
                with _stdin(text.encode("utf-8")) as data:
                    blob = repo.git.execute(
                        ["git", "hash-object", "-w", "--stdin"], env=env, istream=data
                    )
                repo.git.execute(
                    ["git", "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}"],
                    env=env,
                )
                return _commit_index(repo, env, base, message, ref)
        except git.GitCommandError as exc:
            raise FlorError(
                f"could not commit {path} onto {base} with git: {exc.stderr.strip()}"
            ) from exc


def drop_snapshots(root: Path, run_id: str) -> int:
    """Delete a run's snapshot refs (its start and every `flor.commit`); returns how many.
    Their objects stay in git's store until `git gc --prune=now`."""
    with open_repo(root) as repo:
        refs = str(
            repo.git.execute(["git", "for-each-ref", "--format=%(refname)", SNAPSHOT_REF_PREFIX])
        ).split()
        mine = [r for r in refs if r.removeprefix(SNAPSHOT_REF_PREFIX).split("-")[0] == run_id]
        for ref in mine:
            repo.git.execute(["git", "update-ref", "-d", ref])
    return len(mine)


def read_file(root: Path, commit: str, rel_path: str) -> str | None:
    """The text of `rel_path` at `commit`, or None when that version has no such file."""
    with open_repo(root) as repo:
        try:
            blob = repo.commit(commit).tree / rel_path
        except (KeyError, ValueError, git.BadName):
            return None
        data: bytes = blob.data_stream.read()
    return data.decode("utf-8", errors="surrogateescape")


def contains(root: Path, commit: str, rel_path: str) -> bool:
    """Whether `commit`'s tree holds `rel_path` (a file or a folder)."""
    with open_repo(root) as repo:
        try:
            repo.commit(commit).tree / rel_path
        except (KeyError, ValueError, git.BadName):
            return False
    return True


def entries(root: Path, commit: str, folders: Iterable[str]) -> set[str]:
    """Names of the files and folders directly inside `folders` ("." for the top) at
    `commit`, e.g. to tell the project's own modules from installed ones."""
    found: set[str] = set()
    with open_repo(root) as repo:
        try:
            top = repo.commit(commit).tree
        except (ValueError, git.BadName):
            return found
        for folder in folders:
            try:
                tree = top if folder in (".", "") else top / folder
            except KeyError:
                continue
            found.update(item.name for item in tree)
    return found


def archive(root: Path, commit: str) -> bytes:
    """The tree of `commit` as a tar archive: a snapshot that can travel to another machine."""
    buffer = io.BytesIO()
    with open_repo(root) as repo:
        repo.archive(buffer, treeish=commit, format="tar")
    return buffer.getvalue()


def extract(data: bytes, destination: Path) -> Path:
    """Unpack a snapshot archive; anything that would land outside `destination` (a tracked
    link to an absolute path or out of the repository) is refused with one line."""
    from flor.errors import ReplayError

    if not hasattr(tarfile, "data_filter"):
        raise ReplayError(
            f"Python {sys.version.split()[0]} cannot unpack snapshots safely (tarfile has no "
            "data filter): use Python 3.10.12, 3.11.4, 3.12 or newer"
        )
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        try:
            tar.extractall(destination, filter="data")
        except tarfile.FilterError as exc:
            member = getattr(exc, "tarinfo", None)
            name = member.name if member is not None else "an entry"
            raise ReplayError(
                f"the snapshot's {name} points outside the repository ({exc}): make the "
                "link relative and inside the repository, or untrack it, and record again"
            ) from None
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


def commits_since(root: Path, commit: str, rel_path: str) -> list[str]:
    """Commits that changed `rel_path` between `commit` (or where it branched off, for a
    run's snapshot) and HEAD, oldest first, without `commit` itself."""
    with open_repo(root) as repo:
        try:
            base = repo.git.merge_base(commit, "HEAD").strip()
            out = repo.git.log(
                "--format=%H", "--reverse", "--ancestry-path", f"{base}..HEAD", "--", rel_path
            )
        except git.GitCommandError:
            return []
    return [line for line in out.splitlines() if line and line != commit]


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
