"""nanoGPT-style training: an iteration loop with get_batch, a cosine learning rate set by
hand every iteration, gradient clipping, evaluation every eval_interval iterations and the
best validation loss kept across evaluations."""
import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import flor

seed = flor.arg("seed", 1337)
learning_rate = flor.arg("learning_rate", 3e-3)
max_iters = flor.arg("max_iters", 60)
eval_interval = flor.arg("eval_interval", 15)
warmup_iters = flor.arg("warmup_iters", 10)
min_lr = flor.arg("min_lr", 3e-4)
grad_clip = flor.arg("grad_clip", 1.0)
block_size, batch_size, vocab = 16, 8, 40
torch.manual_seed(seed)

data = (torch.arange(4000) * 11 % vocab + torch.randint(0, 4, (4000,))) % vocab
n = int(0.9 * len(data))
train_data, val_data = data[:n], data[n:]


def get_batch(split):
    source = train_data if split == "train" else val_data
    ix = torch.randint(len(source) - block_size, (batch_size,))
    x = torch.stack([source[i : i + block_size] for i in ix])
    y = torch.stack([source[i + 1 : i + 1 + block_size] for i in ix])
    return x, y


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(vocab, 32)
        self.pos = nn.Embedding(block_size, 32)
        self.block = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True)
        self.head = nn.Linear(32, vocab)

    def forward(self, idx, targets=None):
        pos = torch.arange(idx.size(1))
        x = self.tok(idx) + self.pos(pos)
        mask = nn.Transformer.generate_square_subsequent_mask(idx.size(1))
        logits = self.head(self.block(x, src_mask=mask, is_causal=True))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, vocab), targets.view(-1))
        return logits, loss


model = TinyLM()
optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.05)


@torch.no_grad()
def estimate_loss():
    out = {}
    model.eval()
    for split in ["train", "val"]:
        losses = torch.zeros(4)
        for k in range(4):
            X, Y = get_batch(split)
            _, loss = model(X, Y)
            losses[k] = loss.item()
        out[split] = losses.mean().item()
    model.train()
    return out


def get_lr(it):
    if it < warmup_iters:
        return learning_rate * it / warmup_iters
    if it > max_iters:
        return min_lr
    decay_ratio = (it - warmup_iters) / (max_iters - warmup_iters)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return min_lr + coeff * (learning_rate - min_lr)


best_val_loss = 1e9
X, Y = get_batch("train")
with flor.checkpointing(model=model, optimizer=optimizer):
    for iter_num in flor.loop("iter", itertools.count()):
        lr = get_lr(iter_num)
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr
        if iter_num % eval_interval == 0:
            losses = estimate_loss()
            flor.log("val_loss", losses["val"])
            if losses["val"] < best_val_loss:
                best_val_loss = losses["val"]
        logits, loss = model(X, Y)
        X, Y = get_batch("train")
        loss.backward()
        if grad_clip != 0.0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        flor.log("loss", loss.item())
        if iter_num > max_iters:
            break
