"""Compact specs of the cases (see build.py): `new` is the first line of the anchor
statement in NEW (the block header when `first`), `old` that of the expected anchor in OLD
(None: no correct place)."""

SPECS = []


def case(id, repo, path, new_commit, old_commit, statement, new, old, why, tags, **kw):
    SPECS.append(dict(id=id, repo=repo, path=path, new_commit=new_commit,
                      old_commit=old_commit, statement=statement, new=new, old=old,
                      why=why, tags=tags, **kw))


# ------------------------------------------------------------------ karpathy/nanoGPT
NG = ("karpathy/nanoGPT", "train.py", "dc81cb368ce3e5761f298726fb3fade1b0ca5901")
NG_FIRST = "fe8042867ca499aef1df0d6c2606aabae3124b26"  # first commit

case("ng-lr-ifelse-dissolved", *NG, NG_FIRST, 'flor.log("lr", lr)', 258, 141,
     "new computes lr in one conditional expression every iteration; the first version sets it in "
     "`if decay_lr: lr = get_lr(..); for ..` / `else: lr = learning_rate`. Logging every iteration "
     "means after the whole if/else (old 141), not inside its `if` branch after `lr = get_lr(iter_num)`.",
     ["restructured", "changed-anchor", "after-stmt", "loop", "module-level"])
case("ng-eval-losses-guard-changed", *NG, NG_FIRST, 'flor.log("val_loss", losses["val"])', 264, 149,
     "`losses = estimate_loss()` is in `if iter_num % eval_interval == 0:` in old (new adds `and "
     "master_process`); same statement, edited guard.", ["changed-anchor", "after-stmt", "loop", "nested-block", "module-level"])
case("ng-lossf-edited", *NG, NG_FIRST, 'flor.log("lossf", lossf)', 323, 183,
     "new scales `lossf = loss.item() * gradient_accumulation_steps`; old `lossf = loss.item()` is "
     "the same quantity's binding (the anchor was edited) in the same `if iter_num % log_interval == 0:`.",
     ["changed-anchor", "after-stmt", "loop", "nested-block", "module-level"])
case("ng-dt", *NG, NG_FIRST, 'flor.log("dt", dt)', 318, 180,
     "`dt = t1 - t0` unchanged in the loop's timing lines.", ["after-stmt", "loop", "module-level"])
case("ng-mfu-none", *NG, NG_FIRST, 'flor.log("mfu", mfu)', 325, None,
     "MFU estimation (and `local_iter_num`) does not exist in the first version; trap: the same "
     "`if iter_num % log_interval == 0:` block exists and `lossf` is there.", ["none", "loop", "nested-block", "module-level"])
case("ng-best-val", *NG, NG_FIRST, 'flor.log("best_val_loss", best_val_loss)', 275, 160,
     "`best_val_loss = losses['val']` under the checkpoint condition (new adds `or always_save_checkpoint`).",
     ["changed-anchor", "after-stmt", "loop", "nested-block", "module-level"])
case("ng-split-first-in-loop", *NG, NG_FIRST, 'flor.log("split", split)', 219, 94,
     "first statement of estimate_loss's `for split in ['train', 'val']:`; old's function has a "
     "different signature (`eval_iters=50`) and autocast context.", ["first-in-block", "loop", "in-function"], first=True)
case("ng-get-lr-param-renamed", *NG, NG_FIRST, 'flor.log("it", it)', 239, 119,
     "get_lr's parameter was `iter` before commit 038ce89 renamed it `it`; the statement follows "
     "`decay_ratio = ...` and must read `iter`.", ["rename", "changed-anchor", "after-stmt", "in-function"],
     expected_statement='flor.log("it", iter)')
case("ng-ckpt-saved", *NG, NG_FIRST, 'flor.log("saved_iter", iter_num)', 286, 168,
     "after `torch.save(checkpoint, ...)`; new adds a print before it and `raw_model`/config entries.",
     ["changed-anchor", "after-stmt", "loop", "nested-block", "module-level"])
case("ng-meta-vocab-none", *NG, NG_FIRST, 'flor.log("meta_vocab_size", meta_vocab_size)', 143, None,
     "the first version has no meta.pkl vocab derivation: `meta_vocab_size` is never bound.", ["none", "nested-block", "module-level"])
case("ng-tokens-per-iter-none", *NG, NG_FIRST, 'flor.log("tokens_per_iter", tokens_per_iter)', 101, None,
     "tokens_per_iter (and DDP world size) did not exist; old only has `num_tokens` counting X.numel() in the loop.",
     ["none", "module-level"])
case("ng-model-to-device", *NG, NG_FIRST, 'flor.log("n_params", sum(p.numel() for p in model.parameters()))', 193, 88,
     "`model.to(device)` after the init if/elif chain; new moved the crop out of the gpt2 branch "
     "into its own `if`, the anchor is still the module-level `model.to(device)`.",
     ["moved-code", "after-stmt", "module-level"])
case("ng-iter-num-inc", *NG, NG_FIRST, 'flor.log("iter_num", iter_num)', 328, 185,
     "`iter_num += 1` at the end of the loop; old has `num_tokens += X.numel()` after it.", ["after-stmt", "loop", "module-level"])

NG_ACCUM = "cf9991488629b1b072c49bf261d04b0c8a3207a3"  # gradient accumulation added

case("ng-micro-backward-scaler", *NG, NG_ACCUM, 'flor.log("micro_loss", loss.item())', 305, 261,
     "per micro step, after the backward pass: new `scaler.scale(loss).backward()` was plain "
     "`loss.backward()` before the GradScaler; same `for micro_step` loop (new also prefetches the next batch before it).",
     ["changed-anchor", "after-stmt", "nested-loop", "module-level"])
case("ng-grad-sync-ddp", *NG, NG_ACCUM, 'flor.log("grad_sync", model.require_backward_grad_sync)', 298, 258,
     "inside `if ddp:` in the micro-step loop, after the require_backward_grad_sync toggle (unchanged).",
     ["after-stmt", "nested-loop", "nested-block", "module-level"])
