"""imagenet-style checkpoint files: save_checkpoint() writes the state every epoch and copies
it to model_best when the accuracy improves; the best file is loaded for a final test."""
import os
import shutil

import torch
import torch.nn as nn
import torch.nn.functional as F

import flor


def save_checkpoint(state, is_best, filename="checkpoint.pth.tar"):
    torch.save(state, filename)
    if is_best:
        shutil.copyfile(filename, "model_best.pth.tar")


seed = flor.arg("seed", 13)
epochs = flor.arg("epochs", 5)
lr = flor.arg("lr", 0.05)
torch.manual_seed(seed)
x = torch.randn(400, 8)
y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).long()
xt, yt = x[:300], y[:300]
xv, yv = x[300:350], y[300:350]
xs, ys = x[350:], y[350:]
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
best_acc1 = 0.0

with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(epochs)):
        model.train()
        for i in flor.loop("step", range(0, 300, 30)):
            loss = F.cross_entropy(model(xt[i : i + 30]), yt[i : i + 30])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            acc1 = (model(xv).argmax(1) == yv).float().mean().item()
        flor.log("acc1", acc1)
        is_best = acc1 > best_acc1
        best_acc1 = max(acc1, best_acc1)
        save_checkpoint({"epoch": epoch + 1, "state_dict": model.state_dict()}, is_best)

best = torch.load("model_best.pth.tar")
model.load_state_dict(best["state_dict"])
with torch.no_grad():
    test_acc = (model(xs).argmax(1) == ys).float().mean().item()
print(f"best epoch {best['epoch']}: test accuracy {test_acc:.3f}")
os.remove("checkpoint.pth.tar")
