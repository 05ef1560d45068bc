"""The original Module 3 input pipeline, rewritten from the course spec for benchmarking only (never imported
by the package): an ImageFolder-style dataset that opens and decodes one PNG per `__getitem__`, torchvision
per-sample transforms (ToTensor + Normalize 0.5/0.5), a shuffled DataLoader, and an MLP trained with
log-softmax + NLL and SGD with momentum."""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms


class ImageFolderLike(Dataset):
    """root/<class>/*.png, one PIL decode and transform per sample, as torchvision's ImageFolder does."""

    def __init__(self, root: str | Path) -> None:
        self.classes = sorted(p.name for p in Path(root).iterdir() if p.is_dir())
        self.samples = [(p, i) for i, c in enumerate(self.classes) for p in sorted((Path(root) / c).glob("*.png"))]
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, label = self.samples[index]
        return self.transform(Image.open(path).convert("RGB")), label


class AnimalNetOriginal(nn.Module):
    """3072 -> 128 -> 32 -> 3, ReLU, log-softmax output (the original returns log-probabilities)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(3072, 128), nn.Linear(128, 32), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        return F.log_softmax(self.fc3(F.relu(self.fc2(F.relu(self.fc1(x))))), dim=1)


def train_original(root: str | Path, epochs: int, batch_size: int = 128, seed: int = 90108) -> int:
    """Train for `epochs` through the per-sample pipeline; return the number of images seen."""
    torch.manual_seed(seed)
    loader = DataLoader(ImageFolderLike(root), batch_size=batch_size, shuffle=True, num_workers=0)
    model = AnimalNetOriginal()
    optimizer = torch.optim.SGD(model.parameters(), lr=5e-3, momentum=0.9)
    seen = 0
    for _ in range(epochs):
        model.train()
        for images, labels in loader:
            optimizer.zero_grad()
            loss = F.nll_loss(model(images), labels)
            loss.backward()
            optimizer.step()
            seen += len(labels)
    return seen
