"""A GumTree-style tree matcher (Falleri et al., ASE 2014) over `tree.Node` trees.

The source tree is the new version and the destination tree the old one. Four phases, each
its own class with one `match(src, dst, mappings)` method, are chained by `TreeMatcher`:

1. `TopDownMatcher`: greedy matching of isomorphic subtrees, highest first, using structural
   hashes. Subtrees with several isomorphic candidates are resolved afterwards by the Dice
   similarity of their parents, then by their relative position.
2. `BottomUpMatcher`: in post-order, an unmatched container is matched to the unmatched
   destination container of the same type with the highest Dice similarity of mapped
   descendants, when it reaches `MatcherOptions.min_dice`.
3. `RecoveryMatcher`: inside each pair of matched containers, remaining children are matched
   by longest common subsequence, first isomorphic ones, then same-type ones (statements
   only when their tokens are similar enough or they differ only by identifiers), then
   types that occur once on each side.
Between 1 and 2, `DefinitionMatcher` pairs functions and classes by their unique name.
4. `StatementMatcher`: what real edits leave over. Statements mapped into another function
   than their function's counterpart are unmapped, then the unmatched statements in each
   gap between consecutive matched statements of the flattened statement sequences are
   paired (so wrappers added or removed do not hide an edited line), then assignments and
   lines moved elsewhere in the same function, recognised by what they bind or contain.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Protocol

from flor.propagate.tree import Node, Tree


@dataclasses.dataclass(frozen=True)
class MatcherOptions:
    """Every threshold of the tree matcher, in one place.

    min_height: smallest subtree height the top-down phase matches (leaves have height 1);
        smaller subtrees are left to the recovery phase, where context disambiguates them.
    min_dice: smallest Dice similarity of mapped descendants for the bottom-up phase to
        match two containers.
    statement_similarity: smallest Dice similarity of the token bags of two statements for
        the recovery phase to match them by type (an edited line still matches itself, an
        unrelated line of the same type does not).
    max_ambiguous: cap on the candidate pairs of one group of isomorphic subtrees; larger
        groups (copy-pasted code) are left to the later phases, keeping the cost bounded.
    recovery_max_size: containers larger than this (in nodes) get only the cheap recovery
        (isomorphic children), never the type-based one.
    gap_similarity: smallest Dice similarity of the token bags of two statements left over
        between the same matched neighbours for the statement phase to pair them (a lone
        pair of the same kind in a gap is paired regardless).
    """

    min_height: int = 2
    min_dice: float = 0.5
    statement_similarity: float = 0.5
    max_ambiguous: int = 400
    recovery_max_size: int = 20000
    gap_similarity: float = 0.4


class Mappings:
    """A one-to-one mapping between the nodes of the source and destination trees."""

    def __init__(self) -> None:
        self.src_to_dst: dict[Node, Node] = {}
        self.dst_to_src: dict[Node, Node] = {}

    def add(self, src: Node, dst: Node) -> None:
        self.src_to_dst[src] = dst
        self.dst_to_src[dst] = src

    def add_subtree(self, src: Node, dst: Node) -> None:
        """Map two isomorphic subtrees node by node."""
        stack = [(src, dst)]
        while stack:
            a, b = stack.pop()
            self.add(a, b)
            stack.extend(zip(a.children, b.children, strict=False))

    def remove_subtree(self, src: Node, tree: Tree) -> None:
        """Unmap `src` and its descendants."""
        for node in tree.nodes[src.pre : src.last + 1]:
            image = self.src_to_dst.pop(node, None)
            if image is not None:
                self.dst_to_src.pop(image, None)

    def has_src(self, node: Node) -> bool:
        return node in self.src_to_dst

    def has_dst(self, node: Node) -> bool:
        return node in self.dst_to_src

    def dst(self, node: Node) -> Node | None:
        return self.src_to_dst.get(node)

    def src(self, node: Node) -> Node | None:
        return self.dst_to_src.get(node)

    def __len__(self) -> int:
        return len(self.src_to_dst)


def dice(src: Node, dst: Node, src_tree: Tree, mappings: Mappings) -> float:
    """Dice coefficient of the mapped descendants of `src` that land under `dst`."""
    total = (src.size - 1) + (dst.size - 1)
    if total == 0:
        return 0.0
    return 2.0 * _common(src, dst, src_tree, mappings) / total


class Phase:
    """One matching phase; phases only ever add mappings."""

    def __init__(self, options: MatcherOptions) -> None:
        self.options = options

    def match(self, src: Tree, dst: Tree, mappings: Mappings) -> Mappings:
        raise NotImplementedError


class _HeightQueue:
    """Open nodes grouped by height, highest first."""

    def __init__(self, root: Node) -> None:
        self._groups: dict[int, list[Node]] = defaultdict(list)
        self._heights: list[int] = []
        self.push(root)

    def push(self, node: Node) -> None:
        group = self._groups[node.height]
        if not group:
            heapq.heappush(self._heights, -node.height)
        group.append(node)

    def open(self, node: Node) -> None:
        for child in node.children:
            self.push(child)

    def peek(self) -> int:
        while self._heights and not self._groups[-self._heights[0]]:
            heapq.heappop(self._heights)
        return -self._heights[0] if self._heights else 0

    def pop(self) -> list[Node]:
        height = self.peek()
        heapq.heappop(self._heights)
        return self._groups.pop(height)


class TopDownMatcher(Phase):
    """Phase 1: greedy top-down matching of isomorphic subtrees, highest first."""

    def match(self, src: Tree, dst: Tree, mappings: Mappings) -> Mappings:
        queue1, queue2 = _HeightQueue(src.root), _HeightQueue(dst.root)
        ambiguous: list[tuple[list[Node], list[Node]]] = []
        while min(queue1.peek(), queue2.peek()) >= self.options.min_height:
            h1, h2 = queue1.peek(), queue2.peek()
            if h1 != h2:
                queue, nodes = (queue1, queue1.pop()) if h1 > h2 else (queue2, queue2.pop())
                for node in nodes:
                    queue.open(node)
                continue
            group1, group2 = _by_hash(queue1.pop()), _by_hash(queue2.pop())
            pending: set[Node] = set()
            for key, nodes1 in group1.items():
                nodes2 = group2.get(key)
                if not nodes2:
                    continue
                if len(nodes1) == 1 and len(nodes2) == 1:
                    mappings.add_subtree(nodes1[0], nodes2[0])
                elif len(nodes1) * len(nodes2) <= self.options.max_ambiguous:
                    ambiguous.append((nodes1, nodes2))
                    pending.update(nodes1)
                    pending.update(nodes2)
            for group, queue in ((group1, queue1), (group2, queue2)):
                for nodes in group.values():
                    for node in nodes:
                        mapped = node in mappings.src_to_dst or node in mappings.dst_to_src
                        if node not in pending and not mapped:
                            queue.open(node)
        self._resolve(ambiguous, src, dst, mappings)
        return mappings

    def _resolve(
        self,
        ambiguous: list[tuple[list[Node], list[Node]]],
        src: Tree,
        dst: Tree,
        mappings: Mappings,
    ) -> None:
        """Map ambiguous isomorphic pairs: inside same-named definitions first (the same
        line in `train()` and `evaluate()` of both versions), then most similar parents,
        then nearest."""
        cache: dict[tuple[Node, Node], float] = {}
        homes: dict[Node, tuple[str, ...]] = {}

        def home(node: Node) -> tuple[str, ...]:
            if node not in homes:
                homes[node] = _definition_names(node)
            return homes[node]

        def elsewhere(a: Node, b: Node) -> bool:
            """Neither side's innermost definition encloses the other side's node by name
            (`run_validate()` nested in new's `validate()` is at home in old's `validate()`)."""
            home_a, home_b = home(a), home(b)
            if not home_a or not home_b:
                return home_a != home_b
            return home_a[0] not in home_b and home_b[0] not in home_a

        def parent_dice(a: Node, b: Node) -> float:
            pa, pb = a.parent, b.parent
            if pa is None or pb is None:
                return 0.0
            key = (pa, pb)
            if key not in cache:
                cache[key] = dice(pa, pb, src, mappings)
            return cache[key]

        def distance(a: Node, b: Node) -> float:
            """Relative distance, inside the same-named definition around both if any
            (whole-file positions drift when code is added elsewhere)."""
            around_a, around_b = _definition(a), _definition(b)
            if around_a is None or around_b is None or around_a.value != around_b.value:
                around_a, around_b = src.root, dst.root
            offset_a = (a.pre - around_a.pre) / max(around_a.size, 1)
            return abs(offset_a - (b.pre - around_b.pre) / max(around_b.size, 1))

        pairs = [(a, b) for nodes1, nodes2 in ambiguous for a in nodes1 for b in nodes2]
        pairs.sort(
            key=lambda p: (
                elsewhere(p[0], p[1]),
                -parent_dice(p[0], p[1]),
                distance(p[0], p[1]),
                p[0].pre,
                p[1].pre,
            )
        )
        for a, b in pairs:
            if a.height <= _TINY_HEIGHT and parent_dice(a, b) == 0.0 and not _same_head(a, b):
                continue  # position alone says nothing about one `(x)` among many
            if not mappings.has_src(a) and not mappings.has_dst(b):
                mappings.add_subtree(a, b)


# Ambiguous subtrees this small (an argument `x`, an attribute `self.h`) are mapped top-down
# only when their parents already share mapped code or start alike (the same callee);
# otherwise the later phases place them inside matched statements (minGPT's
# `self.lm_head(x)` is not `self.blocks(x)` for being the `(x)` at the same relative place,
# while `pin_memory=True` still ties `DataLoader(...)` to `DataLoader(...)`).
_TINY_HEIGHT = 2


def _same_head(a: Node, b: Node) -> bool:
    """The parents of `a` and `b` have the same type and the same first child (callee)."""
    pa, pb = a.parent, b.parent
    if pa is None or pb is None or pa.label != pb.label or pa.value != pb.value:
        return False
    return bool(pa.children) and bool(pb.children) and pa.children[0].hash == pb.children[0].hash


def _definition(node: Node) -> Node | None:
    """The innermost function or class around `node`."""
    return next((up for up in node.ancestors() if up.label in _DEFINITIONS), None)


def _definition_names(node: Node) -> tuple[str, ...]:
    """The names of the functions and classes around `node`, innermost first."""
    return tuple(up.value for up in node.ancestors() if up.label in _DEFINITIONS)


def _by_hash(nodes: list[Node]) -> dict[int, list[Node]]:
    groups: dict[int, list[Node]] = defaultdict(list)
    for node in nodes:
        groups[node.hash].append(node)
    return groups


class RecoveryMatcher(Phase):
    """Phase 3: match the leftover children of two matched containers, recursively."""

    def __init__(self, options: MatcherOptions) -> None:
        super().__init__(options)
        self._bags: dict[Node, Counter[str]] = {}

    def match(self, src: Tree, dst: Tree, mappings: Mappings) -> Mappings:
        self.recover(src.root, dst.root, mappings)
        return mappings

    def recover(self, a: Node, b: Node, mappings: Mappings) -> None:
        stack = [(a, b)]
        while stack:
            x, y = stack.pop()
            stack.extend(self._recover_children(x, y, mappings))

    def _recover_children(self, a: Node, b: Node, mappings: Mappings) -> list[tuple[Node, Node]]:
        if not a.children or not b.children:
            return []
        todo: list[tuple[Node, Node]] = []
        # Children already matched to each other may still hide unmatched descendants.
        for child in a.children:
            image = mappings.dst(child)
            if image is not None and image.parent is b and child.hash != image.hash:
                todo.append((child, image))
        left1 = [c for c in a.children if not mappings.has_src(c)]
        left2 = [c for c in b.children if not mappings.has_dst(c)]
        if not left1 or not left2:
            return todo
        for x, y in _lcs(left1, left2, lambda x, y: x.hash == y.hash):
            mappings.add_subtree(x, y)
        if max(a.size, b.size) > self.options.recovery_max_size:
            return todo
        left1 = [c for c in left1 if not mappings.has_src(c)]
        left2 = [c for c in left2 if not mappings.has_dst(c)]
        for x, y in _lcs(left1, left2, self._same_kind, self.similarity):
            mappings.add(x, y)
            todo.append((x, y))
        left1 = [c for c in left1 if not mappings.has_src(c)]
        left2 = [c for c in left2 if not mappings.has_dst(c)]
        if left1 and left2:
            count1 = Counter(c.label for c in left1)
            count2 = Counter(c.label for c in left2)
            by_label = {c.label: c for c in left2 if count2[c.label] == 1}
            for x in left1:
                match = by_label.get(x.label)
                if match is not None and count1[x.label] == 1 and self._similar_enough(x, match):
                    mappings.add(x, match)
                    todo.append((x, match))
        return todo

    def _same_kind(self, x: Node, y: Node) -> bool:
        if x.label != y.label:
            return False
        if x.shape == y.shape:
            # Only names differ: a rename, if the statements share anything at all
            # (`net = M()` and `model = M()`, not `nb = len(d)` and `loss = Loss(m)`).
            is_statement = x.parent is not None and x.parent.is_block
            return not is_statement or bool(self.bag(x) & self.bag(y))
        return self._similar_enough(x, y)

    def _similar_enough(self, x: Node, y: Node) -> bool:
        """Statements must share tokens; expressions under matched parents may just align."""
        if x.parent is None or not x.parent.is_block:
            return True
        if x.children and y.children:
            kind_x, kind_y = x.children[0].label, y.children[0].label
            if x.label == "SimpleStatementLine" and kind_x != kind_y:
                return False
        return self.similarity(x, y) >= self.options.statement_similarity

    def similarity(self, x: Node, y: Node) -> float:
        """Dice similarity of two nodes' token bags (1.0 for two empty bags)."""
        bag_x, bag_y = self.bag(x), self.bag(y)
        total = sum(bag_x.values()) + sum(bag_y.values())
        if total == 0:
            return 1.0
        return 2.0 * sum((bag_x & bag_y).values()) / total

    def bag(self, node: Node) -> Counter[str]:
        """Identifiers, literals and operators of a statement, without its nested blocks.

        A definition's bag leaves out `self`/`cls`: `def run(self)` and
        `def save_checkpoint(self)` share nothing (minGPT renamed `train` to `run`, and its
        `run` must not become old's `save_checkpoint`).
        """
        bag = self._bags.get(node)
        if bag is None:
            bag = Counter()
            stack = [node]
            implicit = _IMPLICIT_PARAMS if node.label in _DEFINITIONS else frozenset()
            while stack:
                current = stack.pop()
                if current.value and current.value not in implicit:
                    bag[current.value] += 1
                stack.extend(c for c in current.children if not c.is_block)
            self._bags[node] = bag
        return bag


