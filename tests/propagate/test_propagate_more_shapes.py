"""Edits seen in real histories beyond the public suites (benchmarks/propagation_more), one
capability per test, on small snippets shaped like the real code."""

from __future__ import annotations

import textwrap

import libcst as cst

from flor.propagate import Declined, Placed, propagate_source
from flor.propagate.matcher import Mappings, MatcherOptions, TopDownMatcher, TreeMatcher
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


def _lines(prefix: str, count: int) -> str:
    name = prefix.strip()
    return "".join(f"    {prefix}{k} = setup_{name}({k})\n" for k in range(count))


def test_identical_lines_pair_up_inside_same_named_functions_first() -> None:
    """word_language_model: `output, hidden = model(data, hidden)` in `evaluate()` and in
    `train()` of both versions; where the code around them changed, the nearest relative
    position would cross them over, but the same-named function decides first (the
    top-down phase alone is checked: the later phases repair some crossings, not all)."""
    line = "output, hidden = model(data, hidden)"
    new = _tree(
        "def evaluate(data, hidden):\n"
        + _lines("e", 12)
        + f"    {line}\n"
        + "def train(data, hidden):\n"
        + _lines("t", 2)
        + f"    {line}\n"
    )
    old = _tree(
        "def evaluate(data, hidden):\n"
        + f"    {line}\n"
        + "def train(data, hidden):\n"
        + _lines("u", 6)
        + f"    {line}\n"
        + _lines("v", 6)
    )
    mappings = TopDownMatcher(MatcherOptions()).match(new, old, Mappings())
    for statement in [n for n in new.nodes if n.label == "SimpleStatementLine"]:
        image = mappings.dst(statement)
        if new.root.cst.code_for_node(statement.cst).strip() == line:
            assert image is not None
            assert image.parent.parent.value == statement.parent.parent.value


def test_edited_assignment_is_reclaimed_from_a_branch_line_sharing_its_call() -> None:
    """word_language_model: new splits the forward pass by model type; the Transformer
    branch's `output = output.view(-1, ntokens)` shares its call with old's
    `loss = criterion(output.view(-1, ntokens), targets)`, but old's line is new's
    `loss = criterion(output, targets)`, and the statement follows it."""
    new = """
    import flor

    def train():
        for batch, i in enumerate(range(0, train_data.size(0) - 1, args.bptt)):
            data, targets = get_batch(train_data, i)
            model.zero_grad()
            if args.model == "Transformer":
                output = model(data)
                output = output.view(-1, ntokens)
            else:
                hidden = repackage_hidden(hidden)
                output, hidden = model(data, hidden)
            loss = criterion(output, targets)
            flor.log("loss", loss.item())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
    """
    old = """
    def train():
        for batch, i in enumerate(range(0, train_data.size(0) - 1, args.bptt)):
            data, targets = get_batch(train_data, i)
            hidden = repackage_hidden(hidden)
            model.zero_grad()
            output, hidden = model(data, hidden)
            loss = criterion(output.view(-1, ntokens), targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm(model.parameters(), args.clip)
    """
    _, source = placed_after(new, old)
    lines = source.splitlines()
    at = lines.index('        flor.log("loss", loss.item())')
    assert lines[at - 1].strip() == "loss = criterion(output.view(-1, ntokens), targets)"


def test_statement_follows_an_old_if_else_not_one_of_its_branches() -> None:
    """nanoGPT: new's `lr = get_lr(it) if decay_lr else learning_rate` was an `if`/`else`
    in the first version; logging `lr` every iteration means after the whole `if`, not in
    the branch that holds the matched `lr = get_lr(iter_num)`."""
    new = """
    import flor

    while True:
        lr = get_lr(iter_num) if decay_lr else learning_rate
        flor.log("lr", lr)
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr
        X, Y = get_batch("train")
        iter_num += 1
    """
    old = """
    while True:
        if decay_lr:
            lr = get_lr(iter_num)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
        else:
            lr = learning_rate
        X, Y = get_batch("train")
        iter_num += 1
    """
    _, source = placed_after(new, old)
    lines = source.splitlines()
    at = lines.index('    flor.log("lr", lr)')
    assert lines[at - 1].strip() == "lr = learning_rate"
    assert lines[at + 1].strip() == 'X, Y = get_batch("train")'


