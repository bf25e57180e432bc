"""Everything in main(): a train_step closure updates an update counter and a smoothed loss
through `nonlocal` (the fastai/accelerate-notebook style), called from the step loop."""
import torch
import torch.nn as nn
import torch.nn.functional as F

import flor


def main():
    seed = flor.arg("seed", 0)
    lr = flor.arg("lr", 0.05)
    epochs = flor.arg("epochs", 5)
    bs = flor.arg("bs", 24)
    torch.manual_seed(seed)
    x = torch.randn(288, 7)
    y = (x[:, :2].prod(1) > 0).long()
    model = nn.Sequential(nn.Linear(7, 32), nn.ReLU(), nn.Linear(32, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    n_updates = 0
    smooth_loss = None

    def train_step(xb, yb):
        nonlocal n_updates, smooth_loss
        loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        n_updates += 1
        value = loss.item()
        smooth_loss = value if smooth_loss is None else 0.9 * smooth_loss + 0.1 * value
        return value

    with flor.checkpointing(model=model, optimizer=optimizer):
        for epoch in flor.loop("epoch", range(epochs)):
            perm = torch.randperm(len(x))
            for i in flor.loop("step", range(0, len(x), bs)):
                idx = perm[i : i + bs]
                train_step(x[idx], y[idx])
            with torch.no_grad():
                acc = (model(x).argmax(1) == y).float().mean().item()
            flor.log("acc", acc)


if __name__ == "__main__":
    main()