def _lcs(
    seq1: Sequence[Node],
    seq2: Sequence[Node],
    equal: Callable[[Node, Node], bool],
    weight: Callable[[Node, Node], float] | None = None,
) -> list[tuple[Node, Node]]:
    """Longest common subsequence of two node lists under `equal`; among the longest, the
    one with the highest total `weight` (`x = self.ln_f(x)` pairs with `x = self.ln_f(x)`,
    not with the `x = self.blocks(x)` just before it, although either pairing is as long)."""
    n, m = len(seq1), len(seq2)
    if n * m > 250_000:
        return []
    zero = (0, 0.0)
    table = [[zero] * (m + 1) for _ in range(n + 1)]
    gains: dict[tuple[int, int], float] = {}
    for i in range(n - 1, -1, -1):
        row, below = table[i], table[i + 1]
        for j in range(m - 1, -1, -1):
            best = max(below[j], row[j + 1])
            if equal(seq1[i], seq2[j]):
                gain = weight(seq1[i], seq2[j]) if weight is not None else 0.0
                gains[i, j] = gain
                diagonal = below[j + 1]
                best = max(best, (diagonal[0] + 1, diagonal[1] + gain))
            row[j] = best
    pairs: list[tuple[Node, Node]] = []
    i = j = 0
    while i < n and j < m:
        taken = gains.get((i, j))
        diagonal = table[i + 1][j + 1]
        if taken is not None and table[i][j] == (diagonal[0] + 1, diagonal[1] + taken):
            pairs.append((seq1[i], seq2[j]))
            i += 1
            j += 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def _owner_label(node: Node) -> str | None:
    """For a block, the type of the statement that owns it: a loop body only matches a loop body."""
    if node.is_block and node.parent is not None:
        return node.parent.label
    return None


