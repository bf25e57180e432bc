"""flor: multiversion hindsight logging for machine-learning work.

Importing flor is cheap: no pandas, git, libcst or torch until a call needs them.
"""

from __future__ import annotations

import os as _os

from flor.runtime.api import arg, commit, input, iteration, log, loop, output

if _os.environ.get("FLOR_REPLAY") or _os.environ.get("FLOR_SANDBOX"):
    from flor.runtime.sandbox import enter as _enter_sandbox

    _enter_sandbox()  # a replay task: writes to the user's files go to the task's tree

TYPE_CHECKING = False  # typing itself costs ~20 ms of import time

if TYPE_CHECKING:
    from typing import Any

    import pandas as pd

__all__ = [
    "arg",
    "checkout",
    "checkpointing",
    "commit",
    "dataframe",
    "input",
    "iteration",
    "latest",
    "lineage",
    "load",
    "log",
    "loop",
    "output",
    "query",
    "utils",
]


def dataframe(*names: str, downstream_of: str | None = None) -> pd.DataFrame:
    """Logged values pivoted to one column per name, one row per run and loop coordinates;
    `downstream_of` keeps the runs that consumed that artifact or anything derived from it."""
    from flor.store import reader

    frame = reader.dataframe(names)
    if downstream_of is None:
        return frame
    from flor.graph import downstream_runs

    return frame[frame["runid"].isin(downstream_runs(downstream_of))].reset_index(drop=True)


def query(sql: str, params: tuple[Any, ...] = ()) -> pd.DataFrame:
    """Run a read-only SQL query over the store (tables runs, loops, logs, checkpoints)."""
    from flor.store import reader

    return reader.query(sql, params)


def latest(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of the most recent tstamp in each projid/filename group."""
    from flor.store import reader

    return reader.latest(df)


def __getattr__(name: str) -> Any:
    if name == "utils":
        from flor import utils

        return utils
    if name in ("lineage", "checkout"):
        from flor import graph

        return getattr(graph, name)
    if name in ("checkpointing", "load"):
        from flor.runtime import checkpointing

        return getattr(checkpointing, name)
    raise AttributeError(f"module 'flor' has no attribute {name!r}")
