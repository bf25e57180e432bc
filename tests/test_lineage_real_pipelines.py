"""Artifacts and lineage checked on pipelines written the way users write them: several
scripts, a Makefile, models saved every epoch, runs started from subfolders. Each test
pins a defect found by running such pipelines with the `flor` CLI."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import blake3
import pytest
from gitutil import while_first_waits
from store import pgfixtures

import flor
from flor.runtime import digest

backend, pg_server, pg_url = pgfixtures.backend, pgfixtures.pg_server, pgfixtures.pg_url


def b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def flor_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The `flor` command as a user runs it, in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "flor", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_model_declared_before_the_loop_is_recorded_at_each_epoch_that_wrote_it(
    repo: Path, script
) -> None:  # type: ignore[no-untyped-def]
    script(
        "train.py",
        """\
        import flor
        open(flor.output("vocab.txt"), "w").write("a b c")  # written before the loop
        model = flor.output("model.bin")
        for epoch in flor.loop("epoch", range(3)):
            open(model, "wb").write(b"weights %d" % epoch)
            flor.log("loss", 1.0 / (epoch + 1))
        """,
    ).run()
    epochs = flor.query("SELECT iteration, ctx_id FROM loops ORDER BY iteration")
    ctx_of = dict(zip(epochs["iteration"], epochs["ctx_id"], strict=True))
    rows = flor.query("SELECT path, digest, ctx_id, status FROM events ORDER BY seq")
    got = [
        (r.path, r.digest, None if r.ctx_id != r.ctx_id else int(r.ctx_id))
        for r in rows.itertuples()
    ]
    assert got == [
        ("vocab.txt", b3(b"a b c"), None),
        ("model.bin", b3(b"weights 0"), ctx_of[0]),  # was recorded before the loop's coordinates
        ("model.bin", b3(b"weights 1"), ctx_of[1]),
        ("model.bin", b3(b"weights 2"), ctx_of[2]),
    ]


def test_a_path_typed_in_a_subfolder_names_the_file_there_not_one_at_the_root(
    repo: Path, script
) -> None:  # type: ignore[no-untyped-def]
    (repo / "data.csv").write_text("root\n")
    (repo / "sub").mkdir()
    (repo / "sub" / "data.csv").write_text("sub\n")
    code = 'import flor\nflor.input("data.csv")\nflor.log("n", 1)\n'
    script("r.py", code).run()
    (repo / "sub" / "s.py").write_text(code)
    sub = repo / "sub"  # run from its own folder, as `cd sub && python s.py`: sub/data.csv
    subprocess.run([sys.executable, "s.py"], cwd=sub, check=True, timeout=120)
    at_root, in_sub = b3(b"root\n"), b3(b"sub\n")
    [root_run] = flor.query("SELECT run_id FROM runs WHERE filename = 'r.py'")["run_id"]
    [sub_run] = flor.query("SELECT run_id FROM runs WHERE filename = 'sub/s.py'")["run_id"]

    done = flor_cli(sub, "lineage", "data.csv", "--downstream", "--format", "json")
    assert done.returncode == 0, done.stderr
    graph = json.loads(done.stdout)  # was both files: data.csv and sub/data.csv
    assert graph["roots"] == [f"artifact:{in_sub}"]
    assert [n["run_id"] for n in graph["nodes"] if n["kind"] == "run"] == [sub_run]
    done = flor_cli(sub, "dataframe", "n", "--downstream-of", "data.csv", "--format", "json")
    assert [row["runid"] for row in json.loads(done.stdout)] == [sub_run]
    # from the subfolder, the root's file by its relative path, or its repository path
    # when the subfolder has no such file
    for target, run in (("../data.csv", root_run), ("r.py", None)):
        done = flor_cli(sub, "lineage", target, "--format", "json")
        if run is None:
            assert done.returncode == 2 and "no artifact recorded at 'r.py'" in done.stderr
        else:
            assert json.loads(done.stdout)["roots"] == [f"artifact:{at_root}"]
    (repo / "sub" / "data.csv").unlink()
    assert flor_cli(sub, "lineage", "data.csv").returncode == 0  # recorded there, deleted since


def _tree(root: Path) -> dict[str, object]:
    """Every entry under root: a file's bytes, a link's target, a folder's mark."""
    found: dict[str, object] = {}
    for where in sorted(root.rglob("*")):
        rel = where.relative_to(root).as_posix()
        if where.is_symlink():
            found[rel] = ("link", os.readlink(where))
        elif where.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = where.read_bytes()
    return found


