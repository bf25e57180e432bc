"""A learning-rate sweep in one script: the main loop runs trials, each training a fresh model
with early stopping (patience, break) and skipping validation on odd epochs (continue)."""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

import flor

seed = flor.arg("seed", 0)
epochs = flor.arg("epochs", 8)
patience = flor.arg("patience", 2)
torch.manual_seed(seed)
x = torch.randn(300, 8)
y = x @ torch.randn(8, 1) + 0.3 * torch.randn(300, 1)
xv = torch.randn(100, 8)
yv = xv @ torch.randn(8, 1)

results = {}
best_overall, best_lr = float("inf"), None
for lr in flor.loop("trial", [0.3, 0.1, 0.03]):
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    best_val, bad = float("inf"), 0
    for epoch in flor.loop("epoch", range(epochs)):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 50):
            idx = perm[i : i + 50]
            loss = F.mse_loss(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch % 2 == 1:
            continue
        with torch.no_grad():
            val = F.mse_loss(model(xv), yv).item()
        flor.log("val", val)
        if val < best_val - 1e-4:
            best_val, bad = val, 0
        else:
            bad += 1
            if bad >= patience:
                break
    results[lr] = best_val
    if best_val < best_overall:
        best_overall, best_lr = best_val, lr
    flor.log("trial_best", best_val)

print(results)
