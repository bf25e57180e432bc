"""A small PyTorch classifier on synthetic data, instrumented with flor.

Run it inside a git repository: `python train_mlp.py --kwargs lr=0.01 epochs=6`.
"""

import torch
from torch import nn

import flor

torch.manual_seed(flor.arg("seed", 0))
lr = flor.arg("lr", 0.01)
epochs = flor.arg("epochs", 5)
batch_size = flor.arg("batch_size", 64)
hidden = flor.arg("hidden", 64)

features = torch.randn(2048, 20)
labels = (features[:, :5].sum(dim=1) > 0).long()
train_x, train_y = features[:1536], labels[:1536]
test_x, test_y = features[1536:], labels[1536:]

net = nn.Sequential(nn.Linear(20, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, 2))
optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
criterion = nn.CrossEntropyLoss()

with flor.checkpointing(model=net, optimizer=optimizer):
    for _epoch in flor.loop("epoch", range(epochs)):
        net.train()
        order = torch.randperm(len(train_x))
        for step in flor.loop("step", range(len(train_x) // batch_size)):
            batch = order[step * batch_size : (step + 1) * batch_size]
            optimizer.zero_grad()
            loss = criterion(net(train_x[batch]), train_y[batch])
            loss.backward()
            optimizer.step()
            flor.log("loss", loss.item())
        net.eval()
        with torch.no_grad():
            accuracy = (net(test_x).argmax(dim=1) == test_y).float().mean().item()
        flor.log("acc", accuracy)