def test_a_kept_folder_with_links_and_empty_folders_is_checked_out_whole(
    repo: Path, script
) -> None:  # type: ignore[no-untyped-def]
    (repo / ".gitignore").write_text("data/\nweights.bin\n")
    data = repo / "data"
    (data / "v1" / "empty").mkdir(parents=True)
    (data / "v1" / "nested").mkdir()
    (data / "v1" / "a.txt").write_text("a\n")
    (data / "v1" / "nested" / "b.txt").write_text("b\n")
    (data / "latest").symlink_to("v1")  # a folder link, as dataset versions often are
    (data / "v1" / "link").symlink_to("a.txt")
    (repo / "weights.bin").write_bytes(b"w" * 100)
    script(
        "k.py", 'import flor\nflor.input("data", keep=True)\nflor.input("weights.bin", keep=True)\n'
    ).run()
    before = _tree(data)
    [recorded] = flor.query("SELECT digest FROM events WHERE path = 'data'")["digest"]
    shutil.rmtree(data)
    (repo / "weights.bin").unlink()

    def umask_027() -> None:
        os.umask(0o027)

    for target in ("data", "weights.bin"):
        done = subprocess.run(
            [sys.executable, "-m", "flor", "checkout", target],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=umask_027,
        )
        assert done.returncode == 0, done.stderr  # was: exit 2, links and folders not kept
    assert _tree(data) == before
    assert digest.content(str(data), None).digest == recorded
    # made as the user's own new files are (umask 027), not as private temporary files
    assert stat.S_IMODE(data.stat().st_mode) == 0o750
    assert stat.S_IMODE((repo / "weights.bin").stat().st_mode) == 0o640
    assert (repo / "weights.bin").read_bytes() == b"w" * 100


def test_checkout_failures_are_one_line_and_leave_nothing_behind(repo: Path, script) -> None:  # type: ignore[no-untyped-def]
    (repo / ".gitignore").write_text("shards/\n")
    (repo / "shards").mkdir()
    for i in range(3):
        (repo / "shards" / f"{i}.bin").write_bytes(bytes([i]) * 10)
    script("keep.py", 'import flor\nflor.input("shards", keep=True)\n').run()
    [run] = flor.query("SELECT run_id FROM runs")["run_id"]
    shutil.rmtree(repo / "shards")

    done = flor_cli(repo, "checkout", run)  # was: "no run id starting with it"
    assert (done.returncode, done.stderr) == (
        2,
        f"Error: {run} is a run, not a file: name a PATH or PATH@RUN\n",
    )
    done = flor_cli(repo, "checkout", "shards", "--output", "README.md/shards")
    assert done.returncode == 1, done.stderr  # was: a traceback
    assert done.stderr.startswith("Error: cannot write README.md/shards: ")
    assert done.stderr.count("\n") == 1
    # a blob gone from the store: one line, and no half-written folder left in the repository
    blobs = repo / ".flor" / "checkpoints" / "artifacts"
    shutil.rmtree(next(p for p in blobs.iterdir() if p.is_dir()))
    done = flor_cli(repo, "checkout", "shards")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "is missing from" in done.stderr
    assert sorted(p.name for p in repo.iterdir()) == [
        ".flor",
        ".git",
        ".gitignore",
        "README.md",
        "keep.py",
    ]


WAITING_WRITER = """\
import os, time, flor
path = flor.output("model.bin")  # written each epoch, hashed when the epoch ends
for epoch in flor.loop("epoch", range(2)):
    open(path, "w").write(f"a{epoch}")
    if epoch == 0:  # another run works on it before this epoch ends
        open("a-wrote", "w").close()
        while not os.path.exists("b-done"):
            time.sleep(0.01)
"""


