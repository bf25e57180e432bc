"""DCGAN-style training on 2-D points: a generator and a discriminator, two Adam optimizers,
all four checkpointed; fixed noise for samples; one-sided label smoothing; loss lists."""
import torch
import torch.nn as nn

import flor

seed = flor.arg("seed", 11)
epochs = flor.arg("epochs", 4)
lr_g = flor.arg("lr_g", 0.002)
lr_d = flor.arg("lr_d", 0.002)
real_label = flor.arg("real_label", 0.9)
torch.manual_seed(seed)

data = torch.randn(512, 2) @ torch.tensor([[1.0, 0.5], [0.0, 0.7]]) + torch.tensor([2.0, -1.0])
nz = 4
G = nn.Sequential(nn.Linear(nz, 16), nn.ReLU(), nn.Linear(16, 2))
D = nn.Sequential(nn.Linear(2, 16), nn.LeakyReLU(0.2), nn.Dropout(0.1), nn.Linear(16, 1))
criterion = nn.BCEWithLogitsLoss()
optD = torch.optim.Adam(D.parameters(), lr=lr_d, betas=(0.5, 0.999))
optG = torch.optim.Adam(G.parameters(), lr=lr_g, betas=(0.5, 0.999))
fixed_noise = torch.randn(64, nz)
G_losses, D_losses = [], []

with flor.checkpointing(G=G, D=D, optG=optG, optD=optD):
    for epoch in flor.loop("epoch", range(epochs)):
        perm = torch.randperm(data.size(0))
        for i in flor.loop("step", range(0, 512, 64)):
            real = data[perm[i : i + 64]]
            # (1) update D: maximize log(D(x)) + log(1 - D(G(z)))
            D.zero_grad()
            label = torch.full((real.size(0), 1), real_label)
            output = D(real)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = torch.sigmoid(output).mean().item()
            noise = torch.randn(real.size(0), nz)
            fake = G(noise)
            label.fill_(0.0)
            errD_fake = criterion(D(fake.detach()), label)
            errD_fake.backward()
            errD = errD_real + errD_fake
            optD.step()
            # (2) update G: maximize log(D(G(z)))
            G.zero_grad()
            label.fill_(1.0)
            output = D(fake)
            errG = criterion(output, label)
            errG.backward()
            optG.step()
            G_losses.append(errG.item())
            D_losses.append(errD.item())
            flor.log("errD", errD.item())
        with torch.no_grad():
            sample = G(fixed_noise)
        flor.log("sample_mean", sample.mean().item())

with torch.no_grad():
    final = G(fixed_noise)
print(f"final sample mean {final.mean(0).tolist()}")
