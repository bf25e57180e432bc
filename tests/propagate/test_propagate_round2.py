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


MINGPT_NEW = """
import flor

class Trainer:
    def __init__(self, config, model):
        self.config = config
        self.model = model
        self.iter_num = 0

    def run(self):
        model, config = self.model, self.config
        optimizer = model.configure_optimizers(config)
        loader = DataLoader(self.dataset, batch_size=config.batch_size)
        flor.log("batch_size", config.batch_size)
        for x, y in loader:
            logits, loss = model(x, y)
            loss.backward()
            optimizer.step()
            self.iter_num += 1
            flor.log("iter_num", self.iter_num)
"""

MINGPT_OLD = """
class Trainer:
    def __init__(self, config, model):
        self.config = config
        self.model = model

    def save_checkpoint(self):
        torch.save(self.model.state_dict(), self.config.ckpt_path)

    def train(self):
        model, config = self.model, self.config
        optimizer = model.configure_optimizers(config)
        best_loss = float("inf")
        loader = DataLoader(self.dataset, batch_size=config.batch_size)
        for x, y in loader:
            logits, loss = model(x, y)
            loss.backward()
            optimizer.step()
"""


def test_a_renamed_method_is_not_paired_with_another_for_sharing_self() -> None:
    # minGPT renamed `train` to `run` and rewrote it: `run` must not become old's
    # `save_checkpoint` because both take only `self`; its code is in old's `train()`.
    new = """
    import time
    import flor


    class Trainer:
        def __init__(self, config, model, dataset):
            self.config = config
            self.model = model
            self.dataset = dataset

        def add_callback(self, event, callback):
            self.callbacks[event].append(callback)

        def run(self):
            model, config = self.model, self.config
            self.optimizer = model.configure_optimizers(config)
            loader = DataLoader(self.dataset, shuffle=False, batch_size=config.batch_size)
            flor.log("batch_size", config.batch_size)
            model.train()
            self.iter_time = time.time()
            data_iter = iter(loader)
            while True:
                try:
                    batch = next(data_iter)
                except StopIteration:
                    data_iter = iter(loader)
                    batch = next(data_iter)
                x, y = [t.to(self.device) for t in batch]
                logits, self.loss = model(x, y)
                model.zero_grad(set_to_none=True)
                self.loss.backward()
                self.optimizer.step()
                self.trigger_callbacks("on_batch_end")
                tnow = time.time()
                self.iter_dt = tnow - self.iter_time
                self.iter_time = tnow
    """
    old = """
    class Trainer:
        def __init__(self, config, model, dataset):
            self.config = config
            self.model = model
            self.dataset = dataset

        def save_checkpoint(self):
            raw_model = self.model.module if hasattr(self.model, "module") else self.model
            torch.save(raw_model.state_dict(), self.config.ckpt_path)

        def train(self):
            model, config = self.model, self.config
            optimizer = model.configure_optimizers(config)

            def run_epoch(loader, is_train=True):
                model.train(is_train)
                losses = []
                for it, (x, y) in enumerate(loader):
                    logits, loss = model(x, y)
                    losses.append(loss.item())
                    if is_train:
                        model.zero_grad()
                        loss.backward()
                        optimizer.step()

            loader = DataLoader(self.dataset, shuffle=True, batch_size=config.batch_size)
            for epoch in range(config.max_epochs):
                run_epoch(loader)
    """
    assert placed(new, old) == "import flor\n" + d(
        """
    class Trainer:
        def __init__(self, config, model, dataset):
            self.config = config
            self.model = model
            self.dataset = dataset

        def save_checkpoint(self):
            raw_model = self.model.module if hasattr(self.model, "module") else self.model
            torch.save(raw_model.state_dict(), self.config.ckpt_path)

        def train(self):
            model, config = self.model, self.config
            optimizer = model.configure_optimizers(config)

            def run_epoch(loader, is_train=True):
                model.train(is_train)
                losses = []
                for it, (x, y) in enumerate(loader):
                    logits, loss = model(x, y)
                    losses.append(loss.item())
                    if is_train:
                        model.zero_grad()
                        loss.backward()
                        optimizer.step()

            loader = DataLoader(self.dataset, shuffle=True, batch_size=config.batch_size)
            flor.log("batch_size", config.batch_size)
            for epoch in range(config.max_epochs):
                run_epoch(loader)
    """
    )


