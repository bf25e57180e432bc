"""Multi-task training: a shared trunk with a classification and a regression head, a dict
of losses weighted and summed; the best model kept with copy.deepcopy and tested after."""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

import flor


class MultiTask(nn.Module):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.1))
        self.cls = nn.Linear(32, 3)
        self.reg = nn.Linear(32, 1)

    def forward(self, x):
        h = self.trunk(x)
        return {"cls": self.cls(h), "reg": self.reg(h).squeeze(1)}


seed = flor.arg("seed", 0)
lr = flor.arg("lr", 0.01)
epochs = flor.arg("epochs", 5)
w_reg = flor.arg("w_reg", 0.5)
torch.manual_seed(seed)
x = torch.randn(360, 10)
y_cls = (x[:, 0] * 2 + x[:, 1]).clamp(-1.0, 1.0).round().long() + 1
y_reg = x[:, 2:5].sum(1)
xv, yv_cls, yv_reg = x[-60:], y_cls[-60:], y_reg[-60:]
x, y_cls, y_reg = x[:-60], y_cls[:-60], y_reg[:-60]
weights = {"cls": 1.0, "reg": w_reg}

model = MultiTask()
optimizer = torch.optim.Adam(model.parameters(), lr=lr)
best_val, best_model = float("inf"), None

with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(epochs)):
        model.train()
        perm = torch.randperm(len(x))
        for start in flor.loop("step", range(0, len(x), 30)):
            idx = perm[start : start + 30]
            out = model(x[idx])
            losses = {
                "cls": F.cross_entropy(out["cls"], y_cls[idx]),
                "reg": F.mse_loss(out["reg"], y_reg[idx]),
            }
            total = sum(weights[k] * v for k, v in losses.items())
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            out = model(xv)
            val = F.cross_entropy(out["cls"], yv_cls).item() + F.mse_loss(out["reg"], yv_reg).item()
        flor.log("val", val)
        if val < best_val:
            best_val, best_model = val, copy.deepcopy(model)

best_model.eval()
with torch.no_grad():
    test_acc = (best_model(xv)["cls"].argmax(1) == yv_cls).float().mean().item()
print("test", test_acc)
