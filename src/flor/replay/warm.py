"""Warm task processes: a replay task forks from an interpreter that has already imported
the script's libraries, instead of starting Python and importing torch again.

A process keeps one fork server per environment (interpreter and variables, which include
the BLAS/OpenMP thread settings: libraries read them when they load, so a server started
under other settings could compute different floats). flor's per-replay settings (where
the checkpoints are, the store for scripts that read it) are not part of the environment:
they come with each task. A server imports the modules the tasks' scripts import from
outside their projects (torch, numpy, ...), then forks one child per task, several at a
time; the child takes the task's variables, folder and arguments and runs the script as
`python SCRIPT ARGS` would, under `__main__`. Only imports happen before a fork: no thread
pools are running, and each child starts from the same state.

A server lives as long as the process that started it: it ends when its requests pipe
closes (that process ended, even by SIGKILL) and takes its running children with it, and
each child gets SIGKILL when the server dies (Linux's parent-death signal).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import itertools
import json
import os
import runpy
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

_servers: dict[tuple[str, ...], ForkServer] = {}
_lock = threading.Lock()


class ForkServer:
    """One warm interpreter under one environment, running any number of tasks at once."""

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
        self.stale = False  # the environment's installed modules changed since it started
        self._ids = itertools.count()
        self._write = threading.Lock()
        self._waiting: dict[int, tuple[threading.Event, dict[str, Any]]] = {}
        self._replies = threading.Thread(target=self._read_replies, daemon=True)
        self._replies.start()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def preload(self, names: list[str]) -> None:
        """Import `names` in the server now, before the tasks that need them arrive."""
        self._send({"preload": names})

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
        done, reply = threading.Event(), dict[str, Any]()
        with self._write:
            task = next(self._ids)
            self._waiting[task] = (done, reply)
        request = {
            "id": task, "script": command[1], "argv": command[2:], "cwd": str(cwd),
            "env": env, "preload": preload, "stdout": str(out), "stderr": str(err),
            "project": str(project),
        }  # fmt: skip
        self._send(request)
        done.wait()
        if "returncode" not in reply:
            raise OSError("the warm replay process ended unexpectedly")
        self.stale = self.stale or bool(reply.get("stale"))
        return int(reply["returncode"]), _read(out), _read(err)

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        with self._write:
            try:
                self.process.stdin.write(json.dumps(message) + "\n")
                self.process.stdin.flush()
            except (OSError, ValueError):
                pass  # the server ended: the reader wakes the waiting tasks

    def _read_replies(self) -> None:
        assert self.process.stdout is not None
        with contextlib.suppress(ValueError, KeyError):  # a garbled reply ends the server
            for line in self.process.stdout:
                reply = json.loads(line)
                with self._write:
                    done, slot = self._waiting.pop(reply["id"])
                slot.update(reply)
                done.set()
        self.process.kill()  # its tasks die with it
        with self._write:
            waiting, self._waiting = self._waiting, {}
        for done, _ in waiting.values():
            done.set()

    def close(self) -> None:
        """End the server: it exits when its requests end."""
        with self._write:
            if self.process.stdin is not None:
                with contextlib.suppress(OSError):
                    self.process.stdin.close()
        self.process.wait()
        self._replies.join()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def server_for(env: dict[str, str]) -> ForkServer:
    """This process's fork server for `env`, started on first use (again if it ended or
    its environment's installed modules changed)."""
    key = (sys.executable, *sorted(f"{k}={v}" for k, v in env.items()))
    with _lock:
        server = _servers.get(key)
        if server is None or not server.alive or server.stale:
            if server is not None:
                threading.Thread(target=server.close, daemon=True).start()
            server = _servers[key] = ForkServer(env)
        return server


@atexit.register
def close_all() -> None:
    """End this process's servers (a replay's, when it ends)."""
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.close()


def external_imports(source: str, local: set[str]) -> list[str]:
    """Top-level modules `source` imports that are not files of its project: none named
    in `local` (the stems of the entries at the tree's top and in the script's folder), so
    an installed module never stands in for the project's own one of the same name."""
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
    skip = {"flor", "__future__"} | local
    return sorted({n for n in names if n not in skip})


