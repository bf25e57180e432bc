"""A project recorded by real runs, and `flor ui` serving it from a real process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gitutil import GIT_ENV, git

TRAIN_V1 = """\
import numpy as np
import flor

np.random.seed(flor.arg("seed", 0))
lr = flor.arg("lr", 0.05)
X = np.random.randn(200, 5)
w_true = np.arange(5.0)
y = X @ w_true + 0.1 * np.random.randn(200)
w = np.zeros(5)
with flor.checkpointing(weights=w):
    for epoch in flor.loop("epoch", range(6)):
        order = np.random.permutation(200)
        for step in flor.loop("step", range(10)):
            batch = order[step * 20 : (step + 1) * 20]
            grad = 2 * X[batch].T @ (X[batch] @ w - y[batch]) / 20
            w -= lr * grad
            flor.log("loss", float(np.mean((X[batch] @ w - y[batch]) ** 2)))
        flor.log("err", float(np.abs(w - w_true).sum()))
print("done")
"""
# version 2 clips the gradient: the code diff between the versions is this line
CLIP = "            grad = np.clip(grad, -5.0, 5.0)\n"
TRAIN_V2 = TRAIN_V1.replace("            w -= lr * grad\n", CLIP + "            w -= lr * grad\n")
# the newest script, not yet run: one hindsight statement past runs lack
HINDSIGHT = '        flor.log("wnorm", float(np.linalg.norm(w)))\n'
TRAIN_NEWEST = TRAIN_V2.replace('        flor.log("err"', HINDSIGHT + '        flor.log("err"')


def clean_env() -> dict[str, str]:
    """The test's environment without its store settings; replays keep servers of their own
    (FLOR_WARM_IDLE_S=0), so none outlives the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOR_")}
    return {**env, **GIT_ENV, "FLOR_WARM_IDLE_S": "0"}


@dataclass
class Recorded:
    root: Path
    runs: list[str]  # oldest first: v1 lr=0.05, v1 lr=0.02 seed=3, v2 lr=0.1
    store_env: dict[str, str]

    def run_script(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "train.py", *args],
            cwd=self.root,
            env={**clean_env(), **self.store_env},
            check=True,
            capture_output=True,
            timeout=120,
        )


def record_project(root: Path, store_env: dict[str, str] | None = None) -> Recorded:
    """Three real training runs over two committed versions, then an uncommitted newest
    version with a statement none of them logged (`store_env`: e.g. FLOR_STORE)."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    train = root / "train.py"
    train.write_text(TRAIN_V1)
    git(root, "add", "train.py")
    git(root, "commit", "-q", "-m", "v1: linear regression")
    project = Recorded(root, [], store_env or {})
    project.run_script("--kwargs", "lr=0.05")
    project.run_script("--kwargs", "lr=0.02", "seed=3")
    train.write_text(TRAIN_V2)
    git(root, "commit", "-q", "-am", "v2: clip gradients")
    project.run_script("--kwargs", "lr=0.1")
    train.write_text(TRAIN_NEWEST)
    project.runs = run_ids(root, project.store_env)
    return project


def run_ids(root: Path, store_env: dict[str, str]) -> list[str]:
    """The project's recorded runs, oldest first, as `flor query` lists them."""
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "flor",
            "query",
            "--format",
            "csv",
            "SELECT run_id FROM runs ORDER BY started",
        ],
        cwd=root,
        env={**clean_env(), **store_env},
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.split()[1:]


# a two-step pipeline linked by the files it reads and writes (as in tests/test_lineage.py)
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


def record_pipeline(root: Path) -> Recorded:
    """prep.py then train.py, twice, with new raw data in between: runs are
    [prep1, train1, prep2, train2]; the second pair never read the first pair's files."""
    (root / "data").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "prep.py").write_text(PREP)
    (root / "train.py").write_text(TRAIN)
    git(root, "add", "prep.py", "train.py")
    git(root, "commit", "-q", "-m", "pipeline")
    project = Recorded(root, [], {})
    for raw in ("a,b\n", "a,b\nc,d\n"):
        (root / "data" / "raw.csv").write_text(raw)
        for script in ("prep.py", "train.py"):
            subprocess.run(
                [sys.executable, script],
                cwd=root,
                env=clean_env(),
                check=True,
                capture_output=True,
                timeout=120,
            )
    project.runs = run_ids(root, {})
    return project


@dataclass
class Served:
    url: str
    token: str
    process: subprocess.Popen[str]
    root: Path

    @property
    def host(self) -> str:
        return self.url.split("/")[2]

    def request(
        self, path: str, *, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, decoded JSON or text, headers) of one request to the server."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url.split("?")[0].rstrip("/") + path,
            data=data,
            headers={**({"Content-Type": "application/json"} if data else {}), **(headers or {})},
            method="POST" if data is not None else "GET",
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                raw, status, got = response.read(), response.status, dict(response.headers)
        except urllib.error.HTTPError as exc:
            raw, status, got = exc.read(), exc.code, dict(exc.headers)
        kind = got.get("Content-Type", "")
        return status, json.loads(raw) if kind.startswith("application/json") else raw, got

    def get(self, path: str) -> Any:
        status, body, _ = self.request(path)
        assert status == 200, body
        return body


def start_server(root: Path, *args: str, store_env: dict[str, str] | None = None) -> Served:
    """`flor ui --port 0` in `root`; returns once it printed its address (no sleeping)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "flor", "ui", "--port", "0", "--no-open", *args],
        cwd=root,
        env={**clean_env(), **(store_env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"(http://\S+)", line)
    if not found:
        process.kill()
        raise AssertionError(
            f"flor ui did not start: {line}{process.stderr.read() if process.stderr else ''}"
        )
    served = Served(found.group(1), "", process, root)
    page = served.request("/")[1]
    if isinstance(page, bytes):
        token = re.search(rb'name="flor-token" content="([^"]+)"', page)
        served.token = token.group(1).decode() if token else ""
    return served


def stop_server(served: Served) -> None:
    served.process.terminate()
    try:
        served.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        served.process.kill()
        served.process.wait()
    for stream in (served.process.stdout, served.process.stderr):
        if stream is not None:
            stream.close()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """Shared, read-only: tests that replay record a project of their own."""
    return record_project(tmp_path_factory.mktemp("ui") / "proj")


@pytest.fixture(scope="module")
def server(recorded: Recorded) -> Iterator[Served]:
    served = start_server(recorded.root)
    yield served
    stop_server(served)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    return record_pipeline(tmp_path_factory.mktemp("ui") / "pipeline")


@pytest.fixture(scope="module")
def pipeline_server(pipeline: Recorded) -> Iterator[Served]:
    served = start_server(pipeline.root)
    yield served
    stop_server(served)
