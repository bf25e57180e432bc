"""Edits seen in real histories beyond the public suites (benchmarks/propagation_more), one
capability per test, on small snippets shaped like the real code."""

from __future__ import annotations

import textwrap

import libcst as cst

from flor.propagate import Placed, propagate_source
from flor.propagate.matcher import TreeMatcher
from flor.propagate.tree import Node, Tree, build_tree


def d(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


def _tree(code: str) -> Tree:
    return build_tree(cst.parse_module(d(code)))


def _statement(tree: Tree, text: str) -> Node:
    module = tree.root.cst
    assert isinstance(module, cst.Module)
    for node in tree.nodes:
        is_statement = node.parent is not None and node.parent.is_block
        if is_statement and module.code_for_node(node.cst).strip() == text:
            return node
    raise AssertionError(f"no statement {text!r}")


def placed_after(new: str, old: str) -> tuple[Placed, str]:
    result = propagate_source(d(new), d(old))
    assert result.ok, result.outcomes
    (outcome,) = result.outcomes
    assert isinstance(outcome, Placed)
    return outcome, result.source


def test_main_split_into_main_and_worker_keeps_the_loop_with_the_worker() -> None:
    """pytorch/examples imagenet: `main()` split into `main()` (spawning) and
    `main_worker()` (the training); old's `main()` is `main_worker()`'s counterpart, so the
    statement after `acc1 = validate(...)` reads old's `prec1` in old's epoch loop."""
    new = """
    import flor

    def main():
        args = parser.parse_args()
        if args.seed is not None:
            random.seed(args.seed)
            torch.manual_seed(args.seed)
        main_worker(args.gpu, args)

    def main_worker(gpu, args):
        model = models.__dict__[args.arch]()
        criterion = nn.CrossEntropyLoss().cuda(args.gpu)
        optimizer = torch.optim.SGD(model.parameters(), args.lr, momentum=args.momentum)
        train_loader = make_loader(args.data, args.batch_size, train=True)
        val_loader = make_loader(args.data, args.batch_size, train=False)
        if args.evaluate:
            validate(val_loader, model, criterion, args)
            return
        for epoch in range(args.start_epoch, args.epochs):
            train(train_loader, model, criterion, optimizer, epoch, args)
            acc1 = validate(val_loader, model, criterion, args)
            flor.log("acc1", acc1)
            scheduler.step()
    """
    old = """
    def main():
        args = parser.parse_args()
        if args.seed is not None:
            random.seed(args.seed)
            torch.manual_seed(args.seed)
        model = models.__dict__[args.arch]()
        criterion = nn.CrossEntropyLoss().cuda(args.gpu)
        optimizer = torch.optim.SGD(model.parameters(), args.lr, momentum=args.momentum)
        train_loader = make_loader(args.data, args.batch_size, train=True)
        val_loader = make_loader(args.data, args.batch_size, train=False)
        if args.evaluate:
            validate(val_loader, model, criterion)
            return
        for epoch in range(args.start_epoch, args.epochs):
            train(train_loader, model, criterion, optimizer, epoch)
            prec1 = validate(val_loader, model, criterion)
            is_best = prec1 > best_prec1
            save_checkpoint({"epoch": epoch + 1, "state_dict": model.state_dict()}, is_best)
    """
    outcome, source = placed_after(new, old)
    assert outcome.renames == {"acc1": "prec1"}
    lines = source.splitlines()
    at = lines.index('        flor.log("acc1", prec1)')
    assert lines[at - 1].strip() == "prec1 = validate(val_loader, model, criterion)"


def test_bare_call_is_not_paired_with_an_assignment_sharing_its_arguments() -> None:
    """Bottom-up, a statement's candidates are statements of its kind: `validate(...)`
    (under `if args.evaluate:`) is not old's `prec1 = validate(...)` whose arguments it
    shares (imagenet, where that pairing sent `acc1 = validate(...)` to the bare call)."""
    new = _tree(
        """
        def main_worker(args):
            validate(val_loader, model, criterion, args)
        """
    )
    old = _tree(
        """
        def main(args):
            prec1 = validate(val_loader, model, criterion)
        """
    )
    mappings = TreeMatcher().match(new, old)
    call = _statement(new, "validate(val_loader, model, criterion, args)")
    assert mappings.dst(call) is None
