"""A DataLoader shuffling with its own seeded torch.Generator, numpy default_rng jitter, a
python random.Random ordering buckets: three RNG states outside the global ones."""
import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import flor

seed = flor.arg("seed", 4)
epochs = flor.arg("epochs", 4)
lr = flor.arg("lr", 0.05)
torch.manual_seed(seed)
loader_gen = torch.Generator().manual_seed(seed + 1)
rng = np.random.default_rng(seed + 2)
order_rng = random.Random(seed + 3)

x = torch.randn(384, 10)
y = (x[:, 0] - x[:, 1] > 0).long()
train = DataLoader(TensorDataset(x, y), batch_size=48, shuffle=True, generator=loader_gen)
buckets = list(range(4))
model = nn.Sequential(nn.Linear(10, 24), nn.ReLU(), nn.Linear(24, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(epochs)):
        order_rng.shuffle(buckets)
        scale = float(rng.uniform(0.0, 0.2))
        total = 0.0
        for xb, yb in flor.loop("step", train):
            xb = xb + scale * torch.from_numpy(rng.standard_normal(xb.shape).astype(np.float32))
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        flor.log("train_loss", total / len(train))
