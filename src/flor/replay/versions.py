"""Propagate into every recorded version: the repository form of `flor propagate`.

The working-tree script against each past version of it: the snapshots of its recorded
runs, or, in a repository without runs, the plain git commits that touched it. This module
reads the store and git; `flor.propagate` does the pure part (sources in, sources out).
Patched versions are written under `<store>/propagated/<commit>/<script>`, never into the
working tree. The git history between a version and HEAD is the evidence a declined jump is
retried with (see `flor.propagate.chain`); each commit's text is read once for all
versions. A version that does not parse, or takes longer than the per-version time limit,
is reported and skipped.
"""

from __future__ import annotations

import contextlib
import difflib
import signal
import threading
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flor import vcs
from flor.errors import FlorError, UsageError
from flor.paths import home_dir, repo_root
from flor.propagate import AlreadyPresent, Declined, Placed, propagate_source
from flor.propagate.chain import StepCache, propagate_through

# Seconds one version may take before it is reported as timed out and skipped.
VERSION_TIME_LIMIT = 60.0

if TYPE_CHECKING:
    import pandas as pd

PROPAGATED_DIR = "propagated"


@dataclass
class VersionResult:
    """One past version: its statements inserted, already present or declined (with why),
    or the error it was skipped for; its diff, and where its patched text was stored."""

    label: str
    commit: str
    inserted: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    declined: list[str] = field(default_factory=list)
    error: str = ""
    diff: str = ""
    stored: str = ""


def _versions(
    root: Path, rel: str, since: str | None, runs: Sequence[str] | None
) -> list[tuple[str, str]]:
    """(label, commit) of each past version, oldest first, each commit once."""
    from flor.store import reader
    from flor.where import select_runs

    found: list[tuple[str, str]] = []
    if reader.store_exists(home_dir(root)):
        recorded = reader.runs(home_dir(root))
        if not recorded.empty:
            recorded = recorded[(recorded["filename"] == rel) & recorded["snapshot"].notna()]
            recorded = select_runs(recorded, root, runs, since)
            pairs = zip(recorded["run_id"], recorded["snapshot"], strict=True)
            found = [(f"run {run}", snapshot) for run, snapshot in pairs]
    if not found and not runs:
        commits = vcs.commits_touching(root, rel, since)
        found = [(f"commit {c[:10]}", c) for c in reversed(commits)]
    unique: dict[str, str] = {}
    for label, commit in found:
        unique.setdefault(commit, label)
    return [(label, commit) for commit, label in unique.items()]


def propagate_history(
    script: Path,
    *,
    since: str | None = None,
    runs: Sequence[str] | None = None,
    matcher: str = "tree",
    store: bool = True,
    progress: bool = False,
    time_limit_s: float | None = None,
) -> list[VersionResult]:
    """Propagate the working-tree `script` into each of its past versions, oldest first;
    `store=False` writes nothing (a dry run, or the web UI's preview)."""
    root = repo_root()
    path = script if script.is_absolute() else Path.cwd() / script
    try:
        rel = path.resolve().relative_to(root).as_posix()
        new_source = path.read_text(encoding="utf-8")
    except ValueError:
        raise UsageError(f"{script} is outside the repository {root}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {script} ({exc.strerror}): check the path") from None
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {script}: it is not UTF-8 text") from None
    versions = _versions(root, rel, since, runs)
    if not versions:
        raise UsageError(f"no recorded run or git commit has {rel}: record a run first")
    out_root = home_dir(root) / PROPAGATED_DIR
    texts = _Texts(root, rel)
    steps = StepCache(lambda a, b: propagate_source(a, b, matcher))
    results = []
    for label, commit in _track(versions, progress):
        result = VersionResult(label, commit)
        results.append(result)
        old = texts.at(commit)
        if old is None:
            result.error = f"{rel} does not exist in this version"
            continue
        try:
            with time_limit(VERSION_TIME_LIMIT if time_limit_s is None else time_limit_s):
                patched = steps(new_source, old)
                if not patched.ok:  # only then is the history between them read
                    between = texts.between(commit, new_source)
                    patched = propagate_through(new_source, old, between, steps)
        except FlorError as exc:
            result.error = str(exc)
            continue
        except VersionTimeout as exc:
            result.error = str(exc)
            continue
        _record(result, patched.outcomes)
        if patched.changed:
            result.diff = "".join(
                difflib.unified_diff(
                    old.splitlines(keepends=True), patched.source.splitlines(keepends=True),
                    f"a/{rel} ({label})", f"b/{rel} (propagated)",
                )
            )  # fmt: skip
            if store:
                target = out_root / commit / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(patched.source, encoding="utf-8")
                result.stored = str(target)
    return results