_DEFINITIONS = frozenset({"FunctionDef", "ClassDef"})
# Parameters every method has: sharing them says nothing about two definitions.
_IMPLICIT_PARAMS = frozenset({"self", "cls"})


class BottomUpMatcher(Phase):
    """Phase 2: match containers by Dice similarity, then recover inside each new pair."""

    def __init__(self, options: MatcherOptions, recovery: RecoveryMatcher) -> None:
        super().__init__(options)
        self.recovery = recovery

    def match(self, src: Tree, dst: Tree, mappings: Mappings) -> Mappings:
        for node in reversed(src.nodes):
            if node is src.root:
                if not mappings.has_src(node) and not mappings.has_dst(dst.root):
                    mappings.add(node, dst.root)
                if mappings.dst(node) is dst.root:
                    self.recovery.recover(node, dst.root, mappings)
                continue
            image = mappings.dst(node)
            if image is not None and node.label in _DEFINITIONS and image.hash != node.hash:
                self.recovery.recover(node, image, mappings)  # paired by name, in post-order
            if not node.children or image is not None:
                continue
            best, best_score = None, -1.0
            for candidate in self._candidates(node, src, mappings):
                score = dice(node, candidate, src, mappings)
                if score > best_score:
                    best, best_score = candidate, score
            if best is not None and best_score >= self.options.min_dice:
                mappings.add(node, best)
                self.recovery.recover(node, best, mappings)
        return mappings

    @staticmethod
    def _candidates(node: Node, src: Tree, mappings: Mappings) -> list[Node]:
        """Unmatched destination nodes of the same type above images of mapped descendants
        (for simple statements, of the same kind: a bare `validate(...)` call is not the
        `acc1 = validate(...)` whose arguments it shares)."""
        seen: set[Node] = set()
        found: list[Node] = []
        owner = _owner_label(node)
        for desc in src.nodes[node.pre + 1 : node.last + 1]:
            image = mappings.dst(desc)
            if image is None:
                continue
            up = image.parent
            while up is not None and up not in seen:
                seen.add(up)
                same_owner = owner is None or _owner_label(up) == owner
                if same_owner and _same_kind(node, up) and not mappings.has_dst(up):
                    found.append(up)
                up = up.parent
        return found


