"""Warm task processes: a replay task forks from an interpreter that has already imported
the script's libraries, instead of starting Python and importing torch again.

Each worker keeps one fork server per environment (interpreter and variables, which
include the BLAS/OpenMP thread settings: libraries read them when they load, so a server
started under other settings could compute different floats). A server imports the
modules a task's script imports from outside its project (torch, numpy, ...), then forks
one child per task; the child takes the task's variables, folder and arguments and runs the
script as `python SCRIPT ARGS` would, under `__main__`. Only imports happen before the
fork: no thread pools are running, and each child starts from the same state.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import runpy
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

_servers: dict[tuple[str, ...], ForkServer] = {}
_lock = threading.Lock()


class ForkServer:
    """One warm interpreter under one environment, serving one task at a time."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__],  # run as a file: flor itself stays unimported
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd="/",
            text=True,
        )
        self.lock = threading.Lock()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def run(
        self,
        command: list[str],
        cwd: Path,
        env: dict[str, str],
        preload: list[str],
        logs: Path,
        project: Path,
    ) -> tuple[int, str, str]:
        """Run `command` (interpreter, script, arguments) in a fresh fork: (exit status,
        stdout, stderr). Modules it imports from outside `project` are preloaded for the
        next task."""
        out, err = logs / "stdout", logs / "stderr"
        request = {
            "script": command[1], "argv": command[2:], "cwd": str(cwd), "env": env,
            "preload": preload, "stdout": str(out), "stderr": str(err), "project": str(project),
        }  # fmt: skip
        assert self.process.stdin is not None and self.process.stdout is not None
        with self.lock:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            reply = self.process.stdout.readline()
        if not reply:
            raise OSError("the warm replay process ended unexpectedly")
        code = int(json.loads(reply)["returncode"])
        return code, _read(out), _read(err)

    def close(self) -> None:
        """End the server: it exits when its requests end."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def server_for(env: dict[str, str]) -> ForkServer:
    """This worker's fork server for `env`, started on first use."""
    key = (sys.executable, *sorted(f"{k}={v}" for k, v in env.items()))
    with _lock:
        server = _servers.get(key)
        if server is None or not server.alive:
            server = _servers[key] = ForkServer(env)
        return server


@atexit.register
def _close_all() -> None:
    for server in _servers.values():
        server.close()
    _servers.clear()


def external_imports(source: str, *folders: Path) -> list[str]:
    """Top-level modules `source` imports that are not files of its project: none named
    like an entry of `folders` (the tree's top and the script's folder), so an installed
    module never stands in for the project's own one of the same name."""
    import ast

    try:
        module = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in module.body:
        if isinstance(node, ast.Import):
            names += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module.split(".")[0])
    local = {p.stem for folder in folders if folder.is_dir() for p in folder.iterdir()}
    skip = {"flor", "__future__"} | local
    return sorted({n for n in names if n not in skip})


# -- inside the server -----------------------------------------------------------------------


def _serve(requests: IO[str], replies: IO[str]) -> None:
    for line in requests:
        request = json.loads(line)
        _preload(request["preload"])
        if threading.active_count() > 1:
            # a preloaded module started a thread: forking now could copy a held lock
            code = _cold(request)
        else:
            pid = os.fork()
            if pid == 0:
                _child(request)
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
            # what the task imported later (torch imports torch._dynamo when an optimizer
            # is made) is preloaded for the next task
            learned = Path(request["stdout"]).with_name("modules.json")
            if learned.exists():
                _preload(json.loads(learned.read_text(encoding="utf-8")))
        replies.write(json.dumps({"returncode": code}) + "\n")
        replies.flush()


def _preload(names: list[str]) -> None:
    for name in names:
        if name not in sys.modules:
            # a module that fails here fails again in the task, which reports it
            with contextlib.suppress(BaseException):
                importlib.import_module(name)


def _cold(request: dict[str, Any]) -> int:
    """The task in a new interpreter, as without a warm one."""
    with open(request["stdout"], "wb") as out, open(request["stderr"], "wb") as err:
        done = subprocess.run(
            [sys.executable, request["script"], *request["argv"]],
            cwd=request["cwd"],
            env=request["env"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    return done.returncode


def _imported_since(before: set[str], project: str) -> list[str]:
    """Modules imported by the task from outside its project (and outside flor, whose
    import starts the task's sandbox)."""
    found = []
    for name, module in list(sys.modules.items()):
        if (
            name in before
            or name.startswith(("__main__", "__mp_main__", "flor."))
            or name == "flor"
        ):
            continue
        file = getattr(module, "__file__", None) or ""
        if file and os.path.realpath(file).startswith(project + os.sep):
            continue
        found.append(name)
    return found


def _child(request: dict[str, Any]) -> None:
    """Become `python SCRIPT ARGS` for the task, then exit without returning."""
    code = 1
    try:
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        script = request["script"]
        sys.argv = [script, *request["argv"]]
        sys.path.insert(0, os.path.dirname(os.path.realpath(script)))
        before = set(sys.modules)
        code = _run(script)
        learned = _imported_since(before, os.path.realpath(request["project"]))
        Path(request["stdout"]).with_name("modules.json").write_text(json.dumps(learned))
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # exiting anyway
                stream.flush()
        os._exit(code)


def _run(script: str) -> int:
    """The script under `__main__`, with the interpreter's exit behaviour: SystemExit's
    status, a traceback and status 1 for an uncaught exception, then the atexit handlers."""
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = _exit_status(exc.code)
    except BaseException:  # noqa: BLE001 - reported as the interpreter would
        sys.excepthook(*sys.exc_info())
        code = 1
    atexit._run_exitfuncs()
    return code


def _exit_status(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    print(value, file=sys.stderr)
    return 1


def main() -> None:
    del sys.path[0]  # this file's folder: flor's own modules must not shadow the script's
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what preloaded modules print must not reach the replies
    _serve(sys.stdin, replies)


if __name__ == "__main__":
    main()