# -- inside the server -----------------------------------------------------------------------


class _Server:
    """The server's loop: reads requests, forks their children, replies as each one ends."""

    def __init__(self, requests: int, replies: IO[str]) -> None:
        self.requests = requests
        self.replies = replies
        self.children: dict[int, dict[str, Any]] = {}  # pid -> its request
        self.wakeup, wakeup_w = os.pipe()
        os.set_blocking(wakeup_w, False)
        signal.set_wakeup_fd(wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the replaying process handles Ctrl-C
        self.installed = _installed(sys.path)

    def serve(self) -> None:
        buffer = b""
        while True:
            ready, _, _ = select.select([self.requests, self.wakeup], [], [])
            if self.wakeup in ready:
                os.read(self.wakeup, 4096)
            self._reap()
            if self.requests not in ready:
                continue
            chunk = os.read(self.requests, 65536)
            if not chunk:  # the replaying process ended (or closed us): so do its tasks
                for pid in self.children:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                self._handle(json.loads(line))

    def _handle(self, request: dict[str, Any]) -> None:
        _preload(request["preload"])
        if "id" not in request:
            return
        if _installed(self.installed) != self.installed:
            # a package was installed or removed since the preloads: a fresh interpreter
            request["stale"] = True
            self.children[_cold(request)] = request
        elif threading.active_count() > 1:
            # a preloaded module started a thread: forking now could copy a held lock
            self.children[_cold(request)] = request
        else:
            pid = os.fork()
            if pid == 0:
                _child(request, (self.wakeup, self.replies.fileno()))
            self.children[pid] = request

    def _reap(self) -> None:
        for pid in list(self.children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done == 0:
                continue
            request = self.children.pop(pid)
            reply = {"id": request["id"], "returncode": os.waitstatus_to_exitcode(status)}
            if request.get("stale"):
                reply["stale"] = True
            else:
                # what the task imported later (torch imports torch._dynamo when an optimizer
                # is made) is preloaded for the next task
                learned = Path(request["stdout"]).with_name("modules.json")
                if learned.exists():
                    _preload(json.loads(learned.read_text(encoding="utf-8")))
            self.replies.write(json.dumps(reply) + "\n")
            self.replies.flush()


def _installed(folders: Any) -> dict[str, set[tuple[str, int]]]:
    """What is installed in each folder modules are imported from (entry names and when
    each last changed): installing, upgrading or removing a package changes its entries
    (e.g. its `.dist-info`). Compiled-bytecode caches are left out: importing writes them."""
    found = {}
    for folder in folders:
        with contextlib.suppress(OSError), os.scandir(folder or ".") as entries:
            found[folder] = {
                (e.name, e.stat(follow_symlinks=False).st_mtime_ns)
                for e in entries
                if e.name != "__pycache__"
            }
    return found


def _preload(names: list[str]) -> None:
    for name in names:
        if name not in sys.modules:
            # a module that fails here fails again in the task, which reports it
            with contextlib.suppress(BaseException):
                importlib.import_module(name)


def _cold(request: dict[str, Any]) -> int:
    """The task in a new interpreter, as without a warm one: its pid."""
    out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        process = subprocess.Popen(
            [sys.executable, request["script"], *request["argv"]],
            cwd=request["cwd"],
            env=request["env"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            preexec_fn=_die_with_parent,
        )
    finally:
        os.close(out)
        os.close(err)
    process.returncode = 0  # reaped by the server's loop, not by Popen
    return process.pid


def _die_with_parent() -> None:
    """SIGKILL this process when its parent (the server) dies (Linux only)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


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


def _child(request: dict[str, Any], servers: tuple[int, ...]) -> None:
    """Become `python SCRIPT ARGS` for the task, then exit without returning."""
    code = 1
    try:
        _die_with_parent()
        signal.set_wakeup_fd(-1)
        for fd in servers:  # the server's own pipes
            os.close(fd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
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
    _Server(sys.stdin.fileno(), replies).serve()


if __name__ == "__main__":
    main()
