"""Warm task processes: a task forked from a preloaded interpreter behaves as `python
SCRIPT ARGS` would, and the preloaded libraries are imported once per worker."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from gitutil import git

import flor
from flor.replay import execute, plan, planner, warm, warm_up

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
    server_pid = str(fork_server.pid)
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


def _heavylib_env(tmp_path: Path) -> dict[str, str]:
    """A task environment whose library `heavylib` logs each import of it."""
    library = tmp_path / "site"
    library.mkdir()
    (library / "heavylib.py").write_text(LIBRARY)
    return {"PYTHONPATH": str(library), "IMPORTS_LOG": str(tmp_path / "imports.log")}


def test_a_private_server_starts_under_a_temporary_folder_too_long_for_a_socket(
    tmp_path, monkeypatch
) -> None:
    # a dask worker's TMPDIR is its own deep local directory
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(deep))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    env = _heavylib_env(tmp_path)
    private = warm.ForkServer(env)
    try:
        folder, logs = _task(tmp_path, "deep")
        command = [sys.executable, str(folder / "train.py"), "ok"]
        code, out, err = private.run(command, folder, env, ["heavylib"], logs, folder)
        assert code == 42, err
        assert f"parent {private.pid}" in out
    finally:
        private.close()


def test_a_private_servers_folder_is_gone_when_its_process_exits_without_closing_it(
    tmp_path,
) -> None:
    """A process that ends without closing its private server (a replay stopped another
    way): the server is ended before its folder goes, so nothing it writes as it ends can
    leave the folder behind."""
    base = Path(tempfile.mkdtemp(prefix="fx", dir="/tmp"))  # short: a socket path's limit
    env = {**os.environ, **_heavylib_env(tmp_path), "TMPDIR": str(base)}
    env.pop("XDG_RUNTIME_DIR", None)
    code = (
        "import os, sys\n"
        "from flor.replay import warm\n"
        "server = warm.ForkServer(dict(os.environ))\n"
        "print(server.process.pid, server.private_folder, flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    pid, folder = done.stdout.split()
    assert folder.startswith(str(base)) and not Path(folder).exists()
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()
    assert list(base.iterdir()) == []

    # a replay that ends at once (a second Ctrl-C: os._exit) runs no exit handler: the
    # server, seeing its only connection close, removes its folder as it ends
    done = subprocess.run(
        [sys.executable, "-c", code + "os._exit(130)\n"], env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 130, done.stderr
    pid, folder = done.stdout.split()
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text():
        assert time.monotonic() < deadline, "the private server outlived its replay"
        time.sleep(0.05)
    assert not Path(folder).exists() and list(base.iterdir()) == []
    base.rmdir()


def test_a_private_servers_folder_is_gone_once_its_replay_closed_it(tmp_path, monkeypatch) -> None:
    """The server writes what it learned into its folder as it ends: removing the folder
    before it ended left one `flor-warm-*` folder behind per replay."""
    base = Path(tempfile.mkdtemp(prefix="fw", dir="/tmp"))  # short: a socket path's limit
    monkeypatch.setenv("TMPDIR", str(base))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", None)
    env = _heavylib_env(tmp_path)
    private = warm.ForkServer(env)
    try:
        folder, logs = _task(tmp_path, "once")
        command = [sys.executable, str(folder / "train.py"), "ok"]
        code, _, err = private.run(command, folder, env, ["heavylib"], logs, folder)
        assert code == 42, err
        assert list(base.glob("flor-warm-*")) != []
    finally:
        private.close()
    assert list(base.glob("flor-warm-*")) == []
    base.rmdir()


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
from typing import Any

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
    assert f"parent {fork_server.pid}" in out
    upgraded = Path(env["PYTHONPATH"]) / "heavylib.py"
    upgraded.write_text(LIBRARY.replace("VALUE = 41", "VALUE = 6"))
    stat = upgraded.stat()
    os.utime(upgraded, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # surely a change
    folder, logs = _task(tmp_path, "after")
    command = [sys.executable, str(folder / "train.py"), "ok"]
    code, out, _ = fork_server.run(command, folder, env, ["heavylib"], logs, folder)
    assert code == 7  # the new heavylib, in a fresh interpreter
    assert f"parent {fork_server.pid}" in out  # a child of the server, not a fork
    last = (tmp_path / "imports.log").read_text().splitlines()[-1]
    assert last.startswith("heavylib ") and last != f"heavylib {fork_server.pid}"
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
server = warm.server_for({}, shared=sys.argv[2] == "shared")
print(server.pid, flush=True)
server.run([sys.executable, str(tmp / "task" / "train.py")], tmp / "task",
           {"PIDS": str(tmp / "child.pid")}, [], tmp / "logs", tmp / "task")
"""