def is_statement(node: Node) -> bool:
    return node.parent is not None and node.parent.is_block


def bound_names(statement: Node) -> frozenset[str]:
    """Names a simple statement assigns (`x = ...`, `x, y = ...`, `x += ...`), else none."""
    names: set[str] = set()
    for small in statement.children:
        if small.label in ("Assign", "AugAssign", "AnnAssign"):
            targets = small.children[:-1] if small.label == "Assign" else small.children[:1]
            for target in targets:
                stack = [target]
                while stack:
                    current = stack.pop()
                    if current.label == "Name":
                        names.add(current.value)
                    elif current.label in ("AssignTarget", "Tuple", "List", "Element"):
                        stack.extend(current.children)
    return frozenset(names)


def _header(node: Node) -> tuple[int, ...]:
    """Structural hashes of a statement's parts outside its blocks."""
    return tuple(c.hash for c in node.children if not c.is_block and c.label != "Else")


class DefinitionMatcher(Phase):
    """Functions and classes with the same name, unique on both sides, are each other's
    counterparts (before containers are matched by content: a rewritten function is still
    that function, and an identical copy of its loop elsewhere must not pull it away).

    Except when the old definition's code now lives mostly in a definition whose name old
    does not have: `main()` split into `main()` and `main_worker()` keeps the name `main`,
    but old's `main()` is `main_worker()`'s counterpart; the bottom-up phase pairs it.
    """

    def match(self, src: Tree, dst: Tree, mappings: Mappings) -> Mappings:
        kinds = ("FunctionDef", "ClassDef")
        left1 = [n for n in src.nodes if n.label in kinds and not mappings.has_src(n)]
        left2 = [n for n in dst.nodes if n.label in kinds and not mappings.has_dst(n)]
        count1 = Counter((n.label, n.value) for n in left1)
        count2 = Counter((n.label, n.value) for n in left2)
        by_key = {(n.label, n.value): n for n in left2}
        old_names = {(n.label, n.value) for n in dst.nodes if n.label in kinds}
        newcomers = [n for n in left1 if (n.label, n.value) not in old_names]
        for node in left1:
            key = (node.label, node.value)
            if count1[key] == 1 and count2[key] == 1:
                image = by_key[key]
                if not self._moved_out(node, image, newcomers, src, mappings):
                    mappings.add(node, image)  # recovered inside by the bottom-up phase
        return mappings

    @staticmethod
    def _moved_out(
        node: Node, image: Node, newcomers: list[Node], src: Tree, mappings: Mappings
    ) -> bool:
        """Most of `image`'s matched code comes from one new definition of another name."""
        own = _common(node, image, src, mappings)
        for other in newcomers:
            if other.label != node.label or other.contains(node) or node.contains(other):
                continue
            moved = _common(other, image, src, mappings)
            if moved >= _MOVED_MIN_NODES and moved >= 2 * own:
                return True
        return False


