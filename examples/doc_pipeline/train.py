"""Train the page classifier on labels read back from flor: flor as a training-data store.

Labels: the heuristic `first_page` of the newest prep.py run, overridden by the newest
human correction from the app (app.py) of each page. `labels_asof` pins which corrections
a run trained on (default: all there are now), so a replay sees the same training data.
Every epoch's model is checkpointed (budget=1) so infer.py can load the best epoch.
The gold labels are declared with flor.input: `flor lineage data/gold.json` shows every
model trained and selected on each version of them.

Run: python train.py --kwargs lr=0.05 epochs=20 hidden=16
"""

import json
from pathlib import Path

import torch
from features import from_script
from model import PageClassifier, evaluate
from torch import nn

import flor

DATA = Path(__file__).resolve().parent / "data"
torch.set_num_threads(1)

pages = flor.dataframe("features", "first_page", "split")
machine = from_script(pages, "prep.py")
machine = machine[machine["tstamp"] == machine["tstamp"].max()]
human = from_script(pages, "app.py").dropna(subset=["first_page"])
labels_asof = flor.arg("labels_asof", str(human["tstamp"].max()) if len(human) else "")
human = human[human["tstamp"] <= labels_asof].sort_values("tstamp")
human = human.drop_duplicates(["document_value", "page"], keep="last")

seed = flor.arg("seed", 0)
lr = flor.arg("lr", 0.05)
epochs = flor.arg("epochs", 20)
batch_size = flor.arg("batch_size", 16)
hidden = flor.arg("hidden", 16)
torch.manual_seed(seed)

corrected = machine.merge(
    human[["document_value", "page", "first_page"]],
    on=["document_value", "page"],
    how="left",
    suffixes=("", "_human"),
)
corrected["label"] = corrected["first_page_human"].fillna(corrected["first_page"]).astype(int)
pool = corrected[corrected["split"] == "pool"]
gold = corrected[corrected["split"] == "gold"]
gold_truth = json.loads(flor.input(DATA / "gold.json").read_text())  # the gold label file
gold_y = torch.tensor(
    [gold_truth[d][p] for d, p in zip(gold["document_value"], gold["page"], strict=True)]
)
train_x = torch.tensor(pool["features"].tolist())
train_y = torch.tensor(pool["label"].tolist())
gold_x = torch.tensor(gold["features"].tolist())
print(f"training on {len(pool)} pages ({int(pool['first_page_human'].notna().sum())} human labels)")

net = PageClassifier(hidden)
optimizer = torch.optim.Adam(net.parameters(), lr=lr)
criterion = nn.CrossEntropyLoss()

with flor.checkpointing(model=net, optimizer=optimizer, budget=1.0):
    for _epoch in flor.loop("epoch", range(epochs)):
        net.train()
        order = torch.randperm(len(train_x))
        for step in flor.loop("step", range((len(train_x) + batch_size - 1) // batch_size)):
            batch = order[step * batch_size : (step + 1) * batch_size]
            optimizer.zero_grad()
            loss = criterion(net(train_x[batch]), train_y[batch])
            loss.backward()
            optimizer.step()
            flor.log("loss", loss.item())
        metrics = evaluate(net, gold_x, gold_y)
        flor.log("acc", metrics["acc"])
        flor.log("recall", metrics["recall"])
print(f"gold recall {metrics['recall']:.3f}, accuracy {metrics['acc']:.3f}")
