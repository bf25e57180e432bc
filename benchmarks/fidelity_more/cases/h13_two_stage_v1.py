"""Two stages in one script: pre-training on a proxy task, then fine-tuning a new head; each
stage its own top-level flor.loop (the checkpointed pre-training loop is the main loop)."""
import torch
import torch.nn as nn
import torch.nn.functional as F

import flor

seed = flor.arg("seed", 0)
pre_epochs = flor.arg("pre_epochs", 4)
ft_epochs = flor.arg("ft_epochs", 3)
lr = flor.arg("lr", 0.01)
torch.manual_seed(seed)
x = torch.randn(256, 12)
proxy = x[:, :6].sum(1, keepdim=True)
y = (x[:, 0] * x[:, 3] > 0).long()

encoder = nn.Sequential(nn.Linear(12, 24), nn.Tanh())
proxy_head = nn.Linear(24, 1)
optimizer = torch.optim.Adam(list(encoder.parameters()) + list(proxy_head.parameters()), lr=lr)
with flor.checkpointing(encoder=encoder, proxy_head=proxy_head, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(pre_epochs)):
        perm = torch.randperm(len(x))
        for i in flor.loop("step", range(0, len(x), 32)):
            idx = perm[i : i + 32]
            loss = F.mse_loss(proxy_head(encoder(x[idx])), proxy[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        flor.log("pre_loss", loss.item())

head = nn.Linear(24, 2)
ft_optimizer = torch.optim.SGD(head.parameters(), lr=0.1)
for ft_epoch in flor.loop("ft_epoch", range(ft_epochs)):
    with torch.no_grad():
        feats = encoder(x)
    ft_loss = F.cross_entropy(head(feats), y)
    ft_optimizer.zero_grad()
    ft_loss.backward()
    ft_optimizer.step()
    flor.log("ft_loss", ft_loss.item())
