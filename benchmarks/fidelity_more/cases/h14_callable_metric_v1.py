"""torchmetrics-style metric objects written in the script: calling the metric on a batch
updates its running state (forward accumulates, as torchmetrics' Metric.__call__ does) and
compute() reads it; the train metric is reset every epoch, the val metric never (a bug)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

import flor


class MeanAbsError:
    def __init__(self):
        self.total = 0.0
        self.count = 0

    def __call__(self, pred, target):
        err = (pred - target).abs()
        self.total += err.sum().item()
        self.count += err.numel()
        return err.mean()

    def compute(self):
        return self.total / max(self.count, 1)

    def reset(self):
        self.total, self.count = 0.0, 0


seed = flor.arg("seed", 0)
lr = flor.arg("lr", 0.01)
epochs = flor.arg("epochs", 5)
torch.manual_seed(seed)
x = torch.randn(256, 8)
y = x @ torch.randn(8, 1)
xv = torch.randn(64, 8)
yv = xv @ torch.randn(8, 1)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=lr)
train_mae = MeanAbsError()
val_mae = MeanAbsError()

with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(epochs)):
        train_mae.reset()
        perm = torch.randperm(len(x))
        for i in flor.loop("step", range(0, len(x), 32)):
            idx = perm[i : i + 32]
            pred = model(x[idx])
            loss = F.mse_loss(pred, y[idx])
            train_mae(pred.detach(), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            val_mae(model(xv), yv)
        flor.log("train_mae", train_mae.compute())
