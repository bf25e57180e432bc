"""The pytorch/examples/imagenet layout in miniature: meters from utils.py, train() and
validate() functions, best_acc1 tracked in main() and a checkpoint dict built every epoch."""
import torch
import torch.nn as nn

import flor
from utils import AverageMeter, accuracy


def train(x, y, model, criterion, optimizer, epoch, bs):
    losses = AverageMeter("Loss", ":.4e")
    top1 = AverageMeter("Acc@1", ":6.2f")
    model.train()
    perm = torch.randperm(len(x))
    for i in flor.loop("step", range(0, len(x), bs)):
        idx = perm[i : i + bs]
        output = model(x[idx])
        loss = criterion(output, y[idx])
        acc1, acc2 = accuracy(output, y[idx], topk=(1, 2))
        losses.update(loss.item(), len(idx))
        top1.update(acc1[0].item(), len(idx))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return losses.avg


def validate(x, y, model, criterion):
    top1 = AverageMeter("Acc@1", ":6.2f")
    model.eval()
    with torch.no_grad():
        output = model(x)
        acc1, _ = accuracy(output, y, topk=(1, 2))
        top1.update(acc1[0].item(), len(x))
    return top1.avg


def main():
    seed = flor.arg("seed", 0)
    lr = flor.arg("lr", 0.1)
    epochs = flor.arg("epochs", 5)
    bs = flor.arg("batch_size", 32)
    torch.manual_seed(seed)
    x = torch.randn(320, 16)
    y = (x[:, :4] @ torch.tensor([1.0, -1.0, 0.5, 2.0])).gt(0).long() * 2 + (x[:, 5] > 0).long()
    xv = torch.randn(96, 16)
    yv = (xv[:, :4] @ torch.tensor([1.0, -1.0, 0.5, 2.0])).gt(0).long() * 2 + (xv[:, 5] > 0).long()
    model = nn.Sequential(nn.Linear(16, 48), nn.ReLU(), nn.Dropout(0.25), nn.Linear(48, 4))
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.1)
    best_acc1 = 0
    with flor.checkpointing(model=model, optimizer=optimizer):
        for epoch in flor.loop("epoch", range(epochs)):
            train_loss = train(x, y, model, criterion, optimizer, epoch, bs)
            acc1 = validate(xv, yv, model, criterion)
            scheduler.step()
            flor.log("acc1", acc1)
            is_best = acc1 > best_acc1
            best_acc1 = max(acc1, best_acc1)
            state = {"epoch": epoch + 1, "best_acc1": best_acc1}
    print("best", best_acc1)


if __name__ == "__main__":
    main()