def _record(result: VersionResult, outcomes: Sequence[object]) -> None:
    """One line per statement: placed where (and renamed what), present, or declined why."""
    for outcome in outcomes:
        if isinstance(outcome, Placed):
            result.inserted.append(outcome.statement)
            renamed = ", ".join(f"{a}->{b}" for a, b in outcome.renames.items())
            where = (
                f"wrapped at old line {outcome.old_line}"
                if outcome.wrapped
                else f"placed after old line {outcome.old_line}"
            )
            extra = f", renamed {renamed}" if renamed else ""
            result.details.append(f"{outcome.statement}: {where}{extra}")
        elif isinstance(outcome, AlreadyPresent):
            result.present.append(outcome.statement)
            kind = "edited in this version" if outcome.edited else "already present"
            result.details.append(f"{outcome.statement}: {kind}")
        elif isinstance(outcome, Declined):
            result.declined.append(f"{outcome.statement}: {outcome.reason}")
            result.details.append(f"{outcome.statement}: declined, {outcome.reason}")


class _Texts:
    """The script's text at each commit, read once, and the versions between two points."""

    def __init__(self, root: Path, rel: str) -> None:
        self.root = root
        self.rel = rel
        self._texts: dict[str, str | None] = {}
        self._paths: dict[str, list[str]] = {}

    def at(self, commit: str) -> str | None:
        if commit not in self._texts:
            self._texts[commit] = vcs.read_file(self.root, commit, self.rel)
        return self._texts[commit]

    def between(self, commit: str, newest: str) -> list[tuple[str, str]]:
        """(commit, text) of the commits from `commit`'s branch point to HEAD that changed
        the script, oldest first, without the texts of `commit` itself and of `newest`."""
        if commit not in self._paths:
            self._paths[commit] = vcs.commits_since(self.root, commit, self.rel)
        old = self.at(commit)
        found: list[tuple[str, str]] = []
        for sha in self._paths[commit]:
            text = self.at(sha)
            if text is not None and text not in (old, newest):
                found.append((sha, text))
        return found


class VersionTimeout(Exception):
    """Raised inside a version's propagation when it exceeds the per-version time limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after `seconds` with `VersionTimeout` (main thread with SIGALRM;
    elsewhere there is no limit rather than a wrong one)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or seconds <= 0:
        yield
        return

    def expire(signum: int, frame: types.FrameType | None) -> None:
        if _in_finalizer(frame):
            signal.setitimer(signal.ITIMER_REAL, FINALIZER_RETRY_S)
            return
        raise VersionTimeout(
            f"timed out after {seconds:g} s: this version was skipped; propagate it alone "
            f"with the file form to see why"
        )

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# Python swallows an exception raised inside a finalizer or weakref callback (it only
# prints "Exception ignored"): an alarm landing there is tried again just after it.
FINALIZER_RETRY_S = 0.001
_FINALIZER_MODULES = ("weakref.py", "_weakrefset.py")


def _in_finalizer(frame: types.FrameType | None) -> bool:
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or code.co_filename.endswith(_FINALIZER_MODULES):
            return True
        frame = frame.f_back
    return False


def _track(versions: list[tuple[str, str]], progress: bool) -> Iterable[tuple[str, str]]:
    if not progress or len(versions) < 2:
        return versions
    from rich.progress import track

    return track(versions, description="propagating", transient=True)


def summary(results: list[VersionResult]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "version": r.label, "commit": r.commit[:10], "inserted": len(r.inserted),
                "already present": len(r.present), "declined": len(r.declined),
                "why": r.error or "; ".join(r.declined),  # kept for CI jobs that read it
                "statements": r.error or "; ".join(r.details),
            }
            for r in results
        ]
    )  # fmt: skip