def _start_keeper(tmp_path: Path, kind: str) -> tuple[subprocess.Popen[str], int, int]:
    """A replaying process with one running task: (it, its server's pid, the task's pid)."""
    keeper = subprocess.Popen(
        [sys.executable, "-c", KEEPER, str(tmp_path), kind], stdout=subprocess.PIPE, text=True
    )
    assert keeper.stdout is not None
    server_pid = int(keeper.stdout.readline())
    child = tmp_path / "child.pid"
    while not child.exists() or not child.read_text():
        assert keeper.poll() is None
        time.sleep(0.05)
    return keeper, server_pid, int(child.read_text())


def _gone(pid: int) -> bool:
    for _ in range(1200):  # gone (or a zombie of init) well before a minute
        if not _running(pid):
            return True
        time.sleep(0.05)
    return False


def test_server_and_tasks_end_when_the_replaying_process_is_killed(tmp_path) -> None:
    keeper, server_pid, child_pid = _start_keeper(tmp_path, "private")
    keeper.send_signal(signal.SIGKILL)
    keeper.wait()
    assert keeper.stdout is not None
    keeper.stdout.close()
    assert _gone(server_pid) and _gone(child_pid)


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Shared servers in a socket folder of the test's own (pytest's are too long for a
    socket's path), that wait for the next replay; the test retires the ones it started."""
    runtime = tempfile.mkdtemp(prefix="fw-")
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    monkeypatch.setenv("FLOR_WARM_IDLE_S", "600")
    started: list[int] = []
    yield started
    for pid in started:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        assert _gone(pid)
    shutil.rmtree(runtime, ignore_errors=True)


def test_a_shared_servers_tasks_end_with_their_replay_and_it_serves_the_next(
    tmp_path: Path, shared: list[int]
) -> None:
    keeper, server_pid, child_pid = _start_keeper(tmp_path, "shared")
    shared.append(server_pid)
    keeper.send_signal(signal.SIGKILL)
    keeper.wait()
    assert keeper.stdout is not None
    keeper.stdout.close()
    assert _gone(child_pid)
    assert _running(server_pid)
    nxt = warm.ForkServer({}, shared=True)
    try:
        assert nxt.pid == server_pid  # the same environment: the same server, still warm
    finally:
        nxt.close()


def test_the_next_replay_forks_from_the_server_the_last_one_left(
    tmp_path: Path, shared: list[int]
) -> None:
    env = _heavylib_env(tmp_path)
    parents = []
    for name in ("first", "second"):  # one replay after the other
        connection = warm.ForkServer(env, shared=True)
        shared.append(connection.pid)
        folder, logs = _task(tmp_path, name)
        command = [sys.executable, str(folder / "train.py"), name]
        _, out, _ = connection.run(command, folder, env, ["heavylib"], logs, folder)
        parents.append(out.split("parent ")[1].split()[0])
        connection.close()
    imports = (tmp_path / "imports.log").read_text().splitlines()
    assert parents == [str(shared[0])] * 2 and imports == [f"heavylib {shared[0]}"]
    # another environment is another server
    other = warm.ForkServer({**env, "OTHER": "1"}, shared=True)
    shared.append(other.pid)
    other.close()
    assert shared[-1] != shared[0]


