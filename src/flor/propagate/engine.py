"""`propagate_source`: the whole pipeline from two source strings to a `PropagationResult`."""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import secrets
from collections import Counter

import libcst as cst

from flor.errors import PropagateError, UsageError
from flor.propagate import MATCHER_CLASSES
from flor.propagate.calls import is_flor_ast_call
from flor.propagate.gumtree_external import GumTreeMatcher
from flor.propagate.matcher import Mappings, Matcher
from flor.propagate.outcomes import AlreadyPresent, Declined, Outcome, Placed, PropagationResult
from flor.propagate.scope import Bindings
from flor.propagate.splice import splice, top_level_check
from flor.propagate.statements import (
    LogStatement,
    Parsed,
    ast_log_statements,
    log_name,
    log_statements,
    parse,
)
from flor.propagate.transplant import (
    Context,
    Decline,
    Edit,
    Insertion,
    Wrap,
    apply_edits,
    import_flor_index,
    insert_edit,
    mark_edit,
    module_has_flor,
    parses,
    plan_insertion,
    plan_wrap,
    strip_marks,
)
from flor.propagate.tree import Node, Tree, build_tree

_WHOLE_FILE = "another statement of this source was declined, so the target is left unchanged"


def _matcher(name: str) -> Matcher:
    if name not in MATCHER_CLASSES:
        raise UsageError(f"Unknown matcher {name!r}: use one of {', '.join(MATCHER_CLASSES)}.")
    module, cls = MATCHER_CLASSES[name]
    matcher: Matcher = getattr(importlib.import_module(module), cls)()
    return matcher


def propagate_source(new_src: str, old_src: str, matcher: str = "tree") -> PropagationResult:
    """Transplant the `flor.log` statements of `new_src` that `old_src` lacks into `old_src`.

    Returns the patched target (unchanged when nothing is placed or anything is declined)
    and one outcome per `flor.log` statement of the source. Raises `PropagateError` for a
    version that does not parse or a log name that is not a string literal, and
    `UsageError` for an unknown matcher.
    """
    if not isinstance(new_src, str) or not isinstance(old_src, str):
        raise PropagateError("Both the source and the target must be text (str), not bytes.")
    engine = _matcher(matcher)
    if isinstance(engine, GumTreeMatcher):
        engine.check_available()
    try:
        source = _source(new_src)
        statements = source.statements
        old = parse(old_src, "target")
        old_statements = ast_log_statements(old.tree, old.text)
        present = {ast.dump(s) for s in old_statements}
        edited = _edited_names(statements, old_statements)
        pending: list[int] = []
        outcomes: dict[int, Outcome] = {}
        for order, stmt in enumerate(statements):
            if ast.dump(stmt.ast_node) in present:
                outcomes[order] = AlreadyPresent(stmt.text)
            elif _names_of(stmt.ast_node) <= edited:
                outcomes[order] = AlreadyPresent(stmt.text, edited=True)
            else:
                _check_names(stmt)
                pending.append(order)
        if not pending:
            return PropagationResult(old_src, [outcomes[i] for i in sorted(outcomes)], old_src)
        return _propagate(source, old, tuple(pending), outcomes, engine)
    except (PropagateError, UsageError):
        raise
    except RecursionError as exc:
        raise PropagateError(
            "The source or target is nested too deeply to propagate; simplify it."
        ) from exc
    except Exception as exc:  # a bug must not look like a crash of the caller's CLI
        raise PropagateError(
            f"Internal error while propagating ({type(exc).__name__}: {exc}); "
            f"please report it with both files."
        ) from exc


@dataclasses.dataclass(frozen=True)
class _SourceSide:
    """The source tree without the pending statements (wrapped values unwrapped)."""

    tree: Tree
    bindings: Bindings
    skip: frozenset[cst.CSTNode]


