"""Round 3's compact case specs (see build.py), from repositories no earlier round used:
`new` is the first line of the anchor statement in NEW (the block header when `first`),
`old` that of the expected anchor in OLD (None: no correct place)."""

SPECS = []


def case(id, repo, path, new_commit, old_commit, statement, new, old, why, tags, **kw):
    SPECS.append(dict(id=id, repo=repo, path=path, new_commit=new_commit,
                      old_commit=old_commit, statement=statement, new=new, old=old,
                      why=why, tags=tags, **kw))


# ------------------------------------------------------- eriklindernoren/PyTorch-YOLOv3
YV = ("eriklindernoren/PyTorch-YOLOv3", "train.py", "a4f3673")  # last commit before the move
YV_2019 = "65486c4"  # gradient accumulation fix, 2019
YV_2018 = "e9994d6"  # 2018: a module-level script, before Tensorboard

case("yv-batches-done", *YV, YV_2019, 'flor.log("batches_done", batches_done)', 146, 100,
     "`batches_done = len(dataloader) * epoch + batch_i` opens the batch loop in both.",
     ["after-stmt", "nested-loop", "module-level"])
case("yv-loss-backward", *YV, YV_2019, 'flor.log("loss", loss.item())', 155, 106,
     "after `loss.backward()`; new computes the loss with compute_loss(outputs, targets, model), "
     "old's model returns it (`loss, outputs = model(imgs, targets)`).",
     ["changed-anchor", "after-stmt", "nested-loop", "module-level"])
case("yv-loss-computed", *YV, YV_2019, 'flor.log("loss_value", loss.item())', 153, 105,
     "new's `loss, loss_components = compute_loss(...)` is old's `loss, outputs = model(imgs, targets)`: "
     "the line that binds the loss.", ["changed-anchor", "after-stmt", "nested-loop", "module-level"])
case("yv-lr-none", *YV, YV_2019, 'flor.log("lr", lr)', 174, None,
     "the 2019 version has no learning-rate schedule (Adam with defaults): `lr` is never bound; "
     "trap: the same `if batches_done % ... == 0:` step block exists.",
     ["none", "nested-loop", "nested-block", "module-level"])
case("yv-step-first", *YV, YV_2019, 'flor.log("step_at", batches_done)', 161, 108,
     "first statement of the optimizer-step `if` (new's subdivisions, old's gradient_accumulations).",
     ["first-in-block", "changed-anchor", "nested-loop", "module-level"], first=True)
case("yv-after-zero-grad", *YV, YV_2019, 'flor.log("stepped", batches_done)', 182, 111,
     "after `optimizer.zero_grad()` at the end of the step block.",
     ["after-stmt", "nested-loop", "nested-block", "module-level"])
case("yv-seen", *YV, YV_2019, 'flor.log("seen", model.seen)', 208, 148,
     "`model.seen += imgs.size(0)` ends the batch loop in both.", ["after-stmt", "nested-loop", "module-level"])
case("yv-eval-metrics", *YV, YV_2019, 'flor.log("n_eval_metrics", len(evaluation_metrics))', 240, 162,
     "`evaluation_metrics = [...]` (inside new's `if metrics_output is not None:` guard, which old "
     "lacks) is at the evaluation block's level in old.",
     ["changed-anchor", "after-stmt", "loop", "nested-block", "module-level"])
case("yv-map", *YV, YV_2019, 'flor.log("mAP", AP.mean())', 239, 153,
     "new unpacks `precision, recall, AP, f1, ap_class = metrics_output` under a new guard; old "
     "unpacks the same names from `evaluate(...)` directly.",
     ["changed-anchor", "after-stmt", "loop", "nested-block", "module-level", "restructured"])
case("yv-ckpt-saved", *YV, YV_2019, 'flor.log("ckpt_epoch", epoch)', 218, 178,
     "after `torch.save(model.state_dict(), ...)` in the checkpoint `if`, which new moved before the "
     "evaluation (old saves after it).", ["moved-code", "changed-anchor", "after-stmt", "loop", "nested-block", "module-level"])
case("yv-ckpt-path-none", *YV, YV_2019, 'flor.log("checkpoint_path", checkpoint_path)', 216, None,
     "old formats the path inline in `torch.save(...)`: `checkpoint_path` is never bound.",
     ["none", "loop", "nested-block", "module-level"])
