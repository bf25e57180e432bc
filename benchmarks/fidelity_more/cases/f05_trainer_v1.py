"""A Trainer class in the style of small research codebases: fit() owns the epoch loop
(flor.loop inside a method), history and early-stopping state live on self."""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import flor


class Trainer:
    def __init__(self, model, lr, epochs, patience):
        self.model = model
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        self.epochs = epochs
        self.patience = patience
        self.history = {"train_loss": [], "val_loss": []}
        self.best_loss = float("inf")
        self.bad_epochs = 0
        self.best_state = None

    def train_epoch(self, loader):
        self.model.train()
        total, count = 0.0, 0
        for xb, yb in flor.loop("step", loader):
            self.optimizer.zero_grad()
            loss = F.mse_loss(self.model(xb), yb)
            loss.backward()
            self.optimizer.step()
            total += loss.item() * len(xb)
            count += len(xb)
        return total / count

    @torch.no_grad()
    def evaluate(self, x, y):
        self.model.eval()
        return F.mse_loss(self.model(x), y).item()

    def fit(self, loader, x_val, y_val):
        with flor.checkpointing(model=self.model, optimizer=self.optimizer):
            for epoch in flor.loop("epoch", range(self.epochs)):
                train_loss = self.train_epoch(loader)
                val_loss = self.evaluate(x_val, y_val)
                self.history["train_loss"].append(train_loss)
                self.history["val_loss"].append(val_loss)
                flor.log("train_loss", train_loss)
                flor.log("val_loss", val_loss)
                if val_loss < self.best_loss:
                    self.best_loss = val_loss
                    self.bad_epochs = 0
                    self.best_state = copy.deepcopy(self.model.state_dict())
                else:
                    self.bad_epochs += 1
                    if self.bad_epochs >= self.patience:
                        break
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.history


seed = flor.arg("seed", 7)
lr = flor.arg("lr", 0.02)
epochs = flor.arg("epochs", 8)
patience = flor.arg("patience", 2)
torch.manual_seed(seed)

x = torch.randn(600, 6)
y = torch.sin(x[:, :1]) + 0.3 * x[:, 1:2] ** 2 + 0.1 * torch.randn(600, 1)
loader = DataLoader(TensorDataset(x[:480], y[:480]), batch_size=32, shuffle=True)
model = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 1))
trainer = Trainer(model, lr, epochs, patience)
history = trainer.fit(loader, x[480:], y[480:])
final = trainer.evaluate(x[480:], y[480:])
flor.log("final_val", final)
