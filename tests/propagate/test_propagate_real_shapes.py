"""What real training scripts do between versions, one capability per test, on small snippets.

Each pair is shaped like an edit seen in real histories (code moved into `main()`, wrappers
added or removed, anchors edited, lines reordered, variables renamed) or like a trap where
placing the statement would log another value; the expected output is written out in full.
"""

from __future__ import annotations

import textwrap

import pytest

from flor.errors import PropagateError
from flor.propagate import AlreadyPresent, Declined, Placed, propagate_source


def d(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


def placed(new: str, old: str) -> str:
    result = propagate_source(d(new), d(old))
    assert result.ok, result.outcomes
    return result.source


def declined(new: str, old: str) -> str:
    result = propagate_source(d(new), d(old))
    assert not result.ok
    assert result.source == d(old)
    (outcome,) = result.outcomes
    assert isinstance(outcome, Declined)
    return outcome.reason


def test_code_moved_from_module_level_into_main() -> None:
    new = """
    import flor
    import torch

    def main():
        model = build()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        flor.log("lr", opt.param_groups[0]["lr"])
        for epoch in range(3):
            train(model, opt)

    if __name__ == "__main__":
        main()
    """
    old = """
    import torch

    model = build()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(3):
        train(model, opt)
    """
    assert placed(new, old) == d(
        """
        import torch
        import flor

        model = build()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        flor.log("lr", opt.param_groups[0]["lr"])
        for epoch in range(3):
            train(model, opt)
        """
    )


def test_guard_only_new_has_is_dissolved_and_wrapper_only_old_has_is_entered() -> None:
    new = """
    import flor
    for batch in loader:
        out = model(batch)
        loss = crit(out)
        if args.log_every:
            loss.backward()
            flor.log("loss", loss.item())
        step()
    """
    old = """
    import flor
    for batch in loader:
        with autocast():
            out = model(batch)
            loss = crit(out)
            loss.backward()
        step()
    """
    assert placed(new, old) == d(
        """
        import flor
        for batch in loader:
            with autocast():
                out = model(batch)
                loss = crit(out)
                loss.backward()
                flor.log("loss", loss.item())
            step()
        """
    )


def test_edited_anchor_in_a_guard_is_followed_where_old_keeps_it() -> None:
    new = """
    import flor
    for epoch in range(10):
        stats = evaluate(model)
        if best < stats["acc"]:
            best = stats["acc"]
            flor.log("best", best)
            save(model, "best.pt")
        print(best)
    """
    old = """
    import flor
    for epoch in range(10):
        stats = evaluate(model)
        best = max(best, stats["acc"])
        print(best)
    """
    assert placed(new, old) == d(
        """
        import flor
        for epoch in range(10):
            stats = evaluate(model)
            best = max(best, stats["acc"])
            flor.log("best", best)
            print(best)
        """
    )


def test_line_moved_within_its_function_is_still_the_anchor() -> None:
    new = """
    import flor
    def train(model, ema, opt, loader):
        for batch in loader:
            loss = step(batch)
            opt.step()
            opt.zero_grad()
            if sync:
                if use_ema:
                    ema.step(model.parameters())
                    flor.log("ema_decay", ema.decay)
                bar.update(1)
    """
    old = """
    import flor
    def train(model, ema, opt, loader):
        for batch in loader:
            loss = step(batch)
            opt.step()
            if use_ema:
                ema.step(model)
            opt.zero_grad()
            bar.update(1)
    """
    assert placed(new, old) == d(
        """
        import flor
        def train(model, ema, opt, loader):
            for batch in loader:
                loss = step(batch)
                opt.step()
                if use_ema:
                    ema.step(model)
                    flor.log("ema_decay", ema.decay)
                opt.zero_grad()
                bar.update(1)
        """
    )


def test_rename_through_an_edited_binding_and_a_loop_target() -> None:
    new = """
    import flor
    for step in range(args.iters + 1):
        flor.log("step", step)
        model_pred = unet(latents, t, cond, return_dict=False)[0]
        flor.log("pred_norm", model_pred.norm().item())
        loss = mse(model_pred, target)
    """
    old = """
    import flor
    for i in range(args.iters):
        noise_pred = unet(latents, t, cond).sample
        loss = mse(noise_pred, noise)
    """
    result = propagate_source(d(new), d(old))
    assert result.source == d(
        """
        import flor
        for i in range(args.iters):
            flor.log("step", i)
            noise_pred = unet(latents, t, cond).sample
            flor.log("pred_norm", noise_pred.norm().item())
            loss = mse(noise_pred, noise)
        """
    )
    renames = [o.renames for o in result.outcomes if isinstance(o, Placed)]
    assert renames == [{"step": "i"}, {"model_pred": "noise_pred"}]
    assert [o.old_line for o in result.placed] == [2, 3]


def test_rename_voted_by_matched_uses_when_the_binding_was_rewritten() -> None:
    new = """
    import flor
    test_loader = get_test_dataloader(mean, std, batch_size=args.b)
    net.eval()
    flor.log("num_batches", len(test_loader))
    for n, (image, label) in enumerate(test_loader):
        total += evaluate(net, image, label)
    """
    old = """
    import flor
    test_set = DataLoader(TestSet(path), batch_size=10)
    net.eval()
    for n, (image, label) in enumerate(test_set):
        total += evaluate(net, image, label)
    """
    assert 'flor.log("num_batches", len(test_set))' in placed(new, old)


def test_first_statement_of_a_block_goes_first_in_its_image() -> None:
    new = """
    import flor
    for batch_idx, (inputs, targets) in enumerate(loader):
        flor.log("batch_idx", batch_idx)
        inputs, targets = inputs.to(device), targets.to(device)
        opt.zero_grad()
    """
    old = """
    import flor
    for batch_idx, (inputs, targets) in enumerate(loader):
        if use_cuda:
            inputs, targets = inputs.cuda(), targets.cuda()
        opt.zero_grad()
    """
    assert placed(new, old).splitlines()[2] == '    flor.log("batch_idx", batch_idx)'


def test_multi_line_anchor_is_followed_after_its_last_line() -> None:
    new = """
    import flor
    def evaluate(loss, correct, n, elapsed):
        print("Test: loss {:.4f}, acc {:.4f}, time {:.2f}".format(
            loss / n,
            correct / n,
            elapsed,
        ))
        flor.log("val_loss", loss / n)
        print()
    """
    old = """
    import flor
    def evaluate(loss, correct, n, elapsed):
        print("Test: loss {:.4f}, acc {:.4f}".format(
            loss / n,
            correct / n,
        ))
        print()
    """
    assert placed(new, old) == d(
        """
        import flor
        def evaluate(loss, correct, n, elapsed):
            print("Test: loss {:.4f}, acc {:.4f}".format(
                loss / n,
                correct / n,
            ))
            flor.log("val_loss", loss / n)
            print()
        """
    )


def test_declines_a_block_that_only_new_has() -> None:
    reason = declined(
        """
        import flor
        for batch in loader:
            target = noise
            if args.dream:
                latents, target = dream_update(latents, target)
                flor.log("dream_std", target.std().item())
            pred = unet(latents)
        """,
        """
        import flor
        for batch in loader:
            target = noise
            pred = unet(latents)
        """,
    )
    assert "block is new" in reason


def test_declines_a_name_that_holds_another_value_in_old() -> None:
    reason = declined(
        """
        import flor
        def train(model):
            model = build(model)
            amp = check_amp(model)
            flor.log("amp_enabled", amp)
            scaler = make_scaler(amp)
        """,
        """
        import flor
        from torch.cuda import amp
        def train(model):
            model = build(model)
            scaler = amp.GradScaler()
        """,
    )
    assert "`amp`" in reason


def test_declines_a_discarded_tuple_element() -> None:
    reason = declined(
        """
        import flor
        for x in data:
            loss, pred, mask = model(x)
            flor.log("pred_std", pred.std().item())
            loss.backward()
        """,
        """
        import flor
        for x in data:
            loss, _, _ = model(x)
            loss.backward()
        """,
    )
    assert "`pred`" in reason


def test_a_star_import_does_not_stand_in_for_an_assignment_of_new() -> None:
    reason = declined(
        """
        import flor
        from models import *
        scheduler = make_scheduler(opt)
        for epoch in range(3):
            train(epoch)
            scheduler.step()
            flor.log("lr", scheduler.get_last_lr()[0])
        """,
        """
        import flor
        from models import *
        for epoch in range(3):
            train(epoch)
        """,
    )
    assert "`scheduler`" in reason


def test_a_rename_to_a_name_that_means_something_else_in_new_is_refused() -> None:
    reason = declined(
        """
        import flor
        nw = max(workers, 8)
        nb = len(loader)
        warm = max(3 * nb, 1000)
        flor.log("warmup_iters", warm)
        run(nw, warm)
        """,
        """
        import flor
        nw = max(workers, 8)
        nb = len(loader)
        run(nw)
        """,
    )
    assert "`warm`" in reason


def test_an_edited_statement_already_in_old_is_not_new() -> None:
    new = d(
        """
        import flor
        for x in data:
            loss = crit(model(x))
            flor.log("loss", loss)
            flor.log("x_mean", x.mean())
        """
    )
    old = d(
        """
        import flor
        for x in data:
            loss = crit(model(x))
            flor.log("loss", loss.item())
        """
    )
    result = propagate_source(new, old)
    assert result.ok
    assert result.outcomes[0] == AlreadyPresent('flor.log("loss", loss)', edited=True)
    assert result.source == old.replace(
        "loss.item())\n", 'loss.item())\n    flor.log("x_mean", x.mean())\n'
    )


def test_a_name_new_never_binds_is_an_error() -> None:
    with pytest.raises(PropagateError, match="reads `lsos`, which the source never binds"):
        propagate_source(
            "import flor\nloss = 1\nflor.log('loss', lsos)\n", "import flor\nloss = 1\n"
        )


def test_history_carries_the_statement_through_a_rename_the_jump_cannot_trust() -> None:
    new = """
    import flor
    model = Net()
    for x in data:
        out = model(x)
        flor.log("out", out.sum())
        print(out)
    """
    middle = """
    model = Net()
    for x in data:
        res = model(x)
        print(res)
    """
    old = """
    net = Net()
    for x in data:
        res = net(x)
        print(res)
    """
    assert not propagate_source(d(new), d(old)).ok
    result = propagate_source(d(new), d(old), history=[("v1", d(middle))])
    assert result.ok
    assert 'flor.log("out", res.sum())' in result.source
    assert result.placed[0].renames == {"out": "res"}


def test_an_identical_copy_in_another_function_does_not_steal_the_edited_original() -> None:
    new = """
    import flor
    def log_validation(pipe, prompts):
        images = []
        for i in range(len(prompts)):
            ctx = autocast_for(pipe.device)
            with ctx:
                image = pipe(prompts[i]).images[0]
            images.append(image)
        flor.log("num_val_images", len(images))
        return images

    def main(pipe, prompts):
        train(pipe)
        images = []
        for i in range(len(prompts)):
            with torch.autocast("cuda"):
                image = pipe(prompts[i]).images[0]
            images.append(image)
        save(images)
    """
    old = """
    import flor
    def log_validation(pipe, prompts):
        images = []
        for i in range(len(prompts)):
            with torch.autocast("cuda"):
                image = pipe(prompts[i]).images[0]
            images.append(image)
        return images

    def main(pipe, prompts):
        train(pipe)
        save(pipe)
    """
    out = placed(new, old).splitlines()
    assert out[7] == '    flor.log("num_val_images", len(images))'
    assert out[8] == "    return images"


def test_a_max_update_rewritten_as_a_guarded_assignment_is_followed_after_the_if() -> None:
    new = """
    import flor
    for epoch in range(10):
        fi = fitness(results)
        stop = stopper(epoch, fi)
        best = max(best, fi)
        flor.log("best", best)
        save(best)
    """
    old = """
    import flor
    for epoch in range(10):
        fi = fitness(results)
        if fi > best:
            best = fi
        save(best)
    """
    assert placed(new, old) == d(
        """
        import flor
        for epoch in range(10):
            fi = fitness(results)
            if fi > best:
                best = fi
            flor.log("best", best)
            save(best)
        """
    )