case("ng-raw-model-moved-none", *NG, NG_ACCUM, 'flor.log("raw_model", type(raw_model).__name__)', 253, None,
     "new binds raw_model once before the training loop; in this version it is bound only inside the "
     "checkpoint condition of the loop (old 234): no place before the loop reads it, and the "
     "in-loop copy runs only when a checkpoint is due (trap).",
     ["none", "moved-code", "module-level"])
case("ng-wandb-init-guard", *NG, NG_ACCUM, 'flor.log("wandb_run_name", wandb_run_name)', 247, 207,
     "after `wandb.init(...)` in the logging guard (`gpu_id == 0` became `master_process`).",
     ["changed-anchor", "after-stmt", "nested-block", "module-level"])

# ------------------------------------------------------------------ pytorch/examples mnist
MN = ("pytorch/examples", "mnist/main.py", "d0b7e3709407074ac64bb34c5af33fe226abb47c")
MN_2017 = "fb9ca4d975f0fb2a5289ed67da6d29c83efae80d"  # module-level script, Variable API

case("mn-loss-in-train", *MN, MN_2017, 'flor.log("loss", loss.item())', 42, 84,
     "`loss = F.nll_loss(output, target)` in train()'s batch loop; train's signature changed "
     "from train(epoch) to train(args, model, device, ...) and the device moves differ.",
     ["after-stmt", "loop", "in-function", "changed-anchor"])
case("mn-test-loss-avg", *MN, MN_2017, 'flor.log("test_loss", test_loss)', 65, 105,
     "`test_loss /= len(test_loader.dataset)` after the test loop (new wraps the loop in `with torch.no_grad():`).",
     ["after-stmt", "in-function"])
case("mn-correct-in-nograd-loop", *MN, MN_2017, 'flor.log("correct", correct)', 63, 103,
     "inside the test batch loop after `correct += ...`; the `with torch.no_grad():` wrapper exists only in new.",
     ["after-stmt", "loop", "in-function", "changed-anchor", "nested-block"])
case("mn-pred", *MN, MN_2017, 'flor.log("pred_sum", pred.sum().item())', 62, 102,
     "`pred = output.argmax(...)` was `pred = output.data.max(1, keepdim=True)[1]`: same predicted labels.",
     ["changed-anchor", "after-stmt", "loop", "in-function"])
case("mn-epoch-first-moved-to-main", *MN, MN_2017, 'flor.log("epoch", epoch)', 131, 111,
     "first statement of the epoch loop; new has it in main(), old at module level (no main()).",
     ["first-in-block", "moved-code", "loop", "module-level"], first=True)
case("mn-scheduler-none", *MN, MN_2017, 'flor.log("lr", scheduler.get_last_lr()[0])', 134, None,
     "after `scheduler.step()`: the old script has no scheduler (plain SGD, fixed lr); trap: the epoch loop exists.",
     ["none", "loop", "in-function"])
case("mn-device-none", *MN, MN_2017, 'flor.log("device", str(device))', 101, None,
     "after the `if use_accel: device = ... else: ...` choice; the old script has no `device` "
     "(it calls .cuda() under `args.cuda`); trap: `if args.cuda:` right after the seed.",
     ["none", "module-level", "in-function"])
case("mn-batch-after-step", *MN, MN_2017, 'flor.log("batch_idx", batch_idx)', 44, 86,
     "after `optimizer.step()` in train()'s loop.", ["after-stmt", "loop", "in-function"])
case("mn-forward-flatten", *MN, MN_2017, 'flor.log("feat_norm", x.norm().item())', 27, 64,
     "Net.forward flattens the conv features: `x = torch.flatten(x, 1)` in new, `x = x.view(-1, 320)` "
     "in old; the layers around it were rewritten (separate relu/pool lines in new).",
     ["changed-anchor", "after-stmt", "in-method", "restructured"])

# ------------------------------------------------------------------ pytorch/examples imagenet
IN = ("pytorch/examples", "imagenet/main.py", "42068585f7da9a2f8656f793d21c30ee6806c6b9")
IN_2018 = "98b1fce0d2e55c79b59e98ec28ebbc2f58da38f7"  # prec1 naming, no scheduler, no run_validate closure

case("in-acc1-renamed-prec1", *IN, IN_2018, 'flor.log("acc1", acc1)', 289, 182,
     "`acc1 = validate(...)` was `prec1 = validate(...)` (renamed in 0c1fcc8 'Update all prec occurrences to acc').",
     ["rename", "changed-anchor", "after-stmt", "loop", "in-function"],
     expected_statement='flor.log("acc1", prec1)')
case("in-best-acc1-renamed", *IN, IN_2018, 'flor.log("best_acc1", best_acc1)', 295, 186,
     "`best_acc1 = max(acc1, best_acc1)` was `best_prec1 = max(prec1, best_prec1)`; the log key stays.",
     ["rename", "changed-anchor", "after-stmt", "loop", "in-function"],
     expected_statement='flor.log("best_acc1", best_prec1)')
case("in-train-acc1-tuple-renamed", *IN, IN_2018, 'flor.log("train_acc1", acc1[0].item())', 340, 220,
     "train(): `acc1, acc5 = accuracy(...)` was `prec1, prec5 = accuracy(...)`.",
     ["rename", "changed-anchor", "after-stmt", "loop", "in-function"],
     expected_statement='flor.log("train_acc1", prec1[0].item())')
case("in-val-loss-nested-fn", *IN, IN_2018, 'flor.log("val_loss", loss.item())', 384, 263,
     "new moved validate's batch loop into a nested `run_validate(loader, base_progress)` (for the aux "
     "distributed loader); old has the loop directly in validate() under `with torch.no_grad():`.",
     ["restructured", "nested-function", "after-stmt", "loop", "in-function"])
case("in-images-renamed-input", *IN, IN_2018, 'flor.log("batch_shape", list(images.shape))', 333, 213,
     "train() loop variable `images` was `input`; the anchor `target = target.to(device, ...)` was `target.cuda(args.gpu, ...)`.",
     ["rename", "changed-anchor", "after-stmt", "loop", "in-function"],
     expected_statement='flor.log("batch_shape", list(input.shape))')
