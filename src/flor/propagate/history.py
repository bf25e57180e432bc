"""The repository form of propagate: the working-tree script against every past version.

Past versions are the snapshots of recorded runs of the script, or, in a repository
without runs, the plain git commits that touched it. Patched versions are written under
`<store>/propagated/<commit>/<script>`, never into the working tree.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from flor import vcs
from flor.errors import FlorError, UsageError
from flor.propagate import AlreadyPresent, Declined, Placed, propagate_source

if TYPE_CHECKING:
    import pandas as pd

PROPAGATED_DIR = "propagated"


@dataclass
class VersionResult:
    label: str
    commit: str
    inserted: list[str] = field(default_factory=list)
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
    from flor.store.location import home_dir
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
) -> list[VersionResult]:
    root = vcs.repo_root()
    path = script if script.is_absolute() else Path.cwd() / script
    try:
        rel = path.resolve().relative_to(root).as_posix()
        new_source = path.read_text(encoding="utf-8")
    except ValueError:
        raise UsageError(f"{script} is outside the repository {root}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {script}: {exc}") from None
    versions = _versions(root, rel, since, runs)
    if not versions:
        raise UsageError(f"no recorded run or git commit has {rel}: record a run first")
    from flor.store.location import home_dir

    out_root = home_dir(root) / PROPAGATED_DIR
    results = []
    for label, commit in _track(versions, progress):
        result = VersionResult(label, commit)
        results.append(result)
        old = vcs.read_file(root, commit, rel)
        if old is None:
            result.error = f"{rel} does not exist in this version"
            continue
        try:
            patched = propagate_source(new_source, old, matcher)
        except FlorError as exc:
            result.error = str(exc)
            continue
        for outcome in patched.outcomes:
            if isinstance(outcome, Placed):
                result.inserted.append(outcome.statement)
            elif isinstance(outcome, AlreadyPresent):
                result.present.append(outcome.statement)
            elif isinstance(outcome, Declined):
                result.declined.append(f"{outcome.statement}: {outcome.reason}")
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
                "why": r.error or "; ".join(r.declined),
            }
            for r in results
        ]
    )  # fmt: skip
