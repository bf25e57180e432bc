"""Recording: logs, args, loops, run status, crash behaviour, concurrency."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from gitutil import default_sigint

import flor

TRAIN = """
import flor
lr = flor.arg("lr", 0.01)
epochs = flor.arg("epochs", 3)
name = flor.arg("name", "base")
for e in flor.loop("epoch", range(epochs)):
    for s in flor.loop("step", range(4)):
        flor.log("loss", lr * (e + 1) / (s + 1))
    flor.log("acc", 0.5 + e / 10)
flor.log("final", "done")
"""


def test_values_come_back_pivoted_by_run_and_loop(script) -> None:
    train = script("train.py", TRAIN)
    train.run("--kwargs", "lr=0.1", "epochs=2")
    train.run()
    df = flor.dataframe("loss", "acc", "lr")
    assert list(df.columns) == [
        "projid",
        "runid",
        "tstamp",
        "filename",
        "epoch",
        "step",
        "loss",
        "acc",
        "lr",
    ]
    assert len(df) == 2 * 4 + 3 * 4
    assert df["filename"].unique().tolist() == ["train.py"]
    first = df[df["runid"] == df["runid"].iloc[0]]
    assert first["lr"].unique().tolist() == [0.1]
    row = first[(first["epoch"] == 1) & (first["step"] == 3)].iloc[0]
    assert row["loss"] == pytest.approx(0.1 * 2 / 4)
    assert row["acc"] == pytest.approx(0.6)
    assert df["loss"].dtype.kind == "f" and df["epoch"].dtype.name == "Int64"


def test_no_names_gives_one_row_per_run_with_top_level_values(script) -> None:
    train = script("train.py", TRAIN)
    train.run("--kwargs", "epochs=1", "name=x")
    train.run()
    df = flor.dataframe()
    assert len(df) == 2
    assert set(df.columns) >= {"lr", "epochs", "name", "final"}
    assert sorted(df["epochs"].tolist()) == [1, 3]
    assert "loss" not in df.columns


def test_names_at_different_depths_outer_join(script) -> None:
    script(
        "t.py",
        """
        import flor
        for e in flor.loop("epoch", range(2)):
            flor.log("eacc", e)
            if e == 0:
                continue
            for s in flor.loop("step", range(2)):
                flor.log("loss", s)
        """,
    ).run()
    df = flor.dataframe("loss", "eacc")
    epoch0 = df[df["epoch"] == 0]
    assert len(epoch0) == 1 and pd.isna(epoch0["step"].iloc[0]) and epoch0["eacc"].iloc[0] == 0
    assert df[df["epoch"] == 1]["loss"].tolist() == [0, 1]


def test_loop_value_column_for_non_integer_iterables_and_generators(script) -> None:
    script(
        "docs.py",
        """
        import flor
        def pages():
            yield from ("p1", "p2")
        for d in flor.loop("document", ["a.pdf", "b.pdf"]):
            for p in flor.loop("page", pages()):
                flor.log("text", d + p)
        """,
    ).run()
    df = flor.dataframe("text")
    assert df["document_value"].tolist() == ["a.pdf", "a.pdf", "b.pdf", "b.pdf"]
    assert df["page"].tolist() == [0, 1, 0, 1]
    assert df["text"].tolist() == ["a.pdfp1", "a.pdfp2", "b.pdfp1", "b.pdfp2"]
    assert "epoch_value" not in df.columns


def test_deep_nesting_break_and_log_outside_loops(script) -> None:
    script(
        "deep.py",
        """
        import flor
        flor.log("before", 1)
        for a in flor.loop("a", range(2)):
            for b in flor.loop("b", range(3)):
                for c in flor.loop("c", range(5)):
                    if c == 2:
                        break
                    flor.log("x", a * 100 + b * 10 + c)
            flor.log("after_b", a)
        flor.log("after", 2)
        """,
    ).run()
    df = flor.dataframe("x", "after_b", "before", "after")
    assert len(df) == 2 * 3 * 2
    assert set(df["c"]) == {0, 1}
    assert df["before"].unique().tolist() == [1] and df["after"].unique().tolist() == [2]
    assert df[(df["a"] == 1) & (df["b"] == 2) & (df["c"] == 1)]["x"].item() == 121


def test_non_json_values_are_stored_with_a_type_tag(script) -> None:
    script(
        "odd.py",
        """
        import flor, numpy as np
        class Thing:
            def __repr__(self):
                return "<thing>"
        flor.log("thing", Thing())
        flor.log("np_scalar", np.float32(1.5))
        flor.log("array", np.arange(3))
        flor.log("nan", float("nan"))
        flor.log("nested", {"a": [1, 2]})
        flor.log("none", None)
        flor.log("flag", True)
        """,
    ).run()
    df = flor.dataframe()
    row = df.iloc[0]
    assert row["thing"] == "<thing>"
    assert row["np_scalar"] == 1.5
    assert row["array"] == [0, 1, 2]
    assert math.isnan(row["nan"])
    assert row["nested"] == {"a": [1, 2]}
    assert row["none"] is None and row["flag"] is True or row["flag"] == True  # noqa: E712
    kinds = dict(flor.query("SELECT name, type FROM logs").values.tolist())
    assert kinds["thing"].startswith("repr:") and kinds["thing"].endswith("Thing")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kwargs", "lr"], "--kwargs expects name=value pairs"),
        (["--kwargs", "epochs=three"], "cannot be read as int"),
        (["--kwargs", "lrr=0.1"], "lrr named no flor.arg"),
    ],
)
def test_bad_kwargs_fail_with_one_line_and_exit_2(script, args, message) -> None:
    done = script("train.py", TRAIN).run(*args, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    statuses = flor.query("SELECT status FROM runs")["status"].tolist() if args[1] != "lr" else []
    assert set(statuses) <= {"failed"}  # a run stopped by bad arguments is not "finished"


def test_kwargs_are_cast_to_the_default_type(script) -> None:
    script(
        "cast.py",
        """
        import flor
        flor.log("types", [type(flor.arg(n, d)).__name__ for n, d in
                           [("i", 1), ("f", 1.0), ("b", False), ("s", "x"), ("l", [1])]])
        """,
    ).run("--kwargs", "i=3", "f=2", "b=true", "s=7", "l=[1,2]", "--other")
    assert flor.dataframe("types")["types"].item() == ["int", "float", "bool", "str", "list"]
    args = flor.dataframe("i", "f", "b", "s", "l").iloc[0]
    assert (args["i"], args["f"], args["b"], args["s"], args["l"]) == (3, 2.0, True, "7", [1, 2])


def _status(run_index: int = 0) -> str:
    from flor.store import reader

    return str(reader.runs().iloc[run_index]["status"])


def test_exception_marks_run_failed_and_keeps_logs(script) -> None:
    done = script(
        "boom.py",
        """
        import flor
        for i in flor.loop("i", range(10)):
            flor.log("v", i)
            if i == 4:
                raise RuntimeError("boom")
        """,
    ).run(check=False)
    assert done.returncode == 1 and "RuntimeError: boom" in done.stderr
    assert flor.dataframe("v")["v"].tolist() == [0, 1, 2, 3, 4]
    assert _status() == "failed"
    assert "boom" in flor.query("SELECT error FROM runs")["error"].item()


SLOW = """
import time, flor
for i in flor.loop("i", range(1000)):
    flor.log("v", i)
    print(i, flush=True)
    time.sleep(0.05)