# Matched nodes that make a definition of another name the home of old's code.
_MOVED_MIN_NODES = 20


def _common(src_node: Node, dst_node: Node, src_tree: Tree, mappings: Mappings) -> int:
    """How many descendants of `src_node` are mapped to descendants of `dst_node`."""
    lo, hi = dst_node.pre, dst_node.last
    count = 0
    for node in src_tree.nodes[src_node.pre + 1 : src_node.last + 1]:
        image = mappings.src_to_dst.get(node)
        if image is not None and lo < image.pre <= hi:
            count += 1
    return count


class StatementMatcher(Phase):
    """Phase 4: pair leftover statements by name, by gap between matched ones, by binding."""

    def __init__(self, options: MatcherOptions, recovery: RecoveryMatcher) -> None:
        super().__init__(options)
        self.recovery = recovery

    def match(self, src: Tree, dst: Tree, mappings: Mappings) -> Mappings:
        self._unmap_crossings(src, mappings)
        src_statements = [n for n in src.nodes if is_statement(n)]
        dst_statements = [n for n in dst.nodes if is_statement(n)]
        self._gaps(src, src_statements, dst_statements, mappings)
        self._moved_assignments(src_statements, dst_statements, mappings)
        self._moved_lines(src, src_statements, dst_statements, mappings)
        return mappings

    def _moved_lines(
        self, src: Tree, seq1: list[Node], seq2: list[Node], mappings: Mappings
    ) -> None:
        """A line moved within its function: a near-identical unmatched line, unique both
        ways. A compound statement (a loop, an `if`) must also hold code mapped into the
        other: YOLOv3's epoch loop moved into `if __name__ == "__main__":` is old's
        module-level one, whose `model.train()` new moved into it."""
        by_function: dict[Node | None, list[Node]] = defaultdict(list)
        for node in seq2:
            if _movable(node) and not mappings.has_dst(node):
                by_function[_function_of(node)].append(node)
        best: dict[Node, list[tuple[float, Node]]] = defaultdict(list)
        for node in seq1:
            if not _movable(node) or mappings.has_src(node):
                continue
            function = _function_of(node)
            image = mappings.dst(function) if function is not None else None
            if function is not None and image is None:
                continue
            if len(by_function.get(image, ())) > 500:
                continue  # a wholly rewritten file: too many candidates to be sure of one
            scored = [
                (self._overlap(node, other), other)
                for other in by_function.get(image, [])
                if _same_kind(node, other)
                and (node.label == "SimpleStatementLine" or _common(node, other, src, mappings))
            ]
            scored = [(score, other) for score, other in scored if score >= 0.75]
            if len(scored) == 1:
                best[scored[0][1]].append((scored[0][0], node))
        for target, sources in best.items():
            if len(sources) == 1 and not mappings.has_dst(target):
                self._pair(sources[0][1], target, mappings)

    def _pair(self, a: Node, b: Node, mappings: Mappings) -> None:
        mappings.add(a, b)
        self.recovery.recover(a, b, mappings)

    @staticmethod
    def _unmap_crossings(src: Tree, mappings: Mappings) -> None:
        """Unmap statements that land in another function than their function's image when
        that function has a counterpart of its own: an identical copy elsewhere (the same
        loop in `main()` and `log_validation()`) must not take the edited original's place."""
        index = 0
        nodes = src.nodes
        while index < len(nodes):
            node = nodes[index]
            image = mappings.dst(node)
            if image is not None and is_statement(node):
                function, landed = _function_of(node), _function_of(image)
                if function is not None and landed is not None:
                    expected = mappings.dst(function)
                    if expected is not None and expected is not landed and mappings.has_dst(landed):
                        mappings.remove_subtree(node, src)
                        index = node.last + 1
                        continue
            index += 1

    def _gaps(self, src: Tree, seq1: list[Node], seq2: list[Node], mappings: Mappings) -> None:
        position = {node: j for j, node in enumerate(seq2)}
        anchors = [
            (i, position[image])
            for i, node in enumerate(seq1)
            for image in [mappings.dst(node)]
            if image is not None and image in position
        ]
        kept = _increasing(anchors)
        out_of_order = {seq2[j]: seq1[i] for i, j in set(anchors) - set(kept)}
        bounds = [(-1, -1), *kept, (len(seq1), len(seq2))]
        for (i0, j0), (i1, j1) in zip(bounds, bounds[1:], strict=False):
            if i1 - i0 <= 1 or j1 - j0 <= 1:
                continue
            self._reclaim(src, seq1[i0 + 1 : i1], seq2[j0 + 1 : j1], out_of_order, mappings)
            left1 = [n for n in seq1[i0 + 1 : i1] if not mappings.has_src(n)]
            left2 = [n for n in seq2[j0 + 1 : j1] if not mappings.has_dst(n)]
            if not left1 or not left2 or len(left1) * len(left2) > 40_000:
                continue
            for x, y in _lcs(left1, left2, self._similar):
                if not mappings.has_src(x) and not mappings.has_dst(y):
                    self._pair(x, y, mappings)
            left1 = [n for n in left1 if not mappings.has_src(n)]
            left2 = [n for n in left2 if not mappings.has_dst(n)]
            self._same_callee(left1, left2, mappings)
            left1 = [n for n in left1 if not mappings.has_src(n)]
            left2 = [n for n in left2 if not mappings.has_dst(n)]
            lone = len(left1) == 1 and len(left2) == 1 and _same_kind(left1[0], left2[0])
            if lone and self._overlap(left1[0], left2[0]) >= self.options.gap_similarity / 2:
                self._pair(left1[0], left2[0], mappings)

    def _same_callee(self, gap1: list[Node], gap2: list[Node], mappings: Mappings) -> None:
        """Leftovers of a gap that call the same function, the only such call on each side
        and in corresponding blocks, are one step (`save_model(path, epoch=epoch)` after the
        epoch loop is old's `save_model('./dalle-final.pt')`, not the copy inside the loop).
        Only lines of one kind binding the same names pair: a bare `validate(...)` is not
        `prec1 = validate(...)`, `train_loader = DataLoader(..)` is not `test_loader = ...`."""
        calls2 = _by_callee(gap2)
        for callee, found in _by_callee(gap1).items():
            pairs = [
                (x, y)
                for x in found
                for y in calls2.get(callee, [])
                if _same_kind(x, y)
                and bound_names(x) == bound_names(y)
                and _enclosures_agree(x, y, mappings)
            ]
            for x, y in pairs:
                if sum(x is a or y is b for a, b in pairs) == 1:
                    self._pair(x, y, mappings)

    def _reclaim(
        self,
        src: Tree,
        gap1: list[Node],
        gap2: list[Node],
        out_of_order: dict[Node, Node],
        mappings: Mappings,
    ) -> None:
        """An old assignment of a gap mapped out of order to a statement assigning other
        names goes to the only unmatched statement of the gap assigning its names
        (`loss = criterion(output.view(..), targets)` is not new's
        `output = output.view(..)` from an `if` branch above, it is new's `loss = ...`)."""
        for y in gap2:
            x_old = out_of_order.get(y)
            names = bound_names(y)
            if x_old is None or mappings.dst(x_old) is not y or not names:
                continue
            if bound_names(x_old) == names:
                continue
            same = [
                x
                for x in gap1
                if not mappings.has_src(x) and _same_kind(x, y) and bound_names(x) == names
            ]
            if len(same) == 1:
                mappings.remove_subtree(x_old, src)
                self._pair(same[0], y, mappings)

    def _similar(self, x: Node, y: Node) -> bool:
        if not _same_kind(x, y):
            return False
        if x.children and _header(x) == _header(y) and x.label != "SimpleStatementLine":
            # A definition's name is its value, not in its header: `def run(self)` is not
            # `def save_checkpoint(self)` for sharing a parameter list.
            return x.label not in _DEFINITIONS or x.value == y.value
        names = bound_names(x)
        if names and names == bound_names(y):
            return True
        return self._overlap(x, y) >= self.options.gap_similarity

    def _overlap(self, x: Node, y: Node) -> float:
        """Token Dice of two leftovers, ignoring case: a module-level setting that became a
        parameter keeps its line (`GRADIENT_ACCUMULATION_STEPS = BATCH_SIZE // MICRO_BATCH_SIZE`
        is `gradient_accumulation_steps = batch_size // micro_batch_size`)."""
        bag_x, bag_y = _casefolded(self.recovery.bag(x)), _casefolded(self.recovery.bag(y))
        total = sum(bag_x.values()) + sum(bag_y.values())
        return 2.0 * sum((bag_x & bag_y).values()) / total if total else 0.0

    def _moved_assignments(self, seq1: list[Node], seq2: list[Node], mappings: Mappings) -> None:
        """An assignment moved within its function: the only unmatched one binding its names."""

        def groups(seq: list[Node], mapped: Callable[[Node], bool]) -> dict[tuple, list[Node]]:
            found: dict[tuple, list[Node]] = defaultdict(list)
            for node in seq:
                names = bound_names(node) if not mapped(node) else frozenset()
                if names:
                    found[(_function_of(node), names)].append(node)
            return found

        left1 = groups(seq1, mappings.has_src)
        left2 = groups(seq2, mappings.has_dst)
        by_names2: dict[frozenset[str], list[tuple[Node | None, list[Node]]]] = defaultdict(list)
        for (function, names), nodes in left2.items():
            by_names2[names].append((function, nodes))
        for (function, names), nodes in left1.items():
            if len(nodes) != 1:
                continue
            image = mappings.dst(function) if function is not None else None
            candidates = [
                found
                for owner, found in by_names2.get(names, [])
                if owner is image or (function is None and owner is None)
            ]
            if len(candidates) == 1 and len(candidates[0]) == 1:
                target = candidates[0][0]
                if not mappings.has_dst(target):
                    self._pair(nodes[0], target, mappings)


