"""The original course's Animal Faces input pipeline and training loop (module 3), reproduced for comparison only.

It runs the original's own code path: `torchvision.datasets.ImageFolder(root/'train', transform=...)` itself (one
file opened and decoded by PIL and converted to RGB per `__getitem__`), the transform `Compose([ToTensor(),
Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])`, a `DataLoader` at batch 128, and an MLP that flattens the image
and returns log-probabilities, trained with `F.nll_loss` and SGD with momentum. Not reproduced: the original's
loader worker processes (`num_workers`); here both pipelines run in one process on one core. Never imported by
the package.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import ImageFolder


def extract(archive: str | Path, folder: str | Path) -> Path:
    """Original "Download and unzip": unpack the image archive into `folder` and return it (ImageFolder reads files)."""
    with zipfile.ZipFile(archive) as source:
        source.extractall(folder)
    return Path(folder)


def original_dataset(root: str | Path) -> ImageFolder:
    """Original dataset: `ImageFolder(data_path/'train', transform=train_transform)` with ToTensor + Normalize 0.5."""
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    return ImageFolder(str(root), transform=transform)


class AnimalNetOriginal(nn.Module):
    """Original `Animal_Net`: flatten, 3072 -> 128 -> 32 -> 3 with ReLU, `F.log_softmax` output."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(3072, 128), nn.Linear(128, 32), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(x.shape[0], -1)
        return F.log_softmax(self.fc3(F.relu(self.fc2(F.relu(self.fc1(x))))), dim=1)


def train_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer) -> int:
    """Original `train(args, model, device, train_loader, optimizer, ...)` without a regulariser: zero_grad,
    forward, `F.nll_loss`, backward, step; returns the number of images seen."""
    model.train()
    seen = 0
    for data, target in loader:
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
        seen += len(target)
    return seen


def train_original(dataset: ImageFolder, epochs: int, batch_size: int = 128, seed: int = 90108) -> int:
    """Original `main(...)` training part: seed, loader (shuffled), Animal_Net, SGD lr 5e-3 momentum 0.9, `epochs`
    epochs (the per-epoch accuracy passes over the loaders are left out of this timing); returns images seen."""
    torch.manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=0)
    model = AnimalNetOriginal()
    optimizer = torch.optim.SGD(model.parameters(), lr=5e-3, momentum=0.9)
    return sum(train_epoch(model, loader, optimizer) for _ in range(epochs))


def original_distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                               alpha: float, T: float) -> torch.Tensor:
    """Original knowledge-distillation loss: `nn.KLDivLoss()` with its default reduction ('mean', which averages
    over classes as well as examples: D15) on log_softmax(student / T) vs softmax(teacher / T), times
    alpha * T * T, plus (1 - alpha) * the hard-label loss on the log-probabilities."""
    soft = nn.KLDivLoss()(F.log_softmax(student_logits / T, dim=1), F.softmax(teacher_logits / T, dim=1))
    hard = F.nll_loss(F.log_softmax(student_logits, dim=1), targets)
    return soft * (alpha * T * T) + hard * (1.0 - alpha)
