"""Recognizing `flor.<attribute>(...)` calls, in `ast` and in libcst trees: one definition
for propagation (which statements log) and replay (where they sit, which loop is flor's)."""

from __future__ import annotations

import ast

import libcst as cst


def is_flor_call(node: cst.CSTNode | None, attribute: str = "log") -> bool:
    """`node` (libcst) is a call of `flor.<attribute>`."""
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and isinstance(node.func.value, cst.Name)
        and node.func.value.value == "flor"
        and node.func.attr.value == attribute
    )


def is_flor_ast_call(node: ast.AST, attribute: str = "log") -> bool:
    """`node` (`ast`) is a call of `flor.<attribute>`."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "flor"
        and node.func.attr == attribute
    )
