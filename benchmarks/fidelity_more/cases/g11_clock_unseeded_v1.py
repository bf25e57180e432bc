"""Timing and run tags computed in the code but only printed: a run tag from uuid, epoch
times from perf_counter, a sampled batch index for a debug print from an unseeded RNG."""
import time
import uuid

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import flor

seed = flor.arg("seed", 1)
epochs = flor.arg("epochs", 3)
lr = flor.arg("lr", 0.05)
torch.manual_seed(seed)
run_tag = uuid.uuid4().hex[:8]
debug_rng = np.random.default_rng()
x = torch.randn(200, 4)
y = x.sum(1, keepdim=True)
model = nn.Linear(4, 1, bias=False)
optimizer = torch.optim.SGD(model.parameters(), lr=lr)

with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(epochs)):
        t0 = time.perf_counter()
        for i in flor.loop("step", range(0, 200, 20)):
            loss = F.mse_loss(model(x[i : i + 20]), y[i : i + 20])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        elapsed = time.perf_counter() - t0
        shown = int(debug_rng.integers(0, 200))
        print(f"[{run_tag}] epoch {epoch}: {elapsed:.3f}s, sample {shown}: {model(x[shown]).item():.3f}")
        flor.log("loss", loss.item())
