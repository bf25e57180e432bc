"""A character model trained by epochs of random batches (nanoGPT's get_batch), evaluated on
random batches by estimate_loss() under eval/no_grad after each epoch, the learning rate
decayed by a helper that walks optimizer.param_groups."""
import torch
import torch.nn as nn
import torch.nn.functional as F

import flor

seed = flor.arg("seed", 1337)
lr = flor.arg("lr", 3e-3)
epochs = flor.arg("epochs", 4)
steps = flor.arg("steps", 12)
decay = flor.arg("decay", 0.7)
block_size, batch_size, vocab = 12, 16, 32
torch.manual_seed(seed)

data = (torch.arange(3000) * 5 % vocab + torch.randint(0, 3, (3000,))) % vocab
train_data, val_data = data[:2600], data[2600:]


def get_batch(split):
    source = train_data if split == "train" else val_data
    ix = torch.randint(len(source) - block_size, (batch_size,))
    x = torch.stack([source[i : i + block_size] for i in ix])
    y = torch.stack([source[i + 1 : i + 1 + block_size] for i in ix])
    return x, y


class Bigram(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(vocab, 48)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(48, vocab)

    def forward(self, idx):
        return self.head(self.drop(self.emb(idx)))


@torch.no_grad()
def estimate_loss(model):
    out = {}
    model.eval()
    for split in ["train", "val"]:
        losses = torch.zeros(3)
        for k in range(3):
            X, Y = get_batch(split)
            losses[k] = F.cross_entropy(model(X).view(-1, vocab), Y.view(-1)).item()
        out[split] = losses.mean().item()
    model.train()
    return out


def decay_lr(optimizer, factor):
    for group in optimizer.param_groups:
        group["lr"] *= factor


model = Bigram()
optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(epochs)):
        for step in flor.loop("step", range(steps)):
            X, Y = get_batch("train")
            loss = F.cross_entropy(model(X).view(-1, vocab), Y.view(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            flor.log("loss", loss.item())
        losses = estimate_loss(model)
        decay_lr(optimizer, decay)
        flor.log("train_loss", losses["train"])
