"""`python -m flor.propagate --source NEW --target OLD --output OUT`: the file form for
scripts and the suites, the same as `flor propagate` with those options (see
`flor.propagate.files`). Exit 0 when the output is written; 1 with one `declined:` line per
declined statement, or one `Error:` line; 2 for bad usage. No tracebacks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flor.errors import FlorError
from flor.propagate import MATCHERS
from flor.propagate.files import REPORTS, propagate_files, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flor.propagate",
        description="Transplant new flor.log statements of SOURCE into the older TARGET.",
    )
    parser.add_argument("--source", required=True, help="newest version (has the statements)")
    parser.add_argument("--target", required=True, help="older version to patch")
    parser.add_argument("--output", required=True, help="where to write the patched target")
    parser.add_argument("--matcher", choices=MATCHERS, default="tree")
    parser.add_argument("--report", choices=REPORTS, default="text")
    parser.add_argument(
        "--history", help="folder of the versions between target and source, oldest first"
    )
    args = parser.parse_args(argv)
    history = Path(args.history) if args.history else None
    try:
        result = propagate_files(
            Path(args.source), Path(args.target), Path(args.output), args.matcher, history
        )
    except FlorError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return exc.exit_code
    out, err = report(result, args.report)
    for line in out:
        print(line)
    for line in err:
        print(line, file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
