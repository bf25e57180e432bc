"""Shapes found in real histories the suites did not cover (round 2: minGPT, dino, MoCo,
denoising-diffusion-pytorch, alpaca-lora), one capability per test, on small snippets shaped
like the real edit; the expected output is written out in full.
"""

from __future__ import annotations

import textwrap

from flor.propagate import Declined, propagate_source


def d(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


def placed(new: str, old: str) -> str:
    result = propagate_source(d(new), d(old))
    assert result.ok, result.outcomes
    return result.source


def test_anchor_hoisted_out_of_an_if_chain_both_versions_have() -> None:
    # dino: new wraps the heads once after the arch chain; old inside one branch of it.
    new = """
    import flor

    def build(args):
        if args.arch in vits:
            student = vits[args.arch]()
            student.head = Head(args.out_dim)
        elif args.arch in tv:
            student = tv[args.arch]()
            dim = student.fc.weight.shape[1]
        else:
            print("unknown arch")
        student = Wrapper(student, Head(dim, args.out_dim))
        flor.log("out_dim", args.out_dim)
        student = student.cuda()
        return student
    """
    old = """
    import flor

    def build(args):
        if args.arch in vits:
            student = vits[args.arch]()
            student.head = Head(args.out_dim)
        elif args.arch in tv:
            student = tv[args.arch]()
            dim = student.fc.weight.shape[1]
            student = Wrapper(student, Head(dim, args.out_dim))
        else:
            print("unknown arch")
        student = student.cuda()
        return student
    """
    assert placed(new, old) == d(
        """
    import flor

    def build(args):
        if args.arch in vits:
            student = vits[args.arch]()
            student.head = Head(args.out_dim)
        elif args.arch in tv:
            student = tv[args.arch]()
            dim = student.fc.weight.shape[1]
            student = Wrapper(student, Head(dim, args.out_dim))
        else:
            print("unknown arch")
        flor.log("out_dim", args.out_dim)
        student = student.cuda()
        return student
    """
    )


def test_anchor_in_a_branch_of_a_check_new_makes_later_is_entered() -> None:
    # llm.c: new advances the position before its shard check; old in the check's `else`.
    new = """
    import flor

    class Loader:
        def next_batch(self):
            x = self.tokens[self.pos : self.pos + 8]
            self.pos += 8
            flor.log("position", self.pos)
            if self.pos + 9 > len(self.tokens):
                self.advance()
            return x
    """
    old = """
    class Loader:
        def next_batch(self):
            x = self.tokens[self.pos : self.pos + 8]
            if self.pos + 9 > len(self.tokens):
                self.advance()
            else:
                self.pos += 8
            return x
    """
    assert placed(new, old) == d(
        """
    import flor
    class Loader:
        def next_batch(self):
            x = self.tokens[self.pos : self.pos + 8]
            if self.pos + 9 > len(self.tokens):
                self.advance()
            else:
                self.pos += 8
                flor.log("position", self.pos)
            return x
    """
    )


def test_statement_after_an_if_only_new_has_follows_the_code_old_runs_unwrapped() -> None:
    # dino eval_linear: top-5 only `if num_labels >= 5:` in new, always in old.
    new = """
    import flor

    def validate(loader, model, num_labels):
        for inp, target in loader:
            output = model(inp)
            loss = criterion(output, target)
            if num_labels >= 5:
                acc1, acc5 = accuracy(output, target, topk=(1, 5))
            else:
                (acc1,) = accuracy(output, target, topk=(1,))
            flor.log("acc1", acc1.item())
            meter.update(acc1.item())
    """
    old = """
    def validate(loader, model, num_labels):
        for inp, target in loader:
            output = model(inp)
            loss = criterion(output, target)

            acc1, acc5 = accuracy(output, target, topk=(1, 5))

            meter.update(acc1.item())
    """
    assert placed(new, old) == d(
        """
    import flor
    def validate(loader, model, num_labels):
        for inp, target in loader:
            output = model(inp)
            loss = criterion(output, target)

            acc1, acc5 = accuracy(output, target, topk=(1, 5))
            flor.log("acc1", acc1.item())

            meter.update(acc1.item())
    """
    )


def test_statement_after_a_new_if_whose_code_old_lacks_is_still_declined() -> None:
    # Nothing of new's `if` is in old: the statement has no anchor that binds `acc1`.
    new = """
    import flor

    def validate(loader, model, num_labels):
        for inp, target in loader:
            output = model(inp)
            if num_labels >= 5:
                acc1 = top1(output, target)
            flor.log("acc1", acc1)
    """
    old = """
    def validate(loader, model, num_labels):
        for inp, target in loader:
            output = model(inp)
    """
    result = propagate_source(d(new), d(old))
    assert not result.ok
    assert isinstance(result.outcomes[0], Declined)
    assert result.source == d(old)