case("in-scheduler-none", *IN, IN_2018, 'flor.log("lr", scheduler.get_last_lr()[0])', 291, None,
     "after `scheduler.step()`: old sets lr with adjust_learning_rate(optimizer, epoch) at the top of the "
     "epoch loop and has no scheduler (trap: the epoch loop and validate call exist).",
     ["none", "loop", "in-function"])
case("in-val-summary", *IN, IN_2018, 'flor.log("val_top1", top1.avg)', 424, 284,
     "after the validation summary: new `progress.display_summary()` after run_validate; old prints "
     "' * Prec@1 ...' as the last statement of `with torch.no_grad():`, before `return top1.avg`.",
     ["changed-anchor", "after-stmt", "in-function", "restructured"])
case("in-data-time", *IN, IN_2018, 'flor.log("data_time", data_time.val)', 329, 209,
     "`data_time.update(time.time() - end)` first in train()'s batch loop.", ["after-stmt", "loop", "in-function"])
case("in-val-sampler-none", *IN, IN_2018, 'flor.log("val_sampler_none", val_sampler is None)', 262, None,
     "after the sampler if/else: old never binds val_sampler (only train_sampler); trap: the same if/else with train_sampler.",
     ["none", "in-function"])
case("in-is-best", *IN, IN_2018, 'flor.log("is_best", is_best)', 294, 185,
     "`is_best = acc1 > best_acc1` was `prec1 > best_prec1`; the statement reads is_best only.",
     ["changed-anchor", "after-stmt", "loop", "in-function"])

# ------------------------------------------------------------------ pytorch/examples word_language_model
WL = ("pytorch/examples", "word_language_model/main.py", "28d16ffaa50702f18cae7eba7c67bf03794770cd")
WL_2017 = "bcea1f50e7392819bd8b50d6ea312c743cb6847f"  # RNN only, Variable API, manual SGD

case("wl-rnn-output-guard-dissolved", *WL, WL_2017, 'flor.log("output_norm", output.norm().item())', 184, 134,
     "new runs the RNN forward `output, hidden = model(data, hidden)` in the `else:` of "
     "`if args.model == 'Transformer':` (a guard only new has: dissolved); old runs it unconditionally.",
     ["restructured", "after-stmt", "loop", "in-function", "nested-block"])
case("wl-loss-changed", *WL, WL_2017, 'flor.log("loss", loss.item())', 185, 135,
     "`loss = criterion(output, targets)` was `criterion(output.view(-1, ntokens), targets)`.",
     ["changed-anchor", "after-stmt", "loop", "in-function"])
case("wl-cur-loss", *WL, WL_2017, 'flor.log("cur_loss", cur_loss)', 199, 146,
     "`cur_loss = total_loss / args.log_interval` was `total_loss[0] / ...` in the same log guard.",
     ["changed-anchor", "after-stmt", "loop", "in-function", "nested-block"])
case("wl-val-loss-in-try", *WL, WL_2017, 'flor.log("val_loss", val_loss)', 228, 164,
     "`val_loss = evaluate(val_data)` in the epoch loop inside `try:` (module level).",
     ["after-stmt", "loop", "module-level", "nested-block"])
case("wl-lr-anneal", *WL, WL_2017, 'flor.log("lr", lr)', 241, 177,
     "in the `else:` of the best-model test, after `lr /= 4.0` (old `lr /= 4`).",
     ["changed-anchor", "after-stmt", "loop", "module-level", "nested-block"])
case("wl-test-loss", *WL, WL_2017, 'flor.log("test_loss", test_loss)', 282, 187,
     "`test_loss = evaluate(test_data)` at module level after loading the best model (new wraps the load in safe_globals).",
     ["after-stmt", "module-level"])
case("wl-safe-globals-none", *WL, WL_2017, 'flor.log("n_safe_globals", len(safe_globals))', 248, None,
     "after the safe_globals if/else inside `with open(args.save, 'rb')`: old has no safe_globals "
     "(trap: the same `with open(args.save, 'rb') as f:` block exists).",
     ["none", "module-level", "nested-block"])
case("wl-eval-total-loss-nograd", *WL, WL_2017, 'flor.log("eval_total_loss", total_loss)', 159, 116,
     "evaluate(): `total_loss += len(data) * criterion(...)` inside the batch loop; new wraps the "
     "loop in `with torch.no_grad():` and splits the forward by model type.",
     ["changed-anchor", "after-stmt", "loop", "in-function"])
case("wl-epoch-first-in-try-loop", *WL, WL_2017, 'flor.log("epoch", epoch)', 225, 161,
     "first statement of the epoch loop inside `try:`.", ["first-in-block", "loop", "module-level"], first=True)
case("wl-optimizer-none", *WL, WL_2017, 'flor.log("opt_lr", optimizer.param_groups[0]["lr"])', 191, None,
     "inside `if args.use_optimizer:` after `optimizer.step()`: old has no optimizer (trap: the "
     "manual `for p in model.parameters(): p.data.add_(...)` update is there).",
     ["none", "loop", "in-function", "nested-block"])
case("wl-total-loss-accum", *WL, WL_2017, 'flor.log("total_loss", total_loss)', 196, 143,
     "`total_loss += loss.item()` was `total_loss += loss.data`.", ["changed-anchor", "after-stmt", "loop", "in-function"])

# ------------------------------------------------------------------ huggingface/pytorch-image-models
TM = ("huggingface/pytorch-image-models", "train.py", "a6da4da1740cd57eaf864803f9dd65683cbcf6d7")
TM_2020 = "2ed8f247154870be7acc1908fde0a7f457f67456"  # 0.3.2: train_epoch, no grad accumulation, no task

case("tm-lr-renamed-fn", *TM, TM_2020, 'flor.log("lr", lr)', 1407, 651,
     "`lr = sum(lrl) / len(lrl)` in the log-interval block of the per-batch loop; the function was "
     "train_epoch (renamed train_one_epoch) and the block's condition changed.",
     ["renamed-function", "after-stmt", "loop", "in-function", "nested-block"])
case("tm-num-updates", *TM, TM_2020, 'flor.log("num_updates", num_updates)', 1391, 647,
     "`num_updates += 1`; new reaches it only on update steps (grad accumulation `continue`), old on every batch.",
     ["renamed-function", "after-stmt", "loop", "in-function", "restructured"])
