"""The GumTree-style matcher on small trees: isomorphic subtrees, renames, moved blocks."""

from __future__ import annotations

import textwrap

import libcst as cst

from flor.propagate.difflib_matcher import DifflibMatcher
from flor.propagate.matcher import (
    BottomUpMatcher,
    Mappings,
    MatcherOptions,
    RecoveryMatcher,
    TopDownMatcher,
    TreeMatcher,
)
from flor.propagate.tree import Node, Tree, build_tree


def _tree(code: str) -> Tree:
    return build_tree(cst.parse_module(textwrap.dedent(code).lstrip("\n")))


def _statement(tree: Tree, text: str) -> Node:
    """The block-level statement whose code is `text`."""
    module = tree.root.cst
    assert isinstance(module, cst.Module)
    for node in tree.nodes:
        is_statement = node.parent is not None and node.parent.is_block
        if is_statement and module.code_for_node(node.cst).strip() == text:
            return node
    raise AssertionError(f"no statement {text!r}")


def _image(src: Tree, dst: Tree, mappings: Mappings, text: str) -> str | None:
    node = mappings.dst(_statement(src, text))
    if node is None:
        return None
    module = dst.root.cst
    assert isinstance(module, cst.Module)
    return module.code_for_node(node.cst).strip().splitlines()[0]


def test_identical_trees_map_completely() -> None:
    code = """
    import torch
    for epoch in range(3):
        loss = step(epoch)
        print(loss)
    """
    src, dst = _tree(code), _tree(code)
    mappings = TreeMatcher().match(src, dst)
    assert len(mappings) == len(src.nodes) == len(dst.nodes)
    assert all(mappings.dst(a) is b for a, b in zip(src.nodes, dst.nodes, strict=True))


def test_top_down_maps_isomorphic_subtrees_only() -> None:
    src = _tree("a = f(x)\nb = g(y)\n")
    dst = _tree("b = g(y)\nc = h(z)\n")
    mappings = TopDownMatcher(MatcherOptions()).match(src, dst, Mappings())
    assert _image(src, dst, mappings, "b = g(y)") == "b = g(y)"
    assert mappings.dst(_statement(src, "a = f(x)")) is None


def test_ambiguous_subtrees_follow_their_parents() -> None:
    src = _tree(
        """
        for x in train:
            opt.zero_grad()
            out = model(x)
            opt.step()
        """
    )
    dst = _tree(
        """
        for x in val:
            out = model(x)
            acc(out)
        for x in train:
            opt.zero_grad()
            out = model(x)
            opt.step()
            sched.step()
        """
    )
    mappings = TreeMatcher().match(src, dst)
    image = mappings.dst(_statement(src, "out = model(x)"))
    assert image is not None
    assert image.parent is not None and image.parent.parent is not None
    assert image.parent.parent is _statement(
        dst,
        "for x in train:\n"
        "    opt.zero_grad()\n    out = model(x)\n    opt.step()\n    sched.step()",
    )


def test_renamed_identifier_statements_still_match() -> None:
    src = _tree("net = MLP(20, 4)\nopt = Adam(net.parameters())\nfor b in data:\n    net(b)\n")
    dst = _tree(
        "model = MLP(20, 4)\nopt = Adam(model.parameters())\nfor b in data:\n    model(b)\n"
    )
    mappings = TreeMatcher().match(src, dst)
    assert _image(src, dst, mappings, "net = MLP(20, 4)") == "model = MLP(20, 4)"
    assert _image(src, dst, mappings, "net(b)") == "model(b)"


