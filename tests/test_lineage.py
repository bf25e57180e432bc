"""Artifacts and lineage on real scripts: digests, events, the graph, --downstream-of,
keep/checkout, and bad input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import blake3
import pytest
from click.testing import CliRunner
from gitutil import as_user_who_cannot_read_everything, while_first_waits
from store import pgfixtures

import flor
from flor.cli import main
from flor.graph import TargetError, downstream_runs, lineage, write
from flor.runtime import digest
from flor.runtime.digest import StatCache
from flor.store.artifacts import record
from flor.store.writer import StoreWriter

backend, pg_server, pg_url = pgfixtures.backend, pgfixtures.pg_server, pgfixtures.pg_url

PREP = """\
import flor
raw = open(flor.input("data/raw.csv")).read()
with open(flor.output("data/clean.csv"), "w") as f:
    f.write(raw.upper())
"""
TRAIN = """\
import flor
clean = open(flor.input("data/clean.csv")).read()
for epoch in flor.loop("epoch", range(3)):
    with open(flor.output("model.txt"), "w") as f:
        f.write(f"{epoch}:" + clean)
    flor.log("loss", 1.0 / (epoch + 1))
"""


def b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def events(run_id: str | None = None) -> list[dict[str, object]]:
    frame = flor.query("SELECT * FROM events ORDER BY recorded, run_id, seq")
    frame = frame.astype(object).where(frame.notna(), None)
    rows: list[dict[str, object]] = frame.to_dict("records")  # type: ignore[assignment]
    return [r for r in rows if run_id is None or r["run_id"] == run_id]


def runs_of(filename: str) -> list[str]:
    frame = flor.query("SELECT run_id FROM runs WHERE filename = ? ORDER BY started", (filename,))
    return list(frame["run_id"])


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.fixture
def pipeline(repo: Path, script):  # type: ignore[no-untyped-def]
    (repo / "data").mkdir()
    (repo / "data" / "raw.csv").write_text("a,b\n")
    return script("prep.py", PREP), script("train.py", TRAIN)


def test_a_pipeline_run_twice_with_a_data_change_links_runs_by_digest(pipeline, repo) -> None:  # type: ignore[no-untyped-def]
    prep, train = pipeline
    prep.run()
    train.run()
    (repo / "data" / "raw.csv").write_text("a,b\nc,d\n")  # new data
    prep.run()
    train.run()
    prep1, prep2 = runs_of("prep.py")
    train1, train2 = runs_of("train.py")
    old = b3(b"a,b\n")
    clean1, clean2 = b3(b"A,B\n"), b3(b"A,B\nC,D\n")

    got = [(e["role"], e["path"], e["digest"], e["status"]) for e in events(prep1)]
    assert got == [("input", "data/raw.csv", old, "ok"), ("output", "data/clean.csv", clean1, "ok")]
    got = [(e["role"], e["digest"], e["status"], e["ctx_id"]) for e in events(train2)]
    models = [b3(f"{n}:A,B\nC,D\n".encode()) for n in (0, 1, 2)]
    assert got == [
        ("input", clean2, "ok", None),
        ("output", models[0], "replaced", 1),
        ("output", models[1], "replaced", 2),
        ("output", models[2], "ok", 3),
    ]
    assert flor.query(
        "SELECT kind, bytes, files FROM artifacts WHERE digest = ?", (clean2,)
    ).values.tolist() == [["file", 8, 1]]

    # downstream of the old data: the first prep and train runs only, never the second
    assert downstream_runs("data/raw.csv@" + old[:10]) == [prep1, train1]
    assert downstream_runs(f"data/raw.csv@{prep2}") == [prep2, train2]
    assert downstream_runs("data/raw.csv") == [prep1, train1, prep2, train2]
    assert downstream_runs(prep1) == [train1]

    graph = lineage("model.txt@latest", direction="upstream")
    assert graph.runs() == [prep2, train2]
    frame = graph.edges_frame()
    assert sorted(zip(frame["role"], frame["path"], frame["run_id"], strict=True)) == [
        ("input", "data/clean.csv", train2),
        ("input", "data/raw.csv", prep2),
        ("output", "data/clean.csv", prep2),
        ("output", "model.txt", train2),
    ]
    assert set(frame["filename"]) == {"prep.py", "train.py"} and frame["snapshot"].notna().all()

    # dataframe and the CLI select the same runs
    losses = flor.dataframe("loss", downstream_of=f"data/raw.csv@{old[:8]}")
    assert set(losses["runid"]) == {train1} and len(losses) == 3
    code, out = cli(
        "dataframe", "loss", "--downstream-of", f"data/raw.csv@{old[:8]}", "--format", "json"
    )
    assert code == 0 and {r["runid"] for r in json.loads(out)} == {train1}
    source = train.path.read_text().replace(
        'flor.log("loss"', 'flor.log("lr", 0.1)\n    flor.log("loss"'
    )
    train.path.write_text(source)
    code, out = cli("propagate", "train.py", "--downstream-of", f"data/raw.csv@{old[:8]}",
                    "--dry-run", "--format", "json")  # fmt: skip
    assert code == 0 and [v["version"] for v in json.loads(out)] == [f"run {train1}"]
    code, out = cli("propagate", "prep.py", "--downstream-of", prep1, "--dry-run")
    assert code == 2 and f"Error: no run of prep.py consumed {prep1}" in out


def test_lineage_cli_tree_json_and_dot(pipeline) -> None:  # type: ignore[no-untyped-def]
    prep, train = pipeline
    prep.run()
    train.run()
    [prep1], [train1] = runs_of("prep.py"), runs_of("train.py")
    code, out = cli("lineage", "data/raw.csv", "--downstream")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("data/raw.csv @" + b3(b"a,b\n")[:12])
    assert lines[1].startswith(f"└── read by run {prep1} prep.py · code ")
    assert lines[2].startswith("    └── wrote data/clean.csv @")
    assert lines[3].startswith(f"        └── read by run {train1} train.py")
    assert len(lines) == 7  # + three model.txt versions

    code, out = cli("lineage", "data/raw.csv", "--downstream", "--depth", "1", "--format", "json")
    found = json.loads(out)
    assert code == 0 and [e["run_id"] for e in found["edges"]] == [prep1]
    assert {n["kind"] for n in found["nodes"]} == {"run", "artifact"}

    code, out = cli("lineage", train1, "--upstream", "--format", "dot")
    assert code == 0 and out.startswith("digraph lineage {")
    clean = b3(b"A,B\n")
    assert f'"artifact:{clean}" -> "run:{train1}" [label="input"];' in out
    assert f'"run:{prep1}" -> "artifact:{clean}" [label="output"];' in out

    both = cli("lineage", "data/clean.csv")
    assert both[1].startswith("upstream:\n") and "\ndownstream:\n" in both[1]
    assert cli("lineage", "data/clean.csv", "--upstream", "--downstream") == both
    assert cli("lineage", "data/clean.csv", "--downstream", "--upstream") == both


def test_targets_that_match_nothing_or_several_things_say_so(pipeline) -> None:  # type: ignore[no-untyped-def]
    prep, train = pipeline
    prep.run()
    code, out = cli("lineage", "nope.csv")
    assert code == 2
    assert out.strip() == (
        "Error: no artifact recorded at 'nope.csv' and no run id starting with it (searched 2 "
        "recorded paths and 1 run): "
        '`flor query "SELECT DISTINCT path FROM events"` lists the paths'
    )
    code, out = cli("lineage", "data/raw.csv@zz")
    assert (
        code == 2 and "no content of data/raw.csv has a digest or run id starting with 'zz'" in out
    )
    [run] = runs_of("prep.py")
    writer = StoreWriter()  # two contents whose digests share a prefix, recorded by hand
    rows = [(run, 10 + i, "t", None, "input", "x.csv", d, "ok", None, 1.0, None)
            for i, d in enumerate(("abc1" + "0" * 60, "abc2" + "0" * 60))]  # fmt: skip
    writer.transaction(lambda c: record(c, writer.dialect, [], rows))
    writer.close()
    code, out = cli("lineage", "x.csv@abc")
    assert code == 2 and out.strip() == (
        "Error: x.csv@abc matches 2 things (abc100000000, abc200000000): give more characters"
    )
    code, out = cli("lineage", "x.csv@")
    assert code == 2 and "nothing after @" in out
    # a path with an @ of its own is taken whole; its pins still work after another @
    rows = [(run, 20, "t", None, "input", "w@v2.csv", "abc3" + "0" * 60, "ok", None, 2.0, None)]
    writer = StoreWriter()
    writer.transaction(
        lambda c: record(c, writer.dialect, [("abc3" + "0" * 60, "file", 1, 1)], rows)
    )
    writer.close()
    for target in ("w@v2.csv", "w@v2.csv@latest", "w@v2.csv@abc3"):
        assert lineage(target).roots == ["artifact:abc3" + "0" * 60], target
    with pytest.raises(TargetError, match="no run consumed"):
        downstream_runs("data/clean.csv@latest")
    code, out = cli("replay", "loss", "--downstream-of", "data/clean.csv", "--dry-run")
    assert code == 2 and "no run consumed data/clean.csv" in out


def test_a_folder_artifact_and_keep_brings_it_back_after_deletion(repo: Path, script) -> None:  # type: ignore[no-untyped-def]
    shards = repo / "shards"
    (shards / "sub").mkdir(parents=True)
    (shards / "a.txt").write_text("alpha")
    (shards / "sub" / "b.txt").write_text("beta!")
    write = script(
        "write.py",
        'import flor\nflor.output("shards", keep=True)\nopen("shards/c.txt", "w").write("gamma")\n',
    )
    write.run()
    [art] = flor.query("SELECT * FROM artifacts").to_dict("records")
    assert (art["kind"], art["files"], art["bytes"]) == ("dir", 3, 15) and art["blob"]
    [event] = events()
    assert (event["role"], event["path"], event["status"]) == ("output", "shards", "ok")
    first = art["digest"]
    read = script("read.py", 'import flor\nflor.input("shards")\n')
    read.run()
    assert events()[-1]["digest"] == first  # unchanged folder: same digest
    (shards / "a.txt").write_text("ALPHA")
    read.run()
    assert events()[-1]["digest"] != first

    import shutil

    shutil.rmtree(shards)
    assert (
        downstream_runs(f"shards@{first[:12]}") == runs_of("read.py")[:1]
    )  # lineage still answers
    code, out = cli("checkout", f"shards@{first[:12]}")
    assert code == 0 and out.strip() == str(repo / "shards")
    assert (shards / "a.txt").read_text() == "alpha" and (shards / "c.txt").read_text() == "gamma"
    assert (shards / "sub" / "b.txt").read_text() == "beta!"
    code, out = cli("checkout", "shards@latest")  # the newest content was not kept
    assert code == 2 and "recorded without its bytes" in out


def test_a_kept_file_is_restored_and_never_overwrites_other_content(repo: Path, script) -> None:  # type: ignore[no-untyped-def]
    script(
        "save.py",
        'import flor\nopen(flor.output("model.bin", keep=True), "wb").write(b"\\x00weights")\n',
    ).run()
    (repo / "model.bin").write_bytes(b"other")
    code, out = cli("checkout", "model.bin")
    assert code == 2 and "exists with other content: pass --output DEST" in out
    assert (repo / "model.bin").read_bytes() == b"other"
    code, out = cli("checkout", "model.bin", "--output", "restored.bin")
    assert code == 0 and (repo / "restored.bin").read_bytes() == b"\x00weights"
    (repo / "model.bin").unlink()
    code, out = cli("gc")  # kept artifacts are not checkpoint garbage
    assert code == 0 and out.startswith("removed 0 checkpoint blobs")
    assert flor.checkout("model.bin") == repo / "model.bin"
    assert (repo / "model.bin").read_bytes() == b"\x00weights"
    source = 'import flor, sys\nopen(flor.output("m@v2.bin", keep=True), "w").write(sys.argv[1])\n'
    v2 = script("v2.py", source)
    v2.run("first")
    v2.run("second")
    (repo / "m@v2.bin").unlink()
    assert flor.checkout("m@v2.bin") == repo / "m@v2.bin"  # a path with an @ of its own
    assert (repo / "m@v2.bin").read_text() == "second"


def test_an_output_rewritten_after_the_loop_records_its_final_digest(repo: Path, script) -> None:  # type: ignore[no-untyped-def]
    code = """\
    import flor
    path = flor.output("out.txt")
    for i in flor.loop("epoch", range(2)):
        open(path, "w").write(f"epoch {i}")
    open(path, "w").write("final")
    """
    script("rewrite.py", code).run()
    got = [(e["digest"], e["status"], e["ctx_id"]) for e in events()]
    # hashed when each iteration ended, at its coordinates; verified at the end
    assert got == [
        (b3(b"epoch 0"), "replaced", 1),  # written in epoch 0 (ctx 1)
        (b3(b"epoch 1"), "replaced", 2),
        (b3(b"final"), "ok", None),
    ]
    assert events()[-1]["note"] == "final content at the end of the run"


def test_a_missing_input_warns_and_a_fifo_is_unreadable(repo: Path, script) -> None:  # type: ignore[no-untyped-def]
    os.mkfifo(repo / "pipe")
    os.symlink("loop", repo / "loop")  # a link to itself
    done = script(
        "bad.py",
        """\
        import flor
        flor.input("absent.csv")
        flor.input("pipe")
        flor.input("loop")
        flor.output("never.txt")
        flor.log("x", 1)
        """,
    ).run()
    err = done.stderr.splitlines()
    assert (
        "flor: warning: input absent.csv does not exist; recorded as missing, the run continues"
        in err
    )
    assert "flor: warning: output never.txt was declared but never written" in err
    got = {e["path"]: (e["status"], e["digest"]) for e in events()}
    assert got["absent.csv"] == ("missing", None) and got["never.txt"] == ("missing", None)
    assert got["pipe"][0] == "unreadable" and got["pipe"][1] is None
    assert got["loop"][0] == "unreadable" and got["loop"][1] is None
    assert "input loop is unreadable: Too many levels of symbolic links" in done.stderr
    assert flor.dataframe("x")["x"].tolist() == [1]  # the run went on
    # a path recorded only without a content says so, and why to look
    code, out = cli("lineage", "absent.csv")
    [run] = runs_of("bad.py")
    assert code == 2 and out.strip() == (
        f"Error: absent.csv was recorded without a content to follow (missing in run {run}): "
        "`flor query \"SELECT run_id, status, note FROM events WHERE path = 'absent.csv'\"` "
        "shows why"
    )
    code, out = cli("replay", "x", "--downstream-of", "pipe@latest", "--dry-run")
    assert (
        code == 2
        and f"pipe was recorded without a content to follow (unreadable in run {run})" in out
    )


def test_an_unreadable_file_or_folder_entry_is_named_and_the_run_goes_on(
    repo: Path, script
) -> None:  # type: ignore[no-untyped-def]
    (repo / ".gitignore").write_text("secret.csv\nshards/\n.flor/\n")
    (repo / "secret.csv").write_text("x\n")
    (repo / "shards" / "b").mkdir(parents=True)
    (repo / "shards" / "a.csv").write_text("a\n")
    (repo / "shards" / "b" / "c.csv").write_text("c\n")
    (repo / "secret.csv").chmod(0)
    (repo / "shards" / "b" / "c.csv").chmod(0)
    bad = script(
        "perm.py", 'import flor\nflor.input("secret.csv")\nflor.input("shards")\nflor.log("x", 1)\n'
    )
    as_user = as_user_who_cannot_read_everything()
    done = subprocess.run(
        [*as_user, *bad.command()], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "flor: warning: input secret.csv is unreadable: Permission denied: check" in done.stderr
    assert (
        "flor: warning: input shards is unreadable: Permission denied at b/c.csv: check the path "
        "and its permissions" in done.stderr.splitlines()
    )
    got = {e["path"]: (e["status"], e["digest"]) for e in events()}
    assert got == {"secret.csv": ("unreadable", None), "shards": ("unreadable", None)}
    assert flor.dataframe("x")["x"].tolist() == [1]


def test_two_concurrent_runs_writing_one_path_each_record_only_their_own(
    repo: Path, script
) -> None:  # type: ignore[no-untyped-def]
    first = script(
        "first.py",
        """\
    import os, sys, time, flor
    open(flor.output("shared.txt"), "w").write("first")
    flor.log("wrote", 1)  # flor has control: the write is settled and hashed
    flor.input("README.md")
    open("ready", "w").close()
    while not os.path.exists("go"):
        time.sleep(0.01)
    """,
    )
    second = script(
        "second.py", 'import flor\nopen(flor.output("shared.txt"), "w").write("second")\n'
    )
    while_first_waits(repo, first, second, "ready", "go")
    [run_first], [run_second] = runs_of("first.py"), runs_of("second.py")
    mine = [(e["digest"], e["status"]) for e in events(run_first) if e["path"] == "shared.txt"]
    assert mine[0] == (b3(b"first"), "ok")
    assert all(d != b3(b"second") for d, _ in mine)
    assert [e["digest"] for e in events(run_second)] == [b3(b"second")]
    [note] = [e["note"] for e in events(run_first) if e["status"] == "changed"]
    assert note == f"also written by run {run_second}; its final content is not claimed"
    producers = lineage(f"shared.txt@{b3(b'second')[:12]}", direction="upstream").runs()
    assert producers == [run_second]


def test_flor_load_links_the_loading_run_to_the_run_that_wrote_the_checkpoint(
    repo: Path, script
) -> None:  # type: ignore[no-untyped-def]
    script(
        "fit.py",
        """\
    import flor
    state = {"w": [0.0]}
    with flor.checkpointing(state=state, budget=1.0):
        for epoch in flor.loop("epoch", range(2)):
            state["w"] = [epoch + 1.0]
    """,
    ).run()
    script(
        "serve.py",
        """\
        import flor
        flor.log("serving", 1)  # a recording run exists before the load
        run = flor.query("SELECT run_id FROM runs WHERE filename = 'fit.py'").run_id[0]
        state = {"w": []}
        flor.load(run, state=state)
        flor.log("w", state["w"][0])
        """,
    ).run()
    [fit], [serve] = runs_of("fit.py"), runs_of("serve.py")
    [event] = events(serve)
    assert (event["role"], event["producer"], event["path"]) == (
        "input",
        fit,
        f"checkpoint:{fit}/2",
    )
    assert downstream_runs(fit) == [serve]
    assert lineage(serve, direction="upstream").runs() == [fit, serve]


def test_the_stat_cache_skips_unchanged_files_and_distrusts_fresh_ones(tmp_path: Path) -> None:
    data = tmp_path / "big.bin"
    data.write_bytes(b"x" * 3_000_000)
    old = data.stat().st_mtime - 3600
    os.utime(data, (old, old))
    cache = StatCache(tmp_path / "digests.db")
    assert digest.content(str(data), cache).digest == b3(b"x" * 3_000_000)
    cache.flush()
    # poison the cached digest: a hit returns it, proving the file was not hashed again
    cache._open().execute("UPDATE digests SET digest = 'cached'")  # type: ignore[union-attr]
    assert digest.content(str(data), cache).digest == "cached"
    data.write_bytes(b"y" * 3_000_000)
    os.utime(data, (old, old))  # same size and mtime; ctime and content differ
    assert digest.content(str(data), cache).digest == b3(b"y" * 3_000_000)
    folder = tmp_path / "shards"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / name).write_bytes(name.encode() * 10)
        os.utime(folder / name, (old, old))
    real = digest.content(str(folder), cache).digest
    cache.flush()
    assert digest.content(str(folder), cache).digest == real
    cache._open().execute("UPDATE digests SET digest = 'cached'")  # type: ignore[union-attr]
    assert digest.content(str(folder), cache).digest != real  # the folder read the cache
    fresh = StatCache(tmp_path / "fresh.db", clock=lambda: data.stat().st_mtime + 1.0)
    digest.content(str(data), fresh)
    fresh.flush()
    assert fresh._open().execute("SELECT COUNT(*) FROM digests").fetchone()[0] == 0  # type: ignore[union-attr]


def test_import_flor_loads_no_hashing_or_database_module() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, flor; print(sorted({'blake3', 'sqlite3', 'pandas'} & set(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "[]"


def test_lineage_is_the_same_on_sqlite_and_postgresql(backend: str, pipeline) -> None:  # type: ignore[no-untyped-def]
    prep, train = pipeline
    prep.run()
    train.run()
    graph = lineage("data/raw.csv", direction="downstream")
    assert [n.split(":")[0] for n in graph.roots] == ["artifact"]
    assert len(graph.runs()) == 2 and len(graph.edges) == 6
    for limit in (2, 5, 1000):  # a screenful, read node by node, on either backend
        out = io.StringIO()
        write("data/raw.csv", out, direction="downstream", limit=limit)
        assert out.getvalue() == graph.tree(limit)
    assert flor.query("SELECT COUNT(*) AS n FROM events")["n"].item() == 6


def test_store_copy_carries_events_and_lineage_answers_the_same(  # type: ignore[no-untyped-def]
    pipeline, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flor.store import admin

    prep, train = pipeline
    prep.run()
    train.run()
    here = lineage("data/raw.csv").to_dict()
    report = admin.copy(pg_url)
    assert report.copied == 2
    monkeypatch.setenv("FLOR_STORE", pg_url)
    there = lineage("data/raw.csv").to_dict()
    assert there == here
    assert flor.query("SELECT COUNT(*) AS n FROM artifacts")["n"].item() == 5


def test_a_walk_over_most_of_the_store_answers_as_the_indexed_one(  # type: ignore[no-untyped-def]
    pipeline, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flor import graph
    from flor.store import artifacts

    prep, train = pipeline
    prep.run()
    train.run()
    (repo / "data" / "raw.csv").write_text("e,f\n")
    prep.run()
    indexed = [lineage(t).to_dict() for t in ("data/raw.csv", "model.txt@latest")]
    monkeypatch.setattr(graph._Events, "ASK_COUNT_AT", -1)  # read every event at once
    monkeypatch.setattr(graph._Events, "SCAN_SHARE", 10**9)
    monkeypatch.setattr(artifacts, "_SCAN_AT", 0)
    scanned = [lineage(t).to_dict() for t in ("data/raw.csv", "model.txt@latest")]
    assert scanned == indexed and len(indexed[0]["edges"]) == 8


def test_a_chain_of_thousands_of_runs_prints_as_one_deep_tree(repo: Path) -> None:
    """Each run reads the model the run before it wrote (fine-tuning): deeper than Python's
    recursion limit."""
    runs = [f"{i:012x}" for i in range(1500)]
    models = [b3(str(i).encode()) for i in range(1501)]
    rows = []
    for i, run in enumerate(runs):
        rows.append((run, 1, "t", None, "input", "model.pt", models[i], "ok", None, i, None))
        rows.append((run, 2, "t", None, "output", "model.pt", models[i + 1], "ok", None, i, None))
    writer = StoreWriter()

    def work(conn):  # type: ignore[no-untyped-def]
        conn.executemany(
            "INSERT INTO runs (run_id, projid, filename, tstamp, status, mode, started) "
            "VALUES (?, 'p', 'tune.py', 't', 'finished', 'record', ?)",
            [(run, i) for i, run in enumerate(runs)],
        )
        record(conn, writer.dialect, [(m, "file", 1, 1) for m in models], rows)

    writer.transaction(work)
    writer.close()
    graph = lineage(f"model.pt@{models[0][:16]}", direction="downstream")
    assert graph.runs() == runs
    lines = graph.tree().splitlines()
    assert len(lines) == 1 + 2 * 1500
    assert lines[-1].strip().startswith(f"└── wrote model.pt @{models[-1][:12]}")
    assert downstream_runs(runs[0]) == runs[1:]


def test_an_output_declared_in_a_web_request_is_recorded_when_the_request_ends(  # type: ignore[no-untyped-def]
    repo: Path, script
) -> None:
    """A server is killed, not ended: what a request wrote must be recorded by then."""
    done = script(
        "app.py",
        """\
        import os, signal, time
        import flor
        with flor.iteration("request", 0, "upload"):
            open(flor.output("upload.txt"), "w").write("payload")
            flor.log("size", 7)
        for _ in range(3000):  # wait for the event row itself, then die without cleanup
            if flor.query("SELECT COUNT(*) AS n FROM events")["n"][0] == 1:
                break
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
    ).run(check=False)
    assert done.returncode == -9
    [event] = events()
    assert (event["path"], event["digest"], event["status"]) == (
        "upload.txt",
        b3(b"payload"),
        "ok",
    )
    assert event["ctx_id"] == 1  # the request's loop coordinates