case("yv-epoch-first", *YV, YV_2019, 'flor.log("epoch", epoch)', 139, 96,
     "first statement of the epoch loop (new prints a banner first, old sets train mode first).",
     ["first-in-block", "loop", "module-level"], first=True)
case("yv-model-train", *YV, YV_2019, 'flor.log("epoch_start", epoch)', 143, 97,
     "after `model.train()` (commented differently).", ["after-stmt", "loop", "module-level"])
case("yv-imgs", *YV, YV_2019, 'flor.log("batch_size", imgs.shape[0])', 148, 102,
     "`imgs = imgs.to(device, non_blocking=True)` was `imgs = Variable(imgs.to(device))`.",
     ["changed-anchor", "after-stmt", "nested-loop", "module-level"])
case("yv-mini-batch-none", *YV, YV_2019, 'flor.log("mini_batch_size", mini_batch_size)', 100, None,
     "the batch size came from `--batch_size` in 2019; `mini_batch_size` is never bound.",
     ["none", "module-level", "nested-block"])
case("yv-class-names", *YV, YV_2019, 'flor.log("num_classes", len(class_names))', 87, 53,
     "`class_names = load_classes(...)` in the data-config lines of the `__main__` block.",
     ["after-stmt", "module-level", "nested-block"])
case("yv-device", *YV, YV_2019, 'flor.log("device", str(device))', 88, 44,
     "`device = torch.device(...)` moved below the data configuration; old sets it right after the logger.",
     ["moved-code", "after-stmt", "module-level", "nested-block"])
case("yv-log-str", *YV, YV_2019, 'flor.log("log_len", len(log_str))', 198, 146,
     "new prints the table only `if args.verbose:` (one line), old always prints it.",
     ["changed-anchor", "after-stmt", "nested-loop", "module-level"])

case("yv0-loss-backward", *YV, YV_2018, 'flor.log("loss", loss.item())', 155, 87,
     "the 2018 version was a module-level script (no `__main__` guard, no functions): "
     "`loss.backward()` is still the anchor.", ["moved-code", "after-stmt", "nested-loop", "module-level"])
case("yv0-batches-done-none", *YV, YV_2018, 'flor.log("batches_done", batches_done)', 146, None,
     "the 2018 version never counts batches across epochs.", ["none", "nested-loop", "module-level"])
case("yv0-imgs", *YV, YV_2018, 'flor.log("batch_size", imgs.shape[0])', 148, 80,
     "`imgs = Variable(imgs.type(Tensor))` is the line that moves the images to the device.",
     ["changed-anchor", "after-stmt", "nested-loop", "module-level", "moved-code"])
case("yv0-train-path", *YV, YV_2018, 'flor.log("train_path", train_path)', 85, 50,
     "`train_path = data_config[...]` at module level (no `__main__` block in 2018).",
     ["moved-code", "after-stmt", "module-level"])
case("yv0-valid-path-none", *YV, YV_2018, 'flor.log("valid_path", valid_path)', 86, None,
     "the 2018 version has no validation set.", ["none", "module-level"])
case("yv0-epoch-first", *YV, YV_2018, 'flor.log("epoch", epoch)', 139, 78,
     "first statement of the epoch loop: the batch loop itself in 2018.",
     ["first-in-block", "loop", "module-level", "moved-code"], first=True)
case("yv0-seen", *YV, YV_2018, 'flor.log("seen", model.seen)', 208, 109,
     "`model.seen += imgs.size(0)` after a print of the losses (new: tables and Tensorboard).",
     ["after-stmt", "nested-loop", "module-level", "moved-code"])

# ------------------------------------------------------------- lucidrains/DALLE-pytorch
DL = ("lucidrains/DALLE-pytorch", "train_dalle.py", "343f8b0")  # 2022-05
DL_2021 = "b273a42"  # 2021-02 "cleanup train_dalle script": no DeepSpeed, no WebDataset

case("dl-loss", *DL, DL_2021, 'flor.log("loss", loss.item())', 609, 207,
     "`loss = distr_dalle(text, images, return_loss=True)` was `loss = dalle(text, images, mask=mask, "
     "return_loss=True)`.", ["changed-anchor", "after-stmt", "nested-loop", "module-level"])
