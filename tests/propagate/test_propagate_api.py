"""`propagate_source` end to end on small before/after programs (codemod style)."""

from __future__ import annotations

import json
import textwrap

import pytest

from flor.errors import PropagateError, UsageError
from flor.propagate import (
    MATCHERS,
    AlreadyPresent,
    Declined,
    Placed,
    logged_names,
    propagate_source,
)


def d(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


def assert_propagates(new: str, old: str, expected: str) -> None:
    result = propagate_source(d(new), d(old))
    assert result.ok, result.outcomes
    assert result.source == d(expected)


def test_inserts_after_the_preceding_sibling() -> None:
    assert_propagates(
        """
        import flor
        for x in data:
            out = model(x)
            flor.log("out", out.mean())
            loss = crit(out)
        """,
        """
        import flor
        for x in data:
            print("hi")
            out = model(x)
            loss = crit(out)
        """,
        """
        import flor
        for x in data:
            print("hi")
            out = model(x)
            flor.log("out", out.mean())
            loss = crit(out)
        """,
    )


def test_first_statement_goes_before_the_following_sibling() -> None:
    assert_propagates(
        """
        import flor
        for x in data:
            flor.log("n", len(x))
            step(x)
        """,
        """
        import flor
        for x in data:
            # comment of step
            step(x)
        """,
        """
        import flor
        for x in data:
            flor.log("n", len(x))
            # comment of step
            step(x)
        """,
    )


def test_two_statements_keep_their_order_at_one_anchor() -> None:
    result = propagate_source(
        d(
            """
            import flor
            a = 1
            flor.log("a", a)
            flor.log("b", a + 1)
            """
        ),
        d("import flor\na = 1\nprint(a)\n"),
    )
    assert result.source == 'import flor\na = 1\nflor.log("a", a)\nflor.log("b", a + 1)\nprint(a)\n'
    assert [o.line for o in result.outcomes if isinstance(o, Placed)] == [3, 4]


def test_renames_through_matched_bindings_but_not_strings() -> None:
    assert_propagates(
        """
        import flor
        net = MLP(20, 4)
        for inputs, y in loader:
            out = net(inputs)
            flor.log("net_inputs", net(inputs).sum())
        """,
        """
        import flor
        model = MLP(20, 4)
        for x, y in loader:
            out = model(x)
        """,
        """
        import flor
        model = MLP(20, 4)
        for x, y in loader:
            out = model(x)
            flor.log("net_inputs", model(x).sum())
        """,
    )


def test_renames_a_parameter_in_a_method() -> None:
    new = """
    import flor
    class Trainer:
        def step(self, batch):
            out = self.model(batch)
            flor.log("size", len(batch))
            return out
    """
    old = """
    import flor
    class Trainer:
        def step(self, b):
            out = self.model(b)
            return out
    """
    result = propagate_source(d(new), d(old))
    assert 'flor.log("size", len(b))' in result.source
    placed = result.outcomes[0]
    assert isinstance(placed, Placed) and placed.renames == {"batch": "b"}


def test_nested_function_statement() -> None:
    assert_propagates(
        """
        import flor
        def outer(xs):
            def inner(x):
                y = x * 2
                flor.log("y", y)
                return y
            return [inner(x) for x in xs]
        """,
        """
        import flor
        def outer(xs):
            def inner(x):
                y = x * 2
                return y
            return list(map(inner, xs))
        """,
        """
        import flor
        def outer(xs):
            def inner(x):
                y = x * 2
                flor.log("y", y)
                return y
            return list(map(inner, xs))
        """,
    )


def test_block_wrapped_only_in_old_and_only_in_new() -> None:
    assert_propagates(
        """
        import flor
        for epoch in range(3):
            with torch.no_grad():
                acc = evaluate()
                flor.log("acc", acc)
        """,
        """
        import flor
        for epoch in range(3):
            if epoch % 2:
                acc = evaluate()
                print(acc)
        """,
        """
        import flor
        for epoch in range(3):
            if epoch % 2:
                acc = evaluate()
                flor.log("acc", acc)
                print(acc)
        """,
    )


def test_wraps_old_own_expression() -> None:
    assert_propagates(
        """
        import flor
        for x, y in data:
            loss = flor.log("loss", crit(model(x), y))
            loss.backward()
        def evaluate():
            return flor.log("acc", 0.5)
        """,
        """
        import flor
        for x, y in data:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
        def evaluate():
            return 0.25
        """,
        """
        import flor
        for x, y in data:
            loss = flor.log("loss", F.cross_entropy(model(x), y))
            loss.backward()
        def evaluate():
            return flor.log("acc", 0.25)
        """,
    )


def test_already_present_statement_is_not_added() -> None:
    new = 'import flor\nacc = 1\nflor.log("acc", acc)\n'
    old = "import flor\nacc = 1\nflor.log('acc', acc)  # since v1\n"
    result = propagate_source(new, old)
    assert result.source == old and result.ok and not result.changed
    assert result.outcomes == [AlreadyPresent('flor.log("acc", acc)')]


def test_adds_import_flor_after_the_imports() -> None:
    assert_propagates(
        '''
        """Doc."""
        import flor
        import torch
        x = torch.ones(3)
        flor.log("x", x.sum())
        ''',
        '''
        """Doc."""
        import torch

        x = torch.ones(3)
        ''',
        '''
        """Doc."""
        import torch
        import flor

        x = torch.ones(3)
        flor.log("x", x.sum())
        ''',
    )


def test_uses_the_old_files_indentation_unit() -> None:
    assert_propagates(
        """
        import flor
        for x in data:
            y = f(x)
            flor.log("y", y)
        """,
        """
        import flor
        for x in data:
          y = f(x)
          g(y)
        """,
        """
        import flor
        for x in data:
          y = f(x)
          flor.log("y", y)
          g(y)
        """,
    )


def test_declines_when_a_name_is_not_bound() -> None:
    new = "import flor\nfor x in d:\n    gn = clip(x)\n    flor.log('gn', gn)\n"
    old = "import flor\nfor x in d:\n    step(x)\n"
    result = propagate_source(new, old)
    assert not result.ok and result.source == old and not result.changed
    (outcome,) = result.outcomes
    assert isinstance(outcome, Declined) and "`gn`" in outcome.reason


def test_declines_a_name_bound_only_after_the_insertion_point() -> None:
    new = "import flor\nfor x in d:\n    r = g(x)\n    flor.log('r', r)\n    step(x)\n"
    old = "import flor\nfor x in d:\n    step(x)\n    r = g(x)\n"
    result = propagate_source(new, old)
    assert result.ok  # anchor is r = g(x) itself, after which r is bound
    assert result.source.splitlines()[-1] == "    flor.log('r', r)"


def test_declines_when_the_enclosing_loop_has_no_image() -> None:
    new = "import flor\nfor x in d:\n    flor.log('x', x)\n"
    old = "import flor\nx = 1\n"
    result = propagate_source(new, old)
    (outcome,) = result.outcomes
    assert isinstance(outcome, Declined) and "loop" in outcome.reason


def test_one_declined_statement_declines_the_whole_file() -> None:
    new = "import flor\na = 1\nflor.log('a', a)\nb = 2\nflor.log('b', b)\n"
    old = "import flor\na = 1\n"
    result = propagate_source(new, old)
    assert result.source == old
    first, second = result.outcomes
    assert isinstance(first, Declined) and "another statement" in first.reason
    assert isinstance(second, Declined) and "`b` is not bound" in second.reason
    assert json.loads(json.dumps(result.to_dict()))["ok"] is False


def test_to_dict_reports_line_renames_and_wrapped() -> None:
    new = "import flor\nnet = M()\nflor.log('w', net.w)\n"
    old = "import flor\nmodel = M()\n"
    data = propagate_source(new, old).to_dict()
    assert data == {
        "ok": True,
        "outcomes": [
            {
                "kind": "placed",
                "statement": "flor.log('w', model.w)",
                "line": 3,
                "old_line": 2,
                "renames": {"net": "model"},
                "wrapped": False,
            }
        ],
    }


def test_nothing_to_add_returns_old_unchanged() -> None:
    old = "x = 1\n"
    result = propagate_source("x = 2\n", old)
    assert result.source == old and result.outcomes == [] and result.ok


@pytest.mark.parametrize("matcher", ["tree", "difflib"])
def test_matchers_agree_on_a_simple_case(matcher: str) -> None:
    new = "import flor\nfor x in d:\n    y = f(x)\n    flor.log('y', y)\n"
    old = "import flor\nfor x in d:\n    y = f(x)\n"
    assert propagate_source(new, old, matcher=matcher).source == new


def test_matcher_names() -> None:
    assert MATCHERS == ("tree", "difflib", "gumtree")


def test_unknown_matcher_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="Unknown matcher"):
        propagate_source("x = 1\n", "x = 1\n", matcher="nope")


