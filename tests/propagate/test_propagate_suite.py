"""The public suite through the Python API, judged as `score.py` judges the file form."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from flor.errors import PropagateError
from flor.propagate import propagate_source


def _judge(case: Path) -> str:
    new = (case / "new.py").read_text(encoding="utf-8")
    old = (case / "old.py").read_text(encoding="utf-8")
    try:
        result = propagate_source(new, old)
    except PropagateError:
        return "PASS" if (case / "expected_none").exists() else "MISSED"
    try:
        out = ast.dump(ast.parse(result.source))
    except SyntaxError:
        return "CORRUPT"
    if (case / "expected_none").exists():
        return "PASS" if not result.ok or out == ast.dump(ast.parse(old)) else "FALSE_PLACE"
    if not result.ok:
        return "MISSED"
    expected = ast.dump(ast.parse((case / "expected.py").read_text(encoding="utf-8")))
    if out == expected:
        return "PASS"
    return "MISSED" if result.source == old else "WRONG"


def test_public_suite_passes_at_least_95_percent(suite_dir: Path) -> None:
    cases = sorted(p for p in suite_dir.iterdir() if (p / "case.json").exists())
    verdicts = {case.name: _judge(case) for case in cases}
    failed = {name: v for name, v in verdicts.items() if v != "PASS"}
    assert "CORRUPT" not in failed.values(), failed
    assert len(cases) - len(failed) >= 0.95 * len(cases), failed


def test_placed_lines_are_exactly_expected(suite_dir: Path) -> None:
    """Formatting fidelity: outputs equal expected.py byte for byte (trailing spaces aside)."""
    for case in sorted(suite_dir.iterdir()):
        expected_path = case / "expected.py"
        if not expected_path.exists():
            continue
        result = propagate_source(
            (case / "new.py").read_text(encoding="utf-8"),
            (case / "old.py").read_text(encoding="utf-8"),
        )
        got = [line.rstrip() for line in result.source.splitlines()]
        want = [line.rstrip() for line in expected_path.read_text(encoding="utf-8").splitlines()]
        assert got == want, case.name
        statements = json.loads((case / "case.json").read_text(encoding="utf-8"))["statements"]
        assert len(result.outcomes) >= len(statements)
