"""A dataclass config filled from flor.arg, OneCycleLR stepped per batch, label smoothing;
the backbone is frozen for the first epochs (derived from the config inside the loop)."""
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

import flor


@dataclass
class Config:
    seed: int = 0
    lr: float = 0.05
    epochs: int = 5
    batch_size: int = 32
    smoothing: float = 0.1
    freeze_epochs: int = 2


cfg = Config(
    seed=flor.arg("seed", Config.seed),
    lr=flor.arg("lr", Config.lr),
    epochs=flor.arg("epochs", Config.epochs),
    batch_size=flor.arg("batch_size", Config.batch_size),
    smoothing=flor.arg("smoothing", Config.smoothing),
    freeze_epochs=flor.arg("freeze_epochs", Config.freeze_epochs),
)
torch.manual_seed(cfg.seed)
x = torch.randn(512, 10)
y = (x[:, :3].sum(1) > 0).long() + (x[:, 3] > 1).long()
xv = torch.randn(128, 10)
yv = (xv[:, :3].sum(1) > 0).long() + (xv[:, 3] > 1).long()

backbone = nn.Sequential(nn.Linear(10, 32), nn.GELU(), nn.Dropout(0.2))
head = nn.Linear(32, 3)
model = nn.Sequential(backbone, head)
criterion = nn.CrossEntropyLoss(label_smoothing=cfg.smoothing)
optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
steps_per_epoch = len(x) // cfg.batch_size
scheduler = torch.optim.lr_scheduler.OneCycleLR(
    optimizer, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch
)

with flor.checkpointing(model=model, optimizer=optimizer, scheduler=scheduler):
    for epoch in flor.loop("epoch", range(cfg.epochs)):
        frozen = epoch < cfg.freeze_epochs
        for p in backbone.parameters():
            p.requires_grad_(not frozen)
        model.train()
        perm = torch.randperm(len(x))
        for step in flor.loop("step", range(steps_per_epoch)):
            idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            loss = criterion(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        model.eval()
        with torch.no_grad():
            logits = model(xv)
            val_acc = (logits.argmax(1) == yv).float().mean().item()
        flor.log("val_acc", val_acc)