def test_gumtree_missing_has_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(PropagateError, match="GumTree is not installed: put the `gumtree`"):
        propagate_source("x = 1\n", "x = 1\n", matcher="gumtree")


@pytest.mark.parametrize(
    ("new", "old", "which"),
    [("x = (\n", "x = 1\n", "source"), ("x = 1\n", "def f(:\n", "target")],
)
def test_syntax_errors_name_the_version_and_line(new: str, old: str, which: str) -> None:
    with pytest.raises(PropagateError, match=f"the {which} does not parse at line 1"):
        propagate_source(new, old)


def test_non_literal_log_name_is_an_error() -> None:
    new = "import flor\nname = 'a'\nflor.log(name, 1)\n"
    with pytest.raises(PropagateError, match="line 3 has no string-literal name"):
        propagate_source(new, "import flor\nname = 'a'\n")


def test_bytes_and_nul_input_raise_propagate_error() -> None:
    with pytest.raises(PropagateError):
        propagate_source(b"x = 1\n", "x = 1\n")  # type: ignore[arg-type]
    with pytest.raises(PropagateError):
        propagate_source("x = 1\n", "x = '\0'\n\0")


def test_logged_names() -> None:
    src = d(
        """
        import flor
        flor.log("a", 1)
        loss = flor.log('b', 2)
        flor.log("a", 3)
        flor.log(f"c{1}", 4)
        """
    )
    assert logged_names(src) == ["a", "b"]
    with pytest.raises(PropagateError):
        logged_names("def (:\n")


