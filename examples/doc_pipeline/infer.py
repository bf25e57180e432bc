"""Predict which pool pages start a document with the best model so far: flor as a model
registry.

The model is the checkpoint with the highest gold recall across every recorded train.py
run and epoch (ties: higher accuracy, then the newer run, then the later epoch), among
checkpoints at least `min_acc` accurate (a model that calls every page a first page has
perfect recall), found with flor.dataframe and loaded with flor.load: no knowledge of
where or how flor keeps checkpoints. The predictions go to data/predictions.json too
(flor.output), so lineage links them to the model and the labels behind it.

Run: python infer.py [--kwargs min_acc=0.6 model_run=RUN model_epoch=E]
"""

import json
from pathlib import Path

import torch
from features import from_script
from model import PageClassifier

import flor

DATA = Path(__file__).resolve().parent / "data"
torch.set_num_threads(1)

min_acc = flor.arg("min_acc", 0.6)
metrics = from_script(flor.dataframe("recall", "acc"), "train.py").dropna(subset=["recall"])
metrics = metrics[metrics["acc"] >= min_acc]
if metrics.empty:
    raise SystemExit(f"no model with gold accuracy >= {min_acc} yet: run `make train` first")
best = metrics.sort_values(
    ["recall", "acc", "tstamp", "epoch"], ascending=False, kind="stable"
).iloc[0]
# The choice is an argument: `--kwargs model_run=RUN model_epoch=E` serves a given model,
# and a replay of this run loads the model it served, not the best one at replay time.
model_run = flor.arg("model_run", str(best["runid"]))
model_epoch = flor.arg("model_epoch", int(best["epoch"]))
chosen = metrics[(metrics["runid"] == model_run) & (metrics["epoch"] == model_epoch)]
if chosen.empty:
    raise SystemExit(f"run {model_run} has no epoch {model_epoch} with gold accuracy >= {min_acc}")
model_recall = float(chosen["recall"].iloc[0])
hidden = from_script(flor.dataframe("hidden"), "train.py")
hidden = int(hidden.loc[hidden["runid"] == model_run, "hidden"].iloc[0])

net = PageClassifier(hidden)
# The recall logged in epoch e was measured at the end of e: the checkpoint of iteration
# e + 1 holds the state at the start of e + 1. flor.load also records the checkpoint as
# this run's input, linking it to the training run (and to the labels that run read).
flor.load(model_run, iteration=model_epoch + 1, model=net)
flor.log("model_recall", model_recall)
print(f"model: run {model_run} epoch {model_epoch} (gold recall {model_recall:.3f})")

pages = from_script(flor.dataframe("features", "split"), "prep.py")
pages = pages[(pages["tstamp"] == pages["tstamp"].max()) & (pages["split"] == "pool")]
net.eval()
predictions: dict[str, list[int]] = {}
for name in flor.loop("document", sorted(set(pages["document_value"]))):
    document = pages[pages["document_value"] == name].sort_values("page")
    with torch.no_grad():
        probs = net(torch.tensor(document["features"].tolist())).softmax(dim=1)[:, 1]
    for page in flor.loop("page", range(len(document))):
        flor.log("first_page_prob", round(float(probs[page]), 4))
        flor.log("first_page_pred", int(probs[page] > 0.5))
    predictions[name] = [int(p > 0.5) for p in probs]
flor.output(DATA / "predictions.json").write_text(json.dumps(predictions, indent=1))
print(f"predicted {len(pages)} pages of {pages['document_value'].nunique()} bundles")
