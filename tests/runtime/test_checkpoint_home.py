"""Checkpoint blobs at an fsspec URL (`FLOR_CHECKPOINTS`), exercised with real file:// URLs."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import flor
from flor.blobs import BlobStore
from flor.errors import CheckpointError, UsageError
from flor.paths import checkpoint_home

RECORD = """
import sys
import numpy as np
import flor

w = np.zeros(3)
with flor.checkpointing(w=w):
    for i in flor.loop("i", range(3)):
        w += i
        flor.log("w0", float(w[0]))
print("fsspec" in sys.modules)
"""


def test_blobs_at_a_file_url_behave_like_blobs_in_a_folder(tmp_path: Path) -> None:
    remote = BlobStore((tmp_path / "shared").as_uri())
    assert remote.digests() == set() and remote.total_bytes() == 0
    digest, n = remote.put(b"hello")
    assert (digest, n) == remote.put(b"hello")
    other, _ = remote.put(b"world!")
    assert remote.digests() == {digest, other} and remote.total_bytes() == 11
    assert remote.get(digest) == b"hello"
    # the same layout as a local store: a folder can be copied to a bucket and back
    assert BlobStore(tmp_path / "shared").get(other) == b"world!"
    remote.delete(digest)
    remote.delete(digest)
    assert remote.digests() == {other}
    with pytest.raises(CheckpointError, match=f"blob {digest} is missing from file://"):
        remote.get(digest)
    with pytest.raises(CheckpointError, match="is missing from file://"):
        remote.check_readable(digest)


def test_a_torn_blob_at_a_url_is_detected_and_rewritten(tmp_path: Path) -> None:
    remote = BlobStore((tmp_path / "shared").as_uri())
    digest, _ = remote.put(b"payload")
    path = tmp_path / "shared" / digest[:2] / digest[2:]
    path.write_bytes(b"paYload")
    with pytest.raises(CheckpointError, match="corrupt"):
        remote.get(digest)
    path.write_bytes(b"pay")
    remote.put(b"payload")
    assert remote.get(digest) == b"payload"


def test_an_unknown_protocol_or_a_missing_fsspec_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(CheckpointError, match="cannot open the checkpoint home nope://x: .*nope"):
        BlobStore("nope://x")
    monkeypatch.setitem(sys.modules, "fsspec", None)  # what an environment without it imports
    with pytest.raises(CheckpointError, match=r"needs fsspec: pip install 'flor\[remote\]'$"):
        BlobStore(tmp_path.as_uri())


def test_the_setting_picks_the_checkpoint_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / ".flor"
    assert checkpoint_home(store) == str(store / "checkpoints")
    monkeypatch.setenv("FLOR_CHECKPOINTS", "s3://bucket/prefix")
    assert checkpoint_home(store) == "s3://bucket/prefix"
    monkeypatch.setenv("FLOR_CHECKPOINTS", (tmp_path / "ckpt").as_uri())
    assert checkpoint_home(store) == (tmp_path / "ckpt").as_uri()
    monkeypatch.setenv("FLOR_CHECKPOINTS", "file://ckpt")
    with pytest.raises(UsageError, match="not an absolute file URL: write file:///"):
        checkpoint_home(store)


def test_recording_to_a_folder_does_not_import_fsspec(script, repo: Path) -> None:
    done = script("train.py", RECORD).run()
    assert done.stdout.strip() == "False"
    assert (repo / ".flor" / "checkpoints").is_dir()


def test_recording_to_a_file_url_and_loading_back(
    script, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    monkeypatch.setenv("FLOR_CHECKPOINTS", shared.as_uri())
    monkeypatch.setenv("FLOR_CKPT_BUDGET", "1")  # a checkpoint at every iteration
    done = script("train.py", RECORD).run()
    assert done.stdout.strip() == "True"
    assert not (repo / ".flor" / "checkpoints").exists()
    recorded = set(flor.query("SELECT digest FROM checkpoints")["digest"])
    assert BlobStore(shared).digests() == recorded
    w = np.full(3, -1.0)
    run_id = flor.query("SELECT run_id FROM runs")["run_id"].item()
    assert flor.load(run_id, iteration=2, w=w) == 2
    assert w.tolist() == [1.0, 1.0, 1.0]


def test_recording_to_an_unknown_url_stops_with_one_line(
    script, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOR_CHECKPOINTS", "nope://bucket/ckpt")
    done = script("train.py", RECORD).run(check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("flor: error: cannot open the checkpoint home nope://bucket/ckpt")
    assert len(done.stderr.strip().splitlines()) == 1