def test_statement_enters_an_old_if_without_else() -> None:
    """mae: `init_distributed_mode(args)` was guarded by `if args.distributed:` (no else) in
    old: a guard on the anchor, and the statement follows its anchor into it."""
    new = """
    import flor

    def main(args):
        misc.init_distributed_mode(args)
        flor.log("world_size", args.world_size)
        device = torch.device(args.device)
    """
    old = """
    def main(args):
        if args.distributed:
            misc.init_distributed_mode(args)
        device = torch.device(args.device)
    """
    _, source = placed_after(new, old)
    lines = source.splitlines()
    at = lines.index('        flor.log("world_size", args.world_size)')
    assert lines[at - 1].strip() == "misc.init_distributed_mode(args)"


def test_a_line_of_a_nested_function_is_at_home_in_its_enclosing_function() -> None:
    """imagenet: validate()'s loop moved into a nested `run_validate()`; its
    `target = target.cuda(...)` is old validate()'s, not the identical line of old train()
    (which then stays free for new train()'s edited `target = target.to(device)`)."""
    line = "target = target.cuda(args.gpu, non_blocking=True)"
    new = _tree(
        "def train(loader):\n"
        + _lines("t", 2)
        + "    target = target.to(device, non_blocking=True)\n"
        + "def validate(loader):\n"
        + _lines("e", 2)
        + "    def run_validate(loader):\n"
        + _lines("    r", 2)
        + f"        {line}\n"
        + _lines("f", 12)
    )
    old = _tree(
        "def train(loader):\n"
        + _lines("u", 8)
        + f"    {line}\n"
        + "def validate(loader):\n"
        + _lines("v", 2)
        + f"    {line}\n"
    )
    mappings = TopDownMatcher(MatcherOptions()).match(new, old, Mappings())
    (statement,) = [
        n
        for n in new.nodes
        if n.label == "SimpleStatementLine" and new.root.cst.code_for_node(n.cst).strip() == line
    ]
    image = mappings.dst(statement)
    assert image is not None
    assert image.parent.parent.value == "validate"


def test_declines_before_the_old_code_of_a_new_helper_it_follows() -> None:
    """imagenet: validate()'s loop moved into a nested `run_validate()` called after
    `model.eval()`; old runs that loop inline after `model.eval()`. The statement after the
    call has no anchor of its own; placing it after `model.eval()` would log before
    validating, so it is declined."""
    new = """
    import flor

    def validate(val_loader, model, criterion, args):
        def run_validate(loader):
            with torch.no_grad():
                for i, (images, target) in enumerate(loader):
                    output = model(images)
                    loss = criterion(output, target)
                    losses.update(loss.item(), images.size(0))
                    top1.update(accuracy(output, target)[0], images.size(0))

        losses = AverageMeter("Loss")
        top1 = AverageMeter("Acc@1")
        model.eval()
        run_validate(val_loader)
        progress.display_summary()
        flor.log("val_top1", top1.avg)
        return top1.avg
    """
    old = """
    def validate(val_loader, model, criterion):
        losses = AverageMeter()
        top1 = AverageMeter()
        model.eval()
        with torch.no_grad():
            for i, (input, target) in enumerate(val_loader):
                output = model(input)
                loss = criterion(output, target)
                losses.update(loss.item(), input.size(0))
                top1.update(accuracy(output, target)[0], input.size(0))
        return top1.avg
    """
    result = propagate_source(d(new), d(old))
    (outcome,) = result.outcomes
    assert isinstance(outcome, Declined), result.source
    assert "run_validate" in outcome.reason
    assert result.source == d(old)


def test_a_binding_only_one_branch_makes_leaves_the_earlier_one_reaching() -> None:
    """nanoGPT: new sets `iter_num = checkpoint["iter_num"]` when resuming, after
    `iter_num = 0`; the first version has only `iter_num = 0`, which is the value the
    statement reads there when not resuming."""
    new = """
    import flor

    iter_num = 0
    if init_from == "resume":
        checkpoint = torch.load(ckpt_path)
        iter_num = checkpoint["iter_num"]
    while True:
        loss = step(model)
        if iter_num % eval_interval == 0:
            torch.save(model.state_dict(), path)
            flor.log("saved_iter", iter_num)
        iter_num += 1
    """
    old = """
    iter_num = 0
    while True:
        loss = step(model)
        if iter_num % eval_interval == 0:
            torch.save(model.state_dict(), path)
        iter_num += 1
    """
    _, source = placed_after(new, old)
    lines = source.splitlines()
    at = lines.index('        flor.log("saved_iter", iter_num)')
    assert lines[at - 1].strip() == "torch.save(model.state_dict(), path)"
