"""Replay: fill in hindsight log statements for past runs from their checkpoints.

The planner and executor (libcst, pandas) load on first use, so `flor replay` can start its
warm server (`flor.replay.warm`, standard library only) before it imports them."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flor.replay.executor import Summary, execute
    from flor.replay.planner import Plan, RunPlan, plan
    from flor.replay.warm import warm_up

__all__ = ["Plan", "RunPlan", "Summary", "execute", "plan", "warm_up"]
_HOMES = {
    "Plan": "planner", "RunPlan": "planner", "plan": "planner",
    "Summary": "executor", "execute": "executor", "warm_up": "warm",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