case("dl-after-zero-grad", *DL, DL_2021, 'flor.log("stepped", i)', 619, 213,
     "new steps in the `else:` of a DeepSpeed `if` (new-only guard, dissolved); old's "
     "`opt.zero_grad()` ends the unguarded step.",
     ["restructured", "changed-anchor", "after-stmt", "nested-loop", "module-level"])
case("dl-avg-loss-none", *DL, DL_2021, 'flor.log("avg_loss", avg_loss.item())', 622, None,
     "old never averages the loss across workers; trap: `loss` itself is there.",
     ["none", "nested-loop", "module-level"])
case("dl-log-dict", *DL, DL_2021, 'flor.log("iter", i)', 624, 215,
     "`log = {}` before the logging `if`s.", ["after-stmt", "nested-loop", "module-level"])
case("dl-log-first", *DL, DL_2021, 'flor.log("logged_loss", loss.item())', 626, 217,
     "first statement of the every-10-iterations `if` (new adds `and is_root`).",
     ["first-in-block", "changed-anchor", "nested-loop", "nested-block", "module-level"], first=True)
case("dl-decoded-text", *DL, DL_2021, 'flor.log("decoded_text", decoded_text)', 642, 230,
     "`decoded_text = tokenizer.decode(token_list)` in the sampling `if`.",
     ["after-stmt", "nested-loop", "nested-block", "module-level"])
case("dl-image-generated", *DL, DL_2021, 'flor.log("image_shape", list(image.shape))', 646, 232,
     "new generates under `if not avoid_model_calls:` (a new guard, dissolved).",
     ["changed-anchor", "after-stmt", "nested-loop", "nested-block", "module-level", "multi-line-anchor"])
case("dl-sample-per-sec-none", *DL, DL_2021, 'flor.log("sample_per_sec", sample_per_sec)', 652, None,
     "throughput is not measured in 2021.", ["none", "nested-loop", "nested-block", "module-level"])
case("dl-wandb-log", *DL, DL_2021, 'flor.log("log_keys", sorted(log))', 660, 246,
     "`wandb.log(log)` ends the batch loop (new: only `if is_root:`).",
     ["changed-anchor", "after-stmt", "nested-loop", "module-level"])
case("dl-epoch-end", *DL, DL_2021, 'flor.log("saved_epoch", epoch)', 665, 204,
     "new ends the epoch with new-only steps (an LR scheduler `if`, a per-epoch save_model) between "
     "the batch loop and the statement; the last code both versions run there is the batch loop, "
     "so the statement follows it in old's epoch loop (old's save_model calls are inside the batch "
     "loop and after the epoch loop: traps).", ["after-loop", "loop", "module-level", "changed-anchor"])
case("dl-final-save", *DL, DL_2021, 'flor.log("final_epoch", epoch)', 671, 248,
     "the final `save_model(...)` after the epoch loop (old: to './dalle-final.pt').",
     ["changed-anchor", "after-stmt", "after-loop", "module-level"])
case("dl-resume-params", *DL, DL_2021, 'flor.log("resume_vae_params", str(vae_params))', 257, 71,
     "unpacking the loaded checkpoint in the `if RESUME:` branch (new adds a DeepSpeed `if` above).",
     ["after-stmt", "nested-block", "module-level"])
case("dl-vae-loaded", *DL, DL_2021, 'flor.log("vae_image_size", vae.image_size)', 284, 91,
     "`vae.load_state_dict(weights)` under new's `if exists(VAE_PATH):` inside the `else:` "
     "(the new guard is dissolved: old's `else:` loads it directly).",
     ["restructured", "after-stmt", "nested-block", "module-level"])
case("dl-image-size", *DL, DL_2021, 'flor.log("image_size", IMAGE_SIZE)', 316, 65,
     "new sets `IMAGE_SIZE = vae.image_size` once after the RESUME `if`/`else`; old sets it at the "
     "end of each branch (the identical line is in the `else:`): the statement follows the whole `if`.",
     ["restructured", "moved-code", "after-stmt", "module-level", "duplicate-anchor"])
case("dl-dataset", *DL, DL_2021, 'flor.log("n_pairs", len(ds))', 397, 175,
     "`assert len(ds) > 0` (new: in the non-WebDataset `else:`).",
     ["changed-anchor", "after-stmt", "nested-block", "module-level"])
case("dl-dalle-init", *DL, DL_2021, 'flor.log("n_params", sum(p.numel() for p in dalle.parameters()))', 427, 182,
     "`dalle = DALLE(vae=vae, **dalle_params)` was `dalle = DALLE(**dalle_params).cuda()`.",
     ["changed-anchor", "after-stmt", "module-level"])
