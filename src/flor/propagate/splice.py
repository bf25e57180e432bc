"""Write the patched target by splicing text, generating code only for what changed.

Generating a whole module with libcst costs about as much as parsing it. The output differs
from the old text only inside the top-level statements that were edited and at the
top-level insertion points, so only those statements are generated; the rest of the old
text is copied verbatim. Every assumption is checked (the old statement's generated code
must equal its old text, and the result must have the expected top-level statements);
on any doubt the caller falls back to generating the whole module.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Sequence

import libcst as cst

from flor.propagate.statements import Parsed
from flor.propagate.tree import Tree

RootItems = list[tuple[int, int, cst.SimpleStatementLine]]


def _first_lines(module: cst.Module, tree: ast.Module) -> list[int] | None:
    """0-based index of the first line (leading comments included) of each top-level stmt."""
    starts: list[int] = []
    position = 0
    for statement in module.body:
        if position >= len(tree.body):
            return None
        node = tree.body[position]
        first = node.lineno
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([first, *(d.lineno for d in node.decorator_list)])
        starts.append(first - 1 - len(statement.leading_lines))
        position += len(statement.body) if isinstance(statement, cst.SimpleStatementLine) else 1
    return starts if position == len(tree.body) else None


def splice(
    old: Parsed, tree: Tree, updated: dict[cst.CSTNode, cst.CSTNode], root_items: RootItems
) -> str | None:
    """The patched code, or None when splicing cannot be trusted.

    `updated` maps old top-level libcst statements to their edited versions; `root_items`
    are the statements inserted at module level as (index, order, statement).
    """
    module = old.module
    starts = _first_lines(module, old.tree)
    if starts is None:
        return None
    lines = old.text.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        return None
    body = list(module.body)
    by_index: dict[int, list[tuple[int, cst.SimpleStatementLine]]] = {}
    for index, order, statement in root_items:
        by_index.setdefault(index, []).append((order, statement))
    out: list[str] = []
    cursor = 0
    for index in range(len(body) + 1):
        found: int | None = starts[index] if index < len(body) else cursor
        if index == len(body) and by_index.get(index):
            found = _end_of(module, body, starts, lines)
        if found is None:
            return None
        start = found
        if start < cursor or start > len(lines):
            return None
        out.extend(lines[cursor:start])
        cursor = start
        for _, statement in sorted(by_index.get(index, []), key=lambda t: t[0]):
            out.append(module.code_for_node(statement))
        if index == len(body):
            break
        new = updated.get(body[index])
        if new is not None:
            old_code = module.code_for_node(body[index])
            count = len(old_code.splitlines(keepends=True))
            if "".join(lines[start : start + count]) != old_code:
                return None
            out.append(module.code_for_node(new))
            cursor = start + count
    out.extend(lines[cursor:])
    return "".join(out)


def _end_of(
    module: cst.Module,
    body: Sequence[cst.BaseStatement],
    starts: list[int],
    lines: list[str],
) -> int | None:
    """Line index right after the last top-level statement's code."""
    if not body:
        return len(lines) if not module.footer else None
    code = module.code_for_node(body[-1])
    count = len(code.splitlines(keepends=True))
    start = starts[-1]
    if "".join(lines[start : start + count]) != code:
        return None
    return start + count


def top_level_check(code: str, old: Parsed, tree: Tree, root_items: RootItems) -> bool:
    """The spliced code parses and has old's top-level statements plus the inserted ones."""
    del tree
    parsed = parse_or_none(code)
    return parsed is not None and len(parsed.body) == len(old.tree.body) + len(root_items)


@functools.lru_cache(maxsize=2)
def parse_or_none(code: str) -> ast.Module | None:
    """`ast.parse`, or None for code that does not parse; cached for the final check."""
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