case("tm-val-loss-autocast-new", *TM, TM_2020, 'flor.log("val_loss", loss.item())', 1495, 728,
     "validate(): new computes `loss = loss_fn(output, target)` inside `with amp_autocast():` "
     "(a wrapper only new has); old right after the tta reduction, outside any with.",
     ["changed-anchor", "after-stmt", "loop", "in-function", "restructured"])
case("tm-val-acc1", *TM, TM_2020, 'flor.log("acc1", acc1.item())', 1496, 729,
     "`acc1, acc5 = utils.accuracy(...)` was `accuracy(...)` (imported directly).",
     ["changed-anchor", "after-stmt", "loop", "in-function"])
case("tm-eval-metrics-guard-new", *TM, TM_2020, 'flor.log("eval_top1", eval_metrics["top1"])', 1150, 567,
     "new validates under `if loader_eval is not None:` (a guard only new has: dissolved); old "
     "validates unconditionally in the epoch loop.",
     ["restructured", "after-stmt", "loop", "in-function", "nested-block"])
case("tm-best-metric", *TM, TM_2020, 'flor.log("best_metric", best_metric)', 1197, 587,
     "`best_metric, best_epoch = saver.save_checkpoint(...)` under `if saver is not None:` (old passes save_metric).",
     ["changed-anchor", "after-stmt", "loop", "in-function", "nested-block"])
case("tm-update-sample-count-none", *TM, TM_2020, 'flor.log("update_sample_count", update_sample_count)', 1385, None,
     "update_sample_count (grad-accumulation throughput) does not exist in 0.3.2; trap: "
     "`losses_m.update(loss.item(), ...)` is there.", ["none", "loop", "in-function"])
case("tm-val-batch-size-none", *TM, TM_2020, 'flor.log("val_batch_size", batch_size)', 1510, None,
     "validate() binds `batch_size = output.shape[0]` only in new; old passes input.size(0) inline "
     "(and `batch_size` is not bound anywhere in old's validate).", ["none", "loop", "in-function"])
case("tm-val-first-in-loop", *TM, TM_2020, 'flor.log("val_batch_idx", batch_idx)', 1476, 709,
     "first statement of validate()'s batch loop (`with torch.inference_mode()` was `torch.no_grad()`).",
     ["first-in-block", "loop", "in-function", "changed-anchor"], first=True)
case("tm-epoch-end-after-lookahead", *TM, TM_2020, 'flor.log("train_loss_avg", losses_m.avg)', 1448, 692,
     "new's anchor `loss_avg = losses_m.avg` does not exist in old (it returns losses_m.avg directly); "
     "the preceding `if hasattr(optimizer, 'sync_lookahead'):` does: the statement follows it.",
     ["changed-anchor", "after-stmt", "in-function", "renamed-function"])
case("tm-data-time-moved", *TM, TM_2020, 'flor.log("data_time", data_time_m.val)', 1291, 618,
     "`data_time_m.update(...)` moved from right after `last_batch = ...` (old) to after the "
     "channels_last conversion (new); the statement follows it where old has it.",
     ["moved-code", "changed-anchor", "after-stmt", "loop", "in-function"])

# ================================================================== round 2 (other repositories)
# ------------------------------------------------------------------ karpathy/minGPT
MG = ("karpathy/minGPT", "mingpt/trainer.py", "c4c650e3d53d29a391024fb57a10dede2ffefccc")
MG_2020 = "8fcaafb3670c09e01af4cb8cbb988fbecfdacd05"  # epoch-based train() with a shared run_epoch closure

case("mg-step-in-train-branch", *MG, MG_2020, 'flor.log("batch_numel", x.numel())', 99, 87,
     "new's iteration loop (run(), `while True`) steps the optimizer after clipping; old's train() does "
     "it in the `if is_train:` branch of the run_epoch closure (whose loop also serves the test set): "
     "after `optimizer.step()` there, where only training batches pass. `x` is `x, y = batch` in new, "
     "the loop target moved to the device (`x = x.to(self.device)`) in old.",
     ["restructured", "renamed-function", "nested-function", "after-stmt", "loop", "in-method", "nested-block"])
case("mg-loader-moved", *MG, MG_2020, 'flor.log("batch_size", config.batch_size)', 68, 116,
     "`train_loader = DataLoader(...)` is built right after the optimizer in new, after the run_epoch "
     "closure and `self.tokens = 0` in old; `config` is `model, config = self.model, self.config` in both.",
     ["moved-code", "changed-anchor", "after-stmt", "renamed-function", "in-method"])
case("mg-clip", *MG, MG_2020, 'flor.log("grad_norm_clip", config.grad_norm_clip)', 98, 86,
     "after `torch.nn.utils.clip_grad_norm_(...)`, unchanged, in the training step (old: inside `if is_train:` of run_epoch).",
     ["restructured", "nested-function", "after-stmt", "loop", "in-method", "nested-block"])
case("mg-iter-num-none", *MG, MG_2020, 'flor.log("iter_num", self.iter_num)', 102, None,
     "`self.iter_num` is an attribute new's Trainer counts; old never sets it (it counts `self.tokens` "
     "only under lr_decay): logging it in old raises AttributeError. Trap: the training step exists.",
     ["none", "loop", "in-method"])
case("mg-iter-dt-none", *MG, MG_2020, 'flor.log("iter_dt", self.iter_dt)', 104, None,
     "per-iteration timing (`tnow`, `self.iter_dt`) does not exist in old.", ["none", "loop", "in-method"])

# ------------------------------------------------------------------ facebookresearch/dino main_dino.py
DN = ("facebookresearch/dino", "main_dino.py", "58ea7fa9277e6fc53ea1fed65d49ef5013c19bc6")  # a fork's branch (KNN eval, NIfTI data)
DN_FIRST = "58aabc09e056689228e5cfff27c2c20e6d19c945"  # first commit

case("dn-embed-dim-none", *DN, DN_FIRST, 'flor.log("embed_dim", embed_dim)', 175, None,
     "new binds `embed_dim = student.embed_dim` in the ViT branch; old's ViT branch never binds it (it "
     "passes `student.embed_dim` to DINOHead inline). Trap: old's torchvision branch binds embed_dim.",
     ["none", "nested-block", "in-function"])
