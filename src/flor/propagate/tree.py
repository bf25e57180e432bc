"""Formatting-free trees over libcst nodes: the common currency of every matcher.

libcst keeps every space, comma and parenthesis so that code round-trips; a matcher must not
care about any of that. A `Node` keeps one semantic libcst node (statement, expression,
parameter...) with a type `label`, an optional `value` (identifier, literal, operator) and its
semantic children, plus the height, size, structural hash and pre-order range that the
GumTree phases need. Every `Node` points back to its libcst node through `cst` so edits are
made on the libcst tree and keep the old file's formatting.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
from collections.abc import Callable, Iterator
from typing import Any

import libcst as cst

# Fields that only carry formatting, or whose content is folded into `Node.value`.
_SKIPPED_FIELDS = frozenset(
    {
        "leading_lines",
        "lines_after_decorators",
        "header",
        "footer",
        "semicolon",
        "comma",
        "lpar",
        "rpar",
        "lbracket",
        "rbracket",
        "lbrace",
        "rbrace",
        "indent",
        "newline",
        "trailing_whitespace",
        "equal",
        "colon",
        "dot",
        "first_colon",
        "second_colon",
        "asynchronous",
        "encoding",
        "default_indent",
        "default_newline",
        "has_trailing_newline",
        "operator",
        "star",
        "relative",
        "start",
        "end",
        "conversion",
        "posonly_ind",
        "type_parameters",
    }
)

# Source order where the dataclass declaration order differs; names folded into the value.
_FIELD_ORDER: dict[type[cst.CSTNode], tuple[str, ...]] = {
    cst.FunctionDef: ("decorators", "params", "returns", "body"),
    cst.ClassDef: ("decorators", "bases", "keywords", "body"),
    cst.IfExp: ("body", "test", "orelse"),
    cst.Arg: ("value",),
    cst.Param: ("annotation", "default"),
    cst.Attribute: ("value",),
    cst.Parameters: ("posonly_params", "params", "star_arg", "kwonly_params", "star_kwarg"),
    cst.Lambda: ("params", "body"),
    cst.DictComp: ("key", "value", "for_in"),
}

# Labels whose value is an identifier that may be renamed between versions.
_RENAMEABLE = frozenset({"Name", "Param"})

_field_cache: dict[type[cst.CSTNode], tuple[str, ...]] = {}

BLOCK_LABELS = frozenset({"Module", "IndentedBlock", "SimpleStatementSuite"})


def _fields(kind: type[cst.CSTNode]) -> tuple[str, ...]:
    names = _field_cache.get(kind)
    if names is None:
        if kind in _FIELD_ORDER:
            names = _FIELD_ORDER[kind]
        else:
            names = tuple(
                f.name
                for f in dataclasses.fields(kind)
                if f.name not in _SKIPPED_FIELDS and not f.name.startswith("whitespace")
            )
            if kind in (cst.Name, cst.Integer, cst.Float, cst.Imaginary, cst.SimpleString):
                names = ()
            if kind is cst.FormattedStringText:
                names = ()
        _field_cache[kind] = names
    return names


def cst_children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The semantic children of a libcst node, in source order (no formatting nodes)."""
    for name in _fields(type(node)):
        value = getattr(node, name, None)
        if isinstance(value, cst.CSTNode):
            yield value
        elif isinstance(value, (tuple, list)):
            for item in value:
                if isinstance(item, cst.CSTNode):
                    yield item


def replace_children(node: cst.CSTNode, new: dict[cst.CSTNode, cst.CSTNode]) -> cst.CSTNode:
    """A copy of `node` whose direct semantic children in `new` are replaced."""
    changes: dict[str, object] = {}
    for name in _fields(type(node)):
        value = getattr(node, name, None)
        if isinstance(value, cst.CSTNode) and value in new:
            changes[name] = new[value]
        elif isinstance(value, (tuple, list)) and any(v in new for v in value):
            changes[name] = [new.get(v, v) for v in value]
    return node.with_changes(**changes) if changes else node


@functools.lru_cache(maxsize=4096)
def _literal(text: str) -> str:
    try:
        return repr(ast.literal_eval(text))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _operator(node: Any) -> str:
    return type(node.operator).__name__


def _arg(node: Any) -> str:
    keyword = node.keyword.value if node.keyword is not None else ""
    return f"{node.star}{keyword}"


def _param(node: Any) -> str:
    return f"{node.star if isinstance(node.star, str) else ''}{node.name.value}"


def _slice(node: Any) -> str:
    """Which parts a slice has: `[:-n]` and `[-n:]` have the same one child otherwise."""
    lower = "l" if node.lower is not None else ""
    upper = "u" if node.upper is not None else ""
    step = ":s" if node.step is not None else ""
    return f"{lower}:{upper}{step}"