@dataclasses.dataclass(eq=False)
class _Source:
    """A parsed source, its log statements and its trees per set of pending statements."""

    parsed: Parsed
    statements: list[LogStatement]
    sides: dict[tuple[int, ...], _SourceSide] = dataclasses.field(default_factory=dict)

    def side(self, pending: tuple[int, ...]) -> _SourceSide:
        found = self.sides.get(pending)
        if found is None:
            found = self.sides[pending] = self._build(pending)
        return found

    def _build(self, pending: tuple[int, ...]) -> _SourceSide:
        skip: set[cst.CSTNode] = set()
        substitute: dict[cst.CSTNode, cst.CSTNode] = {}
        for order in pending:
            stmt = self.statements[order]
            if stmt.is_insert:
                line = stmt.line_node
                single = isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1
                skip.add(line if single else stmt.node)
            else:
                for call in stmt.calls:
                    value = _value(call)
                    if value is not None:
                        substitute[call] = value
        tree = build_tree(self.parsed.module, frozenset(skip), substitute)
        return _SourceSide(tree, Bindings(tree), frozenset(skip))


@functools.lru_cache(maxsize=4)
def _source(text: str) -> _Source:
    """The parsed source; cached, as one source is propagated into many targets."""
    parsed = parse(text, "source")
    try:
        return _Source(parsed, log_statements(parsed))
    except RecursionError as exc:
        raise PropagateError("The source is nested too deeply to propagate; simplify it.") from exc


def _names_of(statement: ast.stmt) -> frozenset[str | None]:
    """The literal names of a statement's flor.log calls (None for a non-literal name)."""
    return frozenset(
        log_name(call)
        for call in ast.walk(statement)
        if isinstance(call, ast.Call) and is_flor_ast_call(call)
    )


def _edited_names(statements: list[LogStatement], old_statements: list[ast.stmt]) -> set[str]:
    """Log names the target already logs as often as the source: an edited statement (the
    value expression changed) is the user's own code, not a new one to propagate."""
    new_count: Counter[str | None] = Counter()
    for stmt in statements:
        new_count.update(_names_of(stmt.ast_node))
    old_count: Counter[str | None] = Counter()
    for statement in old_statements:
        old_count.update(_names_of(statement))
    return {
        name
        for name, count in new_count.items()
        if name is not None and 0 < count <= old_count[name]
    }


def _check_names(stmt: LogStatement) -> None:
    for call in ast.walk(stmt.ast_node):
        if isinstance(call, ast.Call) and is_flor_ast_call(call) and log_name(call) is None:
            raise PropagateError(
                f"The source's flor.log at line {call.lineno} has no string-literal name: "
                f'write the name as a literal such as flor.log("loss", value).'
            )


def _propagate(
    source: _Source,
    old: Parsed,
    pending: tuple[int, ...],
    outcomes: dict[int, Outcome],
    engine: Matcher,
) -> PropagationResult:
    statements = source.statements
    side = source.side(pending)
    old_tree = build_tree(old.module, index=False)
    mappings = engine.match(side.tree, old_tree, Mappings())
    ctx = Context(side.tree, old_tree, mappings, side.bindings, Bindings(old_tree))
    plans: dict[int, Insertion | Wrap] = {}
    declined: dict[int, str] = {}
    for order in pending:
        stmt = statements[order]
        try:
            if stmt.is_insert:
                block, index = _source_slot(stmt, side.tree, side.skip)
                plans[order] = plan_insertion(stmt, block, index, order, ctx)
            else:
                plans[order] = plan_wrap(stmt, order, ctx)
        except Decline as exc:
            declined[order] = str(exc)
    wrapped = [p.target for p in plans.values() if isinstance(p, Wrap)]
    for order, plan in plans.items():
        if isinstance(plan, Wrap) and wrapped.count(plan.target) > 1:
            declined[order] = "another statement already wraps the same expression"
    old_src = old.text
    if declined:
        for order in plans:
            declined.setdefault(order, _WHOLE_FILE)
        for order, reason in declined.items():
            outcomes[order] = Declined(statements[order].text, reason)
        return PropagationResult(old_src, [outcomes[i] for i in sorted(outcomes)], old_src)
    code, lines = _apply(plans, old, old_tree, ctx)
    if not parses(code):
        for order in plans:
            outcomes[order] = Declined(
                statements[order].text, "internal error: the patched target did not parse"
            )
        return PropagationResult(old_src, [outcomes[i] for i in sorted(outcomes)], old_src)
    old_lines = _old_lines(code, old_src, lines, plans)
    for order, plan in plans.items():
        if isinstance(plan, Insertion):
            outcome = Placed(plan.text, lines[order], plan.renames, False, old_lines[order])
        else:
            outcome = Placed(plan.text, lines[order], {}, True, old_lines[order])
        outcomes[order] = outcome
    return PropagationResult(code, [outcomes[i] for i in sorted(outcomes)], old_src)


