"""The original course's MNIST input pipeline and training epoch (module 2), reproduced for comparison only.

It runs the original's own code path: `torchvision.datasets.MNIST` itself (uint8 images in memory, one PIL image
and one `ToTensor()` + `Normalize((0.1307,), (0.3081,))` per `__getitem__`), a `DataLoader` that gets `shuffle`,
`num_workers` and `pin_memory` only in the CUDA-only keyword arguments (D8), a 784-128-10 net ending in
`log_softmax` trained with `F.nll_loss` and SGD. The IDX files come from the offline mirror (or the cache), are
decompressed into torchvision's folder layout, and torchvision reads them as it does after its own download.
Never imported by the package.
"""
from __future__ import annotations

import gzip
import shutil
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


def torchvision_root(folder: str | Path) -> Path:
    """Put the four upstream IDX files, decompressed, where `datasets.MNIST(folder)` looks after a download."""
    from twdl_helpers.data.fetch import locate
    from twdl_helpers.data.mnist import MNIST_FILES

    raw = Path(folder) / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in MNIST_NAMES:
        target = raw / name
        if not target.is_file():
            with gzip.open(locate(MNIST_FILES[name + ".gz"]), "rb") as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
    return Path(folder)


def original_dataset(root: str | Path, train: bool = True) -> datasets.MNIST:
    """Original "Data loading": `datasets.MNIST(root, train, transform=Compose([ToTensor(), Normalize(...)]))`."""
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    return datasets.MNIST(str(root), train=train, download=False, transform=transform)


class OriginalNet(nn.Module):
    """Original batch-size experiment's net: 784 -> 128 (ReLU) -> 10 with log-softmax."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(784, 128), nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.fc2(F.relu(self.fc1(x.view(-1, 784)))), dim=1)


def original_loader(dataset, batch_size: int) -> DataLoader:
    """Original loader: `kwargs = {'num_workers': 1, 'pin_memory': True, 'shuffle': True} if use_cuda else {}` (D8)."""
    cuda = torch.cuda.is_available()
    kwargs = {"num_workers": 1, "pin_memory": True, "shuffle": True} if cuda else {}
    return DataLoader(dataset, batch_size=batch_size, **kwargs)


def train_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, device: str = "cpu") -> None:
    """Original `train(args, model, device, train_loader, optimizer, epoch)`: batches moved with `.to(device)`,
    `F.nll_loss` on the log-probabilities, SGD step (its periodic loss print is left out)."""
    model.train()
    for data, target in loader:
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()


def original_epoch_seconds(dataset, batch_size: int, device: str = "cpu", clock=time.perf_counter) -> float:
    """Seconds (by `clock`) for one training epoch of the original pipeline (SGD lr 0.01, momentum 0.9, seed 1)."""
    torch.manual_seed(1)
    model = OriginalNet().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = original_loader(dataset, batch_size)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = clock()
    train_epoch(model, loader, optimizer, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return clock() - start
