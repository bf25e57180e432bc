"""A torchmetrics-style metric object (update per batch, compute, reset) for train and
validation accuracy; only the model and optimizer are checkpointed."""
import torch
import torch.nn as nn
import torch.nn.functional as F

import flor


class MeanAccuracy:
    """Accumulates correct predictions over batches, like torchmetrics.Accuracy."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.correct = 0
        self.total = 0

    def update(self, logits, target):
        self.correct += (logits.argmax(1) == target).sum().item()
        self.total += target.numel()

    def compute(self):
        return self.correct / max(1, self.total)


seed = flor.arg("seed", 6)
epochs = flor.arg("epochs", 4)
lr = flor.arg("lr", 0.01)
torch.manual_seed(seed)
x = torch.randn(500, 12)
y = (x[:, :4].sum(1) > 0).long() + (x[:, 4] > 0.5).long()
xv, yv = torch.randn(120, 12), None
yv = (xv[:, :4].sum(1) > 0).long() + (xv[:, 4] > 0.5).long()
model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 3))
optimizer = torch.optim.Adam(model.parameters(), lr=lr)
train_acc = MeanAccuracy()
val_acc = MeanAccuracy()

with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(epochs)):
        train_acc.reset()
        val_acc.reset()
        model.train()
        for i in flor.loop("step", range(0, 500, 50)):
            out = model(x[i : i + 50])
            loss = F.cross_entropy(out, y[i : i + 50])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            train_acc.update(out.detach(), y[i : i + 50])
        flor.log("train_acc", train_acc.compute())
        model.eval()
        with torch.no_grad():
            val_acc.update(model(xv), yv)
        flor.log("val_acc", val_acc.compute())
