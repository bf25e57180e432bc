"""Parsing both versions and finding the `flor.log` statements of the source.

Parsing happens twice on purpose: `ast` gives fast syntax checks with line numbers and the
AST-equality test of the contract, libcst the formatting-preserving tree that is edited. The
small statements that contain a `flor.log(...)` call are listed in source order by both, so
the two lists correspond one to one.
"""

from __future__ import annotations

import ast
import dataclasses

import libcst as cst

from flor.errors import PropagateError
from flor.propagate.calls import is_flor_ast_call, is_flor_call
from flor.propagate.tree import cst_children

_COMPOUND: tuple[type[ast.stmt], ...] = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.If,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.Match,
)
if hasattr(ast, "TryStar"):
    _COMPOUND = (*_COMPOUND, ast.TryStar)


@dataclasses.dataclass
class Parsed:
    """One version: its text, its libcst module and its `ast` module."""

    text: str
    module: cst.Module
    tree: ast.Module


def parse(text: str, which: str) -> Parsed:
    """Parse a version or raise `PropagateError` naming `which` one and the line."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise PropagateError(
            f"the {which} does not parse at line {exc.lineno or '?'}: {exc.msg}; "
            f"fix the syntax error or skip this version."
        ) from exc
    except (ValueError, MemoryError, RecursionError) as exc:
        raise PropagateError(
            f"The {which} cannot be parsed as Python ({type(exc).__name__}): "
            f"fix it or skip this version."
        ) from exc
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError as exc:
        raise PropagateError(
            f"the {which} does not parse at line {exc.raw_line}: {exc.message}; "
            f"fix the syntax error or skip this version."
        ) from exc
    except (ValueError, MemoryError, RecursionError) as exc:
        raise PropagateError(
            f"The {which} cannot be parsed by libcst ({type(exc).__name__}): "
            f"fix it or skip this version."
        ) from exc
    return Parsed(text, module, tree)


_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")


def ast_log_statements(tree: ast.Module, text: str | None = None) -> list[ast.stmt]:
    """Simple statements that contain a `flor.log(...)` call, in source order.

    Walks statement lists only and looks inside a statement only when its lines mention
    `log`, which keeps this cheap on long files (`text` enables that shortcut).
    """
    lines = text.splitlines() if text is not None else None
    found: list[ast.stmt] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.stmt) and not isinstance(node, _COMPOUND):
            if lines is not None:
                end = node.end_lineno or node.lineno
                if not any("log" in line for line in lines[node.lineno - 1 : end]):
                    continue
            if any(is_flor_ast_call(n) for n in ast.walk(node)):
                found.append(node)
            continue
        for name in _BODIES:
            stack.extend(getattr(node, name, ()) or ())
    found.sort(key=lambda n: (n.lineno, n.col_offset))
    return found


def log_name(call: ast.Call) -> str | None:
    """The literal name of a `flor.log` call, or None when it is not a string literal."""
    name: ast.expr | None = call.args[0] if call.args else None
    if name is None:
        name = next((k.value for k in call.keywords if k.arg == "name"), None)
    if isinstance(name, ast.Constant) and isinstance(name.value, str):
        return name.value
    return None


def logged_names(text: str) -> list[str]:
    """Literal names of the `flor.log(...)` calls of a source, in order, without duplicates.

    Calls whose name is not a string literal are skipped; a source that does not parse
    raises `PropagateError`.
    """
    parsed = parse(text, "source")
    calls = [n for n in ast.walk(parsed.tree) if isinstance(n, ast.Call) and is_flor_ast_call(n)]
    calls.sort(key=lambda n: (n.lineno, n.col_offset))
    names: list[str] = []
    for call in calls:
        name = log_name(call)
        if name is not None and name not in names:
            names.append(name)
    return names


@dataclasses.dataclass
class LogStatement:
    """A small statement of the source that contains `flor.log(...)`."""

    node: cst.BaseSmallStatement
    line_node: cst.SimpleStatementLine | cst.SimpleStatementSuite
    block: cst.CSTNode
    ast_node: ast.stmt
    text: str
    calls: list[cst.Call]

    @property
    def is_insert(self) -> bool:
        """A bare `flor.log(...)` line is inserted; any other use wraps an expression."""
        return isinstance(self.node, cst.Expr) and is_flor_call(self.node.value)

    @property
    def line(self) -> int:
        return self.ast_node.lineno


def _walk_cst(node: cst.CSTNode) -> list[cst.CSTNode]:
    found: list[cst.CSTNode] = []
    stack = [node]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(cst_children(current))
    return found


_Found = tuple[cst.BaseSmallStatement, cst.CSTNode, cst.CSTNode, list[cst.Call]]


def _find_logs(module: cst.Module) -> list[_Found]:
    """Small statements holding `flor.log` calls, with their line and block, in order."""
    found: list[_Found] = []
    stack: list[tuple[cst.CSTNode, cst.CSTNode, cst.CSTNode | None]] = [(module, module, None)]
    while stack:
        node, block, line = stack.pop()
        if isinstance(node, cst.BaseSmallStatement):
            calls = [n for n in _walk_cst(node) if isinstance(n, cst.Call) and is_flor_call(n)]
            if calls and line is not None:
                owner = block if isinstance(line, cst.SimpleStatementLine) else line
                found.append((node, line, owner, calls))
            continue
        if isinstance(node, (cst.IndentedBlock, cst.Module)):
            block = node
        elif isinstance(node, cst.SimpleStatementSuite):
            block = line = node
        elif isinstance(node, cst.SimpleStatementLine):
            line = node
        stack.extend((child, block, line) for child in reversed(list(cst_children(node))))
    return found


def _segment(lines: list[str], node: ast.stmt) -> str:
    """The source text of a statement (like `ast.get_source_segment`, without re-splitting)."""
    end_line, end_col = node.end_lineno, node.end_col_offset
    if end_line is None or end_col is None or node.lineno > len(lines) or end_line > len(lines):
        return ""
    first = lines[node.lineno - 1].encode()
    if node.lineno == end_line:
        return first[node.col_offset : end_col].decode(errors="replace")
    last = lines[end_line - 1].encode()
    middle = "".join(lines[node.lineno : end_line - 1])
    start = first[node.col_offset :].decode(errors="replace")
    return start + middle + last[:end_col].decode(errors="replace")


def log_statements(parsed: Parsed) -> list[LogStatement]:
    """The `flor.log` statements of a version, each with its libcst and `ast` forms."""
    found = _find_logs(parsed.module)
    ast_nodes = ast_log_statements(parsed.tree)
    if len(ast_nodes) != len(found):
        raise PropagateError(
            "The source's flor.log statements could not be read consistently; "
            "simplify the statements that contain flor.log calls."
        )
    result = []
    lines = parsed.text.splitlines(keepends=True)
    for (node, line, block, calls), ast_node in zip(found, ast_nodes, strict=True):
        text = _segment(lines, ast_node) or ast.unparse(ast_node)
        assert isinstance(line, (cst.SimpleStatementLine, cst.SimpleStatementSuite))
        result.append(LogStatement(node, line, block, ast_node, text, calls))
    return result
