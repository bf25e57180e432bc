"""Property tests: no-op on identical files, outputs always parse, only our errors escape."""

from __future__ import annotations

import ast
import contextlib
import difflib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flor.errors import PropagateError, UsageError
from flor.propagate import AlreadyPresent, Declined, Placed, propagate_source

NAMES = ["x", "y", "loss", "net", "model", "acc", "batch", "i"]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def simple(draw: st.DrawFn, logs: bool = True) -> str:
    a, b, c = (draw(st.sampled_from(NAMES)) for _ in range(3))
    forms = [
        f"{a} = {b} + 1",
        f"{a} = f({b}, {c})",
        f"{a}.step()",
        f"print({a})",
        f"{a} += {b}",
        f"{a}, {b} = g({c})",
    ]
    if logs:
        forms += [f'flor.log("{a}", {b})', f'{a} = flor.log("{a}", h({b}))']
    return draw(st.sampled_from(forms))


@st.composite
def block(draw: st.DrawFn, depth: int = 0) -> list[str]:
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        if depth < 2 and draw(st.booleans()):
            header = draw(
                st.sampled_from(
                    [
                        "for i in range(3):",
                        "if x:",
                        "with ctx():",
                        f"def fn{depth}(batch):",
                        "while y:",
                    ]
                )
            )
            lines.append(header)
            lines.extend("    " + line for line in draw(block(depth + 1)))
        else:
            lines.append(draw(simple()))
    return lines


@st.composite
def program(draw: st.DrawFn) -> str:
    return "import flor\n" + "\n".join(draw(block())) + "\n"


@st.composite
def mutated(draw: st.DrawFn, source: str) -> str:
    """An 'older version': drop logs and some lines, rename a name, edit a literal."""
    out: list[str] = []
    for line in source.splitlines():
        stripped = line.strip()
        if "flor.log" in stripped and draw(st.booleans()):
            continue
        if not stripped.endswith(":") and stripped and draw(st.integers(0, 5)) == 0:
            continue
        out.append(line)
    text = "\n".join(out) + "\n"
    if draw(st.booleans()):
        old, new = draw(st.sampled_from(NAMES)), draw(st.sampled_from(["q", "w", "model"]))
        text = text.replace(f"{old} ", f"{new} ")
    return _repair(text)


def _repair(text: str) -> str:
    """Give every block header that lost its body a `pass`, so the old version parses."""
    lines = text.splitlines()
    fixed: list[str] = []
    for index, line in enumerate(lines):
        fixed.append(line)
        if line.rstrip().endswith(":"):
            indent = len(line) - len(line.lstrip())
            following = lines[index + 1] if index + 1 < len(lines) else ""
            if len(following) - len(following.lstrip()) <= indent or not following.strip():
                fixed.append(" " * (indent + 4) + "pass")
    return "\n".join(fixed) + "\n"


@SETTINGS
@given(program())
def test_propagating_into_an_identical_file_is_a_no_op(source: str) -> None:
    try:
        result = propagate_source(source, source)
    except PropagateError:
        return
    assert result.source == source
    assert result.ok and not result.changed
    assert all(isinstance(o, AlreadyPresent) for o in result.outcomes)


@SETTINGS
@given(st.data())
def test_output_always_parses_and_keeps_old_lines(data: st.DataObject) -> None:
    new = data.draw(program())
    old = data.draw(mutated(new))
    try:
        ast.parse(old)
    except SyntaxError:
        return
    try:
        result = propagate_source(new, old)
    except PropagateError:
        return
    ast.parse(result.source)
    if not result.ok:
        assert result.source == old
        assert any(isinstance(o, Declined) for o in result.outcomes)
        return
    # Only lines were added, or one line changed per wrap.
    wraps = sum(1 for o in result.outcomes if isinstance(o, Placed) and o.wrapped)
    matcher = difflib.SequenceMatcher(None, old.splitlines(), result.source.splitlines())
    removed = sum(i2 - i1 for tag, i1, i2, _, _ in matcher.get_opcodes() if tag != "equal")
    assert removed <= wraps


@settings(max_examples=150, deadline=None)
@given(st.text(), st.text())
def test_only_flor_errors_escape_for_any_text(new: str, old: str) -> None:
    try:
        result = propagate_source(new, old)
    except (PropagateError, UsageError):
        return
    ast.parse(result.source)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_only_flor_errors_escape_for_python_like_text(data: st.DataObject) -> None:
    alphabet = st.sampled_from(
        ["flor.log(", '"a"', ", ", "x", ")", "\n", "    ", "for x in y:", "if x:", "(", "=", "1"]
    )
    new = "".join(data.draw(st.lists(alphabet, max_size=40)))
    old = "".join(data.draw(st.lists(alphabet, max_size=40)))
    with contextlib.suppress(PropagateError, UsageError):
        propagate_source(new, old)