def test_a_new_server_imports_what_the_last_one_learned_before_its_first_fork(
    tmp_path: Path, shared: list[int]
) -> None:
    library = tmp_path / "site"
    library.mkdir()
    (library / "heavylib.py").write_text(LIBRARY)
    (library / "lazylib.py").write_text(LIBRARY)
    env = {"PYTHONPATH": str(library), "IMPORTS_LOG": str(tmp_path / "imports.log")}
    servers = []
    for name in ("first", "second"):
        connection = warm.ForkServer(env, shared=True)
        servers.append(connection.pid)
        folder, logs = _task(tmp_path, name)
        command = [sys.executable, str(folder / "train.py"), name, "lazy"]
        code, _, err = connection.run(command, folder, env, ["heavylib"], logs, folder)
        assert code == 42, err
        connection.close()
        assert warm.retire(env) == servers[-1]  # it ends (idle), what it learned stays listed
        assert _gone(servers[-1])
    first, second = servers
    assert first != second
    imports = (tmp_path / "imports.log").read_text().splitlines()
    # the first server's task imported lazylib itself; the second server had it at once
    assert imports[0] == f"heavylib {first}"
    assert imports[1].startswith("lazylib ") and imports[1] != f"lazylib {first}"
    assert imports[-2:] == [f"heavylib {second}", f"lazylib {second}"]
    assert warm.retire(env) is None  # none runs


THREADING = (
    LIBRARY
    + """\
import threading
import time
from typing import Any
threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
"""
)


def test_a_module_that_starts_a_thread_is_not_passed_on_to_the_next_server(
    tmp_path: Path, shared: list[int]
) -> None:
    library = tmp_path / "site"
    library.mkdir()
    (library / "heavylib.py").write_text(LIBRARY)
    (library / "threadlib.py").write_text(THREADING)
    imports = tmp_path / "imports.log"
    env = {"PYTHONPATH": str(library), "IMPORTS_LOG": str(imports)}
    first = warm.ForkServer(env, shared=True)
    first.preload(["heavylib"])
    folder, logs = _task(tmp_path, "threads")
    command = [sys.executable, str(folder / "train.py"), "ok"]
    assert first.run(command, folder, env, ["threadlib"], logs, folder)[0] == 42
    first.close()
    assert warm.retire(env) == first.pid and _gone(first.pid)
    second = warm.ForkServer(env, shared=True)
    shared.append(second.pid)
    folder, logs = _task(tmp_path, "after")
    command = [sys.executable, str(folder / "train.py"), "ok"]
    _, out, _ = second.run(command, folder, env, [], logs, folder)
    second.close()
    # the second server imported heavylib, not threadlib, and forked the task from it
    assert imports.read_text().splitlines()[-1:] == [f"heavylib {second.pid}"]
    assert f"parent {second.pid}" in out


def test_a_scripts_own_module_is_never_replaced_by_a_preloaded_one(server, tmp_path) -> None:
    fork_server, env = server
    folder, logs = _task(tmp_path, "preloads")
    command = [sys.executable, str(folder / "train.py"), "ok"]
    code, _, _ = fork_server.run(command, folder, env, ["heavylib"], logs, folder)
    assert code == 42
    # another version of the project has a heavylib of its own, as `python` would import
    folder, logs = _task(tmp_path, "own")
    (folder / "heavylib.py").write_text("VALUE = 1\n")
    command = [sys.executable, str(folder / "train.py"), "ok"]
    code, out, err = fork_server.run(command, folder, env, [], logs, folder)
    assert code == 2, err
    assert f"parent {fork_server.pid}" in out  # a fresh interpreter the server started


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