def test_a_run_does_not_claim_a_content_another_run_wrote_between_its_write_and_its_hash(
    backend: str, repo: Path, script
) -> None:  # type: ignore[no-untyped-def]
    first = script("a.py", WAITING_WRITER)
    second = script("b.py", 'import flor\nopen(flor.output("model.bin"), "w").write("b")\n')
    while_first_waits(repo, first, second, "a-wrote", "b-done")
    run_a = flor.query("SELECT run_id FROM runs WHERE filename = 'a.py'")["run_id"][0]
    run_b = flor.query("SELECT run_id FROM runs WHERE filename = 'b.py'")["run_id"][0]
    rows = flor.query("SELECT run_id, digest, status, note FROM events ORDER BY run_id, seq")
    mine = rows[rows["run_id"] == run_a]
    # was: epoch 0 recorded b's bytes as this run's output (b3(b"b"), replaced)
    assert b3(b"b") not in set(mine["digest"].dropna())
    assert set(mine["status"]) == {"changed"}
    assert all(f"run {run_b} also wrote this path" in note for note in mine["note"])
    theirs = rows[rows["run_id"] == run_b]
    assert list(zip(theirs["digest"], theirs["status"], strict=True)) == [(b3(b"b"), "ok")]
    done = flor_cli(repo, "lineage", f"model.bin@{b3(b'b')[:12]}", "--upstream", "--format", "json")
    runs = [n["run_id"] for n in json.loads(done.stdout)["nodes"] if n["kind"] == "run"]
    assert runs == [run_b]


def test_a_final_content_is_recorded_with_the_code_version_that_was_current_at_the_end(
    repo: Path, script
) -> None:  # type: ignore[no-untyped-def]
    # a long-running process (a notebook, a web app) commits; the file is rewritten later
    script(
        "serve.py",
        """\
        import flor
        out = flor.output("report.txt")
        open(out, "w").write("v1")
        flor.log("step", 1)
        flor.commit()
        flor.log("step", 2)
        flor.commit()
        open(out, "w").write("v2")
        """,
    ).run()
    tstamps = sorted(flor.query("SELECT tstamp FROM commits")["tstamp"])
    rows = flor.query("SELECT digest, tstamp, status FROM events ORDER BY seq")
    got = list(zip(rows["digest"], rows["tstamp"], rows["status"], strict=True))
    assert got == [
        (b3(b"v1"), tstamps[0], "replaced"),
        (b3(b"v2"), tstamps[-1], "ok"),  # was: the declaration's tstamp, tstamps[0]
    ]


