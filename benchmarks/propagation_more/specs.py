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
