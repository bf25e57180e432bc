"""Validation every `eval_every` optimizer steps inside the step loop, counted by a global
step across epochs; the best weights kept in memory by deepcopy and restored for the test."""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

import flor

seed = flor.arg("seed", 2)
epochs = flor.arg("epochs", 3)
lr = flor.arg("lr", 0.05)
eval_every = flor.arg("eval_every", 7)
torch.manual_seed(seed)

x = torch.randn(600, 6)
y = ((x[:, 0] * x[:, 1] + x[:, 2]) > 0).long()
xt, yt = x[:400], y[:400]
xv, yv = x[400:500], y[400:500]
xs, ys = x[500:], y[500:]
model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
global_step = 0
best_val = float("inf")
best_state = None

with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(epochs)):
        model.train()
        for i in flor.loop("step", range(0, 400, 25)):
            loss = F.cross_entropy(model(xt[i : i + 25]), yt[i : i + 25])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            global_step += 1
            if global_step % eval_every == 0:
                model.eval()
                with torch.no_grad():
                    val_loss = F.cross_entropy(model(xv), yv).item()
                model.train()
                if val_loss < best_val:
                    best_val = val_loss
                    best_state = copy.deepcopy(model.state_dict())
                flor.log("val_loss", val_loss)
        flor.log("train_loss", loss.item())

model.load_state_dict(best_state)
model.eval()
with torch.no_grad():
    test_acc = (model(xs).argmax(1) == ys).float().mean().item()
print(f"test accuracy of the best weights: {test_acc:.3f}")
