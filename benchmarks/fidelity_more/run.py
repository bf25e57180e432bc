"""More replay-fidelity cases: real-code training styles the public suite does not cover.

Runs this folder's `cases.json` (same format as the public suite's) with the public suite's
protocol (record, propagate + replay, from-scratch oracle, bitwise compare) and prints its
EXACT / WRONG / DECLINED / ERROR table:

    python3 benchmarks/fidelity_more/run.py --flor-bin .venv/bin --jobs 2 [--only f01,f04]
    FLOR_CKPT_BUDGET=1 python3 benchmarks/fidelity_more/run.py --flor-bin .venv/bin --jobs 1

The protocol lives in the suite's `run.py` (`--suite`, default
/work/shared/bench/replay-fidelity/run.py, or $FLOR_FIDELITY_SUITE); every other argument
is passed to it.

A case may give each version project modules beside `train.py` (`"files": {"v1":
{"engine.py": "h01_engine_v1_engine.py"}}`): they are written and committed with that
version's script, in the recorded repository and in the oracle's, and the newest version's
stay in the working tree for the replay (the statements go into `train.py` only).
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
    _with_project_modules(module)
    return module


def _with_project_modules(module) -> None:
    """Teach the suite's protocol a case's `files`: whenever it writes a version's
    `train.py` (recording, oracle, replay), that version's modules are written beside it,
    and `git add train.py` adds them too."""
    current = {"case": None, "version": None}
    version_text, write, runner_git = module.version_text, module.write, module.Runner.git

    def tracking_version_text(case, version):
        current["case"], current["version"] = case, version
        return version_text(case, version)

    def write_with_modules(path, text):
        write(path, text)
        case, version = current["case"], current["version"]
        if case is None or os.path.basename(path) != module.SCRIPT:
            return
        for name, source in case.get("files", {}).get(version, {}).items():
            modules_text = module.read(os.path.join(HERE, "cases", source))
            write(os.path.join(os.path.dirname(path), name), modules_text)

    def git_with_modules(self, cwd, *args, log=None):
        case, version = current["case"], current["version"]
        if args[:2] == ("add", module.SCRIPT) and case is not None:
            args = (*args, *case.get("files", {}).get(version, {}))
        return runner_git(self, cwd, *args, log=log)

    module.version_text = tracking_version_text
    module.write = write_with_modules
    module.Runner.git = git_with_modules


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