def _committed_with_heavylib(
    repo: Path, script, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[Any, Path]:
    """RECORDED committed as train.py, importing `heavylib`, which logs each import of it."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "heavylib.py").write_text(LIBRARY)
    imports = tmp_path / "imports.log"
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("IMPORTS_LOG", str(imports))
    train = script("train.py", RECORDED)
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "train")
    return train, imports


def test_a_replays_tasks_fork_from_one_server_that_imported_their_library_once(
    repo: Path, script, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    train, imports = _committed_with_heavylib(repo, script, monkeypatch, tmp_path)
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


FORKED_AGAIN = (
    '        flor.log("forked_from", os.getppid())\n',
    '        flor.log("forked_again", os.getppid())\n',
)


def test_the_next_replay_forks_from_the_server_the_last_replay_left(
    repo: Path, script, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shared: list[int]
) -> None:
    train, imports = _committed_with_heavylib(repo, script, monkeypatch, tmp_path)
    for seed in range(2):
        train.run("--kwargs", f"seed={seed}")
    imports.unlink()
    source = RECORDED
    parents = []
    for anchor, line in (FORKED_FROM, FORKED_AGAIN):  # a statement, then another one
        source = source.replace(anchor, anchor + line)
        train.path.write_text(source)
        name = line.split('"')[1]
        summary = execute(plan([name], jobs=2))
        assert not summary.failed, [r.tail for r in summary.failed]
        parents.append(set(flor.dataframe(name)[name].dropna().tolist()))
        shared.extend(int(p) for p in parents[-1])
    assert parents[0] == parents[1] and len(parents[0]) == 1
    assert imports.read_text().splitlines() == [f"heavylib {shared[0]}"]


def test_a_bad_idle_setting_is_a_one_line_usage_error(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOR_WARM_IDLE_S", "ten minutes")
    done = subprocess.run(
        [sys.executable, "-m", "flor", "replay", "total", "--yes"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Error: FLOR_WARM_IDLE_S must be a number of seconds >= 0, got 'ten minutes'"
    ]


def test_a_server_publishes_what_it_imported_and_what_each_import_cost(
    tmp_path: Path, shared: list[int]
) -> None:
    library = tmp_path / "site"
    library.mkdir()
    (library / "heavylib.py").write_text(LIBRARY)
    (library / "lazylib.py").write_text(LIBRARY)
    env = {"PYTHONPATH": str(library), "IMPORTS_LOG": str(tmp_path / "imports.log")}
    assert warm.readiness(env) == warm.Readiness()  # no server ever ran here
    server = warm.ForkServer(env, shared=True)
    shared.append(server.pid)
    folder, logs = _task(tmp_path, "first")
    command = [sys.executable, str(folder / "train.py"), "first", "lazy"]
    assert server.run(command, folder, env, ["heavylib"], logs, folder)[0] == 42
    running = warm.readiness(env)
    assert {"heavylib", "lazylib"} <= running.loaded <= set(running.seconds)
    total, remaining, unknown = running.imports({"heavylib", "lazylib", "numpy"})
    assert total == running.seconds["heavylib"] + running.seconds["lazylib"] > 0
    assert remaining == 0 and unknown == {"numpy"}  # never imported here: not measured
    server.close()
    assert warm.retire(env) == server.pid and _gone(server.pid)
    # no server runs: the next one will import everything this one had, first
    ended = warm.readiness(env)
    assert not ended.running and ended.seconds == running.seconds
    assert {"heavylib", "lazylib"} <= ended.queued == running.loaded
    queued = sum(ended.seconds[m] for m in ended.queued)
    assert ended.imports({"heavylib", "lazylib"}) == (total, queued, set())


GATED = (
    LIBRARY
    + """\
if os.path.exists(os.environ["IMPORTS_LOG"] + ".gate"):
    with open(os.environ["IMPORTS_LOG"] + ".fifo") as fifo:  # until the test opens it
        fifo.read()
"""
)


def _until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    for _ in range(1200):
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def test_an_import_under_way_is_credited_with_the_time_it_has_taken(
    tmp_path: Path, shared: list[int]
) -> None:
    library = tmp_path / "site"
    library.mkdir()
    (library / "heavylib.py").write_text(GATED)
    imports = tmp_path / "imports.log"
    env = {"PYTHONPATH": str(library), "IMPORTS_LOG": str(imports)}
    first = warm.ForkServer(env, shared=True)
    first.preload(["heavylib"])
    first.close()
    assert warm.retire(env) == first.pid and _gone(first.pid)
    cost = warm.readiness(env).seconds["heavylib"]
    os.mkfifo(f"{imports}.fifo")
    Path(f"{imports}.gate").touch()
    second = warm.ForkServer(env, shared=True)  # imports what the first one did: it waits
    shared.append(second.pid)
    _until(lambda: warm.readiness(env).importing == {"heavylib"}, "the import started")
    state = warm.readiness(env)
    since = state.importing_since
    assert state.imports({"heavylib"}, now=since) == (cost, cost, set())
    remaining = state.imports({"heavylib"}, now=since + cost / 4)[1]
    assert remaining == pytest.approx(cost * 3 / 4, abs=1e-6)  # the clock: ~1e9 s
    assert state.imports({"heavylib"}, now=since + cost + 1)[1] == 0
    with open(f"{imports}.fifo", "w") as fifo:
        fifo.write("go")
    _until(lambda: "heavylib" in warm.readiness(env).loaded, "the import ended")
    assert warm.readiness(env).imports({"heavylib"})[1] == 0
    second.close()


PACKAGE_SCRIPT = """\
import os
import sys
import time
from typing import Any
import heavypkg

import heavypkg.lazy  # as torch imports torch._dynamo when the first optimizer is made
server = str(os.getppid())
for _ in range(600):  # until the server has imported it too, while this task runs
    with open(os.environ["IMPORTS_LOG"]) as log:
        if f"heavypkg.lazy {server}" in log.read().split("\\n"):
            print("imported alongside")
            break
    time.sleep(0.05)
"""


def test_a_running_task_has_its_server_import_what_it_imports_from_a_preloaded_package(
    tmp_path: Path,
) -> None:
    package = tmp_path / "site" / "heavypkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(LIBRARY)
    (package / "lazy.py").write_text(LIBRARY)
    env = {"PYTHONPATH": str(package.parent), "IMPORTS_LOG": str(tmp_path / "imports.log")}
    fork_server = warm.ForkServer(env)
    folder, logs = _task(tmp_path, "package")
    (folder / "train.py").write_text(PACKAGE_SCRIPT)
    command = [sys.executable, str(folder / "train.py")]
    try:
        code, out, err = fork_server.run(command, folder, env, ["heavypkg"], logs, folder)
    finally:
        fork_server.close()
    assert code == 0, err
    # the next task need not wait for the server to import it after this one ended
    assert out == "imported alongside\n"


def test_planning_has_the_replays_server_import_the_scripts_libraries_and_starts_none(
    repo: Path, script, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shared: list[int]
) -> None:
    train, imports = _committed_with_heavylib(repo, script, monkeypatch, tmp_path)
    train.run()
    anchor, line = FORKED_FROM
    train.path.write_text(RECORDED.replace(anchor, anchor + line))
    imports.unlink()
    environment = warm.local_environment(1)
    assert plan(["forked_from"]).active  # a dry run, or the web UI's plan
    assert warm.readiness(environment) == warm.Readiness() and not imports.exists()
    server = warm_up(1)  # as `flor replay` does before it plans
    shared.append(server.pid)
    plan(["forked_from"])  # nothing executed: the plan alone names what the tasks import
    _until(lambda: "heavylib" in warm.readiness(environment).loaded, "heavylib imported")
    assert imports.read_text().splitlines() == [f"heavylib {server.pid}"]
    warm.close_all()


def test_the_next_plan_charges_a_task_the_start_up_its_script_took_in_the_last_replay(
    repo: Path, script, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shared: list[int]
) -> None:
    train, _ = _committed_with_heavylib(repo, script, monkeypatch, tmp_path)
    for seed in range(2):
        train.run("--kwargs", f"seed={seed}")
    anchor, line = FORKED_FROM
    train.path.write_text(RECORDED.replace(anchor, anchor + line))
    environment = warm.local_environment(1)
    first = plan(["forked_from"])
    summary = execute(first)
    assert not summary.failed, [r.tail for r in summary.failed]
    server = warm.retire(environment)
    assert server is not None and _gone(server)
    own = [r.own_startup_s for r in summary.results if r.own_startup_s is not None]
    assert len(own) == len(summary.results)
    assert all(r.own_startup_s <= r.startup_s for r in summary.results)  # type: ignore[operator]
    context = first.active[0].context
    assert context is not None
    key = planner.script_key(context.projid, "train.py")
    # tasks that imported libraries themselves waited for what a warm server will have
    warm_tasks = [r.own_startup_s for r in summary.results if not r.importing]
    measured = statistics.median(warm_tasks) if warm_tasks else min(own)
    assert warm.readiness(environment).startups == {key: measured}
    # the next plan charges each task that, not the record's time outside its main loop
    again = plan(["forked_from"])
    for run in again.active:
        assert run.context is not None
        assert run.context.startup == measured + planner.PROCESS_OVERHEAD_S


def test_the_warm_server_starts_before_planning_needs_its_heavy_imports() -> None:
    # `flor replay` starts the server first, so its imports (torch) overlap these
    probe = (
        "import sys\n"
        "from flor.replay import warm\n"
        "warm.local_environment(1)\n"
        "heavy = {'pandas', 'libcst', 'numpy', 'joblib'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"
