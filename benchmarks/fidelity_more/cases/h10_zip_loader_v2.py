"""A shuffled DataLoader read for a fixed number of batches per epoch with
`for i, batch in zip(range(n), loader)`; validation on every other epoch (continue), a
StepLR in the checkpoint; a loss spike stops the step loop early (break)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import flor

seed = flor.arg("seed", 0)
lr = flor.arg("lr", 0.05)
epochs = flor.arg("epochs", 6)
per_epoch = flor.arg("per_epoch", 10)
spike = flor.arg("spike", 0.9)
torch.manual_seed(seed)
x = torch.randn(800, 12)
y = (x[:, :4].sum(1) > 0).float()
xv = torch.randn(200, 12)
yv = (xv[:, :4].sum(1) > 0).float()
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.7)

with flor.checkpointing(model=model, optimizer=optimizer, scheduler=scheduler):
    for epoch in flor.loop("epoch", range(epochs)):
        model.train()
        for i, (xb, yb) in zip(flor.loop("step", range(per_epoch)), loader):
            loss = F.binary_cross_entropy_with_logits(model(xb).squeeze(1), yb)
            if epoch > 0 and loss.item() > spike:
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
        if epoch % 2 == 1:
            continue
        model.eval()
        with torch.no_grad():
            val_loss = F.binary_cross_entropy_with_logits(model(xv).squeeze(1), yv).item()
        flor.log("val_loss", val_loss)
