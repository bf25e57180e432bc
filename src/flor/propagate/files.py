"""The file form: propagate from one file into another and write the result to a third.

One implementation behind `flor propagate --source/--target/--output` and
`python -m flor.propagate`, so both read, write and report alike: the output is written only
when every statement was placed; a file that cannot be read or written is a
`PropagateError` naming it and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

from flor.errors import PropagateError
from flor.propagate import PropagationResult, propagate_source

REPORTS = ("text", "json")


def read_source(path: Path, role: str) -> str:
    """The text of the `role` ("source", "target") file, or one clear error."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PropagateError(
            f"the {role} {path} is not UTF-8 text: pass a Python source file."
        ) from None
    except OSError as exc:
        raise PropagateError(
            f"the {role} {path} cannot be read ({exc.strerror}): check the path."
        ) from None


def propagate_files(
    source: Path,
    target: Path,
    output: Path,
    matcher: str = "tree",
    history: Path | None = None,
) -> PropagationResult:
    """Propagate `source`'s new statements into `target`; write `output` only when none was
    declined. `history`: a folder of the versions between them (see `chain.read_history`)."""
    from flor.propagate.chain import read_history

    versions = read_history(history, source.name) if history is not None else []
    result = propagate_source(
        read_source(source, "source"), read_source(target, "target"), matcher, versions
    )
    if result.ok:
        try:
            output.write_text(result.source, encoding="utf-8")
        except OSError as exc:
            raise PropagateError(
                f"cannot write {output} ({exc.strerror}): choose another --output."
            ) from None
    return result


def report(result: PropagationResult, kind: str) -> tuple[list[str], list[str]]:
    """What the file form prints, as (stdout lines, stderr lines): the `json` report, or
    with `text` one `<outcome>: <statement>` line per statement once the output is written;
    and on stderr one `declined: <statement>: <reason>` line per declined statement."""
    out: list[str] = []
    if kind == "json":
        out.append(json.dumps(result.to_dict(), indent=2))
    elif result.ok:
        out = [f"{type(o).__name__.lower()}: {o.statement}" for o in result.outcomes]
    err = [f"declined: {o.statement}: {o.reason}" for o in result.declined]
    return out, err
