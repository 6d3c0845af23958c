"""Model registry. Every model starts with its normalisation layer, so inputs stay in [0, 1]
and an ε means the same for every model (the torchattacks and AutoAttack convention)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from engine.registry import Registry
from engine.science.data import DatasetInfo

MODELS: Registry[Callable[[DatasetInfo], nn.Module]] = Registry("model")


class Normalize(nn.Module):
    """Per-channel (x - mean) / std as the model's first layer; buffers, so they are saved."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def build_model(name: str, info: DatasetInfo) -> nn.Module:
    """Build a registered model for a dataset's shape and normalisation, on the CPU."""
    return MODELS.create(name, info)


def classifier_name(model: nn.Module) -> str:
    """Module name of the final classifier: the last Linear layer."""
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    return names[-1]


def _flat_size(features: nn.Module, info: DatasetInfo) -> int:
    with torch.no_grad():
        return features(torch.zeros(1, info.channels, info.size, info.size)).numel()


def _seq(
    info: DatasetInfo, features: list[tuple[str, nn.Module]], head: Callable[[int], list[tuple[str, nn.Module]]]
) -> nn.Module:
    from collections import OrderedDict

    body = nn.Sequential(OrderedDict(features))
    flat = _flat_size(body, info)
    return nn.Sequential(
        OrderedDict(
            [("norm", Normalize(info.mean, info.std)), ("features", body), ("flatten", nn.Flatten()), *head(flat)]
        )
    )


@MODELS.register("mlp")
def mlp(info: DatasetInfo) -> nn.Module:
    """MLP 784-256-256-10 (for 28×28 inputs): two hidden ReLU layers; ~0.27 M parameters."""
    d_in = info.channels * info.size * info.size
    return _seq(
        info,
        [("identity", nn.Identity())],
        lambda flat: [
            ("fc1", nn.Linear(d_in, 256)),
            ("relu1", nn.ReLU()),
            ("fc2", nn.Linear(256, 256)),
            ("relu2", nn.ReLU()),
            ("fc3", nn.Linear(256, info.num_classes)),
        ],
    )


@MODELS.register("lenet5")
def lenet5(info: DatasetInfo) -> nn.Module:
    """LeNet-5 (LeCun et al. 1998): conv6 5×5 → pool → conv16 5×5 → pool → 120 → 84 → 10."""
    return _seq(
        info,
        [
            ("conv1", nn.Conv2d(info.channels, 6, 5, padding=2)),
            ("relu1", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(6, 16, 5)),
            ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(2)),
        ],
        lambda flat: [
            ("fc1", nn.Linear(flat, 120)),
            ("relu3", nn.ReLU()),
            ("fc2", nn.Linear(120, 84)),
            ("relu4", nn.ReLU()),
            ("fc3", nn.Linear(84, info.num_classes)),
        ],
    )


@MODELS.register("small_cnn")
def small_cnn(info: DatasetInfo) -> nn.Module:
    """Small CNN: conv32 3×3 → pool → conv64 3×3 → pool → fc128 → 10; ~0.42 M parameters on 28×28."""
    return _seq(
        info,
        [
            ("conv1", nn.Conv2d(info.channels, 32, 3, padding=1)),
            ("relu1", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(32, 64, 3, padding=1)),
            ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(2)),
        ],
        lambda flat: [("fc1", nn.Linear(flat, 128)), ("relu3", nn.ReLU()), ("fc2", nn.Linear(128, info.num_classes))],
    )


def _conv_bn(name: str, c_in: int, c_out: int) -> list[tuple[str, nn.Module]]:
    return [
        (f"{name}", nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)),
        (f"{name}_bn", nn.BatchNorm2d(c_out)),
        (f"{name}_relu", nn.ReLU()),
    ]


@MODELS.register("vgg_small")
def vgg_small(info: DatasetInfo) -> nn.Module:
    """VGG-small: conv 32-32-pool-64-64-pool-128-pool with BatchNorm, fc256 → 10."""
    layers = [
        *_conv_bn("conv1", info.channels, 32),
        *_conv_bn("conv2", 32, 32),
        ("pool1", nn.MaxPool2d(2)),
        *_conv_bn("conv3", 32, 64),
        *_conv_bn("conv4", 64, 64),
        ("pool2", nn.MaxPool2d(2)),
        *_conv_bn("conv5", 64, 128),
        ("pool3", nn.MaxPool2d(2)),
    ]
    return _seq(
        info,
        layers,
        lambda flat: [("fc1", nn.Linear(flat, 256)), ("relu_fc", nn.ReLU()), ("fc2", nn.Linear(256, info.num_classes))],
    )


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016) with a 1×1 projection when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet8(nn.Module):
    """ResNet-8: a 16-channel stem and three basic blocks of 16, 32 and 64 channels."""

    def __init__(self, info: DatasetInfo):
        super().__init__()
        self.norm = Normalize(info.mean, info.std)
        self.stem = nn.Sequential(nn.Conv2d(info.channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.layer1 = BasicBlock(16, 16, 1)
        self.layer2 = BasicBlock(16, 32, 2)
        self.layer3 = BasicBlock(32, 64, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, info.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer3(self.layer2(self.layer1(self.stem(self.norm(x)))))
        return self.fc(torch.flatten(self.pool(out), 1))


@MODELS.register("resnet8")
def resnet8(info: DatasetInfo) -> nn.Module:
    """ResNet-8 (16-32-64 channels, BatchNorm, global average pool); ~78 k parameters."""
    return ResNet8(info)
