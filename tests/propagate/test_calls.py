"""`flor.<attribute>(...)` call detection, shared by propagation and replay."""

from __future__ import annotations

import ast

import libcst as cst
import pytest

from flor.propagate.calls import is_flor_ast_call, is_flor_call

CASES = [
    ("flor.log('x', x)", "log", True),
    ("flor.loop('epoch', range(3))", "loop", True),
    ("flor.loop('epoch', range(3))", "log", False),
    ("logger.log('x', x)", "log", False),
    ("flor.utils.log('x', x)", "log", False),
    ("flor.log", "log", False),  # named, not called
    ("log('x', x)", "log", False),
]


@pytest.mark.parametrize(("code", "attribute", "expected"), CASES)
def test_ast_and_libcst_agree_on_what_a_flor_call_is(
    code: str, attribute: str, expected: bool
) -> None:
    assert is_flor_ast_call(ast.parse(code, mode="eval").body, attribute) is expected
    assert is_flor_call(cst.parse_expression(code), attribute) is expected
