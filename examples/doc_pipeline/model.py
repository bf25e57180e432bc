"""The classifier shared by train.py and infer.py: does this page start a document?"""

from __future__ import annotations

import torch
from features import FEATURES
from torch import nn


class PageClassifier(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(len(FEATURES), hidden), nn.ReLU(), nn.Linear(hidden, 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@torch.no_grad()
def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Accuracy, recall and precision of the `first_page` class."""
    net.eval()
    predicted = net(x).argmax(dim=1)
    true_pos = int(((predicted == 1) & (y == 1)).sum())
    return {
        "acc": float((predicted == y).float().mean()),
        "recall": true_pos / max(1, int((y == 1).sum())),
        "precision": true_pos / max(1, int((predicted == 1).sum())),
    }
