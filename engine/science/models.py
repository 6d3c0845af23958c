"""Model registry. Every model starts with its normalisation layer, so inputs stay in [0, 1]
and an ε means the same for every model (the torchattacks and AutoAttack convention)."""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from engine.errors import UnknownNameError
from engine.registry import Registry
from engine.science import architectures
from engine.science.data import DatasetInfo
from engine.science.normalize import Normalize


class ModelRegistry(Registry[Callable[[DatasetInfo], nn.Module]]):
    """The models written here, plus every `torchvision:<builder>` and `timm:<model>` by name
    (engine.science.architectures), which a spec may name like a registered one."""

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name) or (isinstance(name, str) and architectures.exists(name))

    def get(self, name: str) -> Callable[[DatasetInfo], nn.Module]:
        """The factory called `name`: a registered model, or a torchvision/timm architecture."""
        if architectures.split_name(name) and architectures.exists(name):
            return functools.partial(architectures.build, name)
        try:
            return super().get(name)
        except UnknownNameError:
            hint = architectures.unknown_hint(name) or f"unknown model {name[:40]!r}"
            raise UnknownNameError(
                f"{hint}; choose from {self.names()}, torchvision:<builder> or timm:<model>"
            ) from None

    def help(self, name: str) -> str:
        """The entry's docstring, or a line naming the architecture's source."""
        if architectures.split_name(name):
            return f"{name} without downloaded weights, adapted to the data set ({architectures.__name__})"
        return super().help(name)


MODELS = ModelRegistry("model")


def build_model(name: str, info: DatasetInfo, width: float | None = None) -> nn.Module:
    """Build a model for a dataset's shape and normalisation, on the CPU; `width` < 1 keeps that share of
    every hidden layer's channels (architectures.thin)."""
    model = MODELS.create(name, info)
    if width is not None and width < 1.0:
        architectures.thin(model, width, torch.rand(2, info.channels, info.size, info.size))
    return model


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
