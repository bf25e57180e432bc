"""Two-phase fine-tuning: Adam for the first epochs, then the optimizer is re-created as SGD
with a smaller learning rate (the SWATS-style switch); a head is re-initialised at the switch."""
import torch
import torch.nn as nn
import torch.nn.functional as F

import flor

seed = flor.arg("seed", 5)
lr = flor.arg("lr", 0.01)
epochs = flor.arg("epochs", 6)
switch_at = flor.arg("switch_at", 3)
torch.manual_seed(seed)

x = torch.randn(400, 12)
y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 1).long()
perm = torch.randperm(400)
x, y = x[perm], y[perm]

backbone = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU())
head = nn.Linear(16, 3)
model = nn.Sequential(backbone, head)
optimizer = torch.optim.Adam(model.parameters(), lr=lr)

with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(epochs)):
        if epoch == switch_at:
            head.reset_parameters()
            optimizer = torch.optim.SGD(model.parameters(), lr=lr / 2, momentum=0.9)
        model.train()
        for i in flor.loop("step", range(0, 400, 40)):
            xb, yb = x[i : i + 40], y[i : i + 40]
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            flor.log("loss", loss.item())
        with torch.no_grad():
            acc = (model(x).argmax(1) == y).float().mean().item()
        flor.log("acc", acc)
