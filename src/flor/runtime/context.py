"""The process's session: which kind to create, and what ends it.

A run starts at the first flor call (not at import, which must stay cheap). A process
started by `flor replay` (`FLOR_REPLAY` holds its task) gets a replay session; any other
gets a recording session, with the notebook hook when it runs under IPython. Either way,
exit, an uncaught exception, SIGTERM and Ctrl-C end the run with the right status and a
last flush; a forked child (a DataLoader worker) never writes as its parent.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import uuid
from pathlib import Path
from types import TracebackType
from typing import NoReturn

from flor.errors import FlorError, StoreError
from flor.paths import db_path, ensure_home, find_repo_root, home_dir
from flor.runtime.session import Identity, Session
from flor.store.backend import errors as store_errors
from flor.store.reads import attach_session
from flor.store.writer import StoreWriter

_session: Session | None = None
_start_lock = threading.Lock()


def active() -> Session | None:
    """The process's session if one has started (reading must not start a run)."""
    return _session


def current() -> Session:
    """The process's session, started on first use."""
    global _session
    if _session is not None:
        return _session
    with _start_lock:
        if _session is None:
            try:
                _session = _start()
                attach_session(_session.home, _session.flush)
            except FlorError as exc:
                fail(exc)
            except store_errors() as exc:
                fail(StoreError(f"cannot record into the flor store: {exc}"))
    assert _session is not None
    return _session


def fail(error: FlorError) -> NoReturn:
    """Stop the user's script the way argparse does: one line on stderr, exit status."""
    print(f"flor: error: {error}", file=sys.stderr)
    if _session is not None:
        _session.status, _session.error = "failed", str(error)
    raise SystemExit(error.exit_code)


def _start() -> Session:
    # taken out of the environment: a child process (a DataLoader worker, another flor
    # script) must not start a second replay of this task, deleting what this one wrote
    spec = os.environ.pop("FLOR_REPLAY", "")
    if spec:
        from flor.runtime.replaying import start_replay

        session: Session = start_replay(spec)
        _install_exit_handlers(session)
        return session
    session = _start_recording()
    _install_exit_handlers(session)
    from flor.runtime import notebook

    notebook.install(session)
    return session


def _script_path() -> Path | None:
    main = sys.modules.get("__main__")
    file = getattr(main, "__file__", None)
    return Path(file).resolve() if file else None


def _start_recording() -> Session:
    script = _script_path()
    start_dir = script.parent if script else Path.cwd()
    root = find_repo_root(start_dir)
    if root is None:
        print(
            f"flor: warning: {start_dir} is not inside a git repository: this run is recorded "
            "without a code snapshot and cannot be replayed (run `git init` to fix)",
            file=sys.stderr,
        )
    home = ensure_home(home_dir(start_dir, required=False))
    if script and root and script.is_relative_to(root):
        filename = script.relative_to(root).as_posix()
    else:
        filename = script.name if script else _interactive_name()
    projid = os.environ.get("FLOR_PROJID") or (root or start_dir).name
    identity = Identity(uuid.uuid4().hex[:12], projid, filename)
    session = Session(StoreWriter(db_path(home)), identity, home, root, list(sys.argv))
    snapshot = base = branch = None
    if root is not None:
        from flor import vcs

        snap = vcs.snapshot(root, session.run_id, f"flor run {session.run_id}: {filename}")
        snapshot, base, branch = snap.commit, snap.base_commit, snap.branch
    session.begin(snapshot, base, branch)
    return session


def _interactive_name() -> str:
    return os.environ.get("FLOR_NOTEBOOK") or "<interactive>"


def _install_exit_handlers(session: Session) -> None:
    atexit.register(session.close)
    previous_hook = sys.excepthook

    def record_failure(
        kind: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        session.status = "killed" if issubclass(kind, KeyboardInterrupt) else "failed"
        session.error = f"{kind.__name__}: {exc}"
        previous_hook(kind, exc, tb)

    sys.excepthook = record_failure
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:

        def on_sigterm(signum: int, frame: object) -> None:
            session.status = "killed"
            session.error = "SIGTERM"
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, on_sigterm)
    os.register_at_fork(after_in_child=_forget_in_child)


def _forget_in_child() -> None:
    """A forked worker (e.g. a DataLoader process) must not write as the parent run."""
    if _session is not None:
        _session.forget()