case("dl-opt", *DL, DL_2021, 'flor.log("lr", LEARNING_RATE)', 439, 189,
     "`opt = Adam(get_trainable_params(dalle), lr=...)` was `opt = Adam(dalle.parameters(), lr=...)`.",
     ["changed-anchor", "after-stmt", "module-level"])
case("dl-scheduler-none", *DL, DL_2021, 'flor.log("has_scheduler", scheduler is not None)', 446, None,
     "no LR scheduler in 2021.", ["none", "module-level"])
case("dl-wandb-init", *DL, DL_2021, 'flor.log("depth", DEPTH)', 471, 199,
     "`run = wandb.init(...)` under `if is_root:` was `wandb.init(...)` unguarded.",
     ["changed-anchor", "after-stmt", "module-level", "multi-line-anchor"])
case("dl-save-model", *DL, DL_2021, 'flor.log("saved_to", str(path))', 582, 114,
     "`torch.save(save_obj, path)` ends save_model (new: after DeepSpeed branches and early returns).",
     ["after-stmt", "in-function"])
case("dl-group-weight-none", *DL, DL_2021, 'flor.log("n_decay", len(group_decay))', 337, None,
     "group_weight() does not exist in 2021.", ["none", "in-function"])

# ---------------------------------------------------------------------- artidoro/qlora
QL = ("artidoro/qlora", "qlora.py", "7f4e95a")  # 2023-07-24
QL_FIRST = "132e051"  # 2023-05-12 "rename and cleanup"

case("ql-compute-dtype", *QL, QL_FIRST, 'flor.log("compute_dtype", str(compute_dtype))', 310, 258,
     "get_accelerate_model: `compute_dtype = ...` before loading the base model (new adds a LOCAL_RANK "
     "`if` above).", ["after-stmt", "in-function"])
case("ql-model-loaded", *QL, QL_FIRST, 'flor.log("model_dtype", str(model.dtype))', 311, 259,
     "`model = AutoModelForCausalLM.from_pretrained(...)` (new passes cache_dir, device_map, auth).",
     ["changed-anchor", "after-stmt", "in-function", "multi-line-anchor"])
case("ql-xpu-none", *QL, QL_FIRST, 'flor.log("xpu_dtype", str(compute_dtype))', 338, None,
     "the Intel XPU `if` is new (July 2023); trap: `compute_dtype` itself exists.",
     ["none", "in-function", "nested-block"])
case("ql-local-rank-none", *QL, QL_FIRST, 'flor.log("device_map", str(device_map))', 303, None,
     "old passes `device_map='auto'` inline: `device_map` is never bound.", ["none", "in-function", "nested-block"])
case("ql-prepared", *QL, QL_FIRST,
     'flor.log("n_trainable", sum(p.numel() for p in model.parameters() if p.requires_grad))', 377, 290,
     "`model = prepare_model_for_kbit_training(...)` was `prepare_model_for_int8_training(...)`, in the "
     "same `if not args.full_finetune:`.", ["changed-anchor", "after-stmt", "in-function", "nested-block"])
case("ql-adapters-loaded", *QL, QL_FIRST, 'flor.log("resumed_from", checkpoint_dir)', 382, 305,
     "`model = PeftModel.from_pretrained(...)` in the checkpoint branch (old prints LoRA sums after it).",
     ["changed-anchor", "after-stmt", "in-function", "nested-block"])
case("ql-peft-model", *QL, QL_FIRST, 'flor.log("lora_r", args.lora_r)', 394, 311,
     "`model = get_peft_model(model, config)` in the `else:` (new builds the config there, old before the `if`).",
     ["after-stmt", "in-function", "nested-block"])
case("ql-trainable-halved", *QL, QL_FIRST, 'flor.log("trainable_params", trainable_params)', 418, 344,
     "print_trainable_parameters: the 4-bit correction `if args.bits == 4: trainable_params /= 2`.",
     ["after-stmt", "in-function"])
case("ql-trainable-printed", *QL, QL_FIRST, 'flor.log("all_param", all_param)', 419, 345,
     "after the summary print (new splits its f-string over three lines).",
     ["changed-anchor", "after-stmt", "in-function", "multi-line-anchor"])