def test_an_attribute_only_new_sets_on_self_is_not_read_in_old() -> None:
    # minGPT's new Trainer counts `self.iter_num`; old's never sets it: AttributeError there.
    result = propagate_source(d(MINGPT_NEW), d(MINGPT_OLD))
    assert not result.ok
    assert result.source == d(MINGPT_OLD)
    reasons = [o.reason for o in result.outcomes if isinstance(o, Declined)]
    assert "`self.iter_num` is never set in the target's class" in reasons


def test_an_attribute_both_classes_set_is_read_in_old() -> None:
    new = d(MINGPT_NEW).replace(
        'flor.log("iter_num", self.iter_num)', 'flor.log("model", type(self.model).__name__)'
    )
    new = "\n".join(line for line in new.splitlines() if 'batch_size", config' not in line)
    result = propagate_source(new + "\n", d(MINGPT_OLD))
    assert result.ok, result.outcomes
    assert '            flor.log("model", type(self.model).__name__)\n' in result.source


ALPACA_OLD = """
import transformers

OUTPUT_DIR = "lora-alpaca"
GROUP_BY_LENGTH = True

model = load_model()
trainer = transformers.Trainer(
    model=model,
    args=transformers.TrainingArguments(
        output_dir=OUTPUT_DIR,
        group_by_length=GROUP_BY_LENGTH,
    ),
)
trainer.train()

model.save_pretrained(OUTPUT_DIR)
"""


def test_a_module_constant_that_became_a_parameter_is_read_under_its_old_name() -> None:
    # alpaca-lora moved its script into `train(...)` run by fire: OUTPUT_DIR is `output_dir`.
    new = """
    import fire
    import flor
    import transformers

    def train(base_model="", output_dir="lora-alpaca", group_by_length=False):
        model = load_model(base_model)
        trainer = transformers.Trainer(
            model=model,
            args=transformers.TrainingArguments(
                warmup_steps=100,
                output_dir=output_dir,
                group_by_length=group_by_length,
            ),
        )
        trainer.train()

        model.save_pretrained(output_dir)
        flor.log("output_dir", output_dir)

    if __name__ == "__main__":
        fire.Fire(train)
    """
    assert placed(new, ALPACA_OLD) == d(ALPACA_OLD).replace(
        "import transformers\n", "import transformers\nimport flor\n"
    ).replace(
        "model.save_pretrained(OUTPUT_DIR)\n",
        'model.save_pretrained(OUTPUT_DIR)\nflor.log("output_dir", OUTPUT_DIR)\n',
    )


def test_a_parameter_is_not_read_as_a_constant_of_another_name() -> None:
    new = """
    import fire
    import flor

    def train(save_dir="lora-alpaca"):
        model = load_model()
        model.save_pretrained(save_dir)
        flor.log("save_dir", save_dir)

    if __name__ == "__main__":
        fire.Fire(train)
    """
    old = """
    OUTPUT_DIR = "lora-alpaca"
    model = load_model()
    model.save_pretrained(OUTPUT_DIR)
    """
    result = propagate_source(d(new), d(old))
    assert not result.ok
    assert result.source == d(old)


def test_after_a_new_if_in_a_function_old_ran_at_module_level() -> None:
    # alpaca-lora: `train()` (old's module level) loads json or a hub dataset; old only json.
    new = """
    import fire
    import flor

    def train(data_path="data.json", lora_r=8):
        config = LoraConfig(r=lora_r)
        model = get_peft_model(load_model(), config)
        if data_path.endswith(".json"):
            data = load_dataset("json", data_files=data_path)
        else:
            data = load_dataset(data_path)
        flor.log("n_rows", len(data["train"]))
        trainer = Trainer(model=model, train_dataset=data["train"])
        trainer.train()

    if __name__ == "__main__":
        fire.Fire(train)
    """
    old = """
    DATA_PATH = "data.json"
    config = LoraConfig(r=8)
    model = get_peft_model(load_model(), config)
    data = load_dataset("json", data_files=DATA_PATH)

    def tokenize(prompt):
        return tokenizer(prompt)

    trainer = Trainer(model=model, train_dataset=data["train"])
    trainer.train()
    """
    assert placed(new, old) == "import flor\n" + d(old).replace(
        "data_files=DATA_PATH)\n",
        'data_files=DATA_PATH)\nflor.log("n_rows", len(data["train"]))\n',
    )