def test_an_output_flor_cannot_read_is_a_one_line_warning(repo: Path, script) -> None:  # type: ignore[no-untyped-def]
    (repo / ".gitignore").write_text("out/\n")
    bad = script(
        "w.py",
        """\
        import os, flor
        os.makedirs("out/shards")
        model = flor.output("out/model.bin")
        open(model, "w").write("m")
        os.chmod(model, 0)  # the run makes its own outputs unreadable
        shards = flor.output("out/shards")
        open("out/shards/a", "w").write("a")
        os.chmod("out/shards/a", 0)
        flor.log("done", 1)
        """,
    )
    drop = "-dac_override,-dac_read_search"  # root reads any file: drop that (setpriv)
    as_user = (
        ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}"] if os.geteuid() == 0 else []
    )
    done = subprocess.run(
        [*as_user, *bad.command()], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [  # was: nothing said
        "flor: warning: output out/model.bin is unreadable: Permission denied: check the path "
        "and its permissions",
        "flor: warning: output out/shards is unreadable: Permission denied at a: check the "
        "path and its permissions",
    ]
    got = flor.query("SELECT path, status, digest FROM events ORDER BY seq")
    assert list(zip(got["path"], got["status"], strict=True)) == [
        ("out/model.bin", "unreadable"),
        ("out/shards", "unreadable"),
    ]
    assert got["digest"].isna().all()


def test_a_target_with_an_at_sign_that_matches_nothing_says_both_forms_searched(
    repo: Path, script
) -> None:  # type: ignore[no-untyped-def]
    (repo / "model@v2.pt").write_bytes(b"m")
    script("s.py", 'import flor\nflor.input("model@v2.pt")\n').run()
    done = flor_cli(repo, "lineage", "model@v2.p")  # a typo
    assert done.returncode == 2
    # was: "no artifact recorded at 'model' and no run id starting with it": neither the
    # whole text nor run ids (a run id has no @) were what it said
    assert done.stderr == (
        "Error: no artifact recorded at 'model@v2.p' nor at 'model' (searched 1 recorded "
        'path): `flor query "SELECT DISTINCT path FROM events"` lists the paths\n'
    )
    assert flor_cli(repo, "lineage", "model@v2.pt@latest").returncode == 0


def test_a_file_written_while_flor_hashes_it_gets_no_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shards = tmp_path / "shards"
    (shards / "part").mkdir(parents=True)
    (shards / "a.csv").write_text("a\n")
    (shards / "part" / "b.csv").write_text("b\n")
    hashed = digest.hash_file

    def raced(path: str) -> str:  # a downloader still appending while flor reads the file
        found = hashed(path)
        if path.endswith("b.csv"):
            with open(path, "a") as f:
                f.write("more\n")
        return found

    monkeypatch.setattr(digest, "hash_file", raced)
    # was: a folder digest of a state that never existed, recorded as ok
    with pytest.raises(digest.Modified, match=r"modified while flor hashed it \(at part/b.csv\)"):
        digest.content(str(shards), None)
    with pytest.raises(digest.Modified) as raised:
        digest.content(str(shards / "part" / "b.csv"), None)
    assert raised.value.status == "changed"
    cache = digest.StatCache(tmp_path / "digests.db", clock=lambda: 1e12)  # never too fresh
    monkeypatch.setattr(digest, "hash_file", hashed)
    found = digest.content(str(shards), cache)  # once still, it hashes as it is
    assert found.files == 2 and found.bytes == len("a\n") + len("b\nmore\nmore\n")
    cache.close()


def test_file_names_that_are_not_utf8_are_recorded_and_checked_out(
    backend: str, repo: Path, script
) -> None:  # type: ignore[no-untyped-def]
    latin1 = os.fsdecode(b"caf\xe9.csv")  # a legal Linux name from an old archive
    (repo / ".gitignore").write_text("data/\n")
    (repo / "data" / "raw").mkdir(parents=True)
    (repo / "data" / latin1).write_bytes(b"x,y\n")
    (repo / "data" / "raw" / latin1).write_bytes(b"z\n")
    done = script(
        "s.py",
        """\
        import os, flor
        flor.input(os.path.join("data", os.fsdecode(b"caf\\xe9.csv")), keep=True)
        flor.input("data/raw")
        flor.log("ok", 1)
        """,
    ).run()
    assert done.stderr == ""  # was: "could not record an artifact ('utf-8' codec ...)"
    rows = flor.query("SELECT path, digest, status FROM events ORDER BY seq")
    assert list(zip(rows["path"], rows["digest"], rows["status"], strict=True)) == [
        ("data/caf\\xe9.csv", b3(b"x,y\n"), "ok"),
        ("data/raw", digest.content(str(repo / "data" / "raw"), None).digest, "ok"),
    ]
    # the name as the shell passes it finds it, and checkout writes the real name back
    (repo / "data" / latin1).unlink()
    done = subprocess.run(
        [sys.executable, "-m", "flor", "checkout", os.fsencode(f"data/{latin1}")],
        cwd=repo,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (repo / "data" / latin1).read_bytes() == b"x,y\n"


def test_a_folder_output_rewritten_with_the_same_bytes_names_the_run_its_producer(
    repo: Path, script
) -> None:  # type: ignore[no-untyped-def]
    (repo / ".gitignore").write_text("preds/\n")
    infer = script(
        "infer.py",
        """\
        import os, flor
        out = flor.output("preds")
        os.makedirs(out, exist_ok=True)
        for shard in range(3):  # deterministic: a re-run writes the same bytes
            with open(os.path.join(out, f"{shard}.json"), "w") as f:
                f.write(str([shard] * 4))
        """,
    )
    look = script("look.py", 'import flor\nflor.output("preds")\n')  # declares, writes nothing
    infer.run()
    infer.run()  # `make` re-running the step
    look.run()
    runs = list(flor.query("SELECT run_id FROM runs ORDER BY started")["run_id"])
    rows = flor.query("SELECT run_id, digest, status FROM events ORDER BY recorded")
    [content] = set(rows["digest"])
    assert list(zip(rows["run_id"], rows["status"], strict=True)) == [
        (runs[0], "ok"),
        (runs[1], "ok"),  # was: unchanged, as if the re-run had not written it
        (runs[2], "unchanged"),
    ]
    done = flor_cli(repo, "lineage", f"preds@{content[:12]}", "--upstream", "--format", "json")
    producers = [n["run_id"] for n in json.loads(done.stdout)["nodes"] if n["kind"] == "run"]
    assert sorted(producers) == sorted(runs[:2])


def test_keep_on_a_pipe_or_a_device_is_refused_and_the_run_ends(repo: Path, script) -> None:  # type: ignore[no-untyped-def]
    os.mkfifo(repo / "pipe")
    bad = script(
        "k.py",
        """\
        import flor
        flor.input("pipe", keep=True)
        flor.input("/dev/zero", keep=True)
        flor.log("x", 1)
        """,
    )
    # was: the digest thread blocked opening the pipe (or read /dev/zero without end), so
    # the run never exited, not even on SIGTERM
    done = subprocess.run(bad.command(), cwd=repo, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    why = "not a regular file or folder (a socket, device or pipe): declare files"
    assert done.stderr.splitlines() == [
        f"flor: warning: input pipe is unreadable: {why}",
        f"flor: warning: input /dev/zero is unreadable: {why}",
    ]
    rows = flor.query("SELECT path, status, note FROM events ORDER BY seq")
    assert rows.values.tolist() == [["pipe", "unreadable", why], ["/dev/zero", "unreadable", why]]


def test_a_run_that_only_declared_the_path_does_not_make_the_writer_disown_it(
    backend: str, repo: Path, script
) -> None:  # type: ignore[no-untyped-def]
    first = script("a.py", WAITING_WRITER)
    second = script("look.py", 'import flor\nflor.output("model.bin")\n')  # writes nothing
    while_first_waits(repo, first, second, "a-wrote", "b-done")
    run_a = flor.query("SELECT run_id FROM runs WHERE filename = 'a.py'")["run_id"][0]
    rows = flor.query("SELECT digest, status FROM events WHERE run_id = ? ORDER BY seq", (run_a,))
    # was: both changed, "run ... also wrote this path", for a run that wrote nothing
    assert list(zip(rows["digest"], rows["status"], strict=True)) == [
        (b3(b"a0"), "replaced"),
        (b3(b"a1"), "ok"),
    ]


MAKEFILE = """\
.PHONY: all prep train infer evaluate
all: evaluate
prep:
\t$(PYTHON) prep.py
train: prep
\t$(PYTHON) train.py
infer: train
\t$(PYTHON) infer.py
evaluate: infer
\t$(PYTHON) evaluate.py
"""
STEPS = {
    "prep.py": """\
        import json, os, flor
        rows = []
        for name in sorted(os.listdir(flor.input("raw"))):
            rows += [float(x) for x in open(os.path.join("raw", name)).read().split()]
        labels = [int(x) for x in open(flor.input("labels.csv", keep=True)).read().split()]
        os.makedirs("work", exist_ok=True)
        json.dump({"x": rows, "y": labels}, open(flor.output("work/features.json"), "w"))
        """,
    "train.py": """\
        import json, os, flor
        data = json.load(open(flor.input("work/features.json")))
        os.makedirs("models", exist_ok=True)
        model = flor.output("models/model.json", keep=True)
        w = 0.0
        for epoch in flor.loop("epoch", range(3)):
            for x, y in zip(data["x"], data["y"]):
                w += 0.1 * ((1 if x * w + 0.5 > 0 else 0) - y) * -x
            json.dump({"w": round(w, 6)}, open(model, "w"))
            flor.log("w", w)
        """,
    "infer.py": """\
        import json, os, flor
        w = json.load(open(flor.input("models/model.json")))["w"]
        x = json.load(open(flor.input("work/features.json")))["x"]
        out = flor.output("preds", keep=True)
        os.makedirs(out, exist_ok=True)
        for i in range(0, len(x), 4):
            preds = [1 if v * w + 0.5 > 0 else 0 for v in x[i : i + 4]]
            json.dump(preds, open(os.path.join(out, f"{i // 4}.json"), "w"))
        open(os.path.join(out, "model.txt"), "w").write(str(w))  # which model predicted
        """,
    "evaluate.py": """\
        import json, os, flor
        y = [int(v) for v in open(flor.input("labels.csv")).read().split()]
        folder = flor.input("preds")
        shards = sorted(f for f in os.listdir(folder) if f.endswith(".json"))
        p = sum((json.load(open(os.path.join(folder, f))) for f in shards), [])
        acc = sum(a == b for a, b in zip(p, y)) / len(y)
        flor.log("acc", acc)
        json.dump({"acc": acc}, open(flor.output("report.json"), "w"))
        """,
}


def _make(repo: Path) -> list[str]:
    """`make` as a user runs it; the ids of the runs it made, in order."""
    before = (
        set(flor.query("SELECT run_id FROM runs")["run_id"]) if (repo / ".flor").exists() else set()
    )
    done = subprocess.run(
        ["make", "--no-print-directory", f"PYTHON={sys.executable}"],
        cwd=repo, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    runs = flor.query("SELECT run_id FROM runs ORDER BY started")["run_id"]
    return [r for r in runs if r not in before]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_a_makefile_pipeline_relabelled_then_a_new_metric_downstream_of_the_old_labels(
    repo: Path, script
) -> None:  # type: ignore[no-untyped-def]
    (repo / ".gitignore").write_text("raw/\nwork/\nmodels/\npreds/\nreport.json\nlabels.csv\n")
    (repo / "Makefile").write_text(MAKEFILE)
    for name, code in STEPS.items():
        script(name, code)
    (repo / "raw").mkdir()
    (repo / "raw" / "a.txt").write_text("1.0 -2.0 0.5 -0.1\n")
    (repo / "raw" / "b.txt").write_text("-1.5 2.5 0.2 -0.3\n")
    old_labels = b"1 0 1 0 0 1 1 0\n"
    (repo / "labels.csv").write_bytes(old_labels)
    first = _make(repo)
    old_preds = {p.name: p.read_bytes() for p in (repo / "preds").iterdir()}
    (repo / "labels.csv").write_bytes(b"1 0 1 1 0 1 1 1\n")  # people relabel two rows
    second = _make(repo)
    assert len(first) == len(second) == 4

    events = flor.query("SELECT run_id, role, path, digest, status FROM events")
    read = events[(events["role"] == "input") & (events["path"] == "labels.csv")]
    assert dict(zip(read["run_id"], read["digest"], strict=True)) == {
        first[0]: b3(old_labels), first[3]: b3(old_labels),
        second[0]: b3(b"1 0 1 1 0 1 1 1\n"), second[3]: b3(b"1 0 1 1 0 1 1 1\n"),
    }  # fmt: skip
    final = events[(events["path"] == "models/model.json") & (events["status"] == "ok")]
    assert list(final["digest"])[-1] == b3((repo / "models" / "model.json").read_bytes())
    old = f"labels.csv@{b3(old_labels)[:10]}"
    done = flor_cli(repo, "lineage", old, "--downstream", "--format", "json")
    graph = json.loads(done.stdout)
    assert sorted(n["run_id"] for n in graph["nodes"] if n["kind"] == "run") == sorted(first)

    # a new metric on every run downstream of the old labels: put back what those runs
    # read (kept with keep=True), then replay
    script(
        "evaluate.py",
        STEPS["evaluate.py"] + 'flor.log("wrong", sum(a != b for a, b in zip(p, y)))\n',
    )
    (repo / "labels.csv").rename(repo / "labels.new.csv")
    shutil.rmtree(repo / "preds")
    for target in (old, f"preds@{first[2]}"):
        done = flor_cli(repo, "checkout", target)
        assert done.returncode == 0, done.stderr
    assert {p.name: p.read_bytes() for p in (repo / "preds").iterdir()} == old_preds
    done = flor_cli(repo, "replay", "wrong", "--downstream-of", old, "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    done = flor_cli(repo, "dataframe", "acc", "wrong", "--downstream-of", old, "--format", "json")
    [row] = json.loads(done.stdout)
    assert row["runid"] == first[3]
    assert row["wrong"] == round(8 * (1 - row["acc"]))  # the metric agrees with the run's acc
