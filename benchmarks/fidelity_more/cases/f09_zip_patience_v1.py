"""A hand-written lr list zipped with the epoch loop, enumerate around the step loop,
early stopping with patience, python `random` picking a dropout rate per epoch."""
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

import flor

seed = flor.arg("seed", 11)
base_lr = flor.arg("base_lr", 0.05)
epochs = flor.arg("epochs", 8)
patience = flor.arg("patience", 2)
random.seed(seed)
torch.manual_seed(seed)

x = torch.randn(320, 8)
y = x @ torch.randn(8, 1) + 0.2 * torch.randn(320, 1)
x_val, y_val = torch.randn(100, 8), None
y_val = x_val @ torch.ones(8, 1) * 0.0 + (x_val @ torch.randn(8, 1)) * 0.0
y_val = torch.randn(100, 1)

model = nn.Sequential(nn.Linear(8, 24), nn.ReLU(), nn.Linear(24, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=base_lr)
lrs = [base_lr * (0.8**k) for k in range(epochs)]
best, wait, history = float("inf"), 0, []

with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch, lr in zip(flor.loop("epoch", range(epochs)), lrs):
        for group in optimizer.param_groups:
            group["lr"] = lr
        p_drop = random.choice([0.0, 0.1, 0.2])
        for i, start in enumerate(flor.loop("step", range(0, 320, 32))):
            xb, yb = x[start : start + 32], y[start : start + 32]
            hidden = F.dropout(model[1](model[0](xb)), p=p_drop)
            loss = F.mse_loss(model[2](hidden), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if i % 5 == 4:
                flor.log("loss", loss.item())
        with torch.no_grad():
            val = F.mse_loss(model(x_val), y_val).item()
        history.append(val)
        flor.log("val", val)
        if val < best - 1e-4:
            best, wait = val, 0
        else:
            wait += 1
            if wait > patience:
                break

flor.log("epochs_run", len(history))
