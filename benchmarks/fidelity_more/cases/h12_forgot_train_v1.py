"""A common bug kept as recorded: model.train() is called once before the loop, the
per-epoch validation (its own flor.loop over val batches) calls model.eval(), and nothing
switches back, so from epoch 1 on dropout and batch norm train in eval mode."""
import torch
import torch.nn as nn
import torch.nn.functional as F

import flor

seed = flor.arg("seed", 0)
lr = flor.arg("lr", 0.05)
epochs = flor.arg("epochs", 5)
torch.manual_seed(seed)
x = torch.randn(320, 10)
y = (x[:, 0] - x[:, 1] + 0.5 * x[:, 2] > 0).long()
xv = torch.randn(96, 10)
yv = (xv[:, 0] - xv[:, 1] + 0.5 * xv[:, 2] > 0).long()
model = nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3),
                      nn.Linear(32, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

model.train()
with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(epochs)):
        perm = torch.randperm(len(x))
        for i in flor.loop("step", range(0, len(x), 32)):
            idx = perm[i : i + 32]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for j in flor.loop("val_step", range(0, len(xv), 32)):
                correct += (model(xv[j : j + 32]).argmax(1) == yv[j : j + 32]).sum().item()
        flor.log("val_acc", correct / len(xv))