SPLICE_CASES = [
    (
        "# header\nimport flor\n\n@dec\n# between\n@dec2(1)\ndef f(x):\n    y = x\n"
        "    flor.log('y', y)\n    return y  # tail\n",
        "# header\n\n# c\n@dec\n# between\n@dec2(1)\ndef f(x):\n    y = x\n    return y  # tail\n",
    ),
    ("import flor\nx = 1\nflor.log('x', x)\n", "x = 1"),
    ("import flor\nx = 1\nflor.log('x', x)\n", "x = 1\n# trailing comment\n\n"),
    ("import flor\nx = 1; y = 2\nflor.log('y', y)\n", "import flor\nx = 1; y = 2\nz = 3\n"),
    (
        "import flor\nclass A:\n    def m(self):\n        v = 1\n        flor.log('v', v)\n",
        "import flor\n\n\nclass A:\n    '''doc'''\n\n    def m(self):\n        v = 1\n\n\n# end\n",
    ),
]


@pytest.mark.parametrize(("new", "old"), SPLICE_CASES)
def test_spliced_output_equals_full_generation(
    new: str, old: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flor.propagate.engine as engine

    spliced = propagate_source(new, old)
    assert spliced.ok and spliced.changed
    monkeypatch.setattr(engine, "splice", lambda *args, **kwargs: None)
    generated = propagate_source(new, old)
    assert spliced.source == generated.source
    assert spliced.to_dict() == generated.to_dict()


def test_first_in_a_function_goes_after_its_docstring() -> None:
    new = 'import flor\ndef f(x):\n    flor.log("x", x)\n'
    old = 'import flor\ndef f(x):\n    """Doc."""\n    return x\n'
    result = propagate_source(new, old)
    assert (
        result.source
        == 'import flor\ndef f(x):\n    """Doc."""\n    flor.log("x", x)\n    return x\n'
    )


def test_elif_and_try_blocks() -> None:
    new = d(
        """
        import flor
        for i in range(3):
            if i:
                a = 1
            elif i > 2:
                b = 2
                flor.log("b", b)
            else:
                try:
                    c = 3
                    flor.log("c", c)
                except ValueError:
                    pass
        """
    )
    old = "\n".join(line for line in new.splitlines() if "flor.log" not in line) + "\n"
    result = propagate_source(new, old)
    assert result.source == new
    assert [o.line for o in result.outcomes if isinstance(o, Placed)] == [7, 11]


def test_statement_in_an_except_block_without_counterpart_is_declined() -> None:
    new = "import flor\ntry:\n    x = f()\nexcept E as e:\n    flor.log('err', str(e))\n"
    old = "import flor\nx = f()\n"
    (outcome,) = propagate_source(new, old).outcomes
    assert isinstance(outcome, Declined) and "except block" in outcome.reason