_VALUES: dict[type[cst.CSTNode], Callable[[Any], str]] = {
    cst.Name: lambda n: n.value,
    cst.Integer: lambda n: _literal(n.value),
    cst.Float: lambda n: _literal(n.value),
    cst.Imaginary: lambda n: _literal(n.value),
    cst.SimpleString: lambda n: _literal(n.value),
    cst.FormattedStringText: lambda n: n.value,
    cst.Attribute: lambda n: n.attr.value,
    cst.Arg: _arg,
    cst.Param: _param,
    cst.FunctionDef: lambda n: n.name.value,
    cst.ClassDef: lambda n: n.name.value,
    cst.BinaryOperation: _operator,
    cst.BooleanOperation: _operator,
    cst.UnaryOperation: _operator,
    cst.AugAssign: _operator,
    cst.ComparisonTarget: _operator,
    cst.ImportFrom: lambda n: "." * len(n.relative),
    cst.FormattedStringExpression: lambda n: n.conversion or "",
    cst.Slice: _slice,
}


def node_value(node: cst.CSTNode) -> str:
    """The identifier, literal or operator that distinguishes two nodes of the same type."""
    get = _VALUES.get(type(node))
    return get(node) if get is not None else ""


class Node:
    """One semantic node; `pre`/`last` delimit its subtree in the pre-order of its tree.

    `hash` is equal for isomorphic subtrees; `shape` also ignores identifiers, so it is
    equal for subtrees that differ only by renamed variables.
    """

    __slots__ = (
        "label",
        "value",
        "children",
        "parent",
        "cst",
        "height",
        "size",
        "hash",
        "shape",
        "pre",
        "last",
    )

    def __init__(self, label: str, value: str, cst_node: cst.CSTNode) -> None:
        self.label = label
        self.value = value
        self.children: list[Node] = []
        self.parent: Node | None = None
        self.cst = cst_node
        self.height = 1
        self.size = 1
        self.hash = 0
        self.shape = 0
        self.pre = 0
        self.last = 0

    def __repr__(self) -> str:
        return f"Node({self.label}:{self.value}@{self.pre})"

    @property
    def is_block(self) -> bool:
        return self.label in BLOCK_LABELS

    def contains(self, other: Node) -> bool:
        """True if `other` is a strict descendant (both nodes of the same tree)."""
        return self.pre < other.pre <= self.last

    def ancestors(self) -> Iterator[Node]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def statement(self) -> Node | None:
        """The block-level statement that contains this node (itself if it is one)."""
        node: Node | None = self
        while node is not None and (node.parent is None or not node.parent.is_block):
            node = node.parent
        return node


@dataclasses.dataclass
class Tree:
    """A built tree: its root and all its nodes in pre-order (`nodes[n.pre] is n`)."""

    root: Node
    nodes: list[Node]
    by_cst: dict[cst.CSTNode, Node]

    def descendants(self, node: Node) -> list[Node]:
        return self.nodes[node.pre + 1 : node.last + 1]


def _is_node_type(kind: type) -> bool:
    known = _node_types.get(kind)
    if known is None:
        known = _node_types[kind] = issubclass(kind, cst.CSTNode)
    return known


_node_types: dict[type, bool] = {}


def build_tree(
    root: cst.CSTNode,
    skip: frozenset[cst.CSTNode] = frozenset(),
    substitute: dict[cst.CSTNode, cst.CSTNode] | None = None,
    index: bool = True,
) -> Tree:
    """Build a `Tree`; `skip` drops nodes, `substitute` replaces a node by another one.

    Iterative, so that deeply nested expressions cannot exhaust the recursion limit.
    `index=False` leaves `Tree.by_cst` empty (hashing libcst nodes is slow).
    """
    subst = substitute or {}
    nodes: list[Node] = []
    by_cst: dict[cst.CSTNode, Node] = {}
    top = Node(type(root).__name__, node_value(root), root)
    stack: list[tuple[Node, cst.CSTNode]] = [(top, root)]
    filtered = bool(skip) or bool(subst)
    while stack:
        node, raw = stack.pop()
        node.pre = len(nodes)
        nodes.append(node)
        if index:
            by_cst[raw] = node
        kids: list[Node] = []
        for name in _fields(type(raw)):
            value = getattr(raw, name, None)
            items = value if type(value) is tuple or type(value) is list else (value,)
            for item in items:
                if not _is_node_type(type(item)):
                    continue
                if filtered:
                    if item in skip:
                        continue
                    item = subst.get(item, item)
                kind = type(item)
                get = _VALUES.get(kind)
                child = Node(kind.__name__, get(item) if get is not None else "", item)
                child.parent = node
                kids.append(child)
        node.children = kids
        stack.extend((child, child.cst) for child in reversed(kids))
    for node in reversed(nodes):
        children = node.children
        if children:
            node.last = children[-1].last
            node.height = 1 + max(c.height for c in children)
            hashes = tuple(c.hash for c in children)
            shapes = tuple(c.shape for c in children)
        else:
            node.last = node.pre
            hashes = shapes = ()
        node.size = node.last - node.pre + 1
        node.hash = hash((node.label, node.value, hashes))
        shape_value = "" if node.label in _RENAMEABLE else node.value
        node.shape = hash((node.label, shape_value, shapes))
    return Tree(top, nodes, by_cst)


def signature(node: Node) -> str:
    """A flat text form of a statement without its nested blocks, for line-based matchers."""
    parts: list[str] = []
    stack = [node]
    while stack:
        current = stack.pop()
        parts.append(f"{current.label}:{current.value}" if current.value else current.label)
        stack.extend(reversed([c for c in current.children if not c.is_block]))
    return " ".join(parts)
