import torch
import torch.nn as nn

import engine
import flor

seed = flor.arg("seed", 0)
lr = flor.arg("lr", 0.05)
epochs = flor.arg("epochs", 6)
torch.manual_seed(seed)

model = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

with flor.checkpointing(model=model, optimizer=optimizer):
    for epoch in flor.loop("epoch", range(epochs)):
        engine.train_one_epoch(model, optimizer, epoch)
        val_loss = engine.evaluate(model)
        flor.log("val_loss", val_loss)

print("done", engine.GLOBAL_STEP)
