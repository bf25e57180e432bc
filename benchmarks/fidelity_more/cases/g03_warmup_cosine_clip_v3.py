"""Transformer-style schedule: LambdaLR linear warm-up then cosine decay, stepped every
optimizer step; gradient clipping whose returned total norm is kept; AdamW decay groups."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import flor

seed = flor.arg("seed", 8)
epochs = flor.arg("epochs", 4)
lr = flor.arg("lr", 0.003)
warmup = flor.arg("warmup", 6)
max_norm = flor.arg("max_norm", 0.5)
torch.manual_seed(seed)

x = torch.randn(320, 8)
y = torch.sin(x[:, :2].sum(1, keepdim=True)) + 0.05 * torch.randn(320, 1)
model = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.LayerNorm(32), nn.Linear(32, 1))
decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
optimizer = torch.optim.AdamW(
    [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
)
total_steps = epochs * (320 // 32)


def lr_lambda(step):
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)

with flor.checkpointing(model=model, optimizer=optimizer, scheduler=scheduler):
    for epoch in flor.loop("epoch", range(epochs)):
        model.train()
        for i in flor.loop("step", range(0, 320, 32)):
            pred = model(x[i : i + 32])
            loss = F.mse_loss(pred, y[i : i + 32])
            optimizer.zero_grad()
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            optimizer.step()
            scheduler.step()
            flor.log("loss", loss.item())
        with torch.no_grad():
            full = F.mse_loss(model(x), y).item()
        flor.log("epoch_mse", full)
