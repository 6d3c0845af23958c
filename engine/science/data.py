"""Dataset registry: real loaders that read the datasets' own file formats into tensors.

Every loader returns images as float32 in [0, 1], shape (N, C, H, W), and int64 labels; the
model normalises inside itself. Loading happens once per process (tensor indexing is ~80x
cheaper than a torchvision DataLoader per epoch on this CPU).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from engine.errors import DataUnavailableError
from engine.paths import data_dir
from engine.registry import Registry

if TYPE_CHECKING:
    from engine.spec.runspec import DatasetSpec

log = logging.getLogger(__name__)

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class DatasetInfo:
    """Shape and normalisation constants of a dataset."""

    channels: int
    size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...]


@dataclass(frozen=True)
class Dataset:
    """Both splits as tensors plus the dataset's constants."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    info: DatasetInfo


DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset")


@lru_cache(maxsize=4)
def load_dataset(
    name: str, path: str | None = None, sha256: str | None = None, test_share: float | None = None
) -> Dataset:
    """Load a data set once per process: a registered one by name, or a user's (folder, arrays: registered
    by engine.science.user_data) from `path` inside the data folder, checked against the SHA-256 its run
    recorded."""
    if path is None:
        return DATASETS.create(name)
    from engine.spec.user_files import checked  # noqa: PLC0415  a user's files: only for a user's data set

    return DATASETS.create(name, checked("data", path, sha256, "dataset.path"), test_share)


def data_of(dataset: "DatasetSpec") -> Dataset:
    """The data set a spec's `dataset` section names."""
    return load_dataset(dataset.name, dataset.path, dataset.sha256, dataset.test_share)


def _to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (N, C, H, W) and integer labels → float [0, 1] and int64 tensors."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).float().div_(255.0)
    return x, torch.from_numpy(labels.astype(np.int64))


# MNIST family: IDX files (big-endian header, then raw uint8), optionally gzipped.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzipped or not, into a uint8 array.

    Not torchvision's read_sn3_pascalvincent_tensor: it reads no gzip (Debian ships .gz files) and
    checks a damaged file with `assert`, which `python -O` removes; this one names the file instead.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{path}: expected {shape} values, found {body.size}")
    return body.reshape(shape)


def _find_idx(folder: Path) -> dict[str, Path] | None:
    found = {}
    for key, stem in IDX_FILES.items():
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


Splits = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
"""x_train, y_train, x_test, y_test."""


def load_idx_folder(folder: Path) -> Splits:
    """Read the four IDX files of an MNIST-format folder into (x_train, y_train, x_test, y_test)."""
    files = _find_idx(folder)
    if files is None:
        raise DataUnavailableError(f"no MNIST-format IDX files in {folder}")
    x_train, y_train = _to_tensors(read_idx(files["train_images"])[:, None], read_idx(files["train_labels"]))
    x_test, y_test = _to_tensors(read_idx(files["test_images"])[:, None], read_idx(files["test_labels"]))
    return x_train, y_train, x_test, y_test


def _mnist_like(folder_name: str, torchvision_cls: str, extra: tuple[Path, ...], hint: str) -> Splits:
    raw = data_dir() / folder_name / "raw"
    for folder in (*extra, raw):
        if _find_idx(folder) is not None:
            return load_idx_folder(folder)
    _download(lambda tv: getattr(tv.datasets, torchvision_cls)(str(data_dir()), train=True, download=True), hint)
    _download(lambda tv: getattr(tv.datasets, torchvision_cls)(str(data_dir()), train=False, download=True), hint)
    return load_idx_folder(raw)


def _download(fetch: Callable, hint: str) -> None:
    """Run a torchvision download; turn any failure into one line saying how to get the data.

    torchvision's own chatter is held back so that a failure prints that one line only.
    """
    import torchvision  # noqa: PLC0415  torchvision: about a second to import, only for its data sets

    chatter = io.StringIO()
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            fetch(torchvision)
    except Exception as exc:  # noqa: BLE001 - network, checksum and disk errors all mean "unavailable"
        raise DataUnavailableError(f"{hint} (download failed: {exc.__class__.__name__})") from None


FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DIGITS = tuple(str(d) for d in range(10))


@DATASETS.register("fashion_mnist")
def fashion_mnist() -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017): 70,000 28×28 grey images of 10 clothing classes.

    Read from Debian's `dataset-fashion-mnist` package when installed, else torchvision's download.
    """
    hint = (
        "Fashion-MNIST not found: run `apt-get install dataset-fashion-mnist` "
        f"or put the four IDX files in {data_dir() / 'FashionMNIST' / 'raw'}"
    )
    tensors = _mnist_like("FashionMNIST", "FashionMNIST", (DEBIAN_FASHION_MNIST,), hint)
    return Dataset(*tensors, KNOWN_INFO["fashion_mnist"])


@DATASETS.register("mnist")
def mnist() -> Dataset:
    """MNIST (LeCun et al. 1998): 70,000 28×28 grey handwritten digits, via torchvision's download."""
    hint = f"MNIST not found: put the four IDX files in {data_dir() / 'MNIST' / 'raw'}"
    tensors = _mnist_like("MNIST", "MNIST", (), hint)
    return Dataset(*tensors, KNOWN_INFO["mnist"])


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
KNOWN_INFO = {
    "fashion_mnist": DatasetInfo(1, 28, 10, (0.2860,), (0.3530,), FASHION_CLASSES),
    "mnist": DatasetInfo(1, 28, 10, (0.1307,), (0.3081,), DIGITS),
    "cifar10": DatasetInfo(3, 32, 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), CIFAR10_CLASSES),
    "cifar100": DatasetInfo(
        3, 32, 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), tuple(f"class {i}" for i in range(100))
    ),
    "svhn": DatasetInfo(3, 32, 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), DIGITS),
    "synthetic": DatasetInfo(1, 16, 10, (0.5,), (0.25,), tuple(f"class {i}" for i in range(10))),
}
"""Shape and normalisation constants of the built-in data sets, known without their files (a cost
estimate builds a model from them); a user's folder or arrays are measured when read."""

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"