"""


def _start_and_wait(script, lines: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        script("slow.py", SLOW).command(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    assert proc.stdout is not None
    for _ in range(lines):
        proc.stdout.readline()
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_mark_killed_and_keep_every_log(script, sig) -> None:
    proc = _start_and_wait(script, 20)
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=30)
    printed = 20 + len(rest.split())
    values = flor.dataframe("v")["v"].tolist()
    assert values == list(range(len(values))) and len(values) >= printed - 1
    assert _status() == "killed"


def test_sigkill_keeps_all_but_the_last_second_and_is_recognised_as_killed(script) -> None:
    proc = _start_and_wait(script, 40)
    time.sleep(1.5)
    proc.kill()
    rest, _ = proc.communicate(timeout=30)
    printed = 40 + len(rest.split())
    values = flor.dataframe("v")["v"].tolist()
    # at 20 iterations per second, one second of logs is about 20 values
    assert values == list(range(len(values))) and len(values) >= printed - 25
    assert _status() == "killed"


def test_several_processes_record_into_one_store_at_once(script) -> None:
    writer = script(
        "writer.py",
        """
        import flor
        tag = flor.arg("tag", 0)
        for i in flor.loop("i", range(3000)):
            flor.log("v", tag * 100000 + i)
        """,
    )
    procs = [subprocess.Popen(writer.command("--kwargs", f"tag={t}")) for t in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    df = flor.dataframe("v")
    assert len(df) == 4 * 3000 and df["v"].nunique() == 4 * 3000
    assert set(flor.query("SELECT status FROM runs")["status"]) == {"finished"}


def test_a_run_outside_git_records_without_snapshot(tmp_path: Path) -> None:
    (tmp_path / "s.py").write_text("import flor\nflor.log('x', 1)\n")
    done = subprocess.run(
        [sys.executable, "s.py"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert "not inside a git repository" in done.stderr and done.stderr.count("\n") == 1
    assert (tmp_path / ".flor" / "flor.db").exists()


def test_iteration_and_commit_for_long_running_processes(script) -> None:
    script(
        "app.py",
        """
        import flor
        for request in range(3):
            with flor.iteration("document", None, f"doc{request}"):
                flor.log("label", request)
            flor.commit()
        """,
    ).run()
    df = flor.dataframe("label")
    assert df["label"].tolist() == [0, 1, 2]
    assert df["document_value"].tolist() == ["doc0", "doc1", "doc2"]
    assert df["tstamp"].nunique() == 3


def test_a_logged_value_is_what_it_held_at_the_call_not_at_the_flush(script) -> None:
    script(
        "train.py",
        """
import numpy as np
import torch
import flor
history, weights, t = [], np.zeros(2), torch.zeros(2)
for e in flor.loop("epoch", range(3)):
    history.append(e)
    weights += 1
    t += 2
    flor.log("history", history)
    flor.log("weights", weights)
    flor.log("t", t)
""",
    ).run()
    df = flor.dataframe("history", "weights", "t")
    assert df["history"].tolist() == [[0], [0, 1], [0, 1, 2]]
    assert df["weights"].tolist() == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
    assert df["t"].tolist() == [[2.0, 2.0], [4.0, 4.0], [6.0, 6.0]]