case("dn-heads-after-arch-chain", *DN, DN_FIRST, 'flor.log("out_dim", args.out_dim)', 197, 145,
     "new wraps student and teacher with their DINO heads once, after the arch if/elif chain; old does "
     "it inside each branch (heads set in the ViT branch, MultiCropWrapper in the torchvision one). The "
     "statement runs for every arch in new, so it follows old's whole if/elif/else, not the torchvision branch's copy.",
     ["moved-code", "restructured", "after-stmt", "in-function"])
case("dn-resumed-none", *DN, DN_FIRST, 'flor.log("resumed", continue_training)', 273, None,
     "old discards restart_from_checkpoint's result: `continue_training` is never bound.",
     ["none", "in-function"])
case("dn-start-epoch", *DN, DN_FIRST, 'flor.log("start_epoch", start_epoch)', 273, 249,
     "`start_epoch = to_restore['epoch']`, unchanged (new follows it with a KNN-eval `if`).", ["after-stmt", "in-function"])
case("dn-epoch-first", *DN, DN_FIRST, 'flor.log("epoch", epoch)', 282, 253,
     "first statement of the epoch loop; new's first is a print old lacks, old's the sampler's set_epoch.",
     ["first-in-block", "loop", "in-function"], first=True)
case("dn-train-stats", *DN, DN_FIRST, 'flor.log("train_loss", train_stats["loss"])', 287, 257,
     "`train_stats = train_one_epoch(...)` in the epoch loop.", ["after-stmt", "loop", "in-function"])
case("dn-log-stats", *DN, DN_FIRST, 'flor.log("log_stats", log_stats)', 305, 275,
     "`log_stats = {...}` after the checkpoint saves.", ["after-stmt", "loop", "in-function"])
case("dn-knn-model-none", *DN, DN_FIRST, 'flor.log("knn_backbone", type(model).__name__)', 312, None,
     "new copies the teacher's backbone into `model` for a KNN evaluation each epoch; old's train_dino "
     "binds no `model` (and evaluates nothing).", ["none", "loop", "in-function"])
case("dn-param-norms-fp32", *DN, DN_FIRST, 'flor.log("param_norms", param_norms)', 351, 316,
     "fp32 branch: `param_norms = utils.clip_gradients(student, ...)` was `clip_gradients(model, ...)` "
     "(a typo fixed later); the fp16 branch has a line identical in both versions (trap).",
     ["changed-anchor", "after-stmt", "loop", "in-function", "nested-block"])
case("dn-param-norms-fp16", *DN, DN_FIRST, 'flor.log("param_norms_fp16", param_norms)', 359, 324,
     "fp16 branch: after the unscale and clip_gradients(student, ...), unchanged.",
     ["after-stmt", "loop", "in-function", "nested-block"])

# ------------------------------------------------------------------ facebookresearch/dino eval_linear.py
EL = ("facebookresearch/dino", "eval_linear.py", "cb711401860da580817918b9167ed73e3eef3dcf")
EL_FIRST = DN_FIRST

case("el-logits-train", *EL, EL_FIRST, 'flor.log("logits_mean", output.mean().item())', 173, 131,
     "train(): `output = linear_classifier(output)`; validate_network has the same line (trap).",
     ["after-stmt", "loop", "in-function"])
case("el-cls-feat-none", *EL, EL_FIRST, 'flor.log("cls_feat_dim", output.shape[-1])', 167, None,
     "new builds the features step by step in the ViT branch (CLS tokens first, then the optional "
     "avgpool concat); this statement logs the CLS-only width. Old computes the final features in one "
     "call (`model.forward_return_n_last_blocks`), so no point holds the CLS-only value (with avgpool "
     "the width there is doubled).", ["none", "nested-block", "loop", "in-function"])
case("el-feat-after-with", *EL, EL_FIRST, 'flor.log("feat_norm", output.norm().item())', 164, 129,
     "after the `with torch.no_grad():` feature block of train() (new's body branches on the arch, old's is one call).",
     ["restructured", "after-stmt", "loop", "in-function"])
case("el-acc5-guard-new", *EL, EL_FIRST, 'flor.log("acc5", acc5.item())', 219, 168,
     "new computes top-5 only `if linear_classifier.module.num_labels >= 5:` (a guard only new has: "
     "dissolved); old always computes `acc1, acc5 = utils.accuracy(...)`.",
     ["restructured", "after-stmt", "loop", "in-function", "nested-block"])
case("el-acc1-after-if", *EL, EL_FIRST, 'flor.log("acc1", acc1.item())', 218, 168,
     "after new's num_labels if/else that binds acc1 in both branches; old's single accuracy line.",
     ["restructured", "after-stmt", "loop", "in-function"])
case("el-val-loss", *EL, EL_FIRST, 'flor.log("val_loss", loss.item())', 216, 166,
     "validate_network(): `loss = nn.CrossEntropyLoss()(output, target)`; train() has the same line (trap).",
     ["after-stmt", "loop", "in-function"])
case("el-embed-dim-none", *EL, EL_FIRST, 'flor.log("embed_dim", embed_dim)', 41, None,
     "old has no arch dispatch and never binds embed_dim (LinearClassifier gets the product inline).",
     ["none", "nested-block", "in-function"])
case("el-model-built-moved", *EL, EL_FIRST, 'flor.log("arch", args.arch)', 55, 58,
     "after `model.eval()`; new builds the network before the data, old after it.",
     ["moved-code", "after-stmt", "in-function"])
case("el-val-loader-moved", *EL, EL_FIRST, 'flor.log("n_val", len(dataset_val))', 72, 47,
     "`val_loader = DataLoader(...)`: new builds it before the evaluate-only exit, old after the train loader.",
     ["moved-code", "after-stmt", "in-function"])
case("el-evaluate-none", *EL, EL_FIRST, 'flor.log("eval_acc1", test_stats["acc1"])', 81, None,
     "inside new's `if args.evaluate:` (evaluate pretrained linear weights and return); old has no such "
     "mode. Trap: the same `test_stats = validate_network(...)` line in old's epoch loop.",
     ["none", "nested-block", "in-function"])
