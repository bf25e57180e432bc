"""The baseline matcher: align statements as lines with `difflib`, then map their blocks.

Each block-level statement is flattened to a signature (its node labels and values without
nested blocks), the two sequences are aligned by `difflib.SequenceMatcher`, equal runs are
mapped, and within replaced runs statements pair up in order when their signatures are at
least `min_ratio` similar. Blocks of mapped compound statements are mapped too, and so are
the nodes inside statements that are identical. No context is used, which is exactly what
makes it a baseline for the tree matcher.
"""

from __future__ import annotations

import difflib

from flor.propagate.matcher import Mappings
from flor.propagate.tree import Node, Tree, signature


class DifflibMatcher:
    """Line alignment of statements; the simple baseline behind `--matcher difflib`."""

    def __init__(self, min_ratio: float = 0.6) -> None:
        self.min_ratio = min_ratio

    def match(self, src: Tree, dst: Tree, mappings: Mappings | None = None) -> Mappings:
        mappings = mappings if mappings is not None else Mappings()
        mappings.add(src.root, dst.root)
        src_statements = _statements(src)
        dst_statements = _statements(dst)
        src_sigs = [signature(n) for n in src_statements]
        dst_sigs = [signature(n) for n in dst_statements]
        matcher = difflib.SequenceMatcher(None, src_sigs, dst_sigs, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                for a, b in zip(src_statements[i1:i2], dst_statements[j1:j2], strict=True):
                    self._map(a, b, mappings)
            elif tag == "replace":
                for a, sig_a in zip(src_statements[i1:i2], src_sigs[i1:i2], strict=True):
                    for b, sig_b in zip(dst_statements[j1:j2], dst_sigs[j1:j2], strict=True):
                        if mappings.has_dst(b) or a.label != b.label:
                            continue
                        ratio = difflib.SequenceMatcher(None, sig_a, sig_b).ratio()
                        if ratio >= self.min_ratio:
                            self._map(a, b, mappings)
                            break
        return mappings

    @staticmethod
    def _map(a: Node, b: Node, mappings: Mappings) -> None:
        if a.label != b.label or mappings.has_src(a) or mappings.has_dst(b):
            return
        if a.hash == b.hash:
            mappings.add_subtree(a, b)
            return
        mappings.add(a, b)
        for x, y in zip(a.children, b.children, strict=False):
            if x.label != y.label or mappings.has_src(x) or mappings.has_dst(y):
                continue
            if x.is_block or x.label == "Else":
                mappings.add(x, y)
            elif x.hash == y.hash:
                mappings.add_subtree(x, y)
            else:
                _map_same_shape(x, y, mappings)


def _map_same_shape(a: Node, b: Node, mappings: Mappings) -> None:
    """Map two non-statement subtrees node by node as long as their shapes agree."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if x.label != y.label or x.is_block or mappings.has_src(x) or mappings.has_dst(y):
            continue
        mappings.add(x, y)
        if len(x.children) == len(y.children):
            stack.extend(zip(x.children, y.children, strict=True))


def _statements(tree: Tree) -> list[Node]:
    return [n for n in tree.nodes if n.parent is not None and n.parent.is_block]
