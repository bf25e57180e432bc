"""Inside a replay task: a write aimed at the user's files lands in the task's own tree.

The task's tree (`flor.replay.sandbox`) holds links to the user's files. An audit hook,
installed when a replay task imports flor, sees every file write made from Python (`open`
for writing, `os.truncate`, `os.chmod`, `os.utime`, removals and renames): a write
through a link in the tree first replaces the link by a private copy (copy-on-write); a
write that names the user's folders directly is refused with `PermissionError`. Python
children of the task inherit the guard through `FLOR_SANDBOX`. Limit: native code that
opens an existing linked file for writing without going through Python is not seen (new
files still land in the tree: its folders are real).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

MANIFEST = ".flor-sandbox.json"
ENV = "FLOR_SANDBOX"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
# audit event -> positions of the paths it changes (following links: copy-on-write first)
_FOLLOWING = {"os.truncate": (0,), "os.chmod": (0,), "os.chown": (0,), "os.utime": (0,)}
# events that change the entry itself: a link in the tree may go, the user's files may not
_ENTRY = {
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.mkdir": (0,),
    "os.rename": (0, 1),
    "os.symlink": (1,),
    "os.link": (1,),
}


class Guard:
    def __init__(self, tree: str, protected: list[str], allowed: list[str]) -> None:
        self.tree = os.path.realpath(tree)
        self.protected = [os.path.realpath(p) for p in protected]
        self.allowed = [self.tree, *(os.path.realpath(p) for p in allowed)]

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            path, _, flags = args
            if isinstance(flags, int) and flags & _WRITE_FLAGS and _is_path(path):
                self._writing(os.fsdecode(path), truncate=bool(flags & os.O_TRUNC))
        elif event in _FOLLOWING:
            for i in _FOLLOWING[event]:
                if _is_path(args[i]):
                    self._writing(os.fsdecode(args[i]), truncate=False)
        elif event in _ENTRY:
            for i in _ENTRY[event]:
                if _is_path(args[i]):
                    self._changing_entry(os.fsdecode(args[i]))

    def _inside(self, path: str, roots: list[str]) -> bool:
        return any(path == root or path.startswith(root + os.sep) for root in roots)

    def _writing(self, path: str, truncate: bool) -> None:
        lexical = os.path.abspath(path)
        real = os.path.realpath(lexical)
        if self._inside(real, self.allowed):
            return
        if self._inside(lexical, [self.tree]) and os.path.islink(lexical):
            os.unlink(lexical)  # copy on write: the tree gets its own file
            if not truncate and os.path.exists(real):
                shutil.copy2(real, lexical)
            return
        if self._inside(lexical, [self.tree]) or self._inside(real, self.protected):
            raise PermissionError(
                f"flor replay sandbox: {path} is the user's file ({real}); a replay writes "
                "only inside its task's folder"
            )

    def _changing_entry(self, path: str) -> None:
        lexical = os.path.abspath(path)
        if self._inside(lexical, self.allowed):
            return  # a link in the tree is the tree's own entry
        parent = os.path.realpath(os.path.dirname(lexical))
        if self._inside(parent, self.protected) and not self._inside(parent, self.allowed):
            raise PermissionError(
                f"flor replay sandbox: {path} is in the user's folders; a replay changes "
                "only its task's folder"
            )


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, bytes, os.PathLike))


def enter() -> None:
    """Install the guard in a replay task (found by its manifest) or in its children."""
    spec = os.environ.get(ENV)
    if not spec:
        script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
        manifest = next(
            (d / MANIFEST for d in (script.parents if script else ()) if (d / MANIFEST).is_file()),
            None,
        )
        if manifest is None:
            return
        spec = manifest.read_text(encoding="utf-8")
        os.environ[ENV] = spec
    settings = json.loads(spec)
    # the store and its checkpoints may live in the user's folders: flor writes there
    stores = [os.environ.get("FLOR_HOME", ""), os.environ.get("FLOR_CHECKPOINTS", "")]
    allowed = [s for s in stores if s and "://" not in s]
    sys.addaudithook(Guard(settings["tree"], settings["protected"], allowed))