def read_cifar_bin(path: Path, label_bytes: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR binary batch: records of `label_bytes` label bytes + 3,072 pixel bytes (CHW); the last
    label byte is the class (CIFAR-100's records hold the coarse, then the fine label)."""
    record = label_bytes + 3072
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % record:
        raise ValueError(f"{path}: size is not a multiple of {record:,}-byte records")
    records = raw.reshape(-1, record)
    return records[:, label_bytes:].reshape(-1, 3, 32, 32), records[:, label_bytes - 1]


def _fetch_archive(marker: Path, url: str, md5: str, name: str, what: str) -> None:
    """Download and unpack a data set's archive into the data folder unless `marker` is already there."""
    if not marker.is_file():
        hint = f"{name} not found: put {what} in {marker.parent}"
        _download(lambda tv: tv.datasets.utils.download_and_extract_archive(url, str(data_dir()), md5=md5), hint)


def load_cifar10_folder(folder: Path) -> Splits:
    """Read `data_batch_1..5.bin` and `test_batch.bin` (the binary version, no pickle)."""
    train = [read_cifar_bin(folder / f"data_batch_{i}.bin") for i in range(1, 6)]
    x_train, y_train = _to_tensors(np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]))
    x_test, y_test = _to_tensors(*read_cifar_bin(folder / "test_batch.bin"))
    return x_train, y_train, x_test, y_test


@DATASETS.register("cifar10")
def cifar10() -> Dataset:
    """CIFAR-10 (Krizhevsky 2009): 60,000 32×32 colour images of 10 classes (binary version)."""
    folder = data_dir() / "cifar-10-batches-bin"
    _fetch_archive(folder / "test_batch.bin", CIFAR10_URL, CIFAR10_MD5, "CIFAR-10", "the binary version's .bin files")
    return Dataset(*load_cifar10_folder(folder), KNOWN_INFO["cifar10"])


CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"
CIFAR100_MD5 = "03b5dce01913d631647c71ecec9e9cb8"


@DATASETS.register("cifar100")
def cifar100() -> Dataset:
    """CIFAR-100 (Krizhevsky 2009): 60,000 32×32 colour images of 100 fine classes (binary version)."""
    folder = data_dir() / "cifar-100-binary"
    _fetch_archive(
        folder / "test.bin", CIFAR100_URL, CIFAR100_MD5, "CIFAR-100", "the binary version's train.bin and test.bin"
    )
    x_train, y_train = _to_tensors(*read_cifar_bin(folder / "train.bin", label_bytes=2))
    x_test, y_test = _to_tensors(*read_cifar_bin(folder / "test.bin", label_bytes=2))
    names = folder / "fine_label_names.txt"
    info = KNOWN_INFO["cifar100"]
    if names.is_file():
        info = replace(info, classes=tuple(names.read_text().split()))
    return Dataset(x_train, y_train, x_test, y_test, info)


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN cropped-digits .mat file: X is (32, 32, 3, N), y in 1..10 with 10 meaning 0."""
    from scipy.io import loadmat  # noqa: PLC0415  scipy: only for an SVHN file

    mat = loadmat(str(path))
    images = np.transpose(mat["X"], (3, 2, 0, 1))
    labels = mat["y"].reshape(-1).astype(np.int64) % 10
    return images, labels


@DATASETS.register("svhn")
def svhn() -> Dataset:
    """SVHN cropped digits (Netzer et al. 2011): 32×32 colour house-number digits, 10 classes."""
    folder = data_dir() / "svhn"
    for split in ("train", "test"):
        if not (folder / f"{split}_32x32.mat").is_file():
            hint = f"SVHN not found: put train_32x32.mat and test_32x32.mat in {folder}"
            _download(lambda tv, s=split: tv.datasets.SVHN(str(folder), split=s, download=True), hint)
    x_train, y_train = _to_tensors(*read_svhn_mat(folder / "train_32x32.mat"))
    x_test, y_test = _to_tensors(*read_svhn_mat(folder / "test_32x32.mat"))
    return Dataset(x_train, y_train, x_test, y_test, KNOWN_INFO["svhn"])


@DATASETS.register("synthetic")
def synthetic() -> Dataset:
    """Synthetic: 10 classes of noisy 16×16 grey templates (2,000 train, 500 test); for tests.

    Generated from a fixed seed, so it is the same everywhere and needs no files.
    """
    gen = torch.Generator().manual_seed(1234)
    templates = torch.rand(10, 1, 4, 4, generator=gen)
    templates = torch.nn.functional.interpolate(templates, size=16, mode="bilinear", align_corners=False)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(n) % 10
        noise = 0.35 * torch.randn(n, 1, 16, 16, generator=gen)
        return (templates[labels] + noise).clamp_(0.0, 1.0), labels

    x_train, y_train = sample(2000)
    x_test, y_test = sample(500)
    return Dataset(x_train, y_train, x_test, y_test, KNOWN_INFO["synthetic"])
