"""Training and evaluation loops kept out of train.py (the DeiT / detectron `engine.py` layout)."""
import torch
import torch.nn.functional as F

import flor

GLOBAL_STEP = 0
_data = torch.Generator().manual_seed(1234)
X = torch.randn(384, 12, generator=_data)
Y = X @ torch.randn(12, 1, generator=_data) + 0.1 * torch.randn(384, 1, generator=_data)
XV = torch.randn(128, 12, generator=_data)
YV = XV @ torch.ones(12, 1) * 0.3


def train_one_epoch(model, optimizer, epoch, batch_size=32):
    global GLOBAL_STEP
    model.train()
    perm = torch.randperm(len(X))
    for i in flor.loop("step", range(0, len(X), batch_size)):
        idx = perm[i : i + batch_size]
        loss = F.mse_loss(model(X[idx]), Y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        GLOBAL_STEP += 1
        flor.log("loss", loss.item())


@torch.no_grad()
def evaluate(model):
    model.eval()
    return F.mse_loss(model(XV), YV).item()
