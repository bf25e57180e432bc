"""More replay-fidelity cases: real-code training styles the public suite does not cover.

Runs this folder's `cases.json` (same format as the public suite's) with the public suite's
protocol (record, propagate + replay, from-scratch oracle, bitwise compare) and prints its
EXACT / WRONG / DECLINED / ERROR table:

    python3 benchmarks/fidelity_more/run.py --flor-bin .venv/bin --jobs 2 [--only f01,f04]
    FLOR_CKPT_BUDGET=1 python3 benchmarks/fidelity_more/run.py --flor-bin .venv/bin --jobs 1

The protocol lives in the suite's `run.py` (`--suite`, default
/work/shared/bench/replay-fidelity/run.py, or $FLOR_FIDELITY_SUITE); every other argument
is passed to it.
"""

import importlib.util
import os
import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
DEFAULT_SUITE = "/work/shared/bench/replay-fidelity/run.py"


def load_suite(path: str):
    """The public suite's runner module, reading cases from this folder."""
    if not Path(path).is_file():
        raise SystemExit(f"fidelity_more: no suite runner at {path}; pass --suite PATH")
    spec = importlib.util.spec_from_file_location("replay_fidelity_suite", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.HERE = HERE  # cases.json and cases/ of this folder
    return module


def main() -> None:
    argv = sys.argv[1:]
    suite = os.environ.get("FLOR_FIDELITY_SUITE", DEFAULT_SUITE)
    if "--suite" in argv:
        at = argv.index("--suite")
        suite = argv[at + 1]
        del argv[at : at + 2]
    module = load_suite(suite)
    sys.argv = [sys.argv[0], *argv]
    module.main()


if __name__ == "__main__":
    main()
