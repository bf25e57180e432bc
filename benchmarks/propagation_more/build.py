"""Builds cases.json (specs.py) and cases_round3.json (specs_round3.py) from compact case specs.

Each spec names the anchor by its statement's first line in NEW (or the block header for a
first-in-block case) and the expected anchor in OLD; this script derives the suite's fields
(insert_after_line, indent, expected_block, ...) from the two versions' ASTs and checks each
case with the public scorer's oracle. Needs the mirrors (see README.md).
"""

import ast
import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCORE = os.environ.get("PROPAGATION_SCORE", "/work/shared/bench/propagation-real/score.py")


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


score = _load("score", SCORE)


def _stmt_at(tree, line):
    best = None
    for n in ast.walk(tree):
        if isinstance(n, ast.stmt) and n.lineno == line:
            if best is None or n.col_offset < best.col_offset:
                best = n
    if best is None:
        raise SystemExit("no statement starts at line %d" % line)
    return best


def _owner_list(tree, stmt):
    for owner, field, lst in score.stmt_lists(tree):
        if any(x is stmt for x in lst):
            return owner, field
    raise SystemExit("statement at %d not in a list" % stmt.lineno)


def build(s):
    case = {k: s[k] for k in ("id", "repo", "path", "new_commit", "old_commit", "statement")}
    new_tree = ast.parse(score.git_show(case, case["new_commit"]))
    old_tree = ast.parse(score.git_show(case, case["old_commit"]))
    field = s.get("field", "body")
    if s.get("first"):
        header = _stmt_at(new_tree, s["new"])
        first = getattr(header, field)[0]
        case["insert_after_line"] = first.lineno - 1
        case["indent"] = " " * first.col_offset
        case["new_block_header_line"] = header.lineno
    else:
        anchor = _stmt_at(new_tree, s["new"])
        case["insert_after_line"] = anchor.end_lineno
        case["indent"] = s.get("indent", " " * anchor.col_offset)
        case["new_anchor_line"] = anchor.lineno
    if s["old"] is None:
        case["expected"] = "none"
    elif s.get("first") or s.get("old_first"):
        header = _stmt_at(old_tree, s["old"])
        case["block_header_line"] = header.lineno
        case["expected_before_line"] = getattr(header, field)[0].lineno
        case["expected_block"] = score.block_info(old_tree, header, field)
    else:
        anchor = _stmt_at(old_tree, s["old"])
        case["expected_after_line"] = anchor.lineno
        owner, ofield = _owner_list(old_tree, anchor)
        case["expected_block"] = score.block_info(old_tree, owner, ofield)
    if s.get("expected_statement"):
        case["expected_statement"] = s["expected_statement"]
    case["why"] = s["why"]
    case["tags"] = s["tags"] + (["none"] if s["old"] is None and "none" not in s["tags"] else [])
    verdict = score.run_case(case, "builtin-oracle", 60, None)
    if verdict[0] != "CORRECT":
        raise SystemExit("%s: oracle says %s" % (case["id"], verdict))
    return case


# Each specs module builds its own cases file (round 3's cases were scored separately first).
ROUNDS = {"specs.py": "cases.json", "specs_round3.py": "cases_round3.json"}


def main():
    names = sys.argv[1:] or list(ROUNDS)
    for name in names:
        build_round(name, ROUNDS[name])


def build_round(specs_name, cases_name):
    specs = _load(specs_name[:-3], os.path.join(HERE, specs_name))
    ids = set()
    cases = []
    for s in specs.SPECS:
        if s["id"] in ids:
            raise SystemExit("duplicate id " + s["id"])
        ids.add(s["id"])
        cases.append(build(s))
    with open(os.path.join(HERE, cases_name), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")
    none = sum(c.get("expected") == "none" for c in cases)
    print("%s: %d cases (%d none)" % (cases_name, len(cases), none))


if __name__ == "__main__":
    sys.exit(main())
