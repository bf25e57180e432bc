"""Knowledge distillation from a frozen teacher with MixUp (lambda from np.random.beta,
pairing from torch.randperm); timm-style mixup_fn switching to CutMix-like feature masks."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import flor

seed = flor.arg("seed", 0)
lr = flor.arg("lr", 0.03)
alpha = flor.arg("alpha", 0.4)
temperature = flor.arg("temperature", 2.0)
epochs = flor.arg("epochs", 4)
np.random.seed(seed)
torch.manual_seed(seed)

x = torch.randn(400, 20)
y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).long()
teacher = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 2))
teacher.eval()
for p in teacher.parameters():
    p.requires_grad_(False)
student = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))
optimizer = torch.optim.SGD(student.parameters(), lr=lr, momentum=0.9, nesterov=True)


def mixup_fn(xb, yb):
    lam = float(np.random.beta(alpha, alpha))
    index = torch.randperm(xb.size(0))
    mixed = lam * xb + (1 - lam) * xb[index]
    return mixed, yb, yb[index], lam


with flor.checkpointing(student=student, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(epochs)):
        student.train()
        perm = torch.randperm(len(x))
        for start in flor.loop("step", range(0, len(x), 25)):
            idx = perm[start : start + 25]
            xb, ya, yb2, lam = mixup_fn(x[idx], y[idx])
            logits = student(xb)
            with torch.no_grad():
                t_logits = teacher(xb)
            hard = lam * F.cross_entropy(logits, ya) + (1 - lam) * F.cross_entropy(logits, yb2)
            soft = F.kl_div(
                F.log_softmax(logits / temperature, 1),
                F.softmax(t_logits / temperature, 1),
                reduction="batchmean",
            ) * temperature**2
            loss = 0.5 * hard + 0.5 * soft
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        student.eval()
        with torch.no_grad():
            acc = (student(x).argmax(1) == y).float().mean().item()
        flor.log("acc", acc)
