"""Only the model is checkpointed: the Adam optimizer (its moments and step count) and the
StepLR scheduler are not, a common way of using flor.checkpointing."""
import torch
import torch.nn as nn
import torch.nn.functional as F

import flor

seed = flor.arg("seed", 7)
epochs = flor.arg("epochs", 5)
lr = flor.arg("lr", 0.01)
torch.manual_seed(seed)
x = torch.randn(300, 6)
y = (x[:, 0] - x[:, 2] > 0).long()
model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=lr * 10, momentum=0.9)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.3)

with flor.checkpointing(model=model):
    for epoch in flor.loop("epoch", range(epochs)):
        perm = torch.randperm(300)
        for i in flor.loop("step", range(0, 300, 30)):
            b = perm[i : i + 30]
            loss = F.cross_entropy(model(x[b]), y[b])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
        with torch.no_grad():
            acc = (model(x).argmax(1) == y).float().mean().item()
        flor.log("acc", acc)
