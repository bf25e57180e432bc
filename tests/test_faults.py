"""The fault-injection matrix (benchmarks/faults.py), a few trials of each scenario in CI:
every count of lost values, hangs, unreadable stores and changed user files is zero."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "faults.py"


@pytest.mark.timeout(1200)
def test_fault_injection_matrix_is_all_zeros(tmp_path) -> None:
    done = subprocess.run(
        # SIGKILL may lose the last second of logs by design; 10 s here keeps a machine
        # too busy to schedule the flush thread from failing the suite (the benchmark
        # itself reports the 1 s bar)
        [sys.executable, str(BENCH), "--trials", "3", "--seed", "1", "--json"]
        + ["--sigkill-window", "10"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout.splitlines()[-1])["rows"]
    scenarios = {r["scenario"].split()[0] for r in rows}
    assert scenarios == {"kill", "store", "values", "gc", "replay", "pg", "rkill"}
    for row in rows:
        assert row["trials"] > 0
        counts = {k: row[k] for k in ("lost", "hangs", "touched", "unreadable", "failed")}
        assert counts == dict.fromkeys(counts, 0), row
