"""What one replay task runs, as the planner hands it to the task's process.

A leaf module (standard library only): the planner builds these, the executor ships them,
and the replay session inside the task reads them, without one importing the others. A
task gets everything from its spec and never opens the store: the run's loop contexts,
its arguments and its checkpoints' digests travel with it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

# The environment variable naming the task's spec file (a file: a spec can outgrow the
# 128 KiB one environment string may hold), and the file the task hands its values back in.
SPEC_ENV = "FLOR_REPLAY"
OUTPUT_ENV = "FLOR_REPLAY_OUTPUT"


@dataclass
class TaskSpec:
    run_id: str
    replay_id: str
    names: list[str]
    tstamp: str
    projid: str
    filename: str
    mode: str  # prefix | iterations | suffix
    main_loop: str | None = None
    start: int = 0
    stop: int = 0
    total: int = 0
    log_prefix: bool = False
    log_suffix: bool = False
    skip_nested: bool = False
    args: dict[str, Any] = field(default_factory=dict)
    checkpoints: dict[int, dict[str, str]] = field(default_factory=dict)
    # recorded names the task re-derives so the guard can compare them with the record
    check: list[str] = field(default_factory=list)
    # re-executes the first iterations in full, to compare with the cheap strategy's values
    probe: bool = False
    # the run's recorded loop contexts (parent ctx, loop name, iteration, ctx): a replayed
    # value is stored under the original coordinates; filled in by the executor
    contexts: list[tuple[int | None, str, int, int]] = field(default_factory=list)

    @classmethod
    def from_json(cls, text: str) -> TaskSpec:
        data = json.loads(text)
        data["checkpoints"] = {int(k): v for k, v in data.get("checkpoints", {}).items()}
        data["contexts"] = [tuple(c) for c in data.get("contexts", [])]
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(asdict(self))