def test_block_moved_into_a_function_still_matches() -> None:
    src = _tree(
        """
        def train(data):
            for x, y in data:
                out = model(x)
                loss = crit(out, y)
                loss.backward()
        for epoch in range(3):
            train(loader)
        """
    )
    dst = _tree(
        """
        for epoch in range(3):
            for x, y in loader:
                out = model(x)
                loss = crit(out, y)
                loss.backward()
        """
    )
    mappings = TreeMatcher().match(src, dst)
    assert _image(src, dst, mappings, "loss = crit(out, y)") == "loss = crit(out, y)"
    inner = _statement(src, "out = model(x)").parent
    assert inner is not None and inner.parent is not None
    loop = mappings.dst(inner.parent)
    assert loop is not None and loop.label == "For"
    assert mappings.dst(_statement(src, "train(loader)")) is None


def test_bottom_up_picks_the_container_with_the_highest_dice() -> None:
    src = _tree("for i in a:\n    p(i)\n    q(i)\n    r(i)\n")
    dst = _tree("for j in b:\n    p(i)\n    s(j)\n    t(j)\nfor k in c:\n    q(i)\n    r(i)\n")
    options = MatcherOptions()
    mappings = TopDownMatcher(options).match(src, dst, Mappings())
    BottomUpMatcher(options, RecoveryMatcher(options)).match(src, dst, mappings)
    image = mappings.dst(src.nodes[1])
    assert image is not None and image.children[0].value == "k"


def test_bottom_up_respects_min_dice() -> None:
    src = _tree("def f():\n    for i in a:\n        p(i)\n        q(i)\n        r(i)\n")
    dst = _tree("def g():\n    for j in b:\n        s(j)\n        t(j)\n        p(i)\n")
    options = MatcherOptions(min_dice=0.9)
    mappings = TopDownMatcher(options).match(src, dst, Mappings())
    BottomUpMatcher(options, RecoveryMatcher(options)).match(src, dst, mappings)
    loop = next(n for n in src.nodes if n.label == "For")
    assert mappings.dst(loop) is None


def test_recovery_matches_edited_statements_but_not_unrelated_ones() -> None:
    src = _tree("for x in d:\n    a = f(x)\n    loss = crit(out, y) / k\n    zz = qq\n")
    dst = _tree("for x in d:\n    a = f(x)\n    loss = F.ce(out, y) / k\n    print(1)\n")
    mappings = TreeMatcher().match(src, dst)
    assert _image(src, dst, mappings, "loss = crit(out, y) / k") == "loss = F.ce(out, y) / k"
    assert mappings.dst(_statement(src, "zz = qq")) is None


def test_difflib_matcher_maps_equal_lines_and_blocks() -> None:
    src = _tree("x = 1\nfor i in r:\n    y = i\n")
    dst = _tree("x = 1\nz = 0\nfor i in r:\n    y = i\n")
    mappings = DifflibMatcher().match(src, dst)
    assert _image(src, dst, mappings, "y = i") == "y = i"
    loop = _statement(src, "for i in r:\n    y = i")
    assert mappings.dst(loop.children[-1]) is not None


def test_tree_hash_ignores_formatting() -> None:
    a = _tree("x = f( a,b )  # c\n")
    b = _tree("x = f(a, b)\n")
    assert a.root.hash == b.root.hash
    assert _tree("x = 'a'\n").root.hash == _tree('x = "a"\n').root.hash
    assert _tree("x = f(a, b)\n").root.hash != _tree("x = f(b, a)\n").root.hash


def test_deeply_nested_expression_builds_without_recursion() -> None:
    code = "x = " + " + ".join(["a"] * 1200) + "\n"
    tree = build_tree(cst.parse_module(code))
    assert tree.root.height > 1100


def test_same_shape_statements_that_share_nothing_are_not_a_rename() -> None:
    src = _tree("def train():\n    compute_loss = ComputeLoss(model)\n    net = M()\n    run()\n")
    dst = _tree("def train():\n    nb = len(dataloader)\n    model = M()\n    run()\n")
    mappings = TreeMatcher().match(src, dst)
    assert _image(src, dst, mappings, "compute_loss = ComputeLoss(model)") is None
    assert _image(src, dst, mappings, "net = M()") == "model = M()"
