"""Small architectures for the synthetic zoo: a plain CNN, a ResNet-style net, an MLP-Mixer.

Each returns a ``(backbone, head)`` pair so that the adapter can expose penultimate features
and the last linear layer.
"""

from __future__ import annotations

import torch
from torch import nn


class PlainCNN(nn.Module):
    """Three conv-BN-ReLU blocks with max pooling, then global average pooling."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * w),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1, bias=False),
            nn.BatchNorm2d(4 * w),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_dim = 4 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A ResNet-style net: stem plus three stages of basic blocks (strides 1, 2, 2)."""

    def __init__(self, width: int = 16, blocks_per_stage: int = 1) -> None:
        super().__init__()
        w = width
        layers: list[nn.Module] = [
            nn.Conv2d(3, w, 3, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
        ]
        cin = w
        for i, cout in enumerate((w, 2 * w, 4 * w)):
            for b in range(blocks_per_stage):
                layers.append(BasicBlock(cin, cout, stride=(1 if i == 0 or b else 2)))
                cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.out_dim = 4 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class MixerBlock(nn.Module):
    def __init__(self, n_tokens: int, dim: int, token_hidden: int, channel_hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(
            nn.Linear(n_tokens, token_hidden), nn.GELU(), nn.Linear(token_hidden, n_tokens)
        )
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mlp = nn.Sequential(
            nn.Linear(dim, channel_hidden), nn.GELU(), nn.Linear(channel_hidden, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class MLPMixer(nn.Module):
    """MLP-Mixer (Tolstikhin et al. 2021) with 4x4 patches for 32 px inputs."""

    def __init__(self, dim: int = 64, depth: int = 4, patch: int = 4, image_size: int = 32) -> None:
        super().__init__()
        n_tokens = (image_size // patch) ** 2
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        self.blocks = nn.Sequential(
            *[MixerBlock(n_tokens, dim, n_tokens, 2 * dim) for _ in range(depth)]
        )
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch(x).flatten(2).transpose(1, 2)
        return self.norm(self.blocks(x)).mean(dim=1)


ARCHITECTURES = ("cnn", "resnet", "mixer")


def build_architecture(
    arch: str, width: int, n_classes: int, image_size: int = 32
) -> tuple[nn.Module, nn.Linear]:
    """(backbone, head) for a zoo architecture name."""
    backbone: nn.Module
    if arch == "cnn":
        backbone = PlainCNN(width)
    elif arch == "resnet":
        backbone = SmallResNet(width)
    elif arch == "mixer":
        backbone = MLPMixer(dim=width, image_size=image_size)
    else:
        raise ValueError(
            f"unknown zoo architecture {arch!r}; available: {', '.join(ARCHITECTURES)}"
        )
    return backbone, nn.Linear(backbone.out_dim, n_classes)
