"""A Lightning-style module (training_step / validation_step / configure_optimizers) driven
by a small Trainer.fit loop that keeps a global step and callback metrics on itself."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import flor


class LitClassifier(nn.Module):
    def __init__(self, lr):
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        return {"val_loss": F.cross_entropy(logits, y).item(), "correct": (logits.argmax(1) == y).sum().item()}

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
        return optimizer, scheduler


class Trainer:
    def __init__(self, max_epochs):
        self.max_epochs = max_epochs
        self.global_step = 0
        self.callback_metrics = {}

    def fit(self, module, train_loader, val_loader):
        optimizer, scheduler = module.configure_optimizers()
        with flor.checkpointing(module=module, optimizer=optimizer, scheduler=scheduler):
            for epoch in flor.loop("epoch", range(self.max_epochs)):
                module.train()
                for batch_idx, batch in enumerate(flor.loop("step", train_loader)):
                    loss = module.training_step(batch, batch_idx)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    self.global_step += 1
                module.eval()
                outs = []
                with torch.no_grad():
                    for batch_idx, batch in enumerate(val_loader):
                        outs.append(module.validation_step(batch, batch_idx))
                val_loss = sum(o["val_loss"] for o in outs) / len(outs)
                self.callback_metrics["val_loss"] = val_loss
                flor.log("val_loss", val_loss)
                scheduler.step()


seed = flor.arg("seed", 12)
epochs = flor.arg("epochs", 4)
lr = flor.arg("lr", 0.01)
torch.manual_seed(seed)
x = torch.randn(400, 8)
y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
train_loader = DataLoader(TensorDataset(x[:320], y[:320]), batch_size=40, shuffle=True)
val_loader = DataLoader(TensorDataset(x[320:], y[320:]), batch_size=40)
model = LitClassifier(lr)
trainer = Trainer(max_epochs=epochs)
trainer.fit(model, train_loader, val_loader)
print(f"done after {trainer.global_step} steps")
