"""A project whose path holds URI syntax (`#`, `?`, `%`) records and reads like any other."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from click.testing import CliRunner
from gitutil import git

import flor
from flor.cli import main


def test_hash_question_mark_and_percent_in_the_project_path(tmp_path, monkeypatch) -> None:
    parent = tmp_path / "parent"
    project = parent / "exp #3? 50%20 done"
    project.mkdir(parents=True)
    git(project, "init", "-q", "-b", "main")
    git(project, "commit", "-q", "--allow-empty", "-m", "initial")
    (project / "train.py").write_text(
        textwrap.dedent(
            """
            import flor
            for epoch in flor.loop("epoch", range(3)):
                flor.log("loss", 1 / (epoch + 1))
            """
        )
    )
    subprocess.run(
        [sys.executable, "train.py"], cwd=project, check=True, capture_output=True, timeout=120
    )
    monkeypatch.chdir(project)
    assert flor.dataframe("loss")["loss"].tolist() == [1, 0.5, 1 / 3]
    runner = CliRunner()
    for args in (["runs"], ["dataframe", "loss"], ["store", "migrate"], ["store", "info"]):
        done = runner.invoke(main, args)
        assert done.exit_code == 0, (args, done.output)
    assert sorted(p.name for p in parent.iterdir()) == [project.name]
    assert sorted(p.name for p in (project / ".flor").iterdir() if p.is_file()) == [
        ".gitignore",
        "flor.db",
        *(name for name in ("flor.db-shm", "flor.db-wal") if (project / ".flor" / name).exists()),
    ]


MOUNTS = """\
/dev/sda1 / ext4 rw,relatime 0 0
server:/export /shared nfs4 rw,relatime,vers=4.2 0 0
//nas/team /mnt/team\\040drive cifs rw 0 0
/dev/sdb1 /shared/local-scratch xfs rw 0 0
"""


def test_network_filesystems_are_recognised_from_the_mount_table(tmp_path) -> None:
    from flor.store.schema import network_filesystem

    assert network_filesystem(Path("/shared/proj/.flor"), MOUNTS) == "nfs4"
    assert network_filesystem(Path("/mnt/team drive/proj"), MOUNTS) == "cifs"
    assert network_filesystem(Path("/shared/local-scratch/proj"), MOUNTS) is None
    assert network_filesystem(Path("/sharedx/proj"), MOUNTS) is None
    assert network_filesystem(tmp_path) is None  # this machine's temporary folder is local
