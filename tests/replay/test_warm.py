"""Warm task processes: a task forked from a preloaded interpreter behaves as `python
SCRIPT ARGS` would, and the preloaded libraries are imported once per worker."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from gitutil import git

import flor
from flor.replay import execute, plan, warm

# a "library" whose every import leaves a line in a file
LIBRARY = """\
import os
with open(os.environ["IMPORTS_LOG"], "a") as log:
    log.write(f"{__name__} {os.getpid()}\\n")
VALUE = 41
"""
SCRIPT = """\
import os
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


def test_only_the_scripts_outside_imports_are_preloaded() -> None:
    source = (
        "import torch\nimport model\nfrom numpy import random\nimport flor\nimport os.path\n"
        "import utils\n"
    )
    assert warm.external_imports(source, {"model", "utils"}) == ["numpy", "os", "torch"]


GATED = """\
import os
import os
import sys
import time

mine, other = sys.argv[1], sys.argv[2]
open(mine, "w").close()
for _ in range(6000):  # each task waits for the other one: they must run at once
    if os.path.exists(other):
        sys.exit(0)
    time.sleep(0.01)
sys.exit(3)
"""


def test_one_server_runs_tasks_at_the_same_time(server, tmp_path) -> None:
    import threading

    fork_server, env = server
    codes: dict[str, int] = {}

    def task(name: str, other: str) -> None:
        folder, logs = _task(tmp_path, name)
        (folder / "train.py").write_text(GATED)
        marks = (str(tmp_path / f"{name}.started"), str(tmp_path / f"{other}.started"))
        command = [sys.executable, str(folder / "train.py"), *marks]
        codes[name] = fork_server.run(command, folder, env, [], logs, folder)[0]

    threads = [threading.Thread(target=task, args=pair) for pair in (("a", "b"), ("b", "a"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == {"a": 0, "b": 0}


def test_a_changed_install_is_never_served_from_the_old_imports(server, tmp_path) -> None:
    fork_server, env = server
    folder, logs = _task(tmp_path, "before")
    command = [sys.executable, str(folder / "train.py"), "ok"]
    _, out, _ = fork_server.run(command, folder, env, ["heavylib"], logs, folder)
    assert f"parent {fork_server.process.pid}" in out
    upgraded = Path(env["PYTHONPATH"]) / "heavylib.py"
    upgraded.write_text(LIBRARY.replace("VALUE = 41", "VALUE = 6"))
    stat = upgraded.stat()
    os.utime(upgraded, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # surely a change
    folder, logs = _task(tmp_path, "after")
    command = [sys.executable, str(folder / "train.py"), "ok"]
    code, out, _ = fork_server.run(command, folder, env, ["heavylib"], logs, folder)
    assert code == 7  # the new heavylib, in a fresh interpreter
    assert f"parent {fork_server.process.pid}" in out  # a child of the server, not a fork
    last = (tmp_path / "imports.log").read_text().splitlines()[-1]
    assert last.startswith("heavylib ") and last != f"heavylib {fork_server.process.pid}"
    assert fork_server.stale  # server_for starts a new one


KEEPER = """\
import os
import sys
from pathlib import Path
from flor.replay import warm

tmp = Path(sys.argv[1])
(tmp / "task").mkdir()
(tmp / "logs").mkdir()
(tmp / "task" / "train.py").write_text(
    "import os, time\\nopen(os.environ['PIDS'], 'w').write(str(os.getpid()))\\ntime.sleep(600)\\n"
)
server = warm.server_for({})
print(server.process.pid, flush=True)
server.run([sys.executable, str(tmp / "task" / "train.py")], tmp / "task",
           {"PIDS": str(tmp / "child.pid")}, [], tmp / "logs", tmp / "task")
"""


def test_server_and_tasks_end_when_the_replaying_process_is_killed(tmp_path) -> None:
    import signal
    import subprocess
    import time

    keeper = subprocess.Popen(
        [sys.executable, "-c", KEEPER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert keeper.stdout is not None
    server_pid = int(keeper.stdout.readline())
    child = tmp_path / "child.pid"
    while not child.exists() or not child.read_text():
        assert keeper.poll() is None
        time.sleep(0.05)
    child_pid = int(child.read_text())
    keeper.send_signal(signal.SIGKILL)
    keeper.wait()
    keeper.stdout.close()
    for pid in (server_pid, child_pid):
        for _ in range(1200):  # gone (or a zombie of init) well before a minute
            if not _running(pid):
                break
            time.sleep(0.05)
        assert not _running(pid)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


RECORDED = """\
import os
import heavylib
import flor

seed = flor.arg("seed", 0)
state = {"total": 0.0}
with flor.checkpointing(state=state, budget=1):
    for epoch in flor.loop("epoch", range(3)):
        state["total"] += heavylib.VALUE + seed
        flor.log("total", state["total"])
"""
FORKED_FROM = (
    '        flor.log("total", state["total"])\n',
    '        flor.log("forked_from", os.getppid())\n',
)


def test_a_replays_tasks_fork_from_one_server_that_imported_their_library_once(
    repo: Path, script, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "heavylib.py").write_text(LIBRARY)
    imports = tmp_path / "imports.log"
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("IMPORTS_LOG", str(imports))
    train = script("train.py", RECORDED)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "train")
    for seed in range(3):
        train.run("--kwargs", f"seed={seed}")
    anchor, line = FORKED_FROM
    train.path.write_text(RECORDED.replace(anchor, anchor + line))
    imports.unlink()

    replay = plan(["forked_from"], jobs=2)
    assert len([t for r in replay.active for t in r.tasks]) >= 3, replay.table()
    summary = execute(replay)

    assert not summary.failed, [r.tail for r in summary.failed]
    parents = set(flor.dataframe("forked_from")["forked_from"].tolist())
    loaded = imports.read_text().splitlines()
    assert len(parents) == 1 and loaded == [f"heavylib {parents.pop()}"]
    assert not warm._servers  # ended with the replay
