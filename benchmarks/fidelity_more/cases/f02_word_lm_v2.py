"""Word-level language model in the style of pytorch/examples/word_language_model: an LSTM
over batchified token streams, hidden state carried across batches (repackage_hidden),
manual SGD with the learning rate annealed by 4 when validation loss stops improving."""
import math

import torch
import torch.nn as nn

import flor

seed = flor.arg("seed", 1111)
lr = flor.arg("lr", 20.0)
clip = flor.arg("clip", 0.25)
epochs = flor.arg("epochs", 4)
bptt = flor.arg("bptt", 12)
torch.manual_seed(seed)

ntokens = 30
# a noisy periodic token stream, so the model has something to learn
stream = (torch.arange(3000) * 7 % ntokens + torch.randint(0, 3, (3000,))) % ntokens
train_data = stream[:2400]
val_data = stream[2400:]


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    return data[: nbatch * bsz].view(bsz, -1).t().contiguous()


train_data = batchify(train_data, 10)
val_data = batchify(val_data, 5)


class RNNModel(nn.Module):
    def __init__(self, ntoken, ninp, nhid, nlayers, dropout=0.2):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.nhid, self.nlayers = nhid, nlayers

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        return self.decoder(output).view(-1, self.decoder.out_features), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                weight.new_zeros(self.nlayers, bsz, self.nhid))


def repackage_hidden(h):
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def get_batch(source, i):
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i : i + seq_len], source[i + 1 : i + 1 + seq_len].reshape(-1)


model = RNNModel(ntokens, 16, 32, 2)
criterion = nn.NLLLoss()


def evaluate(data_source):
    model.eval()
    total_loss = 0.0
    hidden = model.init_hidden(5)
    with torch.no_grad():
        for i in range(0, data_source.size(0) - 1, bptt):
            data, targets = get_batch(data_source, i)
            output, hidden = model(data, hidden)
            total_loss += len(data) * criterion(torch.log_softmax(output, 1), targets).item()
            hidden = repackage_hidden(hidden)
    return total_loss / (len(data_source) - 1)


best_val_loss = None
with flor.checkpointing(model=model):
    for epoch in flor.loop("epoch", range(1, epochs + 1)):
        model.train()
        total_loss = 0.0
        hidden = model.init_hidden(10)
        for batch, i in enumerate(flor.loop("batch", range(0, train_data.size(0) - 1, bptt))):
            data, targets = get_batch(train_data, i)
            hidden = repackage_hidden(hidden)
            model.zero_grad()
            output, hidden = model(data, hidden)
            loss = criterion(torch.log_softmax(output, 1), targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
            total_loss += loss.item()
            flor.log("loss", loss.item())
        val_loss = evaluate(val_data)
        flor.log("val_ppl", math.exp(val_loss))
        if not best_val_loss or val_loss < best_val_loss:
            best_val_loss = val_loss
        else:
            lr /= 4.0