def _movable(node: Node) -> bool:
    """Statements the moved-lines rule pairs: lines and compound statements, not definitions."""
    return node.label not in _DEFINITIONS


def _callee(statement: Node) -> int | None:
    """The structural hash of the function a one-call line calls (`f(..)`, `x = f(..)`)."""
    if statement.label != "SimpleStatementLine" or len(statement.children) != 1:
        return None
    small = statement.children[0]
    if small.label not in ("Expr", "Assign") or not small.children:
        return None
    value = small.children[-1]
    if value.label != "Call" or not value.children:
        return None
    return value.children[0].hash


def _by_callee(statements: list[Node]) -> dict[int, list[Node]]:
    found: dict[int, list[Node]] = defaultdict(list)
    for node in statements:
        callee = _callee(node)
        if callee is not None:
            found[callee].append(node)
    return found


def _enclosures_agree(x: Node, y: Node, mappings: Mappings) -> bool:
    """The nearest mapped ancestor of each node has its counterpart around the other one
    (a line inside new's epoch loop is not old's line after its epoch loop)."""
    up_x = next((up for up in x.ancestors() if mappings.has_src(up)), None)
    up_y = next((up for up in y.ancestors() if mappings.has_dst(up)), None)
    if up_x is None or up_y is None:
        return up_x is None and up_y is None
    image, source = mappings.dst(up_x), mappings.src(up_y)
    return image is not None and source is not None and image.contains(y) and source.contains(x)


