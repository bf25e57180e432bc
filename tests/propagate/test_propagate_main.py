"""The file form `python -m flor.propagate`, as the suite's scorer runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flor.propagate.__main__ import main


def _write(tmp_path: Path, new: str, old: str) -> tuple[Path, Path, Path]:
    (tmp_path / "new.py").write_text(new, encoding="utf-8")
    (tmp_path / "old.py").write_text(old, encoding="utf-8")
    return tmp_path / "new.py", tmp_path / "old.py", tmp_path / "out.py"


def _run(new: Path, old: Path, out: Path, *extra: str) -> int:
    return main(["--source", str(new), "--target", str(old), "--output", str(out), *extra])


def test_writes_the_output_and_exits_zero(tmp_path: Path) -> None:
    new, old, out = _write(
        tmp_path, "import flor\nx = 1\nflor.log('x', x)\n", "import flor\nx = 2\n"
    )
    assert _run(new, old, out) == 0
    assert out.read_text() == "import flor\nx = 2\nflor.log('x', x)\n"


def test_declines_with_one_line_per_statement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new, old, out = _write(
        tmp_path, "import flor\na, b = 1, 2\nflor.log('a', a)\nflor.log('b', b)\n", "import flor\n"
    )
    assert _run(new, old, out) == 1
    assert not out.exists()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(line.startswith("declined: flor.log(") for line in lines)


def test_bad_target_prints_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new, old, out = _write(tmp_path, "x = 1\n", "def (:\n")
    assert _run(new, old, out) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "target does not parse at line 1" in err


def test_non_utf8_and_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new, old, out = _write(tmp_path, "x = 1\n", "x = 1\n")
    old.write_bytes(b"\xff\xfe\x00x = 1\n")
    assert _run(new, old, out) == 1
    assert "not UTF-8" in capsys.readouterr().err
    assert _run(tmp_path / "nope.py", old, out) == 1
    assert "cannot be read" in capsys.readouterr().err


def test_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new, old, out = _write(tmp_path, "import flor\nflor.log('a', 1)\n", "import flor\n")
    assert _run(new, old, out, "--report", "json") == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["outcomes"][0]["kind"] == "placed"


def test_module_runs_without_traceback(tmp_path: Path) -> None:
    new, old, out = _write(tmp_path, "import flor\nflor.log(n, 1)\n", "import flor\n")
    done = subprocess.run(
        [sys.executable, "-m", "flor.propagate", "--source", str(new), "--target", str(old)]
        + ["--output", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "string-literal name" in done.stderr


def test_importing_the_package_is_light() -> None:
    code = "import sys, flor.propagate; print('libcst' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("new", "old"),
    [
        ("import flor\nx = 1\nflor.log('x', x)\n", "import flor\nx = 2\n"),  # placed
        ("import flor\nflor.log('a', a)\n", "import flor\n"),  # declined
        ("x = 1\n", "def (:\n"),  # target does not parse
        ("x = 1\n", b"\xff\xfe\x00x = 1\n"),  # target is not UTF-8
    ],
)
def test_the_cli_and_the_module_print_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], new: str, old: str | bytes
) -> None:
    from click.testing import CliRunner

    from flor.cli import main as cli

    source, target, out = _write(tmp_path, new, "")
    if isinstance(old, bytes):
        target.write_bytes(old)
    else:
        target.write_text(old, encoding="utf-8")
    code = _run(source, target, out)
    printed = capsys.readouterr()
    written = out.read_text() if out.exists() else None
    out.unlink(missing_ok=True)
    args = ["propagate", "--source", str(source), "--target", str(target), "--output", str(out)]
    done = CliRunner().invoke(cli, args)
    assert (done.exit_code, done.stdout, done.stderr) == (code, printed.out, printed.err)
    assert (out.read_text() if out.exists() else None) == written


def test_propagation_is_pure_no_store_runtime_git_or_ui() -> None:
    """Every module of flor.propagate loads nothing of the store, the runtime (beyond what
    `import flor` itself loads), git, replay or the command line."""
    code = """
import importlib, pkgutil, sys
import flor
before = set(sys.modules)
import flor.propagate as p
for m in pkgutil.iter_modules(p.__path__):
    importlib.import_module(f"flor.propagate.{m.name}")
banned = ("flor.store", "flor.runtime", "flor.replay", "flor.vcs", "flor.cli", "git", "click",
          "rich", "pandas")
print(sorted(m for m in set(sys.modules) - before if m.startswith(banned)))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
