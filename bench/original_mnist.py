"""The original course's MNIST input pipeline and training epoch, rewritten from COURSE_SPEC.md for comparison only.

Kept as in the original: a torchvision-`MNIST`-style Dataset whose `__getitem__` turns one uint8 image into a
PIL image and runs `ToTensor()` + `Normalize((0.1307,), (0.3081,))` on it, a `DataLoader` that shuffles only
when CUDA is available (D8), and a model ending in `log_softmax` trained with `nll_loss`. Never imported by the
package.
"""
from __future__ import annotations

import time

import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms


class PerSampleMNIST(Dataset):
    """Like torchvision.datasets.MNIST: uint8 images kept in memory, transformed one PIL image at a time."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.images[index].numpy(), mode="L")
        return self.transform(image), int(self.labels[index])


class OriginalNet(nn.Module):
    """784 -> 128 (ReLU) -> 10 with log-softmax, as in the original's batch-size experiment."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(784, 128), nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.fc2(F.relu(self.fc1(x.view(-1, 784)))), dim=1)


def original_loader(images: torch.Tensor, labels: torch.Tensor, batch_size: int) -> DataLoader:
    """The original's loader: shuffle and workers only in the CUDA-only keyword arguments (D8)."""
    cuda = torch.cuda.is_available()
    kwargs = {"num_workers": 1, "pin_memory": True, "shuffle": True} if cuda else {}
    return DataLoader(PerSampleMNIST(images, labels), batch_size=batch_size, **kwargs)


def original_epoch_seconds(images: torch.Tensor, labels: torch.Tensor, batch_size: int, device: str = "cpu") -> float:
    """Seconds for one training epoch of the original pipeline (SGD lr 0.01, momentum 0.9)."""
    torch.manual_seed(1)
    model = OriginalNet().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = original_loader(images, labels, batch_size)
    model.train()
    start = time.perf_counter()
    for data, target in loader:
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start
