"""Replay: fill in hindsight log statements for past runs from their checkpoints."""

from flor.replay.executor import Summary, execute, warm_up
from flor.replay.planner import Plan, RunPlan, plan

__all__ = ["Plan", "RunPlan", "Summary", "execute", "plan", "warm_up"]
