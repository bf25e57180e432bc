"""File form for scripts and the public suite: `python -m flor.propagate --source NEW ...`.

Exit 0 when the output is written; exit 1 with one `declined: <statement>: <reason>` line
per declined statement (and no output file), or one line for an error. No tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flor.errors import FlorError
from flor.propagate import MATCHERS, Declined, propagate_source
from flor.propagate.chain import read_history


def _read(path: str, which: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FlorError(
            f"The {which} {path} is not UTF-8 text: pass a Python source file."
        ) from exc
    except OSError as exc:
        raise FlorError(f"The {which} {path} cannot be read ({exc.strerror}).") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flor.propagate",
        description="Transplant new flor.log statements of SOURCE into the older TARGET.",
    )
    parser.add_argument("--source", required=True, help="newest version (has the statements)")
    parser.add_argument("--target", required=True, help="older version to patch")
    parser.add_argument("--output", required=True, help="where to write the patched target")
    parser.add_argument("--matcher", choices=MATCHERS, default="tree")
    parser.add_argument("--report", choices=("json",), help="print a per-statement report")
    parser.add_argument(
        "--history", help="folder of the versions between target and source, oldest first"
    )
    args = parser.parse_args(argv)
    try:
        history = read_history(Path(args.history), Path(args.source).name) if args.history else []
        result = propagate_source(
            _read(args.source, "source"), _read(args.target, "target"), args.matcher, history
        )
    except FlorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.report == "json":
        print(json.dumps(result.to_dict(), indent=2))
    if not result.ok:
        for outcome in result.outcomes:
            if isinstance(outcome, Declined):
                print(f"declined: {outcome.statement}: {outcome.reason}", file=sys.stderr)
        return 1
    try:
        Path(args.output).write_text(result.source, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write {args.output} ({exc.strerror})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
