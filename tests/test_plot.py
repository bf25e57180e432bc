"""`flor.plot.plot`: metric curves across runs and code versions, rendered to a real PNG."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from gitutil import git

from flor.errors import UsageError

TRAIN = """
import flor

lr = flor.arg("lr", 0.1)
for epoch in flor.loop("epoch", range(4)):
    for step in flor.loop("step", range(3)):
        flor.log("loss", 1.0 / (1 + lr * (epoch * 3 + step)))
    flor.log("acc", min(1.0, lr * (epoch + 1)))
flor.log("note", "done")
"""


def png_header(path: Path) -> tuple[int, int, int, int]:
    """Width, height, bit depth and colour type from a PNG's IHDR chunk (CRC checked)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    body = data[16 : 16 + length]
    (crc,) = struct.unpack(">I", data[16 + length : 20 + length])
    assert crc == zlib.crc32(kind + body), "IHDR checksum mismatch"
    width, height, depth, colour = struct.unpack(">IIBB", body[:10])
    assert data.endswith(b"IEND\xaeB`\x82"), "PNG is truncated"
    return width, height, depth, colour


@pytest.fixture
def recorded(repo: Path, script) -> Path:  # type: ignore[no-untyped-def]
    """Three runs over two code versions of a script logging per step and per epoch."""
    train = script("train.py", TRAIN)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "v1")
    train.run("--kwargs", "lr=0.1")
    train.run("--kwargs", "lr=0.2")
    train.path.write_text(train.path.read_text().replace("range(4)", "range(5)"))
    git(repo, "commit", "-q", "-am", "v2: one more epoch")
    train.run("--kwargs", "lr=0.3")
    return repo


def test_plot_by_run_writes_png_of_expected_size(recorded: Path) -> None:
    from flor.plot import plot

    out = plot(["loss", "acc"], output=recorded / "plots" / "curves.png")
    assert out == (recorded / "plots" / "curves.png").resolve()
    assert png_header(out) == (800, 600, 8, 6)  # 8-bit RGBA, one 300 px panel per name
    assert out.stat().st_size > 5_000  # curves, axes and legends, not an empty canvas


def test_plot_by_version_where_and_size_options(recorded: Path) -> None:
    from flor.plot import plot

    out = plot("acc", by="version", where="lr >= 0.2", output=recorded / "v.png", width=640)
    assert png_header(out)[:2] == (640, 300)
    alone = plot("acc", where="filename == 'train.py' and lr > 0.25", output="one.png")
    assert png_header(alone)[:2] == (800, 300)
    assert alone == (recorded / "one.png").resolve()


def test_plot_refuses_what_it_cannot_draw(recorded: Path) -> None:
    from flor.plot import plot

    with pytest.raises(UsageError, match="no numeric values"):
        plot(["note", "missing"], output=recorded / "x.png")
    with pytest.raises(UsageError, match="by 'run' or by 'version'"):
        plot("acc", by="epoch", output=recorded / "x.png")
    with pytest.raises(UsageError):
        plot("acc", where="__import__('os')", output=recorded / "x.png")
    assert not (recorded / "x.png").exists()