case("el-scheduler-step", *EL, EL_FIRST, 'flor.log("lr", optimizer.param_groups[0]["lr"])', 127, 92,
     "after `scheduler.step()` in the epoch loop.", ["after-stmt", "loop", "in-function"])

# ------------------------------------------------------------------ facebookresearch/moco (reformatted by Black/Ruff, annotated, imports renamed)
MC = ("facebookresearch/moco", "main_moco.py", "a419ef282fc9885015674e77f58c59447206a27f")
ML = ("facebookresearch/moco", "main_lincls.py", "132aea9da9bb995a411c915c0420be3db62052f3")
MC_FIRST = "90e244a23d135e8facca41f8aa47541cc30c61b2"

case("mc-model-built", *MC, MC_FIRST, 'flor.log("moco_dim", args.moco_dim)', 250, 159,
     "`model = moco.builder.MoCo(...)` became `deeplearning.cross_image_ssl.moco.builder.MoCo(...)`, "
     "its arguments reflowed one per line.", ["changed-anchor", "after-stmt", "in-function"])
case("mc-resume-epoch", *MC, MC_FIRST, 'flor.log("start_epoch", args.start_epoch)', 310, 209,
     "`args.start_epoch = checkpoint['epoch']` (quotes changed) in the resume branch.",
     ["after-stmt", "in-function", "nested-block"])
case("mc-train-dataset", *MC, MC_FIRST, 'flor.log("n_train", len(train_dataset))', 356, 247,
     "`train_dataset = datasets.ImageFolder(...)`, reflowed and with the loader module renamed.",
     ["changed-anchor", "after-stmt", "in-function"])
case("mc-loss", *MC, MC_FIRST, 'flor.log("loss", loss.item())', 427, 303,
     "`loss = criterion(output, target)` in train()'s loop.", ["after-stmt", "loop", "in-function"])
case("mc-acc1", *MC, MC_FIRST, 'flor.log("acc1", acc1[0].item())', 434, 310,
     "after the meters' updates (`top5.update(...)`).", ["after-stmt", "loop", "in-function"])
case("mc-saved-epoch", *MC, MC_FIRST, 'flor.log("saved_epoch", epoch)', 389, 270,
     "after `save_checkpoint(...)` under the rank test, whose condition and call were reflowed.",
     ["changed-anchor", "after-stmt", "loop", "in-function", "nested-block"])
case("mc-lr-cos", *MC, MC_FIRST, 'flor.log("lr_cos", lr)', 501, 376,
     "adjust_learning_rate(): in the cosine branch after `lr *= 0.5 * (1.0 + ...)` (`1.` became `1.0`).",
     ["changed-anchor", "after-stmt", "in-function", "nested-block"])
case("ml-msg", *ML, MC_FIRST, 'flor.log("n_unexpected", len(msg.unexpected_keys))', 263, 172,
     "`msg = model.load_state_dict(state_dict, strict=False)` in the pretrained-weights branch.",
     ["after-stmt", "in-function", "nested-block"])
case("ml-params", *ML, MC_FIRST, 'flor.log("n_params", len(parameters))', 307, 212,
     "`parameters = list(filter(...))` before the optimizer (whose call was reflowed).",
     ["after-stmt", "in-function"])
case("ml-val-acc1", *ML, MC_FIRST, 'flor.log("val_acc1", acc1[0].item())', 508, 385,
     "validate(): `acc1, acc5 = accuracy(...)` inside `with torch.no_grad():`; train() has the same line (trap).",
     ["after-stmt", "loop", "in-function", "nested-block"])
case("ml-best-acc1", *ML, MC_FIRST, 'flor.log("best_acc1", best_acc1)', 412, 293,
     "`best_acc1 = max(acc1, best_acc1)` (a global) in the epoch loop.", ["after-stmt", "loop", "in-function"])

# ------------------------------------------------------------------ lucidrains/denoising-diffusion-pytorch
DD = ("lucidrains/denoising-diffusion-pytorch", "denoising_diffusion_pytorch/denoising_diffusion_pytorch.py",
      "faed4db28e724735323fa91c70aa9b28a6e1cbac")
DD_2020 = "a4c68d356952080d30380b006182f788ff529c0e"  # apex fp16, module constants, denoise_fn
DD_2022 = "a291da50986d1c3d5193bca869dd38e586ca00ac"  # torch amp GradScaler, no accelerate
DD_2023 = "e9ec55c978ed98b6f78fc80cbd41982a9aacff1b"  # accelerate, FID from inception_v3

case("dd22-loss", *DD, DD_2022, 'flor.log("loss", loss.item())', 1066, 638,
     "Trainer.train(): `loss = self.model(data)` inside the autocast block of the accumulation loop "
     "(`self.accelerator.autocast()` was `autocast(enabled = self.amp)`).",
     ["changed-anchor", "after-stmt", "nested-loop", "in-method", "nested-block"])
case("dd22-data", *DD, DD_2022, 'flor.log("batch_shape", list(data.shape))', 1063, 635,
     "`data = next(self.dl).to(device)` was `.cuda()`.", ["changed-anchor", "after-stmt", "nested-loop", "in-method"])
case("dd22-total-loss-none", *DD, DD_2022, 'flor.log("total_loss", total_loss)', 1068, None,
     "the accumulated `total_loss` does not exist in this version (it shows the last micro-batch's loss).",
     ["none", "nested-loop", "in-method", "nested-block"])
case("dd22-milestone", *DD, DD_2022, 'flor.log("milestone", milestone)', 1090, 653,
     "new computes the milestone inside `if accelerator.is_main_process:` and `with torch.inference_mode():` "
     "(both only in new: dissolved); old right after `self.ema_model.eval()` in the sampling condition.",
     ["restructured", "after-stmt", "loop", "in-method", "nested-block"])
case("dd22-all-images", *DD, DD_2022, 'flor.log("n_samples", all_images.shape[0])', 1094, 656,
     "`all_images = torch.cat(all_images_list, dim = 0)`.", ["after-stmt", "loop", "in-method", "nested-block"])
