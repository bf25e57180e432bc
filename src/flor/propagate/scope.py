"""Which names a statement reads, and which names are bound at a point of a program.

A small, conservative binding analysis over `tree.Node` trees. It follows Python's scoping
(function, class, lambda and comprehension scopes; `global`/`nonlocal`; class bodies are not
visible from methods) and textual order inside the scope of the insertion point: a local name
counts as bound there only if some binding of it comes earlier in the file. Names from
enclosing scopes count wherever they are bound, since a function runs after its module.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Iterator

from flor.propagate.tree import Node, Tree

BUILTIN_NAMES = frozenset(dir(builtins)) | {"__file__", "__name__", "__doc__", "__spec__"}

_FUNCTION_LABELS = frozenset({"FunctionDef", "Lambda"})
_COMPREHENSION_LABELS = frozenset({"ListComp", "SetComp", "GeneratorExp", "DictComp"})
_TARGET_OWNERS = frozenset({"AssignTarget", "For", "CompFor", "AnnAssign", "AugAssign"})
_SCOPE_LABELS = _FUNCTION_LABELS | _COMPREHENSION_LABELS | {"ClassDef", "Module"}


@dataclasses.dataclass(eq=False)
class Scope:
    """The bindings of one scope, each a `Node` holding the bound name in its value."""

    kind: str
    node: Node
    parent: Scope | None
    bindings: dict[str, list[Node]] = dataclasses.field(default_factory=dict)
    declared_global: set[str] = dataclasses.field(default_factory=set)
    declared_nonlocal: set[str] = dataclasses.field(default_factory=set)
    star_import: bool = False

    def bind(self, name: str, node: Node) -> None:
        self.bindings.setdefault(name, []).append(node)


def _target_names(node: Node) -> Iterator[Node]:
    """Name nodes bound by an assignment target (tuples unpacked; attributes bind nothing)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if current.label == "Name":
            yield current
        elif current.label in ("Tuple", "List", "Element", "StarredElement", "AssignTarget"):
            stack.extend(reversed(current.children))


def _import_names(alias: Node) -> Iterator[Node]:
    """The node whose value is the name an `import` alias binds."""
    for child in alias.children:
        if child.label == "AsName":
            if child.children:
                yield from _target_names(child.children[0])
            return
    first = alias.children[0] if alias.children else None
    while first is not None and first.label == "Attribute":
        first = first.children[0] if first.children else None
    if first is not None and first.label == "Name":
        yield first


