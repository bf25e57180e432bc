"""EMA of the weights with torch.optim.swa_utils.AveragedModel (checkpointed), plus SWA
from `swa_start` on with SWALR; the SWA model is not checkpointed."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn

import flor

seed = flor.arg("seed", 9)
epochs = flor.arg("epochs", 5)
lr = flor.arg("lr", 0.05)
swa_start = flor.arg("swa_start", 2)
torch.manual_seed(seed)
x = torch.randn(360, 5)
y = x @ torch.tensor([[0.5], [-1.0], [2.0], [0.0], [1.5]]) + 0.3 * torch.randn(360, 1)
model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=lr)
ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
swa_model = AveragedModel(model)
swa_scheduler = SWALR(optimizer, swa_lr=0.01, anneal_epochs=2)

with flor.checkpointing(model=model, optimizer=optimizer, ema=ema):
    for epoch in flor.loop("epoch", range(epochs)):
        for i in flor.loop("step", range(0, 360, 40)):
            loss = F.mse_loss(model(x[i : i + 40]), y[i : i + 40])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            ema.update_parameters(model)
        if epoch >= swa_start:
            swa_model.update_parameters(model)
            swa_scheduler.step()
        with torch.no_grad():
            ema_loss = F.mse_loss(ema(x), y).item()
        flor.log("ema_loss", ema_loss)

with torch.no_grad():
    swa_loss = F.mse_loss(swa_model(x), y).item()
print(f"swa loss {swa_loss:.4f}")
