"""Standard architectures by name: `torchvision:<builder>` and `timm:<model>`, adapted to a data set.

Built without downloaded weights and adapted the way the CIFAR literature adapts ImageNet networks:
the data set's input channels and classes; on small images (at most SMALL_IMAGE px) a 3×3 stride-1
first convolution and no max-pool in the stem, so a 32 px image is not reduced to 8 px before the first
block (He et al.'s CIFAR ResNets; kuangliu/pytorch-cifar; HYDRA's own resnet18 for CIFAR); and the
project's Normalize layer in front, so attacks see [0, 1] inputs. `width` < 1 thins every hidden layer
uniformly with Torch-Pruning's dependency graph, so coupled channels (residual additions, concatenations)
stay consistent; the input channels and the classifier's outputs are kept.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from engine.errors import SpecError
from engine.science.data import DatasetInfo
from engine.science.normalize import Normalize

SOURCES = ("torchvision", "timm")
SMALL_IMAGE = 32
"""Inputs at most this many pixels wide get the small-image stem."""


def split_name(name: str) -> tuple[str, str] | None:
    """'torchvision:resnet18' → ('torchvision', 'resnet18'); None for a name without a known source."""
    source, sep, arch = name.partition(":")
    return (source, arch) if sep and source in SOURCES and arch else None


def exists(name: str) -> bool:
    """Whether `name` is a torchvision classification builder or a timm model (no weights needed)."""
    parts = split_name(name)
    if parts is None:
        return False
    source, arch = parts
    if source == "torchvision":
        import torchvision  # noqa: PLC0415  the builders: only for a torchvision: name

        return arch in torchvision.models.list_models(module=torchvision.models)
    try:
        import timm  # noqa: PLC0415  optional, 0.7 s to import: only for a timm: name
    except ImportError:
        return False
    return bool(timm.is_model(arch))


def unknown_hint(name: str) -> str:
    """Why `name` is not an architecture, in one line (what to type instead)."""
    parts = split_name(name)
    if parts and parts[0] == "timm":
        try:
            import timm  # noqa: F401, PLC0415  only to say whether timm is installed
        except ImportError:
            return f"{name}: timm is not installed; `pip install timm` (or use torchvision:<builder>)"
        return f"{name}: timm has no model {parts[1]!r} (timm.list_models() lists them)"
    if parts:
        return f"{name}: torchvision has no classification builder {parts[1]!r} (torchvision.models.list_models())"
    return ""


def build(name: str, info: DatasetInfo) -> nn.Module:
    """The named architecture for the data set: Normalize → the network, adapted (see the module's doc)."""
    source, arch = split_name(name) or ("", "")
    net = _torchvision(arch, info) if source == "torchvision" else _timm(arch, info)
    if info.size <= SMALL_IMAGE:
        small_image_stem(net)
        small_image_head(net)
    example = torch.rand(2, info.channels, info.size, info.size)
    _check_forward(name, net, example, info)
    return nn.Sequential(OrderedDict([("norm", Normalize(info.mean, info.std)), ("net", net)]))


def _torchvision(arch: str, info: DatasetInfo) -> nn.Module:
    import torchvision  # noqa: PLC0415  the builders: only for a torchvision: name

    kwargs = {"aux_logits": False, "init_weights": True} if arch in ("googlenet", "inception_v3") else {}
    net = torchvision.models.get_model(arch, weights=None, num_classes=info.num_classes, **kwargs)
    first = first_conv(net)
    if first is not None and first[1].in_channels != info.channels:
        _replace(net, first[0], _conv_like(first[1], in_channels=info.channels))
    return net


def _timm(arch: str, info: DatasetInfo) -> nn.Module:
    import timm  # noqa: PLC0415  optional, 0.7 s to import: only for a timm: name

    return timm.create_model(arch, pretrained=False, num_classes=info.num_classes, in_chans=info.channels)


def first_conv(net: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """The first Conv2d in module order, with its name."""
    return next(((n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d)), None)


def small_image_stem(net: nn.Module) -> None:
    """A large or strided first convolution becomes 3×3 stride 1, and a max-pool right after it goes."""
    first = first_conv(net)
    if first is None:
        return
    name, conv = first
    if conv.kernel_size[0] <= 3 and conv.stride[0] == 1:
        return  # already a small-image stem (VGG): its pools are the network's own
    _replace(net, name, _conv_like(conv, kernel_size=3, stride=1, padding=1))
    convs_seen = 0
    for module_name, module in list(net.named_modules()):
        convs_seen += isinstance(module, nn.Conv2d)
        if convs_seen >= 2:
            return
        if isinstance(module, nn.MaxPool2d):
            _replace(net, module_name, nn.Identity())
            return


def small_image_head(net: nn.Module) -> None:
    """A global average pool where an adaptive pool to k×k (VGG's 7×7, AlexNet's 6×6) feeds a Linear.

    On a small image the feature map before it is 1×1, so the k×k pool only copies that one value k²
    times; a 1×1 pool and a Linear with k² fewer inputs is the same family of functions (kuangliu's CIFAR
    VGG), at 1/k² of the classifier's first layer (VGG-11: 25,088 × 4,096 weights become 512 × 4,096).
    """
    modules = list(net.named_modules())
    for i, (pool_name, pool) in enumerate(modules):
        if not isinstance(pool, nn.AdaptiveAvgPool2d):
            continue
        size = pool.output_size if isinstance(pool.output_size, tuple) else (pool.output_size,) * 2
        area = (size[0] or 1) * (size[1] or 1)
        linear = next(((n, m) for n, m in modules[i + 1 :] if isinstance(m, nn.Linear)), None)
        if area > 1 and linear is not None and linear[1].in_features % area == 0:
            _replace(net, pool_name, nn.AdaptiveAvgPool2d(1))
            old = linear[1]
            _replace(net, linear[0], nn.Linear(old.in_features // area, old.out_features, bias=old.bias is not None))


def _conv_like(conv: nn.Conv2d, **changes) -> nn.Conv2d:
    """A fresh Conv2d with `conv`'s settings, some changed."""
    settings: dict[str, Any] = {
        "in_channels": conv.in_channels,
        "out_channels": conv.out_channels,
        "kernel_size": conv.kernel_size,
        "stride": conv.stride,
        "padding": conv.padding,
        "dilation": conv.dilation,
        "groups": conv.groups,
        "bias": conv.bias is not None,
    } | changes
    return nn.Conv2d(**settings)


def _replace(root: nn.Module, dotted: str, module: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def _check_forward(name: str, net: nn.Module, example: torch.Tensor, info: DatasetInfo) -> None:
    """SpecError naming the model when it cannot classify the data set's images."""
    try:
        with torch.no_grad():
            logits = net.eval()(example)
    except Exception as exc:  # noqa: BLE001 - any failure means this architecture does not fit this data
        first_line = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise SpecError(
            [f"model.name: {name} cannot take {info.size}×{info.size}×{info.channels} images ({first_line})"]
        ) from None
    if tuple(logits.shape) != (len(example), info.num_classes):
        raise SpecError([f"model.name: {name} returns {tuple(logits.shape)}, not (batch, {info.num_classes})"])


def thin(net: nn.Module, width: float, example: torch.Tensor) -> None:
    """Keep `width` of every hidden layer's channels (Torch-Pruning, coupled channels together).

    Which channels go does not matter at initialisation; the L1 norm picks them deterministically.
    """
    import torch_pruning as tp  # noqa: PLC0415  the dependency graph: only when a width is given

    classifier = [m for m in net.modules() if isinstance(m, nn.Linear)][-1:]
    pruner = tp.pruner.BasePruner(
        net,
        example,
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=1.0 - width,
        ignored_layers=classifier,
    )
    pruner.step()