case("ql-emb-renamed", *QL, QL_FIRST, 'flor.log("emb_rows", input_embeddings_data.shape[0])', 438, 360,
     "smart_tokenizer_and_embedding_resize: `input_embeddings_data` was `input_embeddings`.",
     ["rename", "after-stmt", "in-function", "nested-block"],
     expected_statement='flor.log("emb_rows", input_embeddings.shape[0])')
case("ql-emb-avg", *QL, QL_FIRST, 'flor.log("emb_avg_norm", input_embeddings_avg.norm().item())', 441, 363,
     "`input_embeddings_avg = input_embeddings_data[...]` reads the renamed variable; the statement does not.",
     ["changed-anchor", "after-stmt", "in-function", "nested-block"])
case("ql-resized", *QL, QL_FIRST, 'flor.log("num_new_tokens", num_new_tokens)', 435, 357,
     "`model.resize_token_embeddings(len(tokenizer))`.", ["after-stmt", "in-function"])
case("ql-resume-dir", *QL, QL_FIRST, 'flor.log("resume_dir", checkpoint_dir)', 700, 583,
     "train(): `checkpoint_dir, completed_training = get_last_checkpoint(...)` (new prints args first).",
     ["after-stmt", "in-function"])
case("ql-model-returned", *QL, QL_FIRST, 'flor.log("model_type", model.config.model_type)', 704, 587,
     "`model, tokenizer = get_accelerate_model(...)` was `model = get_accelerate_model(...)` (old built "
     "the tokenizer in train()).", ["changed-anchor", "after-stmt", "in-function"])
case("ql-trainer", *QL, QL_FIRST, 'flor.log("n_train", len(data_module["train_dataset"]))', 712, 622,
     "`trainer = Seq2SeqTrainer(...)` after make_data_module.", ["after-stmt", "in-function", "multi-line-anchor"])
case("ql-mmlu-batch-loss", *QL, QL_FIRST, 'flor.log("mmlu_batch_loss", loss.item())', 763, 675,
     "`loss_mmlu += loss.item()` ends the batch loop of the MMLU callback's on_evaluate (a method of "
     "a class defined inside train()'s `if args.do_mmlu_eval:`).",
     ["after-stmt", "loop", "in-method", "nested-block"])
case("ql-mmlu-logit-first", *QL, QL_FIRST, 'flor.log("label_row", i)', 757, 668,
     "first statement of the per-logit loop inside the batch loop.",
     ["first-in-block", "nested-loop", "in-method"], first=True)
case("ql-mmlu-results", *QL, QL_FIRST, 'flor.log("mmlu_loss", results["mmlu_loss"])', 765, 677,
     "`results = {'mmlu_loss': ...}` after the batch loop.", ["after-stmt", "after-loop", "in-method"])
case("ql-dtypes-total", *QL, QL_FIRST, 'flor.log("total_params", total)', 793, 704,
     "after the one-line loop `for k, v in dtypes.items(): total+= v` (new calls print_trainable_parameters "
     "before the dtype count, old right after loading the model).", ["after-loop", "after-stmt", "in-function"])
case("ql-all-metrics", *QL, QL_FIRST, 'flor.log("run_name", all_metrics["run_name"])', 797, 714,
     "`all_metrics = {...}` (old first swaps model.state_dict in an `if args.bits < 16:`).",
     ["after-stmt", "in-function"])
case("ql-train-metrics", *QL, QL_FIRST, 'flor.log("train_metrics", metrics)', 804, 718,
     "`metrics = train_result.metrics` in `if args.do_train:`; two other `metrics = ...` lines follow "
     "(eval, predict).", ["duplicate-anchor", "after-stmt", "in-function", "nested-block"])
case("ql-eval-metrics", *QL, QL_FIRST, 'flor.log("eval_metrics", metrics)', 812, 726,
     "`metrics = trainer.evaluate(...)` in `if args.do_eval:`.",
     ["duplicate-anchor", "after-stmt", "in-function", "nested-block"])
case("ql-predictions", *QL, QL_FIRST, 'flor.log("n_predictions", len(predictions))', 823, 737,
     "the third `predictions = ...` line (batch_decode) of the predict branch.",
     ["duplicate-anchor", "after-stmt", "in-function", "nested-block", "multi-line-anchor"])

