"""`flor gc` and `flor runs --delete` against runs still recording."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import flor
from flor.blobs import BlobStore
from flor.errors import CheckpointError
from flor.store.admin import collect_garbage

# The first checkpoint's rows wait until the test closes the FIFO: its blobs are on disk.
PAUSED_WRITER = """
import os
from flor.store import writer
_real_insert = writer.StoreWriter.insert_checkpoints
_paused = []
def _insert_after_pause(self, rows):
    if not _paused:
        _paused.append(True)
        with open(os.environ["PAUSE_FIFO"]) as f:
            f.read()
    return _real_insert(self, rows)
writer.StoreWriter.insert_checkpoints = _insert_after_pause
import flor, numpy as np
w = np.arange(4.0)
with flor.checkpointing(w=w, budget=1):
    for epoch in flor.loop("epoch", range(2)):
        w += 1
"""

HANG_GUARD_S = 60  # ends a hung test only; nothing asserts a duration


def _open_when_paused(fifo: Path) -> object:
    """Open the FIFO for writing: returns once the script waits on it."""
    opened: list[object] = []
    opener = threading.Thread(target=lambda: opened.append(open(fifo, "w")))  # noqa: SIM115
    opener.start()
    opener.join(HANG_GUARD_S)
    assert opened, "the script never reached its checkpoint write"
    return opened[0]


def test_gc_never_removes_the_blobs_of_a_checkpoint_whose_rows_are_not_written_yet(
    script, repo, tmp_path
) -> None:
    import subprocess

    script("first.py", "import flor\nflor.log('x', 1)\n").run()  # creates the store
    fifo = tmp_path / "pause"
    os.mkfifo(fifo)
    train = script("t.py", PAUSED_WRITER)
    with subprocess.Popen(
        train.command(),
        cwd=repo,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PAUSE_FIFO": str(fifo)},
    ) as proc:
        try:
            pause = _open_when_paused(fifo)
            blobs = BlobStore(repo / ".flor" / "checkpoints")
            on_disk = blobs.digests()
            assert on_disk and flor.query("SELECT COUNT(*) AS n FROM checkpoints")["n"].item() == 0
            with pytest.raises(CheckpointError, match="writing checkpoints"):
                collect_garbage(repo / ".flor", grace=0, wait=False)
            waiting: list[object] = []
            gc = threading.Thread(
                target=lambda: waiting.append(collect_garbage(repo / ".flor", grace=0))
            )
            gc.start()
            pause.close()  # type: ignore[attr-defined]
            gc.join(HANG_GUARD_S)
            _, stderr = proc.communicate(timeout=HANG_GUARD_S)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, stderr
    assert waiting and not gc.is_alive()
    referenced = set(flor.query("SELECT digest FROM checkpoints")["digest"])
    assert on_disk <= referenced <= blobs.digests()
    assert collect_garbage(repo / ".flor", grace=0).blobs == 0


def test_gc_spares_young_files_sizes_by_listing_and_collects_stale_temp_files(script, repo) -> None:
    script("first.py", "import flor\nflor.log('x', 1)\n").run()  # creates the store
    home = repo / ".flor"
    blobs = BlobStore(home / "checkpoints")
    orphan, _ = blobs.put(b"an orphan blob, never read by gc")
    orphan_file = home / "checkpoints" / orphan[:2] / orphan[2:]
    corrupt = b"corrupt: its hash no longer matches"
    orphan_file.write_bytes(corrupt)  # gc sizes it by listing: reading it would fail
    temp = orphan_file.parent / ".tmp-interrupted"
    temp.write_bytes(b"half a blob")
    written = max(orphan_file.stat().st_mtime, temp.stat().st_mtime)
    young = collect_garbage(home, now=written + 60)
    assert (young.blobs, young.temp_files) == (0, 0) and orphan_file.exists() and temp.exists()
    dry = collect_garbage(home, now=written + 7200, dry_run=True)
    assert (dry.blobs, dry.temp_files) == (1, 1) and orphan_file.exists()
    old = collect_garbage(home, now=written + 7200)
    assert (old.blobs, old.temp_files, old.bytes) == (1, 1, len(corrupt) + len(b"half a blob"))
    assert not orphan_file.exists() and not temp.exists()


def test_a_blob_reused_by_a_new_checkpoint_is_young_again(tmp_path) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    digest, _ = blobs.put(b"state shared with a deleted run")
    path = tmp_path / "blobs" / digest[:2] / digest[2:]
    os.utime(path, (1_000_000, 1_000_000))  # written long ago
    blobs.put(b"state shared with a deleted run")  # a new run writes the same state
    assert blobs.garbage(set(), older_than=path.stat().st_mtime) == []
    assert path.stat().st_mtime > 1_000_000


PAUSED_RUN = """
import os, flor
flor.log("x", 1)
flor.commit()
with open(os.environ["PAUSE_FIFO"]) as f:
    f.read()
flor.log("y", 2)
"""


def test_deleting_a_run_still_recording_is_refused_until_it_ends(script, repo, tmp_path) -> None:
    import subprocess

    from click.testing import CliRunner

    from flor.cli import main

    fifo = tmp_path / "pause"
    os.mkfifo(fifo)
    train = script("t.py", PAUSED_RUN)
    with subprocess.Popen(
        train.command(), cwd=repo, env={**os.environ, "PAUSE_FIFO": str(fifo)}
    ) as proc:
        try:
            pause = _open_when_paused(fifo)
            run_id = flor.query("SELECT run_id FROM runs")["run_id"].item()
            refused = CliRunner().invoke(main, ["runs", "--delete", run_id])
            assert refused.exit_code == 1
            assert f"run {run_id} is still recording" in refused.output
            pause.close()  # type: ignore[attr-defined]
            assert proc.wait(timeout=HANG_GUARD_S) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert flor.query("SELECT COUNT(*) AS n FROM logs")["n"].item() == 2
    assert CliRunner().invoke(main, ["runs", "--delete", run_id]).exit_code == 0
    assert flor.query("SELECT COUNT(*) AS n FROM logs")["n"].item() == 0


def test_deleting_a_run_can_drop_its_snapshot_refs(script, repo) -> None:
    from click.testing import CliRunner
    from gitutil import git

    from flor.cli import main

    train = script("t.py", "import flor\nflor.log('x', 1)\nflor.commit()\nflor.log('x', 2)\n")
    train.run()
    train.run()
    keep, drop = flor.query("SELECT run_id FROM runs ORDER BY started")["run_id"]
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/flor/runs/").split()
    assert len([r for r in refs if drop in r]) == 2  # the run's start and its flor.commit
    runner = CliRunner()
    alone = runner.invoke(main, ["runs", "--drop-snapshot"])
    assert alone.exit_code == 2 and "--drop-snapshot goes with --delete" in alone.output
    done = runner.invoke(main, ["runs", "--delete", drop, "--drop-snapshot"])
    assert done.exit_code == 0 and f"dropped 2 snapshot refs of run {drop}" in done.output
    refs = git(repo, "for-each-ref", "--format=%(refname)", "refs/flor/runs/").split()
    assert not [r for r in refs if drop in r] and [r for r in refs if keep in r]
