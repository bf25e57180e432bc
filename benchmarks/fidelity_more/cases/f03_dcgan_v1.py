"""DCGAN-style training: a generator and a discriminator, two optimizers, alternating
updates per batch, a fixed noise vector to watch the generator's progress."""
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

import flor

seed = flor.arg("seed", 999)
lr = flor.arg("lr", 0.0002)
beta1 = flor.arg("beta1", 0.5)
epochs = flor.arg("epochs", 3)
nz = flor.arg("nz", 8)
torch.manual_seed(seed)

# "real" data: points on a noisy ring in 2-D
angles = torch.rand(768) * 6.2832
real = torch.stack([angles.cos(), angles.sin()], 1) + 0.05 * torch.randn(768, 2)
dataloader = DataLoader(TensorDataset(real), batch_size=64, shuffle=True)


def weights_init(m):
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, 0.0, 0.2)
        nn.init.zeros_(m.bias)


netG = nn.Sequential(nn.Linear(nz, 32), nn.ReLU(True), nn.Linear(32, 32), nn.ReLU(True),
                     nn.Linear(32, 2))
netD = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2, True), nn.Linear(32, 1),
                     nn.Sigmoid())
netG.apply(weights_init)
netD.apply(weights_init)

criterion = nn.BCELoss()
fixed_noise = torch.randn(16, nz)
real_label, fake_label = 1.0, 0.0
optimizerD = torch.optim.Adam(netD.parameters(), lr=lr, betas=(beta1, 0.999))
optimizerG = torch.optim.Adam(netG.parameters(), lr=lr, betas=(beta1, 0.999))

G_losses = []
with flor.checkpointing(netG=netG, netD=netD, optimizerG=optimizerG, optimizerD=optimizerD):
    for epoch in flor.loop("epoch", range(epochs)):
        for i, (data,) in enumerate(flor.loop("step", dataloader)):
            # (1) update D: maximize log(D(x)) + log(1 - D(G(z)))
            netD.zero_grad()
            b_size = data.size(0)
            label = torch.full((b_size,), real_label)
            output = netD(data).view(-1)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()
            noise = torch.randn(b_size, nz)
            fake = netG(noise)
            label.fill_(fake_label)
            output = netD(fake.detach()).view(-1)
            errD_fake = criterion(output, label)
            errD_fake.backward()
            errD = errD_real + errD_fake
            optimizerD.step()
            # (2) update G: maximize log(D(G(z)))
            netG.zero_grad()
            label.fill_(real_label)
            output = netD(fake).view(-1)
            errG = criterion(output, label)
            errG.backward()
            optimizerG.step()
            G_losses.append(errG.item())
            flor.log("loss_D", errD.item())
            flor.log("loss_G", errG.item())
        with torch.no_grad():
            sample = netG(fixed_noise)
        flor.log("ring_err", (sample.norm(dim=1) - 1).abs().mean().item())
