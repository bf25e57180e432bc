"""Gradient accumulation under torch.autocast(bfloat16) on CPU with a small loss-scaler
wrapper (the AMP idiom: scale, step, update); zero_grad at the start of each window."""
import torch
import torch.nn as nn
import torch.nn.functional as F

import flor


class LossScaler:
    """The shape of torch.cuda.amp.GradScaler / timm's NativeScaler, for CPU bf16."""

    def __init__(self, init_scale=1024.0, growth_interval=4):
        self.scale_value = init_scale
        self.growth_interval = growth_interval
        self.good_steps = 0

    def scale(self, loss):
        return loss * self.scale_value

    def step(self, optimizer):
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.div_(self.scale_value)
        optimizer.step()

    def update(self):
        self.good_steps += 1
        if self.good_steps % self.growth_interval == 0:
            self.scale_value *= 2.0


seed = flor.arg("seed", 0)
lr = flor.arg("lr", 0.01)
accum = flor.arg("accum", 4)
epochs = flor.arg("epochs", 4)
torch.manual_seed(seed)
x = torch.randn(480, 16)
y = torch.sin(x[:, :4]).sum(1, keepdim=True)
model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=lr)
scaler = LossScaler()
micro = 16

with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(epochs)):
        perm = torch.randperm(len(x))
        for i, start in enumerate(flor.loop("micro", range(0, len(x), micro))):
            if i % accum == 0:
                optimizer.zero_grad()
            idx = perm[start : start + micro]
            with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
                out = model(x[idx])
            loss = F.mse_loss(out.float(), y[idx]) / accum
            scaler.scale(loss).backward()
            if (i + 1) % accum == 0:
                scaler.step(optimizer)
                scaler.update()
        flor.log("train_mse", F.mse_loss(model(x), y).item())
