"""ReduceLROnPlateau stepped with the validation loss after each epoch (checkpointed), with
a cooldown; the lr read from the optimizer's param groups; a per-epoch val history list."""
import torch
import torch.nn as nn
import torch.nn.functional as F

import flor

seed = flor.arg("seed", 10)
epochs = flor.arg("epochs", 6)
lr = flor.arg("lr", 0.1)
patience = flor.arg("patience", 0)
torch.manual_seed(seed)
x = torch.randn(320, 6)
y = torch.tanh(x[:, :3].sum(1, keepdim=True)) + 0.2 * torch.randn(320, 1)
xv = torch.randn(80, 6)
yv = torch.tanh(xv[:, :3].sum(1, keepdim=True))
model = nn.Sequential(nn.Linear(6, 24), nn.ReLU(), nn.Linear(24, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
    optimizer, mode="min", factor=0.5, patience=patience, cooldown=1
)
val_history = []

with flor.checkpointing(model=model, optimizer=optimizer, scheduler=scheduler):
    for epoch in flor.loop("epoch", range(epochs)):
        for i in flor.loop("step", range(0, 320, 32)):
            loss = F.mse_loss(model(x[i : i + 32]), y[i : i + 32])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            val_loss = F.mse_loss(model(xv), yv).item()
        val_history.append(val_loss)
        scheduler.step(val_loss)
        flor.log("val_loss", val_loss)

print(f"best val {min(val_history):.4f} at epoch {val_history.index(min(val_history))}")