def _casefolded(bag: Counter[str]) -> Counter[str]:
    folded: Counter[str] = Counter()
    for token, count in bag.items():
        folded[token.casefold()] += count
    return folded


def _function_of(node: Node) -> Node | None:
    for up in node.ancestors():
        if up.label in ("FunctionDef", "Lambda"):
            return up
    return None


def _same_kind(x: Node, y: Node) -> bool:
    if x.label != y.label:
        return False
    if x.label == "SimpleStatementLine":
        kinds_x = [c.label for c in x.children]
        return kinds_x == [c.label for c in y.children]
    return True


def _increasing(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest subsequence of `pairs` (sorted by first item) increasing in the second."""
    tails: list[int] = []
    tail_at: list[int] = []
    previous: list[int] = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        lo, hi = 0, len(tails)
        while lo < hi:
            mid = (lo + hi) // 2
            if tails[mid] < j:
                lo = mid + 1
            else:
                hi = mid
        if lo > 0:
            previous[k] = tail_at[lo - 1]
        if lo == len(tails):
            tails.append(j)
            tail_at.append(k)
        else:
            tails[lo] = j
            tail_at[lo] = k
    out: list[tuple[int, int]] = []
    k = tail_at[-1] if tail_at else -1
    while k >= 0:
        out.append(pairs[k])
        k = previous[k]
    out.reverse()
    return out


class Matcher(Protocol):
    """What every matcher offers: map source nodes onto destination nodes."""

    def match(self, src: Tree, dst: Tree, mappings: Mappings | None = None) -> Mappings: ...


class TreeMatcher:
    """The default matcher: the GumTree phases and the statement phase, chained."""

    def __init__(self, options: MatcherOptions | None = None) -> None:
        self.options = options or MatcherOptions()

    def match(self, src: Tree, dst: Tree, mappings: Mappings | None = None) -> Mappings:
        mappings = mappings if mappings is not None else Mappings()
        recovery = RecoveryMatcher(self.options)
        phases: list[Phase] = [
            TopDownMatcher(self.options),
            DefinitionMatcher(self.options),
            BottomUpMatcher(self.options, recovery),
            StatementMatcher(self.options, recovery),
        ]
        for phase in phases:
            mappings = phase.match(src, dst, mappings)
        return mappings
