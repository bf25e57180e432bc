"""Adapter for an external GumTree (github.com/GumTreeDiff/gumtree) found on PATH.

GumTree parses both files itself and prints its node matches as JSON; the adapter maps the
matched statements back onto our trees by their start offsets, then maps the blocks of
matched compound statements. Nothing requires it: without a `gumtree` executable the
adapter raises `PropagateError` before any work is done.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from flor.errors import PropagateError
from flor.propagate.matcher import Mappings
from flor.propagate.tree import Node, Tree

NOT_INSTALLED = (
    "GumTree is not installed: put the `gumtree` executable on PATH or use --matcher tree"
)

_RANGE = re.compile(r"\[(\d+),(\d+)\]")


class GumTreeMatcher:
    """Delegate matching to `gumtree textdiff -f JSON` (best effort, statements only)."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout

    @staticmethod
    def executable() -> str:
        path = shutil.which("gumtree")
        if path is None:
            raise PropagateError(NOT_INSTALLED + ".")
        return path

    def check_available(self) -> None:
        self.executable()

    def match(self, src: Tree, dst: Tree, mappings: Mappings | None = None) -> Mappings:
        mappings = mappings if mappings is not None else Mappings()
        mappings.add(src.root, dst.root)
        src_code = _code(src)
        dst_code = _code(dst)
        pairs = self._run(src_code, dst_code)
        src_starts = _starts(src, src_code)
        dst_starts = _starts(dst, dst_code)
        for src_start, dst_start in pairs:
            a, b = src_starts.get(src_start), dst_starts.get(dst_start)
            if a is None or b is None or a.label != b.label:
                continue
            if mappings.has_src(a) or mappings.has_dst(b):
                continue
            mappings.add(a, b)
            for x, y in zip(a.children, b.children, strict=False):
                if x.is_block and y.is_block and not mappings.has_src(x):
                    mappings.add(x, y)
        return mappings

    def _run(self, src_code: str, dst_code: str) -> list[tuple[int, int]]:
        exe = self.executable()
        with tempfile.TemporaryDirectory() as tmp:
            src_path = Path(tmp, "new.py")
            dst_path = Path(tmp, "old.py")
            with open(src_path, "w", encoding="utf-8") as handle:
                handle.write(src_code)
            with open(dst_path, "w", encoding="utf-8") as handle:
                handle.write(dst_code)
            try:
                done = subprocess.run(
                    [exe, "textdiff", "-f", "JSON", src_path, dst_path],
                    capture_output=True,
                    text=True,
                    timeout=self.timeout,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise PropagateError(
                    f"GumTree could not be run ({exc}); use --matcher tree."
                ) from exc
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["no message"])[0]
            raise PropagateError(f"GumTree failed ({first}); use --matcher tree.")
        try:
            data = json.loads(done.stdout)
        except json.JSONDecodeError as exc:
            raise PropagateError("GumTree printed no JSON; use --matcher tree.") from exc
        pairs: list[tuple[int, int]] = []
        for match in data.get("matches", []) if isinstance(data, dict) else []:
            src_range = _RANGE.search(str(match.get("src", "")))
            dst_range = _RANGE.search(str(match.get("dest", "")))
            if src_range and dst_range:
                pairs.append((int(src_range.group(1)), int(dst_range.group(1))))
        return pairs


def _code(tree: Tree) -> str:
    import libcst as cst

    module = tree.root.cst
    assert isinstance(module, cst.Module)
    return module.code


def _starts(tree: Tree, code: str) -> dict[int, Node]:
    """Block-level statements by the character offset where their first token starts."""
    import libcst as cst
    from libcst.metadata import MetadataWrapper, PositionProvider

    module = tree.root.cst
    assert isinstance(module, cst.Module)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    positions = wrapper.resolve(PositionProvider)
    line_offsets = [0]
    for line in code.splitlines(keepends=True):
        line_offsets.append(line_offsets[-1] + len(line))
    starts: dict[int, Node] = {}
    for node in tree.nodes:
        if node.parent is None or not node.parent.is_block:
            continue
        position = positions.get(node.cst)
        if position is None:
            continue
        offset = line_offsets[position.start.line - 1] + position.start.column
        starts.setdefault(offset, node)
    return starts
