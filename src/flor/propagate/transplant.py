"""Placing, renaming, declining and wrapping: from a node mapping to a patched old version.

Given the mapping of the source (new) tree onto the target (old) tree, each `flor.log`
statement the target lacks is either

* inserted after the image of its nearest preceding sibling that has one (else before the
  image of the nearest following sibling, else first in the image of its block), climbing
  out of blocks that only the source wraps in `if`/`with`/`try`;
* or, when `flor.log(...)` wraps an expression, applied to the target's own statement;
* or declined with a reason, when its block has no image or a name it reads (after renaming
  through matched bindings) is not bound at the insertion point of the target.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Callable, Sequence

import libcst as cst

from flor.errors import PropagateError
from flor.propagate.matcher import Mappings, bound_names
from flor.propagate.scope import Bindings, Scope, read_names
from flor.propagate.statements import LogStatement
from flor.propagate.tree import Node, Tree, build_tree, replace_children

# Owners of blocks that run their body at most once per run of the enclosing block, so a
# statement may move in or out of them without changing how often it runs.
TRANSPARENT = frozenset({"If", "Else", "With", "Try", "TryStar", "Finally"})

_DESCRIPTIONS = {
    "For": "loop",
    "While": "loop",
    "FunctionDef": "function",
    "ClassDef": "class",
    "ExceptHandler": "except block",
    "ExceptStarHandler": "except block",
    "MatchCase": "match case",
}


class Decline(Exception):
    """Internal signal: this statement cannot be placed safely; the message says why."""


@dataclasses.dataclass
class Insertion:
    """Insert `statement` at `index` of the target block `block` (a libcst node)."""

    block: Node
    index: int
    order: int
    statement: cst.SimpleStatementLine
    renames: dict[str, str]
    text: str


@dataclasses.dataclass
class Wrap:
    """Replace the target expression `target` by `flor.log(name, target)`."""

    target: Node
    statement: Node
    order: int
    build: Callable[[cst.BaseExpression], cst.CSTNode]
    text: str


@dataclasses.dataclass
class Context:
    """Everything the placement of one statement needs."""

    new: Tree
    old: Tree
    mappings: Mappings
    new_bindings: Bindings
    old_bindings: Bindings


def _owner_statement(block: Node) -> Node:
    """The block-level statement that owns `block`, checking each step is transparent."""
    node = block.parent
    assert node is not None
    while node.parent is not None and not node.parent.is_block:
        if node.label not in TRANSPARENT:
            raise Decline(_no_image(node))
        node = node.parent
    if node.label not in TRANSPARENT:
        raise Decline(_no_image(node))
    return node


def _no_image(node: Node) -> str:
    kind = _DESCRIPTIONS.get(node.label, node.label)
    name = f" `{node.value}`" if node.value and node.label in ("FunctionDef", "ClassDef") else ""
    return f"its enclosing {kind}{name} has no counterpart in the target"


def block_image(block: Node, mappings: Mappings) -> Node | None:
    """The target block that corresponds to a source block, if any."""
    image = mappings.dst(block)
    owner = block.parent
    if image is not None and image.is_block:
        same_owner = owner is None or (
            image.parent is not None and image.parent.label == owner.label
        )
        if same_owner:
            return image
    if owner is None:
        return None
    owner_image = mappings.dst(owner)
    if owner_image is None or owner_image.label != owner.label:
        return None
    index = owner.children.index(block)
    if index < len(owner_image.children) and owner_image.children[index].is_block:
        return owner_image.children[index]
    return None


def _inside(node: Node, region: Node) -> bool:
    """True if target statement `node` sits in block `region`, through transparent owners."""
    block = node.parent
    while block is not None and block is not region:
        if not block.is_block or block.parent is None:
            return False
        try:
            owner = _owner_statement(block)
        except Decline:
            return False
        block = owner.parent
    return block is region


@dataclasses.dataclass
class Slot:
    """Where in the target a statement goes, and the position used for binding checks."""

    block: Node
    index: int
    position: float
    anchor: str


# Owners that change how often (or whether) their body runs relative to the enclosing code.
_FREQUENCY = frozenset({"For", "While", "FunctionDef", "ClassDef", "Lambda", "ExceptHandler"})


def _frequency_owners(node: Node) -> list[Node]:
    return [up for up in node.ancestors() if up.label in _FREQUENCY]


def _per_iteration(anchor: Node, block: Node, target: Node, mappings: Mappings) -> bool:
    """The anchor reads the target of a loop only new has around the statement, and old's
    line is in no loop only old has: the anchor computes one iteration's value (minGPT's
    `for block in self.transformer.h: x = block(x)`), old's line the whole loop's
    (`x = self.blocks(x)`). A loop new merely added around the same step (llm.c's
    micro-steps around `loss.backward()`) does not feed the anchor its target."""
    targets: set[str] = set()
    for owner in [block, *block.ancestors()]:
        if owner.label == "For" and not mappings.has_src(owner) and owner.children:
            stack = [owner.children[0]]
            while stack:
                current = stack.pop()
                if current.label == "Name":
                    targets.add(current.value)
                stack.extend(current.children)
    if not targets or not any(n.value in targets for n in read_names(anchor)):
        return False
    return not any(
        up.label in ("For", "While") and not mappings.has_dst(up) for up in target.ancestors()
    )


def consistent(new_block: Node, old_node: Node, mappings: Mappings) -> bool:
    """Code at `old_node` runs as often as code in `new_block`: their matched loops agree.

    A loop or function of either side that has a counterpart must enclose both places;
    unmatched ones (code moved into `main()`, a loop rewritten) do not count.
    """
    new_owners = _frequency_owners(new_block)
    old_owners = set(_frequency_owners(old_node))
    for owner in new_owners:
        image = mappings.dst(owner)
        if image is not None and image.label == owner.label and image not in old_owners:
            return False
    new_set = set(new_owners)
    for owner in old_owners:
        origin = mappings.src(owner)
        if origin is not None and origin.label == owner.label and origin not in new_set:
            return False
    return True


def _after(target: Node) -> Slot:
    parent = target.parent
    assert parent is not None
    return Slot(parent, parent.children.index(target) + 1, target.last + 0.5, "after")


def _before(target: Node) -> Slot:
    parent = target.parent
    assert parent is not None
    return Slot(parent, parent.children.index(target), target.pre - 0.5, "before")


def _first_in(image: Node) -> Slot:
    if image.parent is None:
        start = _module_start(image)
        previous = image.children[start - 1] if start else None
        return Slot(image, start, previous.last + 0.5 if previous else 0.5, "first")
    start = 1 if image.children and _is_import_or_docstring(image.children[0], 0) else 0
    if start and image.children[0].children[0].label != "Expr":
        start = 0
    return Slot(image, start, image.children[0].last + 0.5 if start else image.pre + 0.5, "first")


def _guarded_update(target: Node, mappings: Mappings) -> Node:
    """`if y > x: x = y` in old for new's `x = max(x, y)`: the anchor is the whole `if`.

    When the anchor's image is the only statement of an `if` only old has, and that `if`
    tests a name the anchor assigns, the test is part of the anchor's computation: the
    statement follows the `if` (it runs every time in new), not its body.
    """
    block = target.parent
    owner = block.parent if block is not None else None
    if block is None or owner is None or owner.label != "If" or mappings.has_dst(owner):
        return target
    if len(block.children) != 1 or any(c.label == "Else" for c in owner.children):
        return target
    test = owner.children[0]
    tested = {n.value for n in [test, *_descendants(test)] if n.label == "Name"}
    return owner if bound_names(target) & tested else target


def _out_of_old_branches(target: Node, home: Node, mappings: Mappings, anchor: Node) -> Node:
    """The outermost `if`/`else` between the anchor's image and `home` that the statement
    must follow rather than enter, else the image.

    The statement sits unguarded after `anchor` (new's), in the block whose image is
    `home`. If old computes the
    anchor in one branch of an `if`/`else` new does not have (`if decay_lr: lr = get_lr(it)`
    / `else: lr = learning_rate` for new's `lr = get_lr(it) if decay_lr else learning_rate`),
    the branches are alternatives of one step, and the statement follows the whole `if`:
    inside one branch it would run only sometimes. The same holds for an `if` both versions
    have when new moved the anchor out of it, below it (dino wraps the heads once after its
    arch `if`/`elif` chain; old wraps them inside the torchvision branch): new runs the
    statement whatever the test says. (When new's `if` comes after the anchor, new reordered
    the step and its check, and the branch old runs the anchor in is entered: llm.c advances
    the position before its shard check, old in the check's `else`.) An `if` without `else`
    only old has is a guard on the anchor
    (`if args.distributed: init(...)`, `if epoch % 2 == 0: evaluate`), and the statement
    follows its anchor into it.
    """
    outermost: Node | None = None
    node = target
    while node.parent is not None and node.parent is not home:
        owner = node.parent.parent
        if owner is None or owner.label not in TRANSPARENT:
            return target
        chain = [owner]
        node = owner
        while node.parent is not None and not node.parent.is_block:
            node = node.parent  # from an `else`/`elif` up to its statement
            chain.append(node)
        origins = [mappings.src(n) for n in chain if mappings.has_dst(n)]
        if origins:
            if node.label != "If" or any(o is None or o.last >= anchor.pre for o in origins):
                return target
            outermost = node  # an `if` new has too, which no longer guards the anchor
            continue
        if node.label == "If":
            if not any(c.label in ("Else", "If") for c in node.children[1:]):
                return target
            outermost = node
    if node.parent is not home or outermost is None:
        return target
    return outermost


def _descendants(node: Node) -> list[Node]:
    found: list[Node] = []
    stack = list(node.children)
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(current.children)
    return found


def _unwrapped_image(sibling: Node, home: Node, mappings: Mappings) -> Node | None:
    """For an `if`/`with`/`try` or a loop only new has, the last image of its code that old
    runs unwrapped in `home`, the image of the statement's block.

    dino's validate computes `acc1, acc5 = accuracy(...)` in `if num_labels >= 5:` (and
    `acc1, = accuracy(...)` in its `else`); old computes it unconditionally: a statement
    after new's whole `if` follows old's line. minGPT runs its blocks in
    `for block in self.transformer.h: x = block(x)`, old in one `x = self.blocks(x)`: a
    statement after the loop follows that line, not the line before it.
    """
    if sibling.label not in ("If", "With", "Try", "TryStar", "For", "While"):
        return None
    images = [
        line
        for inner in _descendants(sibling)
        if inner.parent is not None
        and inner.parent.is_block
        and (image := mappings.dst(inner)) is not None
        and (line := _whole_line(image)).parent is home
    ]
    return max(images, key=lambda image: image.pre, default=None)


def _whole_line(image: Node) -> Node:
    """The old line a one-line body's statement maps into (`if args.verbose: print(s)` in
    new, `print(s)` alone on its line in old), else the image itself."""
    line = image.parent
    if line is not None and line.label == "SimpleStatementLine" and len(line.children) == 1:
        return line
    return image


def _siblings_home(block: Node, mappings: Mappings) -> Node | None:
    """The one old block holding the images of `block`'s statements, for a block without an
    image of its own (the body of alpaca-lora's `train()`, which was old's module level)."""
    homes = {
        image.parent
        for child in block.children
        if (image := mappings.dst(child)) is not None and image.parent is not None
    }
    return homes.pop() if len(homes) == 1 else None


def _has_image(block: Node, mappings: Mappings) -> bool:
    """Some statement of `block` (pending statements are not in the tree) has a counterpart."""
    return any(mappings.has_src(c) for c in block.children)


def find_slot(block: Node, index: int, ctx: Context) -> Slot:
    """Place a statement that sits at `index` of source block `block`.

    The nearest preceding sibling with a counterpart run as often is the anchor, wherever
    old keeps it (wrappers added, removed or reordered); a statement first in its block
    goes first in the block's image; climbing out of a block only new has (a new guard) is
    allowed when the block's other code exists in old, else the block is new and declined.
    """
    levels: list[tuple[Node, int, int]] = [(block, index, index)]
    current = block
    image = block_image(current, ctx.mappings)
    while True:
        src_block, before, _ = levels[-1]
        skipped: list[Node] = []
        for sibling in reversed(src_block.children[:before]):
            target = ctx.mappings.dst(sibling)
            if target is None and len(levels) == 1:
                home = image if image is not None else _siblings_home(src_block, ctx.mappings)
                if home is not None:
                    target = _unwrapped_image(sibling, home, ctx.mappings)
            if target is None or target.parent is None or not target.parent.is_block:
                skipped.append(sibling)
                continue
            if consistent(block, target, ctx.mappings) and not _per_iteration(
                sibling, block, target, ctx.mappings
            ):
                if len(levels) == 1 and image is not None:
                    target = _out_of_old_branches(target, image, ctx.mappings, sibling)
                target = _guarded_update(target, ctx.mappings)
                _check_skipped_calls(skipped, target, ctx)
                return _after(target)
            skipped.append(sibling)
        if image is not None:
            break
        if current.parent is None:
            raise Decline("the module has no counterpart in the target")
        owner = _owner_statement(current)
        if len(levels) == 1 and not _has_image(current, ctx.mappings):
            kind = owner.label.lower()
            raise Decline(f"its enclosing `{kind}` block is new: none of its code is in the target")
        parent = owner.parent
        assert parent is not None
        position = parent.children.index(owner)
        levels.append((parent, position, position + 1))
        current = parent
        image = block_image(current, ctx.mappings)
    if index == 0 and len(levels) == 1:
        return _first_in(image)
    for src_block, _, after in levels:
        for sibling in src_block.children[after:]:
            target = ctx.mappings.dst(sibling)
            if target is not None and target.parent is not None and _inside(target, image):
                return _before(target)
    return _first_in(image)


def _check_skipped_calls(skipped: list[Node], anchor: Node, ctx: Context) -> None:
    """Decline when a statement between the anchor and the log statement calls a function of
    the source whose code old runs after the anchor's image, in the anchor's block.

    imagenet: new's `model.eval(); run_validate(val_loader); progress.display_summary()`
    was `model.eval(); with torch.no_grad(): <the loop>; print(...)`: after `model.eval()`
    the statement would log before validating.
    """
    if not skipped:
        return
    functions: dict[str, list[Node]] = {}
    for node in ctx.new.nodes:
        if node.label == "FunctionDef":
            functions.setdefault(node.value, []).append(node)
    block = anchor.parent
    assert block is not None
    later = block.children[block.children.index(anchor) + 1 :]
    for statement in skipped:
        for call in [statement, *_descendants(statement)]:
            if call.label != "Call" or not call.children or call.children[0].label != "Name":
                continue
            for function in functions.get(call.children[0].value, ()):
                for inner in _descendants(function):
                    image = ctx.mappings.dst(inner)
                    if image is None or inner.parent is None or not inner.parent.is_block:
                        continue
                    if any(node is image or node.contains(image) for node in later):
                        raise Decline(
                            f"`{call.children[0].value}(...)`, which runs before it in the "
                            f"source, runs later than its anchor in the target"
                        )


def _is_import_or_docstring(node: Node, index: int) -> bool:
    if node.label != "SimpleStatementLine":
        return False
    kinds = {c.label for c in node.children}
    if kinds <= {"Import", "ImportFrom"}:
        return True
    if index == 0 and kinds == {"Expr"}:
        inner = node.children[0].children
        return bool(inner) and inner[0].label in ("SimpleString", "ConcatenatedString")
    return False


def _module_start(module: Node) -> int:
    """Index after the module's docstring and leading imports."""
    index = 0
    while index < len(module.children) and _is_import_or_docstring(module.children[index], index):
        index += 1
    return index


def _path(top: Node, node: Node) -> list[tuple[str, int]] | None:
    """Steps from `top` down to `node`, each (label, rank among same-label siblings)."""
    steps: list[tuple[str, int]] = []
    current = node
    while current is not top:
        parent = current.parent
        if parent is None:
            return None
        same = [c for c in parent.children if c.label == current.label]
        steps.append((current.label, same.index(current)))
        current = parent
    steps.reverse()
    return steps


def _follow(top: Node, steps: Sequence[tuple[str, int]]) -> Node | None:
    current = top
    for label, rank in steps:
        same = [c for c in current.children if c.label == label]
        if rank >= len(same):
            return None
        current = same[rank]
    return current


def _binding_image(binding: Node, ctx: Context) -> Node | None:
    """The node of old's matching statement that binds what `binding` binds in new."""
    statement = binding.statement()
    image = ctx.mappings.dst(statement) if statement is not None else None
    if statement is None or image is None or image.label != statement.label:
        return None
    direct = ctx.mappings.dst(binding)
    if direct is not None and direct.label == binding.label and image.contains(direct):
        return direct
    steps = _path(statement, binding)
    target = _follow(image, steps) if steps is not None else None
    if target is None or target.label != binding.label:
        return None
    return target


def _binding_kind(binding: Node) -> str:
    """import, definition, parameter or assignment: one kind never stands in for another."""
    if binding.label in ("Param", "FunctionDef", "ClassDef"):
        return binding.label
    for up in binding.ancestors():
        if up.label in ("Import", "ImportFrom"):
            return "import"
        if up.parent is not None and up.parent.is_block:
            break
    return "assignment"


def _reads_itself(binding: Node, name: str) -> bool:
    """`x = f(x)`: the binding transforms the value it replaces."""
    statement = binding.statement()
    return statement is not None and any(
        n.value == name and n is not binding for n in read_names(statement)
    )


def _corresponds(name: str, new_binding: Node, old_binding: Node, ctx: Context) -> bool:
    """Old's binding at the insertion point holds the value new's binding holds.

    New's binding may be a chain of `x = f(x)` transforms over an earlier binding: old
    holding the value of any link counts (new only refines it).
    """
    old_statement = old_binding.statement()
    origin = ctx.mappings.src(old_statement) if old_statement is not None else None
    if origin is not None:
        origin_scope = ctx.new_bindings.scope_at(origin)
        new_scope = ctx.new_bindings.scope_at(new_binding)
        chain = [new_scope, *_enclosing(new_scope)]
        if origin_scope not in chain:
            origin = None  # old's code moved into another function of new
    if _constant_became_parameter(new_binding, old_binding, ctx):
        return True
    if origin is not None and old_statement is not None and _writes_into(origin, name):
        # Old rebinds `x = {**x, ...}` where new updates `x[...] = ...` in place: the same
        # step on the same value; what old's binding refines is what must correspond.
        previous = _refined(old_binding, ctx)
        if previous is not None:
            return _corresponds(name, new_binding, previous, ctx)
    binding: Node | None = new_binding
    while binding is not None:
        statement = binding.statement()
        image = ctx.mappings.dst(statement) if statement is not None else None
        if image is not None and image is old_statement:
            expected = _binding_image(binding, ctx)
            return expected is None or expected is old_binding
        if _binding_kind(binding) != _binding_kind(old_binding):
            return False
        if origin is None:
            # Old computes it with code new lacks (or edited): the same kind of binding.
            return image is None or (old_statement is not None and old_statement.pre > image.pre)
        if not _reads_itself(binding, name):
            return False
        scope = ctx.new_bindings.scope_at(binding)
        binding = ctx.new_bindings.resolve(name, scope, binding.pre)
    return False


def _writes_into(statement: Node, name: str) -> bool:
    """`name[...] = ...` or `name.attr = ...` (also augmented): a write into the value of
    `name` that leaves the name bound to the same object."""
    small = statement.children[0] if statement.children else None
    if statement.label != "SimpleStatementLine" or small is None:
        return False
    if small.label == "Assign":
        targets = [t.children[0] for t in small.children[:-1] if t.children]
    elif small.label == "AugAssign":
        targets = small.children[:1]
    else:
        return False
    return any(
        t.label in ("Subscript", "Attribute")
        and t.children
        and t.children[0].label == "Name"
        and t.children[0].value == name
        for t in targets
    )


def _refined(old_binding: Node, ctx: Context) -> Node | None:
    """The earlier binding an old `x = f(x)` binding transforms, if it is one."""
    if not _reads_itself(old_binding, old_binding.value):
        return None
    scope = ctx.old_bindings.scope_at(old_binding)
    return ctx.old_bindings.resolve(old_binding.value, scope, old_binding.pre)


def _constant_became_parameter(new_binding: Node, old_binding: Node, ctx: Context) -> bool:
    """A module-level setting of old became a parameter of the function new moved the
    script into (alpaca-lora's `OUTPUT_DIR = "lora-alpaca"` is `train(output_dir=...)`,
    run through `fire.Fire(train)`): the same name up to case, a function old lacks, and a
    module-level assignment new lacks."""
    if new_binding.label != "Param" or old_binding.label != "Name":
        return False
    if new_binding.value.lower() != old_binding.value.lower():
        return False
    function = new_binding.parent.parent if new_binding.parent is not None else None
    old_statement = old_binding.statement()
    return (
        function is not None
        and function.label == "FunctionDef"
        and ctx.mappings.dst(function) is None
        and _binding_kind(old_binding) == "assignment"
        and old_statement is not None
        and old_statement.parent is ctx.old.root
        and ctx.mappings.src(old_statement) is None
    )


def _enclosing(scope: Scope) -> list[Scope]:
    found = []
    current = scope.parent
    while current is not None:
        found.append(current)
        current = current.parent
    return found


def _head_call(statement: Node) -> str | None:
    """The name of the call that computes an assignment's value (`f` in `x = f(a)[0]`)."""
    small = statement.children[0] if statement.children else None
    if small is None or small.label not in ("Assign", "AnnAssign", "AugAssign", "For"):
        return None
    value = small.children[-1] if small.label != "For" else small.children[1]
    while value.label in ("Subscript", "Attribute") and value.children:
        if value.label == "Attribute" and value.children[0].label != "Call":
            break
        value = value.children[0]
    if value.label != "Call" or not value.children:
        return None
    func = value.children[0]
    return func.value or None


def _rename_refused(
    name: str, choice: str, new_binding: Node, old_binding: Node, position: float, ctx: Context
) -> str | None:
    """Why new's `name` cannot be read as old's `choice`, or None when it can. A rename
    needs the same computation on both sides, and `choice` must not be a name whose value
    in old is what the same name holds in new."""
    if choice == name:
        return None
    splits = _split_words(name), _split_words(choice)
    if all(splits) and splits[0] != splits[1]:
        return (
            f"`{name}` would be old's `{choice}`, but their names say they hold "
            f"different data splits ({'/'.join(sorted(splits[0]))} against "
            f"{'/'.join(sorted(splits[1]))})"
        )
    scope = ctx.new_bindings.scope_at(new_binding)
    same = ctx.new_bindings.resolve(choice, scope, position)
    if same is not None and _corresponds(choice, same, old_binding, ctx):
        return f"`{name}` is not old's `{choice}`: new's `{choice}` is that value"
    new_statement, old_statement = new_binding.statement(), old_binding.statement()
    if new_statement is None or old_statement is None:
        return f"`{name}` has no counterpart in the target"
    if ctx.mappings.dst(new_statement) is not old_statement:
        return None  # a rename voted by matched uses, not read off an edited statement
    new_head, old_head = _head_call(new_statement), _head_call(old_statement)
    if new_head is None or old_head is None or new_head == old_head:
        return None
    return (
        f"`{name}` would be old's `{choice}`, but old computes it with another call "
        f"(`{old_head}(...)`, new `{new_head}(...)`)"
    )


_SPLIT_WORDS = {
    "train": "train",
    "training": "train",
    "trn": "train",
    "test": "test",
    "testing": "test",
    "tst": "test",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "eval": "val",
}


def _split_words(name: str) -> frozenset[str]:
    """The data splits an identifier names (`train_loader` -> train): a matched line may
    turn `train_loader` into old's `test_loader`, but that is other data, not a rename."""
    words = re.findall(r"[a-z]+|[A-Z][a-z]*", name)
    return frozenset(_SPLIT_WORDS[w.lower()] for w in words if w.lower() in _SPLIT_WORDS)


def rename_for(name: str, binding: Node, ctx: Context) -> str | None:
    """The target's name for source name `name`, through the matched binding it reads."""
    target = _binding_image(binding, ctx)
    if target is None or not target.value:
        return None
    return target.value.lstrip("*")


def _voted_name(name: str, ctx: Context) -> list[str]:
    """Old names standing where new's `name` stands in matched code, most votes first."""
    votes: Counter[str] = Counter()
    uses = [n for n in ctx.new.nodes if n.label == "Name" and n.value == name]
    for node in uses:
        image = ctx.mappings.dst(node)
        if image is not None and image.label == "Name" and image.value != name:
            votes[image.value] += 2
    if not votes:
        statements = {s for n in uses for s in [n.statement()] if s is not None}
        for statement in statements:
            image = ctx.mappings.dst(statement)
            if image is None:
                continue
            new_names, old_names = _header_names(statement), _header_names(image)
            if name in old_names:
                continue
            others = old_names - new_names
            for other in others:
                votes[other] += 2 if len(others) == 1 else 1
    ranked = votes.most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        # A tie is broken only by the one name equal up to case (`OUTPUT_DIR` for
        # `output_dir`, beside a keyword argument aligned with the wrong neighbour).
        tied = [n for n, count in ranked if count == ranked[0][1]]
        same = [n for n in tied if n.lower() == name.lower()]
        return same if len(same) == 1 else []
    return [n for n, count in ranked[:1] if count >= 2]


def _header_names(statement: Node) -> set[str]:
    """Identifiers of a statement outside its nested blocks."""
    found: set[str] = set()
    stack = [c for c in statement.children if not c.is_block and c.label != "Else"]
    while stack:
        node = stack.pop()
        if node.label == "Name":
            found.add(node.value)
        stack.extend(node.children)
    return found


def _target_name(
    name: str,
    position: float,
    block: Node,
    slot: Slot,
    old_scope: Scope,
    ctx: Context,
    statement: str,
) -> str:
    """The name the statement must read in old for new's `name`, or raise `Decline`."""
    new_scope = ctx.new_bindings.scope_at(block)
    new_binding = ctx.new_bindings.resolve(name, new_scope, position)
    if new_binding is None and not ctx.new_bindings.binds_anywhere(name, new_scope):
        raise PropagateError(
            f"The source's statement {statement} reads `{name}`, which the source never "
            f"binds: fix the statement (a typo?) before propagating it."
        )
    if new_binding is None:
        if ctx.old_bindings.is_bound(name, old_scope, slot.position):
            return name
        raise Decline(f"`{name}` is not bound at its place in the target")
    _check_loop_only_new_runs(name, new_binding, block, ctx)
    choices = [name, rename_for(name, new_binding, ctx)]
    if not ctx.old_bindings.resolve(name, old_scope, slot.position):
        choices.extend(_voted_name(name, ctx))
    seen: set[str] = set()
    different = False
    refusals: list[str] = []
    for choice in choices:
        if not choice or choice in seen:
            continue
        seen.add(choice)
        old_binding = ctx.old_bindings.resolve(choice, old_scope, slot.position)
        if old_binding is None:
            continue
        refused = _rename_refused(name, choice, new_binding, old_binding, position, ctx)
        reaching = _reaching(name, new_binding, block, ctx)
        if refused is None and any(_corresponds(name, b, old_binding, ctx) for b in reaching):
            return choice
        if refused is not None and choice != name:
            refusals.append(refused)
        different = True
    if refusals:
        raise Decline(refusals[0])
    if different:
        raise Decline(f"`{name}` holds another value at its place in the target")
    raise Decline(f"`{name}` is not bound at its place in the target")


def _check_loop_only_new_runs(name: str, binding: Node, block: Node, ctx: Context) -> None:
    """Decline when new's binding is computed in a loop that has no counterpart, does not
    enclose the statement, and whose line has none either: after the loop the name holds
    what old never computes there (minGPT's `for block in h: x = block(x)` vs old's
    `x = self.blocks(x)` left unmatched: `x` before it is the embedding, not the output)."""
    statement = binding.statement()
    if statement is None or ctx.mappings.has_src(statement):
        return
    for up in binding.ancestors():
        if up.label in ("FunctionDef", "ClassDef", "Lambda"):
            return
        if up.label in ("For", "While") and not up.contains(block):
            if not ctx.mappings.has_src(up):
                raise Decline(f"`{name}` is computed in a loop the target lacks")
            return


# Owners whose body may not run: a binding inside one leaves the earlier binding reaching.
_CONDITIONAL = frozenset({"If", "Else", "For", "While", "ExceptHandler", "ExceptStarHandler"})


def _reaching(name: str, binding: Node, block: Node, ctx: Context) -> list[Node]:
    """New's bindings of `name` that may reach a statement of `block`: the latest, and while
    it sits in a branch or loop not around the statement, the one before it too (nanoGPT's
    `iter_num = checkpoint["iter_num"]` only when resuming, `iter_num = 0` otherwise)."""
    around = set(block.ancestors()) | {block}
    found = [binding]
    current: Node | None = binding
    while current is not None and any(
        up.label in _CONDITIONAL and up not in around for up in current.ancestors()
    ):
        scope = ctx.new_bindings.scope_at(current)
        earlier = ctx.new_bindings.resolve(name, scope, current.pre)
        current = earlier if earlier is not None and earlier.pre < current.pre else None
        if current is not None:
            found.append(current)
    return found


class _Renamer(cst.CSTTransformer):
    def __init__(self, renames: dict[cst.CSTNode, str]) -> None:
        super().__init__()
        self.renames = renames

    def leave_Name(self, original_node: cst.Name, updated_node: cst.Name) -> cst.Name:
        new = self.renames.get(original_node)
        return updated_node.with_changes(value=new) if new is not None else updated_node


def plan_insertion(
    stmt: LogStatement, block: Node, index: int, order: int, ctx: Context
) -> Insertion:
    """Where a bare `flor.log(...)` line goes in the target, renamed; or raise `Decline`."""
    slot = find_slot(block, index, ctx)
    if slot.block.label == "SimpleStatementSuite":
        raise Decline("its place in the target is a one-line block (`if x: y`)")
    siblings = block.children[:index]
    new_position = siblings[-1].last + 0.5 if siblings else block.pre + 0.5
    old_scope = ctx.old_bindings.scope_at(slot.block)
    statement_tree = build_tree(stmt.node, index=False)
    _check_self_attributes(statement_tree.root, block, slot.block)
    renames: dict[str, str] = {}
    by_node: dict[cst.CSTNode, str] = {}
    for name_node in read_names(statement_tree.root):
        name = name_node.value
        if name == "flor":
            continue
        if name not in renames:
            renames[name] = _target_name(name, new_position, block, slot, old_scope, ctx, stmt.text)
        if renames[name] != name:
            by_node[name_node.cst] = renames[name]
    node = stmt.node
    if by_node:
        node = node.visit(_Renamer(by_node))  # type: ignore[assignment]
    assert isinstance(node, cst.BaseSmallStatement)
    node = node.with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
    line = stmt.line_node
    if isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1:
        new_line = line.with_changes(body=[node], leading_lines=())
    else:
        new_line = cst.SimpleStatementLine(body=[node])
    applied = {k: v for k, v in renames.items() if k != v}
    text = stmt.text
    if applied:
        text = cst.Module(body=[]).code_for_node(node)
    return Insertion(slot.block, slot.index, order, new_line, applied, text)


def _self_attributes(node: Node) -> set[str]:
    """Attributes read directly off `self` in `node` (`self.iter_num`, `self.opt.lr` -> opt)."""
    return {
        n.value
        for n in [node, *_descendants(node)]
        if n.label == "Attribute" and n.children and n.children[0].label == "Name"
        if n.children[0].value == "self"
    }


def _assigned_self_attributes(cls: Node) -> set[str]:
    """Attributes some method of `cls` assigns on `self` (`self.x = `, `a, self.x = `, `+=`)."""
    found: set[str] = set()
    for small in _descendants(cls):
        if small.label == "Assign":
            targets = small.children[:-1]
        elif small.label in ("AugAssign", "AnnAssign"):
            targets = small.children[:1]
        else:
            continue
        stack = list(targets)
        while stack:
            current = stack.pop()
            if current.label == "Attribute" and current.children:
                base = current.children[0]
                if base.label == "Name" and base.value == "self":
                    found.add(current.value)
            elif current.label in ("AssignTarget", "Tuple", "List", "Element", "StarredElement"):
                stack.extend(current.children)
    return found


def _class_of(node: Node) -> Node | None:
    return next((up for up in node.ancestors() if up.label == "ClassDef"), None)


def _check_self_attributes(statement: Node, block: Node, old_block: Node) -> None:
    """Decline when the statement reads `self.x`, an attribute new's class sets itself, and
    old's class never sets it (minGPT's Trainer counts `self.iter_num` only in new): the
    scope check sees only `self`, which both have. Inherited attributes (set in neither
    class) are not judged."""
    read = _self_attributes(statement)
    new_class, old_class = _class_of(block), _class_of(old_block)
    if not read or new_class is None or old_class is None:
        return
    missing = (read & _assigned_self_attributes(new_class)) - _assigned_self_attributes(old_class)
    if missing:
        raise Decline(f"`self.{sorted(missing)[0]}` is never set in the target's class")


def plan_wrap(stmt: LogStatement, order: int, ctx: Context) -> Wrap:
    """Apply `flor.log` to the target's own expression; or raise `Decline`.

    New's statement must be old's statement with one sub-expression wrapped: outside that
    sub-expression the two may differ only by identifiers. The matched statement is tried
    first, then the unmatched statement at its slot, then the only unmatched one that fits.
    """
    call = stmt.calls[0]
    value_arg = _value_arg(call)
    if value_arg is None:
        raise Decline("its flor.log call has no value to log")
    value = ctx.new.by_cst.get(value_arg.value)
    statement = value.statement() if value is not None else None
    if value is None or statement is None or statement is value:
        raise Decline("its wrapped expression could not be located")
    steps = _path(statement, value)
    if not steps:
        raise Decline("its wrapped expression could not be located")
    build = _wrapper(call, value_arg)
    image = ctx.mappings.dst(statement)
    if image is not None:
        target = _wrap_target(statement, value, steps, image)
        if target is not None:
            return Wrap(target, image, order, build, stmt.text)
    # Unmatched: old's statement right at the slot the statement would take, else the only
    # unmatched statement of the target that fits.
    parent = statement.parent
    if parent is not None:
        try:
            slot = find_slot(parent, parent.children.index(statement), ctx)
        except Decline:
            slot = None
        if slot is not None and slot.index < len(slot.block.children):
            candidate = slot.block.children[slot.index]
            target = _wrap_target(statement, value, steps, candidate)
            if target is not None and not ctx.mappings.has_dst(candidate):
                return Wrap(target, candidate, order, build, stmt.text)
    fitting = [
        (n, t)
        for n in ctx.old.nodes
        if n.parent is not None and n.parent.is_block and not ctx.mappings.has_dst(n)
        for t in [_wrap_target(statement, value, steps, n)]
        if t is not None
    ]
    if len(fitting) == 1:
        node, target = fitting[0]
        return Wrap(target, node, order, build, stmt.text)
    raise Decline("the statement whose value it logs has no counterpart in the target")


def _wrapper(call: cst.Call, value_arg: cst.Arg) -> Callable[[cst.BaseExpression], cst.CSTNode]:
    def build(expression: cst.BaseExpression) -> cst.CSTNode:
        args = [a.with_changes(value=expression) if a is value_arg else a for a in call.args]
        return call.with_changes(args=args)

    return build


def _wrap_target(
    statement: Node, value: Node, steps: Sequence[tuple[str, int]], candidate: Node
) -> Node | None:
    """The node of `candidate` at `value`'s place, if the rest of both statements agree."""
    if candidate.label != statement.label:
        return None
    parent = _follow(candidate, steps[:-1])
    value_parent = value.parent
    if parent is None or value_parent is None:
        return None
    if len(parent.children) != len(value_parent.children):
        return None
    target = parent.children[value_parent.children.index(value)]
    if target.is_block or not isinstance(target.cst, cst.BaseExpression):
        return None
    stack = [(statement, candidate)]
    while stack:
        x, y = stack.pop()
        if x is value:
            if y is not target:
                return None
            continue
        if x.label != y.label or len(x.children) != len(y.children):
            return None
        if x.value != y.value and x.label not in ("Name", "Param"):
            return None
        stack.extend(zip(x.children, y.children, strict=True))
    return target


def _value_arg(call: cst.Call) -> cst.Arg | None:
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if len(positional) >= 2:
        return positional[1]
    keyword = [a for a in call.args if a.keyword is not None and a.keyword.value == "value"]
    if keyword:
        return keyword[0]
    return None


def module_has_flor(bindings: Bindings) -> bool:
    module = bindings.scopes[bindings.tree.root]
    return "flor" in module.bindings or module.star_import


def import_flor_index(old: Tree) -> int:
    """Where `import flor` goes: right after the target's leading imports."""
    module = old.root
    start = _module_start(module)
    last_import = -1
    for index in range(start):
        kinds = {c.label for c in module.children[index].children}
        if kinds <= {"Import", "ImportFrom"}:
            last_import = index
    return last_import + 1 if last_import >= 0 else start


Edit = Callable[[cst.CSTNode], cst.CSTNode]


def apply_edits(tree: Tree, edits: dict[Node, list[Edit]]) -> dict[Node, cst.CSTNode]:
    """Apply edits to target nodes, copying only the paths from them to the root.

    A libcst transformer would rebuild every node of the module; copying just the changed
    paths keeps the rest of the tree (and its formatting) shared and is much faster.
    Returns the new version of every node on those paths (the root included).
    """
    touched: set[Node] = set()
    for node in edits:
        current: Node | None = node
        while current is not None and current not in touched:
            touched.add(current)
            current = current.parent
    updated: dict[Node, cst.CSTNode] = {}
    for node in sorted(touched, key=lambda n: -n.pre):
        new_children = {c.cst: updated[c] for c in node.children if c in updated}
        result = replace_children(node.cst, new_children) if new_children else node.cst
        for edit in edits.get(node, ()):
            result = edit(result)
        updated[node] = result
    return updated


def insert_edit(items: list[tuple[int, int, cst.SimpleStatementLine]]) -> Edit:
    """Insert statements into a block's body; same-index ones keep their source order."""

    def edit(block: cst.CSTNode) -> cst.CSTNode:
        body = list(getattr(block, "body", ()))
        groups: dict[int, list[tuple[int, cst.SimpleStatementLine]]] = {}
        for index, order, statement in items:
            groups.setdefault(index, []).append((order, statement))
        merged: list[cst.CSTNode] = []
        for index in range(len(body) + 1):
            merged.extend(s for _, s in sorted(groups.get(index, []), key=lambda t: t[0]))
            if index < len(body):
                merged.append(body[index])
        return block.with_changes(body=merged)

    return edit


def mark_edit(mark: str) -> Edit:
    """Add a marker comment line before a statement, to find its output line later."""

    def edit(node: cst.CSTNode) -> cst.CSTNode:
        leading = getattr(node, "leading_lines", None)
        if leading is None:
            return node
        line = cst.EmptyLine(comment=cst.Comment(f"# {mark}"))
        return node.with_changes(leading_lines=[*leading, line])

    return edit


def strip_marks(code: str, marks: Sequence[str]) -> tuple[str, dict[str, int]]:
    """Remove the marker lines; return the code and the 1-based line each marker stood for."""
    wanted = {f"# {m}": m for m in marks}
    lines = code.splitlines(keepends=True)
    kept: list[str] = []
    where: dict[str, int] = {}
    for line in lines:
        mark = wanted.get(line.strip())
        if mark is not None:
            where[mark] = len(kept) + 1
            continue
        kept.append(line)
    return "".join(kept), where


def parses(code: str) -> bool:
    from flor.propagate.splice import parse_or_none

    return parse_or_none(code) is not None
