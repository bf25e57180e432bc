"""Seeded DataLoader shuffling (its own torch.Generator), random augmentation (flips, python
`random` noise levels), a progress wrapper around the loader, metrics kept in a dict of lists."""
import random
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import flor

seed = flor.arg("seed", 3)
lr = flor.arg("lr", 0.01)
epochs = flor.arg("epochs", 4)
noise = flor.arg("noise", 0.1)
random.seed(seed)
torch.manual_seed(seed)


def progress(iterable, desc):
    """A minimal tqdm: counts items and prints a line at the end."""
    count = 0
    for item in iterable:
        count += 1
        yield item
    print(f"{desc}: {count} it", file=sys.stderr)


protos = torch.randn(4, 3, 6, 6)
labels = torch.randint(0, 4, (512,))
images = protos[labels] + 0.5 * torch.randn(512, 3, 6, 6)
g = torch.Generator()
g.manual_seed(seed)
loader = DataLoader(TensorDataset(images, labels), batch_size=32, shuffle=True, generator=g)


def augment(xb):
    flip = torch.rand(xb.size(0)) < 0.3
    xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
    return xb + random.uniform(0, noise) * torch.randn_like(xb)


model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 4))
optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
metrics = {"loss": [], "acc": []}

with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(epochs)):
        model.train()
        correct = 0
        for xb, yb in progress(flor.loop("step", loader), f"epoch {epoch}"):
            xb = augment(xb)
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            correct += (out.argmax(1) == yb).sum().item()
            flor.log("loss", loss.item())
        metrics["loss"].append(loss.item())
        metrics["acc"].append(correct / len(labels))
        flor.log("train_acc", metrics["acc"][-1])