def _old_lines(
    code: str, old_src: str, lines: dict[int, int], plans: dict[int, Insertion | Wrap]
) -> dict[int, int]:
    """For each plan, the target's own line number: the line an insertion follows (0 when
    it comes first), or the wrapped statement's line. Inserted lines are recognised by
    aligning the output with the target, which differ only by added lines."""
    import difflib

    out_lines, old_lines = code.splitlines(), old_src.splitlines()
    matcher = difflib.SequenceMatcher(None, out_lines, old_lines, autojunk=False)
    origin: dict[int, int] = {}
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            origin[block.a + k + 1] = block.b + k + 1
    found: dict[int, int] = {}
    for order, plan in plans.items():
        line = lines[order]
        if isinstance(plan, Wrap):
            found[order] = origin.get(line, 0)
            continue
        before = line - 1
        while before > 0 and before not in origin:
            before -= 1
        found[order] = origin.get(before, 0)
    return found


def _value(call: cst.Call) -> cst.BaseExpression | None:
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if len(positional) >= 2:
        return positional[1].value
    keyword = [a for a in call.args if a.keyword is not None and a.keyword.value == "value"]
    return keyword[0].value if keyword else None


def _source_slot(stmt: LogStatement, tree: Tree, skip: frozenset[cst.CSTNode]) -> tuple[Node, int]:
    """The source block of a skipped statement and its index among the kept siblings."""
    block_cst = stmt.block
    block = tree.by_cst.get(block_cst)
    if block is None:
        raise Decline("its enclosing block could not be located")
    body = getattr(block_cst, "body", ())
    index = 0
    for item in body:
        if item is stmt.line_node or item is stmt.node:
            break
        if item not in skip:
            index += 1
    line = stmt.line_node
    kept = isinstance(line, cst.SimpleStatementLine) and line not in skip
    if kept and line.body[0] is not stmt.node:
        index += 1
    return block, index


def _apply(
    plans: dict[int, Insertion | Wrap], old: Parsed, old_tree: Tree, ctx: Context
) -> tuple[str, dict[int, int]]:
    """Edit the target module; return its code and the output line of each plan."""
    token = secrets.token_hex(8)
    inserts: dict[Node, list[tuple[int, int, cst.SimpleStatementLine]]] = {}
    edits: dict[Node, list[Edit]] = {}
    mark_of: dict[int, str] = {}
    for order, plan in plans.items():
        mark = f"flor-propagate-{token}-{order}"
        mark_of[order] = mark
        if isinstance(plan, Insertion):
            line = plan.statement.with_changes(
                leading_lines=[cst.EmptyLine(comment=cst.Comment(f"# {mark}"))]
            )
            inserts.setdefault(plan.block, []).append((plan.index, order, line))
        else:
            build = plan.build
            edits.setdefault(plan.target, []).append(
                lambda node, build=build: build(node)  # type: ignore[misc]
            )
            edits.setdefault(plan.statement, []).append(mark_edit(mark))
    module = old.module
    if not module_has_flor(ctx.old_bindings):
        index = import_flor_index(old_tree)
        statement = cst.parse_statement("import flor\n", config=module.config_for_parsing)
        assert isinstance(statement, cst.SimpleStatementLine)
        inserts.setdefault(old_tree.root, []).append((index, -1, statement))
    root_items = inserts.pop(old_tree.root, [])
    for block, items in inserts.items():
        edits.setdefault(block, []).append(insert_edit(items))
    updated = apply_edits(old_tree, edits)
    by_cst = {node.cst: new for node, new in updated.items() if node.parent is old_tree.root}
    marks = list(mark_of.values())
    spliced = splice(old, old_tree, by_cst, root_items)
    if spliced is not None:
        code, where = strip_marks(spliced, marks)
        if top_level_check(code, old, old_tree, root_items):
            return code, {order: where.get(mark, 0) for order, mark in mark_of.items()}
    if root_items:
        edits.setdefault(old_tree.root, []).append(insert_edit(root_items))
        updated = apply_edits(old_tree, edits)
    edited = updated.get(old_tree.root, module)
    assert isinstance(edited, cst.Module)
    code, where = strip_marks(edited.code, marks)
    return code, {order: where.get(mark, 0) for order, mark in mark_of.items()}