def test_gc_drops_kept_blobs_once_no_recorded_run_names_them(repo: Path, script) -> None:  # type: ignore[no-untyped-def]
    from flor.paths import home_dir
    from flor.store import admin
    from flor.store.artifacts import blob_home

    (repo / "shards").mkdir()
    (repo / "shards" / "a.txt").write_text("alpha")
    keep = 'import flor\nflor.output("shards", keep=True)\nflor.output("model.bin", keep=True)\n'
    (repo / "model.bin").write_bytes(b"weights")
    script("keep.py", keep).run()
    kept = Path(blob_home(home_dir()))

    def blob_files() -> list[Path]:
        return sorted(p for p in kept.rglob("*") if p.is_file() and not p.name.startswith("."))

    files = blob_files()
    assert len(files) == 3  # the model, the folder's manifest and its one file
    found = admin.collect_garbage(grace=0)
    assert (found.blobs, found.kept_blobs, blob_files()) == (0, 0, files)
    admin.delete_run(runs_of("keep.py")[0])
    found = admin.collect_garbage(grace=0, dry_run=True)
    size = sum(p.stat().st_size for p in files)
    assert (found.blobs, found.kept_blobs, found.bytes) == (0, 3, size)
    assert blob_files() == files
    code, out = cli("gc", "--grace", "0")  # kept copies are not called checkpoint blobs
    assert code == 0 and out.startswith("removed 0 checkpoint blobs and 3 kept artifact blobs")
    assert blob_files() == []
