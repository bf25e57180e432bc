"""Step-based fine-tuning over one pass of a shuffled DataLoader (no epochs): the main loop is
enumerate(flor.loop("step", loader)); linear LR decay per step; eval every 8 steps."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import flor

seed = flor.arg("seed", 14)
lr = flor.arg("lr", 0.02)
eval_every = flor.arg("eval_every", 8)
torch.manual_seed(seed)
x = torch.randn(640, 10)
y = (x @ torch.randn(10, 1)).squeeze(1).gt(0).long()
xv, yv = torch.randn(100, 10), None
yv = (xv @ torch.ones(10, 1)).squeeze(1).gt(0).long()
loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 2))
optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
total = len(loader)
scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 - s / total)

with flor.checkpointing(model=model, optimizer=optimizer, scheduler=scheduler):
    for step, (xb, yb) in enumerate(flor.loop("step", loader)):
        model.train()
        loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step % eval_every == 0:
            model.eval()
            with torch.no_grad():
                val_loss = F.cross_entropy(model(xv), yv).item()
            flor.log("val_loss", val_loss)