case("dd22-zero-grad", *DD, DD_2022, 'flor.log("step", self.step)', 1078, 645,
     "after `self.opt.zero_grad()` (new steps the optimizer directly, old through the GradScaler).",
     ["changed-anchor", "after-stmt", "loop", "in-method"])
case("dd22-fid-none", *DD, DD_2022, 'flor.log("fid", fid_score)', 1101, None,
     "no FID computation exists in this version.", ["none", "loop", "in-method", "nested-block"])
case("dd22-target", *DD, DD_2022, 'flor.log("target_std", target.std().item())', 819, 514,
     "p_losses(): after the objective if/elif chain that binds target (new adds pred_v).",
     ["changed-anchor", "after-stmt", "in-method"])
case("dd22-model-out", *DD, DD_2022, 'flor.log("model_out_std", model_out.std().item())', 817, 512,
     "`model_out = self.model(x, t, x_self_cond)` was `self.denoise_fn(x, t)`; new adds offset noise and "
     "self-conditioning between q_sample and it.", ["changed-anchor", "after-stmt", "in-method"])
case("dd20-loss", *DD, DD_2020, 'flor.log("loss", loss.item())', 1066, 503,
     "`loss = self.model(data)` in the accumulation loop (no autocast in 2020: entered nothing, new's with dissolved).",
     ["restructured", "after-stmt", "nested-loop", "in-method"])
case("dd20-x-renamed", *DD, DD_2020, 'flor.log("x_std", x.std().item())', 803, 390,
     "p_losses(): `x = self.q_sample(...)` was `x_noisy = self.q_sample(...)`.",
     ["rename", "after-stmt", "in-method"], expected_statement='flor.log("x_std", x_noisy.std().item())')
case("dd20-model-out-renamed", *DD, DD_2020, 'flor.log("model_out_std", model_out.std().item())', 817, 391,
     "`model_out = self.model(x, t, x_self_cond)` was `x_recon = self.denoise_fn(x_noisy, t)`: the "
     "network's output under another name (the network attribute was renamed too).",
     ["rename", "changed-anchor", "after-stmt", "in-method"],
     expected_statement='flor.log("model_out_std", x_recon.std().item())')
case("dd20-target-none", *DD, DD_2020, 'flor.log("target_std", target.std().item())', 819, None,
     "2020 has no objective choice and no `target` (it compares noise with x_recon directly). Trap: "
     "the loss_type if/elif chain sits at the same place.", ["none", "in-method"])
case("dd20-milestone", *DD, DD_2020, 'flor.log("milestone", milestone)', 1090, 514,
     "`milestone = self.step // SAVE_AND_SAMPLE_EVERY` (a module constant then) in the sampling condition.",
     ["changed-anchor", "restructured", "after-stmt", "loop", "in-method", "nested-block"])
case("dd23-clip-moved", *DD, DD_2023, 'flor.log("clipped_step", self.step)', 1075, 972,
     "`accelerator.clip_grad_norm_(...)` moved after the progress-bar update and the first barrier; "
     "the statement follows it where old has it (before `pbar.set_description`).",
     ["moved-code", "changed-anchor", "after-stmt", "loop", "in-method"])
case("dd23-after-model-train", *DD, DD_2023, 'flor.log("step", self.step)', 1058, 958,
     "after `self.model.train()`, which only new calls first in the step loop: the statement goes first "
     "in old's loop body (before `total_loss = 0.`).",
     ["first-in-block", "changed-anchor", "loop", "in-method"], old_first=True)
case("dd23-ema", *DD, DD_2023, 'flor.log("ema_step", self.step)', 1084, 984,
     "`self.ema.update()` under `if accelerator.is_main_process:`.", ["after-stmt", "loop", "in-method", "nested-block"])
case("dd23-fid", *DD, DD_2023, 'flor.log("fid", fid_score)', 1101, 1002,
     "the FID computation: new `fid_score = self.fid_scorer.fid_score()` under `if self.calculate_fid:`, "
     "old `fid_score = self.fid_score(real_samples = data, fake_samples = all_images)` under "
     "`if exists(self.inception_v3):`.", ["changed-anchor", "after-stmt", "loop", "in-method", "nested-block"])
case("dd23-best-fid-none", *DD, DD_2023, 'flor.log("best_fid", self.best_fid)', 1106, None,
     "best-FID tracking (`self.best_fid`, save best/latest) does not exist in this version; trap: "
     "`self.save(milestone)` and the FID block exist.", ["none", "loop", "in-method", "nested-block"])

# ------------------------------------------------------------------ tloen/alpaca-lora
AL = ("tloen/alpaca-lora", "finetune.py", "8bb8579e403dc78e37fe81ffbb253c413007323f")  # train() with fire
AL_CONST = "af30df1999dcc9adf8a795f394778e60c4457fdc"  # module-level script, UPPER_CASE constants
AL_FIRST = "26f64780ad7f18a6a0ec24be044f703b8d65d16f"

case("al-grad-accum-const", *AL, AL_CONST, 'flor.log("grad_accum", gradient_accumulation_steps)', 96, 49,
     "after the `if ddp:` block (module level in old, inside train() in new); the value was the module "
     "constant GRADIENT_ACCUMULATION_STEPS, divided by world_size in the same `if ddp:`.",
     ["rename", "moved-code", "after-stmt", "module-level", "in-function"],
     expected_statement='flor.log("grad_accum", GRADIENT_ACCUMULATION_STEPS)')
case("al-micro-batch-const", *AL, AL_CONST, 'flor.log("micro_batch_size", micro_batch_size)', 89, 25,
     "after `gradient_accumulation_steps = batch_size // micro_batch_size`; old's "
     "`GRADIENT_ACCUMULATION_STEPS = BATCH_SIZE // MICRO_BATCH_SIZE`: the parameter was the constant MICRO_BATCH_SIZE.",
     ["rename", "moved-code", "after-stmt", "module-level", "in-function"],
     expected_statement='flor.log("micro_batch_size", MICRO_BATCH_SIZE)')
case("al-peft", *AL, AL_CONST, 'flor.log("lora_r", config.r)', 184, 74,
     "`model = get_peft_model(model, config)`.", ["moved-code", "after-stmt", "module-level", "in-function"])
