"""MNIST-style training laid out like pytorch/examples: train(epoch) and test() functions."""
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset

import flor

seed = flor.arg("seed", 1)
lr = flor.arg("lr", 1.0)
gamma = flor.arg("gamma", 0.7)
epochs = flor.arg("epochs", 4)
batch_size = flor.arg("batch_size", 64)
torch.manual_seed(seed)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(0.3)
        self.fc1 = nn.Linear(16 * 2 * 2, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return F.log_softmax(self.fc2(x), dim=1)


templates = torch.randn(10, 1, 8, 8)


def make_data(n):
    labels = torch.randint(0, 10, (n,))
    images = templates[labels] + 0.8 * torch.randn(n, 1, 8, 8)
    return TensorDataset(images, labels)


train_loader = DataLoader(make_data(640), batch_size=batch_size, shuffle=True)
test_loader = DataLoader(make_data(256), batch_size=128)

model = Net()
optimizer = optim.Adadelta(model.parameters(), lr=lr)
scheduler = StepLR(optimizer, step_size=1, gamma=gamma)


def train(epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(flor.loop("step", train_loader)):
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % 3 == 0:
            flor.log("loss", loss.item())


def test():
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    flor.log("test_loss", test_loss)
    return correct / len(test_loader.dataset)


with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(1, epochs + 1)):
        train(epoch)
        accuracy = test()
        flor.log("accuracy", accuracy)
        scheduler.step()
