"""Warm task processes: a task forked from a preloaded interpreter behaves as `python
SCRIPT ARGS` would, and the preloaded libraries are imported once per worker."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from flor.replay import warm

# a "library" whose every import leaves a line in a file
LIBRARY = """\
import os
with open(os.environ["IMPORTS_LOG"], "a") as log:
    log.write(f"{__name__} {os.getpid()}\\n")
VALUE = 41
"""
SCRIPT = """\
import os
import sys
import heavylib

if len(sys.argv) > 2:
    import lazylib  # imported while running, as torch imports torch._dynamo
print("argv", sys.argv[1:], "cwd", os.getcwd(), "parent", os.getppid())
print("setting", os.environ.get("TASK_SETTING"), "server only", os.environ.get("SERVER_ONLY"))
if sys.argv[1] == "fail":
    raise ValueError("the task's own error")
sys.exit(heavylib.VALUE + 1)
"""


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    library = tmp_path / "site"
    library.mkdir()
    (library / "heavylib.py").write_text(LIBRARY)
    (library / "lazylib.py").write_text(LIBRARY)
    env = {"PYTHONPATH": str(library), "IMPORTS_LOG": str(tmp_path / "imports.log")}
    started = warm.ForkServer({**env, "SERVER_ONLY": "1"})
    yield started, env
    started.close()


def _task(tmp_path: Path, name: str) -> tuple[Path, Path]:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "train.py").write_text(SCRIPT)
    logs = tmp_path / f"{name}-logs"
    logs.mkdir()
    return folder, logs


def test_tasks_fork_from_one_warm_interpreter_with_their_own_settings(server, tmp_path) -> None:
    fork_server, env = server
    outputs = []
    for name in ("first", "second", "third"):
        folder, logs = _task(tmp_path, name)
        command = [sys.executable, str(folder / "train.py"), name, "lazy"]
        task_env = {**env, "TASK_SETTING": name}
        code, out, err = fork_server.run(command, folder, task_env, ["heavylib"], logs, folder)
        assert code == 42, err
        outputs.append(out)
        assert f"argv ['{name}', 'lazy'] cwd {folder}" in out
        assert f"setting {name} server only None" in out
    # both tasks are children of the same server, which imported the library once
    parents = {line.split("parent ")[1].split()[0] for line in outputs}
    server_pid = str(fork_server.process.pid)
    assert parents == {server_pid}
    imports = (tmp_path / "imports.log").read_text().splitlines()
    # heavylib once, by the server; lazylib by the first task, then by the server for the
    # next ones
    assert imports[0] == f"heavylib {server_pid}"
    assert [line.split()[0] for line in imports] == ["heavylib", "lazylib", "lazylib"]
    assert imports[1] != f"lazylib {server_pid}" and imports[2] == f"lazylib {server_pid}"


def test_an_uncaught_exception_exits_1_with_its_traceback(server, tmp_path) -> None:
    fork_server, env = server
    folder, logs = _task(tmp_path, "failing")
    command = [sys.executable, str(folder / "train.py"), "fail"]
    code, _, err = fork_server.run(command, folder, env, ["heavylib"], logs, folder)
    assert code == 1
    assert "Traceback" in err and "ValueError: the task's own error" in err
    # the server survives its child's failure and serves the next task
    folder, logs = _task(tmp_path, "after")
    command = [sys.executable, str(folder / "train.py"), "ok"]
    code, _, _ = fork_server.run(command, folder, env, [], logs, folder)
    assert code == 42


def test_only_the_scripts_outside_imports_are_preloaded(tmp_path) -> None:
    (tmp_path / "model.py").write_text("")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "utils.py").write_text("")  # beside a script in src/: the project's
    source = (
        "import torch\nimport model\nfrom numpy import random\nimport flor\nimport os.path\n"
        "import utils\n"
    )
    assert warm.external_imports(source, tmp_path, tmp_path / "src") == ["numpy", "os", "torch"]