case("al-data-branch", *AL, AL_CONST, 'flor.log("n_rows", len(data["train"]))', 186, 76,
     "after new's json-or-hub `if`/`else` loading `data`; old loads json only (`data = load_dataset(...)`).",
     ["changed-anchor", "restructured", "after-stmt", "module-level", "in-function"])
case("al-resume-none", *AL, AL_CONST, 'flor.log("n_adapter_tensors", len(adapters_weights))', 206, None,
     "resuming from an adapter checkpoint does not exist in this version.", ["none", "nested-block", "in-function"])
case("al-train-size", *AL, AL_CONST, 'flor.log("n_train", len(train_data))', 213, 141,
     "after the val-split if/else (condition `val_set_size > 0` was `VAL_SET_SIZE > 0`).",
     ["changed-anchor", "after-stmt", "module-level", "in-function"])
case("al-val-in-branch", *AL, AL_CONST, 'flor.log("n_val", len(val_data))', 220, 146,
     "inside the split branch after `val_data = ...` (new wraps the expression in parentheses).",
     ["after-stmt", "nested-block", "module-level", "in-function"])
case("al-use-cache", *AL, AL_CONST, 'flor.log("use_cache", model.config.use_cache)', 261, 177,
     "`model.config.use_cache = False` after the Trainer is built.", ["after-stmt", "module-level", "in-function"])
case("al-tokenize", *AL, AL_CONST, 'flor.log("n_tokens", len(result["input_ids"]))', 144, 120,
     "tokenize() is nested in train() in new, a module-level function in old; after `result['labels'] = ...`.",
     ["nested-function", "moved-code", "after-stmt", "in-function"])
case("al-user-prompt-len", *AL, AL_CONST, 'flor.log("user_prompt_len", user_prompt_len)', 162, 131,
     "generate_and_tokenize_prompt(): `user_prompt_len = len(...)` inside `if not train_on_inputs:` "
     "(old `if not TRAIN_ON_INPUTS:`).", ["nested-function", "after-stmt", "nested-block", "in-function"])
case("al-prompter-none", *AL, AL_CONST, 'flor.log("template", prompt_template_name)', 91, None,
     "prompt templates (Prompter, prompt_template_name) do not exist in this version.", ["none", "in-function"])
case("al-output-dir-const", *AL, AL_CONST, 'flor.log("output_dir", output_dir)', 275, 189,
     "after `model.save_pretrained(output_dir)`, old `model.save_pretrained(OUTPUT_DIR)`.",
     ["rename", "after-stmt", "module-level", "in-function"], expected_statement='flor.log("output_dir", OUTPUT_DIR)')
case("al0-peft", *AL, AL_FIRST, 'flor.log("lora_r", config.r)', 184, 49,
     "first commit: `model = get_peft_model(model, config)` at module level.",
     ["moved-code", "after-stmt", "module-level", "in-function"])
case("al0-train-data-none", *AL, AL_FIRST, 'flor.log("n_train", len(train_data))', 232, None,
     "the first commit has no train/val split: the Trainer gets `data['train']` and `train_data` is never bound.",
     ["none", "in-function"])

# ------------------------------------------------------------------ karpathy/minGPT model.py
MM = ("karpathy/minGPT", "mingpt/model.py", "37baab71b9abea1b76ab957409a1cc2fbfba8a26")

case("mm-att-softmax", *MM, MG_2020, 'flor.log("att_max", att.max().item())', 64, 72,
     "CausalSelfAttention.forward: `att = F.softmax(att, dim=-1)`, unchanged; the q/k/v projections "
     "before it became one c_attn split.", ["after-stmt", "in-method"])
case("mm-q-split-none", *MM, MG_2020, 'flor.log("q_shape", list(q.shape))', 56, None,
     "new splits un-reshaped q, k, v off one c_attn projection; old computes each already reshaped "
     "(`q = self.query(x).view(...).transpose(1, 2)`): no point holds q with the pre-view shape.",
     ["none", "in-method"])
case("mm-tok-emb-renamed", *MM, MG_2020, 'flor.log("tok_emb_norm", tok_emb.norm().item())', 267, 185,
     "GPT.forward: `tok_emb = self.transformer.wte(idx)` was `token_embeddings = self.tok_emb(idx)` "
     "(the embedding moved into a ModuleDict).", ["rename", "changed-anchor", "after-stmt", "in-method"],
     expected_statement='flor.log("tok_emb_norm", token_embeddings.norm().item())')
case("mm-after-blocks-loop", *MM, MG_2020, 'flor.log("x_norm", x.norm().item())', 270, 188,
     "after new's `for block in self.transformer.h: x = block(x)`; old runs the blocks as one "
     "nn.Sequential call, `x = self.blocks(x)`.", ["restructured", "changed-anchor", "after-stmt", "in-method"])
case("mm-in-blocks-loop-none", *MM, MG_2020, 'flor.log("block_out_norm", x.norm().item())', 271, None,
     "per transformer block, inside new's loop over blocks: old has no such loop (one Sequential call "
     "runs them all), so no place logs once per block.", ["none", "loop", "in-method"])
case("mm-logits", *MM, MG_2020, 'flor.log("logits_mean", logits.mean().item())', 273, 190,
     "`logits = self.lm_head(x)` was `self.head(x)`.", ["changed-anchor", "after-stmt", "in-method"])
case("mm-loss-branch", *MM, MG_2020, 'flor.log("loss", loss.item())', 278, 195,
     "inside `if targets is not None:` after the cross-entropy (new adds ignore_index).",
     ["changed-anchor", "after-stmt", "in-method", "nested-block"])
case("mm-pos-none", *MM, MG_2020, 'flor.log("pos_len", pos.size(1))', 264, None,
     "new builds position indices `pos = torch.arange(...)`; old slices a learned pos_emb parameter and has no `pos`.",
     ["none", "in-method"])
case("mm-block-attn-residual", *MM, MG_2020, 'flor.log("attn_res_norm", x.norm().item())', 91, 97,
     "Block.forward: `x = x + self.attn(self.ln_1(x))` was `self.ln1`.", ["changed-anchor", "after-stmt", "in-method"])
