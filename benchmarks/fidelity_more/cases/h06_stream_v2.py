"""An infinite batch generator shared across epochs (`next` pulls continue where the last
epoch stopped), steps per epoch from zip(range(n), stream); curriculum: the batch size grows
with the epoch and easy examples come first; noise augmentation from the same numpy rng."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import flor

seed = flor.arg("seed", 0)
lr = flor.arg("lr", 0.02)
epochs = flor.arg("epochs", 5)
steps = flor.arg("steps", 12)
noise = flor.arg("noise", 0.05)
rng = np.random.default_rng(seed)
torch.manual_seed(seed)

x = rng.normal(size=(600, 6)).astype(np.float32)
difficulty = np.abs(x[:, 0] - x[:, 1])
y = (x[:, 0] > x[:, 1]).astype(np.int64)
order = np.argsort(-difficulty)  # easiest (largest margin) first


def batches(sizes):
    pos = 0
    while True:
        size = sizes["batch"]
        if pos + size > len(order):
            pos = 0
        idx = order[pos : pos + size]
        pos += size
        xb = x[idx] + rng.normal(scale=noise, size=(len(idx), 6)).astype(np.float32)
        yield torch.from_numpy(xb), torch.from_numpy(y[idx])


sizes = {"batch": 16}
stream = batches(sizes)
model = nn.Sequential(nn.Linear(6, 24), nn.ReLU(), nn.Linear(24, 2))
optimizer = torch.optim.Adam(model.parameters(), lr=lr)

with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(epochs)):
        sizes["batch"] = 16 * 2 ** min(epoch, 2)
        for i, (xb, yb) in zip(flor.loop("step", range(steps)), stream):
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            acc = (model(torch.from_numpy(x)).argmax(1) == torch.from_numpy(y)).float().mean()
        flor.log("acc", acc.item())
