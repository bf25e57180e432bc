"""Per-statement outcomes and the overall result; no heavy imports, so the CLI can load them."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Placed:
    """The statement was inserted (or, `wrapped`, applied to old's own expression).

    `line` is its line in the output; `old_line` the target's own line it follows (0: at
    the very top), or for a wrap the target's line of the wrapped statement.
    """

    statement: str
    line: int
    renames: dict[str, str] = dataclasses.field(default_factory=dict)
    wrapped: bool = False
    old_line: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "placed",
            "statement": self.statement,
            "line": self.line,
            "old_line": self.old_line,
            "renames": dict(self.renames),
            "wrapped": self.wrapped,
        }


@dataclasses.dataclass(frozen=True)
class AlreadyPresent:
    """An AST-equal statement already exists in the target; `edited`: one with the same log
    name but another value expression (the user's own edit, left as the target has it)."""

    statement: str
    edited: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "already_present", "statement": self.statement, "edited": self.edited}


@dataclasses.dataclass(frozen=True)
class Declined:
    """The statement has no safe place in the target; `reason` says why."""

    statement: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "declined", "statement": self.statement, "reason": self.reason}


Outcome = Placed | AlreadyPresent | Declined


@dataclasses.dataclass(frozen=True)
class PropagationResult:
    """The patched target and one outcome per `flor.log` statement of the source.

    `source` equals the original target whenever any statement is declined: a version is
    patched completely or not at all.
    """

    source: str
    outcomes: list[Outcome]
    original: str = dataclasses.field(repr=False, default="")

    @property
    def ok(self) -> bool:
        return not any(isinstance(o, Declined) for o in self.outcomes)

    @property
    def changed(self) -> bool:
        return self.source != self.original

    @property
    def placed(self) -> list[Placed]:
        return [o for o in self.outcomes if isinstance(o, Placed)]

    @property
    def declined(self) -> list[Declined]:
        return [o for o in self.outcomes if isinstance(o, Declined)]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "outcomes": [o.to_dict() for o in self.outcomes]}
