"""k-fold cross-validation: the outer loop over folds re-creates the model and optimizer and
checkpoints them inside the fold; a list of fold accuracies summarised at the end."""
import torch
import torch.nn as nn
import torch.nn.functional as F

import flor

seed = flor.arg("seed", 5)
folds = flor.arg("folds", 3)
epochs = flor.arg("epochs", 3)
lr = flor.arg("lr", 0.02)
torch.manual_seed(seed)
x = torch.randn(300, 7)
y = (x[:, 0] + 0.5 * x[:, 1] ** 2 > 0.5).long()
idx = torch.randperm(300)


def make_model():
    return nn.Sequential(nn.Linear(7, 16), nn.ReLU(), nn.Linear(16, 2))


fold_acc = []
for fold in flor.loop("fold", range(folds)):
    val_idx = idx[fold::folds]
    keep = torch.ones(300, dtype=torch.bool)
    keep[val_idx] = False
    tr_idx = idx[keep[idx]]
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    with flor.checkpointing(model=model, optimizer=optimizer):
        for epoch in flor.loop("epoch", range(epochs)):
            order = tr_idx
            for i in flor.loop("step", range(0, len(order), 40)):
                b = order[i : i + 40]
                loss = F.cross_entropy(model(x[b]), y[b])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            flor.log("fold_loss", loss.item())
    with torch.no_grad():
        acc = (model(x[val_idx]).argmax(1) == y[val_idx]).float().mean().item()
    fold_acc.append(acc)
    flor.log("fold_acc", acc)

mean_acc = sum(fold_acc) / len(fold_acc)
print(f"cv accuracy {mean_acc:.3f}")
