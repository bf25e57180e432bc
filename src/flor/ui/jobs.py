"""Replays started from the browser: one at a time, in a background thread, with progress
read back from the store (the tasks' own rows), so the replay library stays untouched."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flor.errors import FlorError, UsageError
from flor.ui.api import Forbidden, NotFound, Project


@dataclass
class Job:
    job_id: str
    names: list[str]
    runs: list[str]
    state: str = "planning"  # planning | running | done | failed
    message: str = ""
    tasks: list[str] = field(default_factory=list)
    estimate_s: float = 0.0
    started: float = field(default_factory=time.time)
    ended: float | None = None
    values_written: int = 0
    failed_tasks: list[dict[str, Any]] = field(default_factory=list)
    # runs whose values asked for will not be given, with why and what to do (as the CLI)
    declined: list[dict[str, str]] = field(default_factory=list)


class Replays:
    """The jobs of one server; a second replay while one runs is refused."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, names: Sequence[str], runs: Sequence[str], jobs: int = 1) -> Job:
        if not self.project.allow_replay:
            raise Forbidden("replay from the browser is off: restart with flor ui --allow-replay")
        if not names or not all(isinstance(n, str) and n for n in names):
            raise UsageError("name the statements to replay")
        if not 1 <= jobs <= 64:
            raise UsageError("jobs must be between 1 and 64")
        with self._lock:
            if any(j.state in ("planning", "running") for j in self.jobs.values()):
                raise UsageError("a replay is already running: wait for it to finish")
            job = Job(uuid.uuid4().hex[:12], list(names), list(runs))
            self.jobs[job.job_id] = job
        threading.Thread(target=self._run, args=(job, jobs), daemon=True).start()
        return job

    def _run(self, job: Job, jobs: int) -> None:
        from flor import replay

        try:
            plan = replay.plan(
                job.names,
                runs=job.runs or None,
                jobs=jobs,
                root=self.project.root,
                home=self.project.home,
            )
            job.tasks = [t.replay_id for r in plan.active for t in r.tasks]
            job.estimate_s = round(plan.estimate_s, 1)
            job.declined = [
                {"run_id": r.run_id, "reason": r.declined} for r in plan.runs if r.declined
            ]
            if not job.tasks:
                if job.declined:
                    job.state = "failed"
                    job.message = f"nothing replayed: {len(job.declined)} runs declined"
                else:
                    job.state, job.message = "done", "nothing to replay"
                return
            job.state = "running"
            summary = replay.execute(plan)
            job.values_written = summary.values_written
            job.failed_tasks = [
                {"run_id": f.run_id, "replay_id": f.replay_id, "tail": f.tail}
                for f in summary.failed
            ]
            job.state = "failed" if summary.failed else "done"
            job.message = (
                f"replayed {summary.runs_replayed} runs, wrote {summary.values_written} values "
                f"in {summary.seconds:.1f} s; {len(summary.failed)} tasks failed"
            )
        except FlorError as exc:
            job.state, job.message = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - reported on the page, not lost in a thread
            job.state, job.message = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            job.ended = time.time()

    def status(self, job_id: str) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no replay job {job_id!r}")
        ended, written = 0, job.values_written
        if job.tasks and job.state == "running":
            from flor.store import browse

            with self.project.reading() as conn:
                ended, written = browse.replay_progress(conn, job.tasks)
        elif job.state in ("done", "failed"):
            ended = len(job.tasks)
        return {
            "job_id": job.job_id,
            "state": job.state,
            "message": job.message,
            "names": job.names,
            "tasks": len(job.tasks),
            "tasks_ended": ended,
            "values_written": written,
            "estimate_s": job.estimate_s,
            "elapsed_s": round((job.ended or time.time()) - job.started, 1),
            "failed_tasks": job.failed_tasks,
            "declined": job.declined,
        }
