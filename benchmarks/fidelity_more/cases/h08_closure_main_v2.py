"""Everything in main(): a train_step closure updates a stats dict and steps a warm-up
LambdaLR whose lambda captures the warm-up length; called from the step loop."""
import torch
import torch.nn as nn
import torch.nn.functional as F

import flor


def main():
    seed = flor.arg("seed", 0)
    lr = flor.arg("lr", 0.05)
    epochs = flor.arg("epochs", 5)
    bs = flor.arg("bs", 24)
    warmup = flor.arg("warmup", 20)
    torch.manual_seed(seed)
    x = torch.randn(288, 7)
    y = (x[:, :2].prod(1) > 0).long()
    model = nn.Sequential(nn.Linear(7, 32), nn.ReLU(), nn.Linear(32, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    stats = {"updates": 0, "smooth": None}

    def train_step(xb, yb):
        loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        stats["updates"] += 1
        value = loss.item()
        stats["smooth"] = value if stats["smooth"] is None else 0.9 * stats["smooth"] + 0.1 * value
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
