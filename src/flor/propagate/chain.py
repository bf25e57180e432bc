"""Propagation along a history: new -> each intermediate version -> old, one small step at a time.

One jump across years of edits must guess what many small commits did; following them,
each step only has to bridge one commit's worth of change (a rename, a moved block). The
direct jump is tried first (it is cheaper and right most of the time); only when it
declines is the statement carried through the intermediate versions, each step with the
same checks, so a chain places a statement only where every step could.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from flor.errors import PropagateError, UsageError
from flor.propagate.outcomes import Outcome, Placed, PropagationResult

# Steps of a chain at most: intermediate versions beyond that are sampled, so a history of
# hundreds of commits still costs a bounded number of propagations.
MAX_STEPS = 8

Propagate = Callable[[str, str], PropagationResult]


def waypoints(versions: Sequence[tuple[str, str]], max_steps: int = MAX_STEPS) -> list[int]:
    """Indices of the versions to step through: distinct parseable texts, sampled.

    `versions` are (label, text) pairs, oldest first. The newest is always kept (the first
    step from the source must bridge the least), then every `stride`-th one counting from
    it, with `stride` a power of two: the chains of older versions of one history, whose
    lists only grow at the old end, then visit the same versions and share their steps.
    """
    distinct: list[int] = []
    previous: str | None = None
    for index, (_, text) in enumerate(versions):
        if text == previous:
            continue
        previous = text
        try:
            ast.parse(text)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        distinct.append(index)
    stride = 1
    while len(distinct) > stride * max_steps:
        stride *= 2
    return distinct[::-1][::stride][::-1]


class StepCache:
    """Results of propagation steps by (source, target) text, shared across the chains of
    one history (bounded: the oldest entries go first)."""

    def __init__(self, propagate: Propagate, size: int = 256) -> None:
        self.propagate = propagate
        self.size = size
        self._results: dict[tuple[str, str], PropagationResult] = {}

    def __call__(self, new_src: str, old_src: str) -> PropagationResult:
        key = (new_src, old_src)
        found = self._results.get(key)
        if found is None:
            found = self.propagate(new_src, old_src)
            if len(self._results) >= self.size:
                del self._results[next(iter(self._results))]
            self._results[key] = found
        return found


def propagate_through(
    new_src: str,
    old_src: str,
    versions: Sequence[tuple[str, str]],
    propagate: Propagate,
) -> PropagationResult:
    """Propagate `new_src` into `old_src`, through the intermediate `versions` on a decline.

    `versions` are (label, text) pairs strictly between old and new, oldest first.
    """
    direct = propagate(new_src, old_src)
    if direct.ok or not versions:
        return direct
    current = new_src
    renames: dict[str, str] = {}
    for index in reversed(waypoints(versions)):
        text = versions[index][1]
        try:
            step = propagate(current, text)
        except PropagateError:
            continue  # a version that cannot be propagated into is only a missing waypoint
        if not step.ok:
            return direct
        _compose(renames, step)
        current = step.source
    final = propagate(current, old_src)
    if not final.ok:
        return direct
    _compose(renames, final)
    return dataclasses.replace(final, outcomes=_with_renames(final.outcomes, renames))


def _compose(renames: dict[str, str], step: PropagationResult) -> None:
    """Follow each original name through one more step's renames."""
    for outcome in step.outcomes:
        if isinstance(outcome, Placed):
            for before, after in outcome.renames.items():
                originals = [k for k, v in renames.items() if v == before] or [before]
                for original in originals:
                    renames[original] = after


def _with_renames(outcomes: list[Outcome], renames: dict[str, str]) -> list[Outcome]:
    applied = {k: v for k, v in renames.items() if k != v}
    return [
        dataclasses.replace(o, renames=applied) if isinstance(o, Placed) and applied else o
        for o in outcomes
    ]


def read_history(folder: Path, name: str) -> list[tuple[str, str]]:
    """The versions in `folder`, oldest first by entry name: files, or one folder per version
    holding the file `name` (as `NNNN_<sha>/train.py`). Unreadable entries are skipped."""
    if not folder.is_dir():
        raise UsageError(f"--history {folder} is not a folder: pass a folder of older versions.")
    versions: list[tuple[str, str]] = []
    for entry in sorted(folder.iterdir()):
        path = entry / name if entry.is_dir() else entry
        try:
            versions.append((entry.name, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            continue
    return versions
