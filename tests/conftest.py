"""Shared fixtures: a throwaway git repository per test and a way to run scripts in it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from gitutil import GIT_ENV, git


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test gets its own store location and no inherited flor settings."""
    for name in ("FLOR_HOME", "FLOR_STORE", "FLOR_PROJID", "FLOR_CKPT_BUDGET", "FLOR_REPLAY"):
        monkeypatch.delenv(name, raising=False)
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FLOR_WARM_IDLE_S", "0")  # a replay's warm server ends with it


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh git repository with one commit, as the working directory."""
    root = tmp_path / "proj"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("project\n")
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "initial")
    monkeypatch.chdir(root)
    return root


class Script:
    def __init__(self, repo: Path, name: str, code: str) -> None:
        self.repo = repo
        self.path = repo / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(textwrap.dedent(code))

    def command(self, *args: str) -> list[str]:
        return [sys.executable, str(self.path), *args]

    def run(self, *args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
        done = subprocess.run(
            self.command(*args),
            cwd=self.repo,
            capture_output=True,
            text=True,
            timeout=120,
            **kwargs,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"script failed ({done.returncode}):\n{done.stderr}")
        return done


@pytest.fixture
def script(repo: Path):  # type: ignore[no-untyped-def]
    """Write a script into the repository: script("train.py", code)."""

    def make(name: str, code: str) -> Script:
        return Script(repo, name, code)

    return make
