"""The command line: formats, errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner
from gitutil import git

import flor
from flor.cli import main

TRAIN = """
import flor
lr = flor.arg("lr", 0.01)
for e in flor.loop("epoch", range(3)):
    flor.log("acc", 0.5 + e / 10)
"""


def test_dataframe_in_every_format(script) -> None:
    script("train.py", TRAIN).run("--kwargs", "lr=0.5")
    runner = CliRunner()
    table = runner.invoke(main, ["dataframe", "acc", "lr"])
    assert table.exit_code == 0 and "acc" in table.output and "0.7" in table.output
    as_json = json.loads(runner.invoke(main, ["dataframe", "acc", "lr", "--format", "json"]).output)
    assert [r["acc"] for r in as_json] == [0.5, 0.6, 0.7] and as_json[0]["lr"] == 0.5
    csv = runner.invoke(main, ["dataframe", "acc", "--format", "csv"]).output.splitlines()
    assert csv[0] == "projid,runid,tstamp,filename,epoch,acc" and len(csv) == 4


def test_dataframe_of_a_name_no_run_logged_is_an_error_naming_the_close_one(script) -> None:
    script("train.py", TRAIN).run()
    runner = CliRunner()
    typo = runner.invoke(main, ["dataframe", "acx", "--format", "csv"])
    assert typo.exit_code == 2 and typo.output.count("\n") == 1
    assert "'acx'" in typo.output and "did you mean 'acc'?" in typo.output
    partly = runner.invoke(main, ["dataframe", "acc", "acx", "--format", "csv"])
    assert partly.exit_code == 0 and "note: no values logged under acx" in partly.output
    assert partly.output.splitlines()[0] == "projid,runid,tstamp,filename,epoch,acc,acx"


def test_json_floats_read_back_bit_for_bit_and_non_finite_values_are_explicit(script) -> None:
    script(
        "train.py",
        """
import flor
for e in flor.loop("epoch", range(4)):
    flor.log("x", [1 / 3 + 1e-12, 0.1 + 0.2, float("inf"), float("nan")][e])
""",
    ).run()
    out = CliRunner().invoke(main, ["dataframe", "x", "--format", "json"]).output

    def strict(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    rows = json.loads(out, parse_constant=strict)
    assert [r["x"] for r in rows] == [1 / 3 + 1e-12, 0.1 + 0.2, "Infinity", None]


def test_runs_and_show(script) -> None:
    script("train.py", TRAIN).run("--kwargs", "lr=0.5")
    runner = CliRunner()
    listed = json.loads(runner.invoke(main, ["runs", "--format", "json"]).output)
    assert len(listed) == 1
    run = listed[0]
    assert run["filename"] == "train.py" and run["status"] == "finished"
    assert run["args"] == "lr=0.5" and len(run["commit"]) == 10
    shown = runner.invoke(main, ["show", run["run_id"][:6], "--format", "json"])

    def strict(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    detail = json.loads(shown.output, parse_constant=strict)
    assert detail["run_id"] == run["run_id"] and detail["logged"] == {"acc": 3, "lr": 1}


def test_unknown_name_gives_an_empty_column_and_a_note(script) -> None:
    script("train.py", TRAIN).run()
    result = CliRunner().invoke(main, ["dataframe", "acc", "nosuch"])
    assert result.exit_code == 0
    assert "nosuch" in result.output and "no values logged under nosuch" in result.output


def test_query_errors_are_one_line_with_exit_2(script) -> None:
    script("train.py", TRAIN).run()
    runner = CliRunner()
    for sql in ("DELETE FROM logs", "SELEC 1"):
        result = runner.invoke(main, ["query", sql])
        assert result.exit_code == 2
        assert result.output.count("\n") == 1 and result.output.startswith("Error: ")
    ok = runner.invoke(main, ["query", "SELECT COUNT(*) AS n FROM logs", "--format", "csv"])
    assert ok.output == "n\n4\n"


def test_outside_a_git_repository(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["runs"])
    assert result.exit_code == 2 and "not inside a git repository" in result.output


def test_show_unknown_run(script) -> None:
    script("train.py", TRAIN).run()
    result = CliRunner().invoke(main, ["show", "zzzz"])
    assert result.exit_code == 2 and "no run with id 'zzzz'" in result.output


def test_importing_flor_loads_nothing_heavy() -> None:
    code = (
        "import sys, flor; heavy = {'pandas', 'git', 'libcst', 'torch', 'numpy', 'joblib',"
        " 'rich', 'click'}; print(sorted(heavy & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]"


def test_propagate_file_form_reports_an_unwritable_output(tmp_path) -> None:
    old = tmp_path / "old.py"
    new = tmp_path / "new.py"
    old.write_text("import flor\nfor i in flor.loop('i', range(3)):\n    x = i * 2\n")
    new.write_text(old.read_text() + "    flor.log('x', x)\n")
    out = tmp_path / "missing" / "out.py"
    result = CliRunner().invoke(main, ["propagate", "--source", str(new), "--target", str(old),
                                       "--output", str(out)])  # fmt: skip
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "cannot write" in result.output and not out.exists()


def test_propagate_repository_form_selects_versions_by_run_and_since(script, repo) -> None:
    train = script("train.py", TRAIN)
    train.run()
    train.path.write_text(TRAIN.replace("range(3)", "range(2)"))
    train.run()
    first, second = flor.query("SELECT run_id FROM runs ORDER BY started")["run_id"]
    train.path.write_text(TRAIN + "    flor.log('double', e * 2)\n")
    runner = CliRunner()

    def versions(*args: str) -> list[dict]:  # type: ignore[type-arg]
        result = runner.invoke(main, ["propagate", "train.py", "--format", "json", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    every = versions("--dry-run")
    assert [v["version"] for v in every] == [f"run {first}", f"run {second}"]
    assert all(v["inserted"] == 1 and v["declined"] == 0 for v in every)
    assert [v["version"] for v in versions("--runs", first[:6], "--dry-run")] == [f"run {first}"]
    assert [v["version"] for v in versions("--since", second)] == [f"run {second}"]
    stored = list((repo / ".flor" / "propagated").rglob("train.py"))
    assert len(stored) == 1 and "flor.log('double'" in stored[0].read_text()
    assert train.path.read_text() == TRAIN + "    flor.log('double', e * 2)\n"
    assert git(repo, "status", "--porcelain") == "?? train.py\n"
