import torch
import torch.nn as nn

import engine
import flor
from engine import evaluate, train_one_epoch

seed = flor.arg("seed", 0)
lr = flor.arg("lr", 0.05)
epochs = flor.arg("epochs", 6)
torch.manual_seed(seed)

model = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)

with flor.checkpointing(model=model, optimizer=optimizer, scheduler=scheduler):
    for epoch in flor.loop("epoch", range(epochs)):
        train_one_epoch(model, optimizer, scheduler, epoch)
        val_loss = evaluate(model)
        flor.log("val_loss", val_loss)

print("done", engine.GLOBAL_STEP, len(engine.LR_HISTORY))