# ------------------------------------------------------------ microsoft/Swin-Transformer
SW = ("microsoft/Swin-Transformer", "main.py", "968e6b5")  # 2024-01: torch amp, fused kernels
SW_FIRST = "3dc2a55"  # 2021-04 initial commit: apex amp, two accumulation branches

case("sw-n-params", *SW, SW_FIRST, 'flor.log("n_parameters", n_parameters)', 97, 90,
     "`n_parameters = sum(...)` moved from after the DDP wrap to right after build_model.",
     ["moved-code", "after-stmt", "in-function"])
case("sw-flops", *SW, SW_FIRST, 'flor.log("gflops", flops / 1e9)', 100, 93,
     "`flops = model.flops()` was `flops = model_without_ddp.flops()`, in the `if hasattr(...)`.",
     ["changed-anchor", "moved-code", "after-stmt", "in-function", "nested-block"])
case("sw-scheduler", *SW, SW_FIRST, 'flor.log("scheduler", type(lr_scheduler).__name__)', 110, 96,
     "new builds the scheduler in an accumulation `if`/`else` (new); old in one line: the statement "
     "after new's `if` follows that line.", ["restructured", "after-stmt", "in-function"])
case("sw-criterion", *SW, SW_FIRST, 'flor.log("criterion", type(criterion).__name__)', 115, 98,
     "after the mixup / label-smoothing / plain `if`/`elif`/`else` that picks the criterion.",
     ["after-stmt", "in-function", "multi-line-anchor"])
case("sw-resume-file", *SW, SW_FIRST, 'flor.log("resume_file", resume_file)', 126, 109,
     "`resume_file = auto_resume_helper(config.OUTPUT)` in `if config.TRAIN.AUTO_RESUME:`.",
     ["after-stmt", "in-function", "nested-block"])
case("sw-resume-set", *SW, SW_FIRST, 'flor.log("resume", config.MODEL.RESUME)', 131, 113,
     "`config.MODEL.RESUME = resume_file` (new brackets it with defrost()/freeze()).",
     ["changed-anchor", "after-stmt", "in-function", "nested-block"])
case("sw-max-acc-loaded", *SW, SW_FIRST, 'flor.log("max_accuracy", max_accuracy)', 138, 119,
     "`max_accuracy = load_checkpoint(...)` (new passes the loss scaler).",
     ["changed-anchor", "after-stmt", "in-function", "nested-block"])
case("sw-pretrained-none", *SW, SW_FIRST, 'flor.log("pretrained_acc1", acc1)', 146, None,
     "the pretrained-weights evaluation is new (Dec 2021); traps: the identical "
     "`acc1, acc5, loss = validate(...)` in the RESUME branch and in the epoch loop.",
     ["none", "in-function", "nested-block", "duplicate-anchor"])
case("sw-epoch-acc1", *SW, SW_FIRST, 'flor.log("acc1", acc1)', 164, 138,
     "`acc1, acc5, loss = validate(...)` in the epoch loop (two identical lines elsewhere).",
     ["duplicate-anchor", "after-stmt", "loop", "in-function"])
case("sw-max-accuracy", *SW, SW_FIRST, 'flor.log("max_accuracy", max_accuracy)', 166, 140,
     "`max_accuracy = max(max_accuracy, acc1)` in the epoch loop.", ["after-stmt", "loop", "in-function"])
case("sw-total-time", *SW, SW_FIRST, 'flor.log("total_time", total_time_str)', 170, 144,
     "after the epoch loop: `total_time_str = str(...)`.", ["after-loop", "after-stmt", "in-function"])
case("sw-train-first", *SW, SW_FIRST, 'flor.log("idx", idx)', 186, 159,
     "first statement of train_one_epoch's batch loop.", ["first-in-block", "loop", "in-function"], first=True)
case("sw-mixup", *SW, SW_FIRST, 'flor.log("mixed", True)', 191, 164,
     "`samples, targets = mixup_fn(samples, targets)` in `if mixup_fn is not None:`.",
     ["after-stmt", "loop", "in-function", "nested-block"])
case("sw-outputs-autocast", *SW, SW_FIRST, 'flor.log("out_shape", list(outputs.shape))', 194, 166,
     "new computes `outputs = model(samples)` inside `with torch.cuda.amp.autocast(...)` (new "
     "wrapper, dissolved); old plainly.", ["changed-anchor", "after-stmt", "loop", "in-function", "nested-block"])
