"""Shapes found in real histories the suites did not cover (round 3: PyTorch-YOLOv3,
DALLE-pytorch, qlora, plus minGPT's `lm_head`), one capability per test, on small snippets
shaped like the real edit; the expected output is written out in full.
"""

from __future__ import annotations

import textwrap

from flor.propagate import propagate_source


def d(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


def placed(new: str, old: str) -> str:
    result = propagate_source(d(new), d(old))
    assert result.ok, result.outcomes
    return result.source


# minGPT's model.py: new grew a config class above (whole-file positions drift), moved the
# blocks into a loop and renamed the head `lm_head`.
_CONFIG = "class Config:\n" + "".join(f"    setting_{k} = {k}\n" for k in range(40)) + "\n"
_BLOCK = """
class Block:
    def forward(self, x):
        x = x + self.attn(self.ln{1}(x))
        x = x + self.{mlp}(self.ln{2}(x))
        return x

"""
_GPT_NEW = """
class GPT:
    def forward(self, idx):
        device = idx.device
        b, t = idx.size()
        pos = torch.arange(0, t, device=device)
        tok_emb = self.transformer.wte(idx)
        pos_emb = self.transformer.wpe(pos)
        x = self.transformer.drop(tok_emb + pos_emb)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)
        loss = None
        return logits, loss
"""
_GPT_OLD = """
class GPT:
    def forward(self, idx):
        b, t = idx.size()
        token_embeddings = self.tok_emb(idx)
        position_embeddings = self.pos_emb[:, :t, :]
        x = self.drop(token_embeddings + position_embeddings)
        x = self.blocks(x)
        x = self.ln_f(x)
        logits = self.head(x)
        loss = None
        return logits, loss
"""


def _mingpt(after: str, statement: str) -> tuple[str, str]:
    """(new, old) with `statement` after new's line `after` of GPT.forward."""
    block_new = _BLOCK.replace("{1}", "_1").replace("{2}", "_2").replace("{mlp}", "mlpf")
    block_old = _BLOCK.replace("{1}", "1").replace("{2}", "2").replace("{mlp}", "mlp")
    gpt_new = _GPT_NEW.replace(f"{after}\n", f"{after}\n        {statement}\n")
    assert gpt_new != _GPT_NEW
    new = "import flor\n\n" + _CONFIG + d(block_new) + d(gpt_new)
    return new, "import flor\n\n" + d(block_old) + d(_GPT_OLD)


def test_a_call_on_x_is_not_paired_with_another_call_on_x_by_position_alone() -> None:
    # `logits = self.lm_head(x)` was `logits = self.head(x)`, not `x = self.blocks(x)`.
    statement = 'flor.log("logits_mean", logits.mean().item())'
    new, old = _mingpt("logits = self.lm_head(x)", statement)
    expected = old.replace(
        "logits = self.head(x)\n", f"logits = self.head(x)\n        {statement}\n"
    )
    assert placed(new, old) == expected


def test_after_the_blocks_loop_follows_the_one_line_that_ran_the_blocks() -> None:
    # The `(x)` of `self.transformer.ln_f(x)` is not the `(x)` of `self.blocks(x)` for
    # sitting at the same relative place: the statement follows `x = self.blocks(x)`.
    statement = 'flor.log("x_norm", x.norm().item())'
    new, old = _mingpt("            x = block(x)", statement)
    expected = old.replace("x = self.blocks(x)\n", f"x = self.blocks(x)\n        {statement}\n")
    assert placed(new, old) == expected


def test_the_call_after_the_loop_is_not_its_copy_inside_the_loop() -> None:
    # DALLE-pytorch: the final save after the epoch loop; new also saves inside the loop.
    new = """
    import flor

    for epoch in range(EPOCHS):
        for i, (text, images) in enumerate(dl):
            loss = dalle(text, images)
            loss.backward()
        if LR_DECAY:
            scheduler.step(loss)
        save_model(PATH, epoch=epoch)
    save_model(PATH, epoch=epoch)
    flor.log("final_epoch", epoch)
    wandb.finish()
    """
    old = """
    import flor

    for epoch in range(EPOCHS):
        for i, (text, images) in enumerate(dl):
            loss = dalle(text, images)
            loss.backward()
    save_model('./dalle-final.pt')
    wandb.finish()
    """
    assert placed(new, old) == d(
        """
    import flor

    for epoch in range(EPOCHS):
        for i, (text, images) in enumerate(dl):
            loss = dalle(text, images)
            loss.backward()
    save_model('./dalle-final.pt')
    flor.log("final_epoch", epoch)
    wandb.finish()
    """
    )


def test_a_loop_moved_under_the_main_guard_is_still_the_loop() -> None:
    # PyTorch-YOLOv3: the module-level epoch loop moved into `if __name__ == "__main__":`,
    # and `model.train()` moved from before it into it.
    new = """
    import flor

    if __name__ == "__main__":
        args = parser.parse_args()
        model = load_model(args.model)
        for epoch in range(args.epochs):
            flor.log("epoch", epoch)
            print("training")
            model.train()
            for batch_i, (imgs, targets) in enumerate(dataloader):
                batches_done = len(dataloader) * epoch + batch_i
                imgs = imgs.to(device, non_blocking=True)
                targets = targets.to(device)
                outputs = model(imgs)
                loss, loss_components = compute_loss(outputs, targets, model)
                loss.backward()
                if batches_done % model.hyperparams["subdivisions"] == 0:
                    lr = model.hyperparams["learning_rate"]
                    for g in optimizer.param_groups:
                        g["lr"] = lr
                    optimizer.step()
                    optimizer.zero_grad()
                logger.list_of_scalars_summary(loss_components, batches_done)
            if epoch % args.checkpoint_interval == 0:
                torch.save(model.state_dict(), f"checkpoints/yolov3_ckpt_{epoch}.pth")
    """
    old = """
    import flor

    opt = parser.parse_args()
    model = Darknet(opt.model_config_path)
    model.train()
    for epoch in range(opt.epochs):
        for batch_i, (imgs, targets) in enumerate(dataloader):
            loss = model(imgs, targets)
            loss.backward()
    """
    assert placed(new, old) == d(
        """
    import flor

    opt = parser.parse_args()
    model = Darknet(opt.model_config_path)
    model.train()
    for epoch in range(opt.epochs):
        flor.log("epoch", epoch)
        for batch_i, (imgs, targets) in enumerate(dataloader):
            loss = model(imgs, targets)
            loss.backward()
    """
    )


def test_after_a_one_line_if_whose_body_old_runs_unguarded() -> None:
    # PyTorch-YOLOv3: `if args.verbose: print(log_str)` was `print(log_str)`.
    new = """
    import flor

    for batch in loader:
        log_str = ""
        log_str += make_table(batch)
        if args.verbose: print(log_str)
        flor.log("log_len", len(log_str))
        model.seen += 1
    """
    old = """
    import flor

    for batch in loader:
        log_str = "header"
        log_str += make_table(batch)
        log_str += eta()
        print(log_str)
        model.seen += 1
    """
    assert placed(new, old) == d(
        """
    import flor

    for batch in loader:
        log_str = "header"
        log_str += make_table(batch)
        log_str += eta()
        print(log_str)
        flor.log("log_len", len(log_str))
        model.seen += 1
    """
    )


def test_a_dict_rebuilt_in_old_is_the_dict_new_updates_in_place() -> None:
    # DALLE-pytorch: old `log = {**log, 'image': ...}`, new `log['image'] = ...`.
    new = """
    import flor

    for i, (text, images) in enumerate(dl):
        loss = dalle(text, images)
        log = {}
        if i % 10 == 0:
            log = {**log, "loss": loss.item()}
        if i % 100 == 0:
            image = dalle.generate_images(text[:1])
            log["image"] = wandb.Image(image)
        wandb.log(log)
        flor.log("log_keys", sorted(log))
    """
    old = """
    import flor

    for i, (text, images) in enumerate(dl):
        loss = dalle(text, images)
        log = {}
        if i % 10 == 0:
            log = {**log, "loss": loss.item()}
        if i % 100 == 0:
            image = dalle.generate_images(text[:1])
            log = {**log, "image": wandb.Image(image)}
        wandb.log(log)
    """
    assert placed(new, old) == d(
        """
    import flor

    for i, (text, images) in enumerate(dl):
        loss = dalle(text, images)
        log = {}
        if i % 10 == 0:
            log = {**log, "loss": loss.item()}
        if i % 100 == 0:
            image = dalle.generate_images(text[:1])
            log = {**log, "image": wandb.Image(image)}
        wandb.log(log)
        flor.log("log_keys", sorted(log))
    """
    )


_HEADER = "".join(f"SETTING_{k} = load_setting({k})\n" for k in range(40))


def test_isomorphic_lines_in_a_function_pair_in_their_order() -> None:
    # qlora: new added 90 lines above `smart_tokenizer_and_embedding_resize`; the four
    # `[:-n]`/`[-n:]` lines of its `if` must not pair crosswise by whole-file position.
    body = """
    def resize(tokenizer, model, n):
        if n > 0:
            {inp} = model.get_input_embeddings().weight.data
            {out} = model.get_output_embeddings().weight.data
            input_avg = {inp}[:-n].mean(dim=0, keepdim=True)
            output_avg = {out}[:-n].mean(dim=0, keepdim=True)
            {inp}[-n:] = input_avg
            {out}[-n:] = output_avg
    """
    new = "import flor\n" + _HEADER + d(body.format(inp="input_data", out="output_data"))
    new = new.replace(
        "keepdim=True)\n        output_avg",
        'keepdim=True)\n        flor.log("avg", input_avg.norm().item())\n        output_avg',
    )
    old = "import flor\n" + d(body.format(inp="input_embeddings", out="output_embeddings"))
    expected = old.replace(
        "keepdim=True)\n        output_avg",
        'keepdim=True)\n        flor.log("avg", input_avg.norm().item())\n        output_avg',
    )
    assert placed(new, old) == expected


def test_a_statement_inside_a_loop_old_lacks_is_not_placed_after_its_unlooped_line() -> None:
    # minGPT: once `x = block(x)` pairs with `x = self.blocks(x)`, a statement inside
    # new's loop over blocks still has no place: old runs all blocks in one call.
    new, old = _mingpt("            x = block(x)", '    flor.log("block_norm", x.norm().item())')
    result = propagate_source(new, old)
    assert not result.ok
    assert "loop" in result.outcomes[0].reason


def test_a_loop_new_added_around_the_same_step_keeps_the_placement() -> None:
    # llm.c: gradient accumulation wrapped the step in a micro-step loop; old ran it once
    # per iteration. The anchor does not read the micro-step: it is the same step.
    new = """
    import flor

    for step in range(num_iterations):
        for micro_step in range(grad_accum_steps):
            x, y = train_loader.next_batch()
            with ctx:
                _, loss = model(x, y, return_logits=False)
                loss = loss / grad_accum_steps
            if not args.inference_only:
                loss.backward()
                flor.log("loss", loss.item())
        optimizer.step()
    """
    old = """
    import flor

    for i in range(args.num_iterations):
        with ctx:
            logits, loss = model(x, y)
            if not args.inference_only:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    """
    assert placed(new, old) == d(
        """
    import flor

    for i in range(args.num_iterations):
        with ctx:
            logits, loss = model(x, y)
            if not args.inference_only:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                flor.log("loss", loss.item())
                optimizer.step()
    """
    )


def test_a_rename_across_another_call_is_declined_with_both_calls_named() -> None:
    # minGPT: `tok_emb = self.transformer.wte(idx)` was `token_embeddings = self.tok_emb(idx)`:
    # maybe the same value, but nothing proves it; the reason says what differs.
    statement = 'flor.log("tok_emb_norm", tok_emb.norm().item())'
    new, old = _mingpt("tok_emb = self.transformer.wte(idx)", statement)
    result = propagate_source(new, old)
    assert not result.ok
    assert result.outcomes[0].reason == (
        "`tok_emb` would be old's `token_embeddings`, but old computes it with another call "
        "(`tok_emb(...)`, new `wte(...)`)"
    )


def test_a_reordered_parameter_keeps_its_name() -> None:
    # PyTorch-YOLOv3: `evaluate(model, path, iou_thres, conf_thres, nms_thres, img_size,
    # batch_size)` became `_evaluate(model, dataloader, class_names, img_size, ...)`; the
    # parameter at img_size's old position is `batch_size`, which must not stand in for it.
    new = """
    import flor

    def _evaluate(
        model, dataloader, class_names, img_size, iou_thres, conf_thres, nms_thres, verbose
    ):
        model.eval()
        flor.log("img_size", img_size)
        Tensor = torch.cuda.FloatTensor if torch.cuda.is_available() else torch.FloatTensor
        for _, imgs, targets in dataloader:
            targets[:, 2:] *= img_size
    """
    old = """
    import flor

    def evaluate(model, path, iou_thres, conf_thres, nms_thres, img_size, batch_size):
        model.eval()
        dataloader = make_loader(path, img_size, batch_size)
        Tensor = torch.cuda.FloatTensor if torch.cuda.is_available() else torch.FloatTensor
        for batch_i, (_, imgs, targets) in enumerate(dataloader):
            targets[:, 2:] *= img_size
    """
    assert placed(new, old) == d(
        """
    import flor

    def evaluate(model, path, iou_thres, conf_thres, nms_thres, img_size, batch_size):
        model.eval()
        flor.log("img_size", img_size)
        dataloader = make_loader(path, img_size, batch_size)
        Tensor = torch.cuda.FloatTensor if torch.cuda.is_available() else torch.FloatTensor
        for batch_i, (_, imgs, targets) in enumerate(dataloader):
            targets[:, 2:] *= img_size
    """
    )


def test_a_rename_between_names_of_different_data_splits_is_declined() -> None:
    """A matched `DataLoader(...)` line is no proof that new's training loader is old's only
    (test) loader: the statement would log the test set's size as the training set's."""
    new = """
    def main(args):
        train_set = load("train")
        train_loader = DataLoader(train_set, batch_size=args.bs, shuffle=True)
        flor.log("batches", len(train_loader))
        for x, y in train_loader:
            step(x, y)
    """
    old = """
    def main(args):
        test_set = load("test")
        test_loader = DataLoader(test_set, batch_size=args.bs, shuffle=False)
        for x, y in test_loader:
            step(x, y)
    """
    result = propagate_source(d(new), d(old))
    assert not result.ok
    assert "different data splits (train against test)" in str(result.outcomes)


def test_a_rename_within_one_data_split_still_applies() -> None:
    new = """
    def main(args):
        train_loader = DataLoader(train_set, batch_size=args.bs)
        flor.log("batches", len(train_loader))
        for x, y in train_loader:
            step(x, y)
    """
    old = """
    def main(args):
        trainloader = DataLoader(train_set, batch_size=args.bs)
        for x, y in trainloader:
            step(x, y)
    """
    assert 'flor.log("batches", len(trainloader))' in placed(new, old)
