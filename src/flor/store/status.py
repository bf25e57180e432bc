"""A run's status as seen now: a run still marked running whose process is gone was killed.

Apart from the reader (which loads pandas), so pages and listings can use it cheaply.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

STALE_HEARTBEAT_S = 30.0


def effective_status(row: dict[str, Any], now: float | None = None) -> str:
    """A run still marked running whose process is gone was killed (e.g. SIGKILL)."""
    if row["status"] != "running":
        return str(row["status"])
    now = now or time.time()
    if row.get("host") == socket.gethostname() and row.get("pid"):
        try:
            os.kill(int(row["pid"]), 0)
        except ProcessLookupError:
            return "killed"
        except PermissionError:
            pass
        if now - float(row.get("heartbeat") or 0) < STALE_HEARTBEAT_S:
            return "running"
    if now - float(row.get("heartbeat") or 0) > STALE_HEARTBEAT_S:
        return "killed"
    return "running"