case("sw-loss-scaled", *SW, SW_FIRST, 'flor.log("loss", loss.item())', 196, 168,
     "new divides the loss once for all; old computes it in each branch of the accumulation "
     "`if`/`else` (divided in the `if` only): the branches are alternatives of one step and the "
     "statement follows the whole `if`.", ["restructured", "changed-anchor", "after-stmt", "loop", "in-function"])
case("sw-synchronize", *SW, SW_FIRST, 'flor.log("step_idx", idx)', 208, 207,
     "`torch.cuda.synchronize()` after the step.", ["after-stmt", "loop", "in-function"])
case("sw-loss-meter", *SW, SW_FIRST, 'flor.log("loss_avg", loss_meter.avg)', 210, 209,
     "`loss_meter.update(loss.item(), targets.size(0))`.", ["after-stmt", "loop", "in-function"])
case("sw-loss-scale-none", *SW, SW_FIRST, 'flor.log("loss_scale", loss_scale_value)', 213, None,
     "the torch amp loss scaler (and `loss_scale_value`) came with the 2022 amp change.",
     ["none", "loop", "in-function"])
case("sw-print-lr", *SW, SW_FIRST, 'flor.log("lr", lr)', 218, 215,
     "`lr = optimizer.param_groups[0]['lr']` in the print `if`.", ["after-stmt", "loop", "in-function", "nested-block"])
case("sw-wd-none", *SW, SW_FIRST, 'flor.log("wd", wd)', 219, None,
     "weight decay is not printed (nor bound) in 2021; trap: `lr` on the line above is.",
     ["none", "loop", "in-function", "nested-block"])
case("sw-epoch-time", *SW, SW_FIRST, 'flor.log("epoch_time", epoch_time)', 230, 225,
     "`epoch_time = time.time() - start` after the batch loop.", ["after-loop", "after-stmt", "in-function"])
case("sw-val-output", *SW, SW_FIRST, 'flor.log("val_out_mean", output.mean().item())', 251, 245,
     "validate(): `output = model(images)` under a new autocast `with`.",
     ["changed-anchor", "after-stmt", "loop", "in-function", "nested-block"])
case("sw-val-acc1-reduced", *SW, SW_FIRST, 'flor.log("val_acc1", acc1.item())', 257, 251,
     "`acc1 = reduce_tensor(acc1)`; the statement reads the reduced value.", ["after-stmt", "loop", "in-function"])

# --------------------------------------------------------------------- facebookresearch/DiT
DT = ("facebookresearch/DiT", "train.py", "58fe9c2")  # 2023-02-21 (TF32)
DT_FIRST = "4961bcb"  # 2023-02-07 "Add training script": mprint() instead of a logger

case("dit-device", *DT, DT_FIRST, 'flor.log("device", device)', 123, 123,
     "new adds `torch.cuda.set_device(device)` after the seed; the statement follows the last line "
     "both have, `torch.manual_seed(seed)`.", ["changed-anchor", "after-stmt", "in-function"])
case("dit-exp-dir", *DT, DT_FIRST, 'flor.log("experiment_dir", experiment_dir)', 135, 133,
     "`logger.info(f\"Experiment directory created ...\")` was `mprint(...)` (new creates the logger "
     "first).", ["changed-anchor", "after-stmt", "in-function", "nested-block"])
case("dit-logger-none", *DT, DT_FIRST, 'flor.log("rank", rank)', 137, None,
     "the `else: logger = create_logger(None)` branch for other ranks is new; old has no `else`.",
     ["none", "in-function", "nested-block"])
case("dit-params", *DT, DT_FIRST, 'flor.log("vae_kind", args.vae)', 152, 148,
     "`logger.info(f\"DiT Parameters: ...\")` was `mprint(...)`.", ["changed-anchor", "after-stmt", "in-function"])
case("dit-dataset", *DT, DT_FIRST, 'flor.log("n_images", len(dataset))', 181, 177,
     "after the dataset size message (logger.info vs mprint).", ["changed-anchor", "after-stmt", "in-function"])
case("dit-epoch", *DT, DT_FIRST, 'flor.log("epoch", epoch)', 197, 193,
     "after the 'Beginning epoch' message in the epoch loop.", ["changed-anchor", "after-stmt", "loop", "in-function"])
case("dit-latent", *DT, DT_FIRST, 'flor.log("latent_std", x.std().item())', 203, 199,
     "`x = vae.encode(x)...` inside `with torch.no_grad():` in both.",
     ["after-stmt", "nested-loop", "in-function", "nested-block"])
