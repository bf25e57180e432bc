"""A run records its BLAS/OpenMP thread settings (issue 17), never importing torch itself."""

from __future__ import annotations

import json
import os

import flor

WITH_TORCH = """
import torch
import flor
torch.set_num_threads(1)
for step in flor.loop("step", range(2)):
    flor.log("loss", float(torch.ones(2).sum()) + step)
"""

WITHOUT_TORCH = """
import sys
import flor
for step in flor.loop("step", range(2)):
    flor.log("loss", step)
print("torch" in sys.modules)
"""


def _threads(filename: str) -> dict[str, object]:
    frame = flor.query(f"SELECT threads FROM runs WHERE filename = '{filename}'")
    return json.loads(frame["threads"].item())


def test_the_run_row_holds_thread_variables_and_torch_threads(script) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("MKL_NUM_THREADS",)}
    env |= {"OMP_NUM_THREADS": "3", "OPENBLAS_NUM_THREADS": "2"}
    script("t.py", WITH_TORCH).run(env=env)
    assert _threads("t.py") == {
        "OMP_NUM_THREADS": "3",
        "MKL_NUM_THREADS": None,
        "OPENBLAS_NUM_THREADS": "2",
        "torch.get_num_threads": 1,
    }


def test_flor_never_imports_torch_to_record_them(script) -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    done = script("u.py", WITHOUT_TORCH).run(env=env)
    assert done.stdout.strip() == "False"
    assert _threads("u.py") == {
        "OMP_NUM_THREADS": None,
        "MKL_NUM_THREADS": None,
        "OPENBLAS_NUM_THREADS": None,
    }
