"""Statement propagation: transplant new `flor.log` statements into older script versions.

`propagate_source(new_src, old_src)` returns the patched old source and one outcome per
`flor.log` statement of the new source. libcst and the matchers load on first use, so that
importing this package stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from flor.propagate.outcomes import AlreadyPresent, Declined, Outcome, Placed, PropagationResult

if TYPE_CHECKING:
    from flor.propagate.matcher import MatcherOptions

# Each `--matcher` name with the module and class that implement it, imported on first use.
MATCHER_CLASSES: dict[str, tuple[str, str]] = {
    "tree": ("flor.propagate.matcher", "TreeMatcher"),
    "difflib": ("flor.propagate.difflib_matcher", "DifflibMatcher"),
    "gumtree": ("flor.propagate.gumtree_external", "GumTreeMatcher"),
}
MATCHERS: tuple[str, ...] = tuple(MATCHER_CLASSES)

__all__ = [
    "MATCHERS",
    "AlreadyPresent",
    "Declined",
    "MatcherOptions",
    "Outcome",
    "Placed",
    "PropagationResult",
    "logged_names",
    "propagate_source",
]


def propagate_source(
    new_src: str,
    old_src: str,
    matcher: str = "tree",
    history: Sequence[tuple[str, str]] = (),
) -> PropagationResult:
    """Transplant the `flor.log` statements of `new_src` that `old_src` lacks into `old_src`.

    `history`: the (label, text) versions strictly between old and new, oldest first; when
    the direct jump declines, the statements are carried through them step by step. See
    `flor.propagate.engine.propagate_source` and `flor.propagate.chain`.
    """
    from flor.propagate.engine import propagate_source as run

    if not history:
        return run(new_src, old_src, matcher)
    from flor.propagate.chain import propagate_through

    return propagate_through(new_src, old_src, history, lambda a, b: run(a, b, matcher))


def logged_names(src: str) -> list[str]:
    """Literal names of the `flor.log(...)` calls of a source, in order, without duplicates."""
    from flor.propagate.statements import logged_names as names

    return names(src)


def __getattr__(name: str) -> object:
    if name == "MatcherOptions":
        from flor.propagate.matcher import MatcherOptions

        return MatcherOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