case("dit-loss", *DT, DT_FIRST, 'flor.log("loss", loss.item())', 207, 203,
     "`loss = loss_dict[\"loss\"].mean()`.", ["after-stmt", "nested-loop", "in-function"])
case("dit-avg-loss", *DT, DT_FIRST, 'flor.log("avg_loss", avg_loss)', 225, 221,
     "`avg_loss = avg_loss.item() / dist.get_world_size()` in the log-every `if`; `avg_loss` is bound "
     "twice before (tensor, all-reduce).", ["after-stmt", "nested-loop", "in-function", "nested-block"])
case("dit-steps-per-sec", *DT, DT_FIRST, 'flor.log("steps_per_sec", steps_per_sec)', 226, 222,
     "after the training-loss message (logger.info vs mprint).",
     ["changed-anchor", "after-stmt", "nested-loop", "in-function", "nested-block"])
case("dit-ckpt", *DT, DT_FIRST, 'flor.log("ckpt", checkpoint_path)', 243, 239,
     "after the 'Saved checkpoint' message inside `if rank == 0:` of the checkpoint `if`.",
     ["changed-anchor", "after-stmt", "nested-loop", "in-function", "nested-block"])

# `evaluate` was renamed `_evaluate` (its loader moved out into a helper) in test.py.
YT = ("eriklindernoren/PyTorch-YOLOv3", "test.py", "a4f3673")

case("yt-eval-mode", *YT, YV_2019, 'flor.log("img_size", img_size)', 102, 24,
     "first line of `_evaluate` after its docstring, `model.eval()`: the function was `evaluate` "
     "(and built its own dataloader after that line).", ["renamed-function", "after-stmt", "in-function"])
case("yt-tensor", *YT, YV_2019, 'flor.log("tensor_type", str(Tensor))', 104, 32,
     "`Tensor = torch.cuda.FloatTensor if ... else torch.FloatTensor` in the renamed function.",
     ["renamed-function", "after-stmt", "in-function", "moved-code"])
case("yt-labels", *YT, YV_2019, 'flor.log("n_labels", len(labels))', 110, 39,
     "`labels += targets[:, 1].tolist()` opens the batch loop (new iterates without enumerate).",
     ["renamed-function", "after-stmt", "loop", "in-function"])
case("yt-imgs", *YT, YV_2019, 'flor.log("batch", imgs.shape[0])', 115, 44,
     "`imgs = Variable(imgs.type(Tensor), requires_grad=False)`.",
     ["renamed-function", "after-stmt", "loop", "in-function"])
case("yt-nms", *YT, YV_2019, 'flor.log("n_outputs", len(outputs))', 119, 48,
     "`outputs = non_max_suppression(...)` in `with torch.no_grad():` (new moves the outputs to "
     "the CPU first and renamed the keyword).", ["renamed-function", "changed-anchor", "after-stmt", "loop", "in-function", "nested-block"])
case("yt-sample-metrics", *YT, YV_2019, 'flor.log("n_sample_metrics", len(sample_metrics))', 121, 50,
     "`sample_metrics += get_batch_statistics(...)` ends the batch loop.",
     ["renamed-function", "after-stmt", "loop", "in-function"])
case("yt-no-detections-none", *YT, YV_2019, 'flor.log("no_detections", True)', 124, None,
     "the empty-result guard is new: its `if` block has no code in old.",
     ["none", "renamed-function", "in-function", "nested-block"])
case("yt-concat", *YT, YV_2019, 'flor.log("n_tp", len(true_positives))', 128, 53,
     "after the batch loop: `true_positives, pred_scores, pred_labels = [...]`.",
     ["renamed-function", "after-loop", "after-stmt", "in-function"])
case("yt-metrics-output-none", *YT, YV_2019, 'flor.log("n_metrics", len(metrics_output))', 129, None,
     "old unpacks ap_per_class(...) into five names: `metrics_output` is never bound; trap: the "
     "same call on the same line.", ["none", "renamed-function", "in-function"])
case("yt-print-stats-none", *YT, YV_2019, 'flor.log("mAP", AP.mean())', 69, None,
     "print_eval_stats() is new; trap: old's evaluate binds `AP` from the same ap_per_class call.",
     ["none", "in-function", "nested-block"])
