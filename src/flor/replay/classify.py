"""Where a log statement sits relative to the main `flor.loop`, which decides how to replay it.

- prefix: module level, before the main loop (run until the loop starts);
- outer: in the main loop's body, outside nested `flor.loop`s, reading nothing the nested
  loops assign (nested loops can be skipped by restoring the end-of-iteration checkpoint);
- nested: inside a nested `flor.loop`, or reading what one assigns (re-execute iterations);
- suffix: module level, after the main loop (restore the last checkpoint, run the rest);
- unknown: inside a function and not lexically in a `flor.loop` (re-execute everything).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import libcst as cst

from flor.errors import PropagateError
from flor.propagate.calls import is_flor_call
from flor.replay.hazards import (
    Hazards,
    ProjectModule,
    analyze,
    called_names,
    callee_name,
    flor_loop_call,
    loop_functions,
    loop_writes,
    project_view,
    suffix_reads,
)

PREFIX, OUTER, NESTED, SUFFIX, UNKNOWN = "prefix", "outer", "nested", "suffix", "unknown"


def _loop_name(node: cst.For) -> str | None:
    call = flor_loop_call(node.iter)
    if call is not None and call.args:
        first = call.args[0].value
        if isinstance(first, cst.SimpleString):
            value = first.evaluated_value
            return value if isinstance(value, str) else None
    return None


def _assigned_names(node: cst.CSTNode) -> set[str]:
    names: set[str] = set()

    class Collector(cst.CSTVisitor):
        def visit_AssignTarget(self, target: cst.AssignTarget) -> None:
            names.update(n.value for n in _names_in(target.target))

        def visit_AugAssign(self, aug: cst.AugAssign) -> None:
            names.update(n.value for n in _names_in(aug.target))

        def visit_AnnAssign(self, ann: cst.AnnAssign) -> None:
            names.update(n.value for n in _names_in(ann.target))

        def visit_For(self, loop: cst.For) -> None:
            names.update(n.value for n in _names_in(loop.target))

    node.visit(Collector())
    return names


def _names_in(node: cst.CSTNode) -> list[cst.Name]:
    found: list[cst.Name] = []

    class Collector(cst.CSTVisitor):
        def visit_Name(self, name: cst.Name) -> None:
            found.append(name)

        def visit_Attribute(self, attr: cst.Attribute) -> bool:
            attr.value.visit(self)
            return False

    node.visit(Collector())
    return found


@dataclass
class Classification:
    main_loop: str | None
    places: dict[str, set[str]] = field(default_factory=dict)
    # the source of each statement logging a requested name
    statements: dict[str, list[str]] = field(default_factory=dict)
    # the source of the module's functions those statements call (`grad_norm_of(model)`),
    # directly or through each other: what they read, the statement reads
    helpers: dict[str, list[str]] = field(default_factory=dict)
    hazards: Hazards = field(default_factory=Hazards)
    # an outer-level statement sits after a nested loop whose skipping it would notice
    outer_after_nested: bool = False
    # the main loop iterates a wrapper of flor.loop (enumerate, zip, a progress bar): a task
    # that starts mid-run would give the wrapper's own count or items from their start
    main_wrapped: bool = False

    @property
    def strategy(self) -> str:
        """prefix | suffix | outer | nested: the cheapest correct way to replay every name."""
        kinds = set().union(*self.places.values()) if self.places else set()
        if kinds == {PREFIX}:
            return PREFIX
        if kinds == {SUFFIX} and self.main_loop is not None:
            return SUFFIX
        if kinds and kinds <= {PREFIX, OUTER, SUFFIX} and OUTER in kinds:
            return OUTER
        return NESTED


class _MainLoopFinder(cst.CSTVisitor):
    """The main loop: the first top-level `flor.loop` inside `flor.checkpointing`, else the
    first top-level `flor.loop` (top-level: not nested in another flor.loop or a function),
    else the first `flor.loop` inside `flor.checkpointing` in a function (`def main():`,
    `Trainer.fit`), which the module reaches through a call."""

    def __init__(self) -> None:
        self.depth = 0
        self.checkpointing = 0
        self.functions = 0
        self.first: cst.For | None = None
        self.checkpointed: cst.For | None = None
        self.in_function: cst.For | None = None
        self.restored_names: set[str] = set()

    def visit_With(self, node: cst.With) -> None:
        self.checkpointing += _is_checkpointing(node)
        for item in node.items:
            if is_flor_call(item.item, "checkpointing"):
                call = item.item
                assert isinstance(call, cst.Call)
                self.restored_names |= {
                    arg.value.value for arg in call.args if isinstance(arg.value, cst.Name)
                }

    def leave_With(self, node: cst.With) -> None:
        self.checkpointing -= _is_checkpointing(node)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions += 1

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions -= 1

    def visit_For(self, node: cst.For) -> bool:
        if flor_loop_call(node.iter) is not None:
            if self.functions:
                if self.checkpointing and self.in_function is None:
                    self.in_function = node
                return False
            self.first = self.first or node
            if self.checkpointing and self.checkpointed is None:
                self.checkpointed = node
            return False
        return True

    @property
    def main(self) -> cst.For | None:
        return self.checkpointed or self.first or self.in_function


def _is_checkpointing(node: cst.With) -> int:
    return int(any(is_flor_call(item.item, "checkpointing") for item in node.items))


class _Classifier(cst.CSTVisitor):
    def __init__(
        self,
        names: set[str],
        main: cst.For | None,
        restored: set[str],
        loop_calls: frozenset[str] = frozenset(),
        through_call: bool = False,
        module: cst.Module | None = None,
    ) -> None:
        self.module = module or cst.Module(body=[])
        self.names = names
        self.main = main
        self.restored = restored
        self.loop_calls = loop_calls
        # the module reaches its main loop by calling a function: module-level statements
        # after that call run after the loop
        self.through_call = through_call
        self.loop_called = False
        self.main_done = False
        self.loops: list[tuple[cst.For, set[str]]] = []
        self.functions = 0
        self.found: list[tuple[str, str]] = []
        self.sources: list[tuple[str, str]] = []
        self.after_nested = False
        self.outer_after_nested_statement = False
        self.calls: dict[str, set[str]] = {}

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions += 1

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.functions -= 1

    def visit_For(self, node: cst.For) -> None:
        if flor_loop_call(node.iter) is not None:
            nested_assigned: set[str] = set()
            if not self.loops:
                for inner in _flor_loops_inside(node):
                    nested_assigned |= _assigned_names(inner) | loop_writes(self.module, inner)
            self.loops.append((node, nested_assigned - self.restored))

    def leave_For(self, node: cst.For) -> None:
        if self.loops and self.loops[-1][0] is node:
            self.loops.pop()
            if len(self.loops) == 1 and self.loops[0][0] is self.main:
                self.after_nested = True
        if node is self.main:
            self.main_done = True

    def _after_main(self) -> bool:
        return self.loop_called if self.through_call else self.main_done

    def _place(self, reads: set[str]) -> str:
        if self.loops:
            outermost, nested_assigned = self.loops[0]
            if outermost is not self.main:
                return UNKNOWN if self.functions else (SUFFIX if self._after_main() else PREFIX)
            if len(self.loops) > 1 or reads & nested_assigned:
                return NESTED
            return OUTER
        if self.functions:
            return UNKNOWN
        return SUFFIX if self._after_main() else PREFIX

    def leave_Call(self, node: cst.Call) -> None:
        if callee_name(node) not in self.loop_calls:
            return
        # a function that runs a flor.loop, called from the main loop's body, is a nested loop
        if len(self.loops) == 1 and self.loops[0][0] is self.main:
            self.after_nested = True
        if not self.loops and not self.functions:
            self.loop_called = True

    def visit_Call(self, node: cst.Call) -> None:
        if not is_flor_call(node, "log") or not node.args:
            return
        first = node.args[0].value
        if not isinstance(first, cst.SimpleString):
            return
        name = first.evaluated_value
        if isinstance(name, str) and name in self.names:
            reads = {n.value for arg in node.args[1:] for n in _names_in(arg.value)}
            place = self._place(reads)
            self.found.append((name, place))
            self.sources.append((name, cst.Module(body=[]).code_for_node(node)))
            self.calls.setdefault(name, set()).update(called_names(node))
            if place == OUTER and self.after_nested:
                self.outer_after_nested_statement = True


def _flor_loops_inside(node: cst.For) -> list[cst.For]:
    inner: list[cst.For] = []

    class Collector(cst.CSTVisitor):
        def visit_For(self, loop: cst.For) -> None:
            if flor_loop_call(loop.iter) is not None:
                inner.append(loop)

    node.body.visit(Collector())
    return inner


def classify(
    source: str,
    names: Sequence[str],
    local_modules: set[str] | None = None,
    project: dict[str, ProjectModule | None] | None = None,
) -> Classification:
    """Where each of `names` is logged in `source` (a name may be logged in several places);
    `local_modules`: the project's own modules the script may import; `project`: their
    analyses (`hazards.project_modules`), where they could be read."""
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        raise PropagateError(
            f"cannot parse the script at line {exc.raw_line}: {exc.message}"
        ) from exc
    finder = _MainLoopFinder()
    module.visit(finder)
    main = finder.main
    local_modules = local_modules or set()
    project = project or {}
    # a call of a function that runs a flor.loop, here or in a project module, is a loop
    loop_calls = loop_functions(module) | project_view(module, local_modules, project)[0]
    through_call = main is None or main is finder.in_function
    # Checkpointed objects are restored at the end of a skipped nested loop, so what the
    # nested loop does to them in place is not lost.
    visitor = _Classifier(
        set(names),
        main,
        finder.restored_names,
        loop_calls,
        through_call and bool(loop_calls),
        module,
    )
    module.visit(visitor)
    result = Classification(_loop_name(main) if main is not None else None)
    for name, place in visitor.found:
        result.places.setdefault(name, set()).add(NESTED if place == UNKNOWN else place)
    for name, text in visitor.sources:
        result.statements.setdefault(name, []).append(text)
    functions = {
        f.name.value: f for f in module.body if isinstance(f, cst.FunctionDef)
    }  # fmt: skip
    for name, calls in visitor.calls.items():
        reached, todo = set(), [c for c in calls if c in functions]
        while todo:
            callee = todo.pop()
            if callee not in reached:
                reached.add(callee)
                todo.extend(c for c in called_names(functions[callee].body) if c in functions)
        result.helpers[name] = [
            cst.Module(body=[]).code_for_node(functions[c]) for c in sorted(reached)
        ]
    result.outer_after_nested = visitor.outer_after_nested_statement
    result.main_wrapped = main is not None and not is_flor_call(main.iter, "loop")
    if main is not None:
        result.hazards = analyze(module, main, finder.restored_names, local_modules, project)
        result.hazards.suffix_reads = suffix_reads(module, main)
    elif loop_calls:
        result.hazards.unanalysed = (
            "the training loop runs inside a function without flor.checkpointing around it"
        )
    return result