class Bindings:
    """All scopes of one tree, with lookups by position (a `pre` index, may be fractional)."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.scopes: dict[Node, Scope] = {}
        self._collect()

    def _collect(self) -> None:
        root = self.tree.root
        module = Scope("module", root, None)
        self.scopes[root] = module
        stack: list[tuple[Node, Scope]] = [(c, module) for c in reversed(root.children)]
        while stack:
            node, scope = stack.pop()
            inner = scope
            label = node.label
            if label in ("FunctionDef", "ClassDef"):
                scope.bind(node.value, node)
                inner = Scope("function" if label == "FunctionDef" else "class", node, scope)
                self.scopes[node] = inner
            elif label == "Lambda":
                inner = Scope("function", node, scope)
                self.scopes[node] = inner
            elif label in _COMPREHENSION_LABELS:
                inner = Scope("comprehension", node, scope)
                self.scopes[node] = inner
            elif label == "Param":
                scope.bind(node.value.lstrip("*"), node)
            elif label in _TARGET_OWNERS and node.children:
                for name in _target_names(node.children[0]):
                    scope.bind(name.value, name)
            elif label in ("WithItem", "ExceptHandler", "ExceptStarHandler"):
                for child in node.children:
                    if child.label == "AsName" and child.children:
                        for name in _target_names(child.children[0]):
                            scope.bind(name.value, name)
            elif label == "NamedExpr" and node.children:
                owner = scope
                while owner.kind == "comprehension" and owner.parent is not None:
                    owner = owner.parent
                for name in _target_names(node.children[0]):
                    owner.bind(name.value, name)
            elif label == "ImportAlias":
                for name in _import_names(node):
                    scope.bind(name.value, name)
            elif label == "ImportStar":
                scope.star_import = True
            elif label in ("Global", "Nonlocal"):
                names = {n.value for item in node.children for n in item.children}
                target = scope.declared_global if label == "Global" else scope.declared_nonlocal
                target.update(names)
            elif label in ("MatchAs", "MatchStar") and node.children:
                for name in _target_names(node.children[-1]):
                    scope.bind(name.value, name)
            stack.extend((c, inner) for c in reversed(node.children))

    def scope_at(self, node: Node) -> Scope:
        """The scope whose body contains `node`."""
        current: Node | None = node
        while current is not None:
            scope = self.scopes.get(current)
            if scope is not None and current is not node:
                return scope
            if current.parent is None and scope is not None:
                return scope
            current = current.parent
        return self.scopes[self.tree.root]

    def _module(self) -> Scope:
        return self.scopes[self.tree.root]

    def is_bound(self, name: str, scope: Scope, position: float) -> bool:
        """True if `name` has a value when code at `position` in `scope` runs."""
        if name in BUILTIN_NAMES:
            return True
        return self.resolve(name, scope, position) is not None or self._star(scope)

    def binds_anywhere(self, name: str, scope: Scope) -> bool:
        """True if `name` is a builtin or bound anywhere in `scope` or an enclosing scope."""
        if name in BUILTIN_NAMES or self._star(scope):
            return True
        current: Scope | None = scope
        while current is not None:
            if name in current.bindings or name in current.declared_global:
                return True
            current = current.parent
        return name in self._module().bindings

    def _star(self, scope: Scope) -> bool:
        current: Scope | None = scope
        while current is not None:
            if current.star_import:
                return True
            current = current.parent
        return False

    def resolve(self, name: str, scope: Scope, position: float) -> Node | None:
        """The binding of `name` that code at `position` sees, if there is one."""
        current: Scope | None = scope
        innermost = True
        while current is not None:
            if name in current.declared_global:
                current, innermost = self._module(), False
                continue
            if current.kind == "class" and not innermost:
                current = current.parent
                continue
            nodes = current.bindings.get(name)
            if nodes and name not in current.declared_nonlocal:
                before = [n for n in nodes if n.pre < position]
                if before:
                    return max(before, key=lambda n: n.pre)
                if innermost:
                    return None
                return nodes[0]
            current, innermost = current.parent, False
        return None


def read_names(statement: Node) -> list[Node]:
    """The Name nodes a statement reads, minus names bound by its own comprehensions/lambdas."""
    found: list[Node] = []
    stack: list[tuple[Node, frozenset[str]]] = [(statement, frozenset())]
    while stack:
        node, local = stack.pop()
        label = node.label
        if label == "Name":
            if node.value not in local:
                found.append(node)
            continue
        if label in _COMPREHENSION_LABELS or label == "Lambda":
            bound = set(local)
            for desc in _walk(node):
                if desc.label == "CompFor" and desc.children:
                    bound.update(n.value for n in _target_names(desc.children[0]))
                elif desc.label == "Param":
                    bound.add(desc.value.lstrip("*"))
            inner = frozenset(bound)
            stack.extend((child, inner) for child in node.children)
            continue
        if label == "CompFor" and node.children:
            stack.extend((c, local) for c in node.children[1:])
            continue
        if label in ("AssignTarget", "NamedExpr") and node.children:
            targets = [node.children[0]] if label == "AssignTarget" else []
            stack.extend(
                (target, local)
                for target in targets
                if target.label not in ("Name", "Tuple", "List")
            )
            if label == "NamedExpr":
                stack.extend((c, local) for c in node.children[1:])
            continue
        if label == "Param":
            stack.extend((c, local) for c in node.children)
            continue
        stack.extend((c, local) for c in node.children)
    found.sort(key=lambda n: n.pre)
    return found


def _walk(node: Node) -> Iterator[Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(current.children)