def test_after_a_loop_only_new_has_follows_the_code_old_runs_unlooped() -> None:
    # minGPT: `for block in self.h: x = block(x)` in new was one `x = self.blocks(x)`.
    new = """
    import flor

    class GPT:
        def forward(self, idx):
            tok_emb = self.wte(idx)
            x = self.drop(tok_emb)
            for block in self.h:
                x = block(x)
            flor.log("x_norm", x.norm().item())
            x = self.ln_f(x)
            return self.lm_head(x)
    """
    old = """
    class GPT:
        def forward(self, idx):
            tok_emb = self.wte(idx)
            x = self.drop(tok_emb)
            x = self.blocks(x)
            x = self.ln_f(x)
            return self.lm_head(x)
    """
    assert placed(new, old) == "import flor\n" + d(old).replace(
        "x = self.blocks(x)\n", 'x = self.blocks(x)\n        flor.log("x_norm", x.norm().item())\n'
    )


def test_a_value_computed_in_a_loop_the_target_lacks_is_not_read_before_it() -> None:
    # When new's loop line has no counterpart, `x` before the loop (the embedding) is not
    # the value new logs after it: decline rather than log before old's blocks run.
    new = """
    import flor

    class GPT:
        def forward(self, idx):
            x = self.drop(self.wte(idx))
            for block in self.h:
                x = block(x)
            flor.log("x_norm", x.norm().item())
            return self.lm_head(x)
    """
    old = """
    class GPT:
        def forward(self, idx):
            x = self.drop(self.wte(idx))
            self.stack.apply_(x)
            return self.lm_head(x)
    """
    result = propagate_source(d(new), d(old))
    assert not result.ok
    assert result.source == d(old)
    (outcome,) = result.outcomes
    assert isinstance(outcome, Declined)
    assert outcome.reason == "`x` is computed in a loop the target lacks"


def test_a_setting_line_that_became_lower_case_in_a_function_is_its_anchor() -> None:
    # alpaca-lora: `GRADIENT_ACCUMULATION_STEPS = BATCH_SIZE // MICRO_BATCH_SIZE` at module
    # level became `gradient_accumulation_steps = batch_size // micro_batch_size` in train().
    new = """
    import fire
    import flor

    def train(base_model="", batch_size=128, micro_batch_size=4):
        if int(os.environ.get("LOCAL_RANK", 0)) == 0:
            print(f"batch_size: {batch_size}")
        gradient_accumulation_steps = batch_size // micro_batch_size
        flor.log("micro_batch_size", micro_batch_size)
        prompter = Prompter("alpaca")
        world_size = int(os.environ.get("WORLD_SIZE", 1))
        model = load(base_model)
        trainer = Trainer(model, micro_batch_size, gradient_accumulation_steps)

    if __name__ == "__main__":
        fire.Fire(train)
    """
    old = """
    MICRO_BATCH_SIZE = 4
    BATCH_SIZE = 128
    GRADIENT_ACCUMULATION_STEPS = BATCH_SIZE // MICRO_BATCH_SIZE
    BASE_MODEL = None
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    model = load(BASE_MODEL)
    trainer = Trainer(model, MICRO_BATCH_SIZE, GRADIENT_ACCUMULATION_STEPS)
    """
    assert placed(new, old) == "import flor\n" + d(old).replace(
        "BATCH_SIZE // MICRO_BATCH_SIZE\n",
        'BATCH_SIZE // MICRO_BATCH_SIZE\nflor.log("micro_batch_size", MICRO_BATCH_SIZE)\n',
    )
