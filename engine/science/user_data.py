"""A user's data set: a folder of images (one sub-folder per class) or an .npz of arrays.

Both are read as data only (Pillow for images, NumPy with allow_pickle=False), bounded in size, and
checked before anything trains: every image the same size and at most MAX_SIDE px, at least two
classes, labels inside the class range, pixel values in [0, 1]. Each problem is one line naming the
file and what is wrong. Without a test split, a seeded `test_share` of each class is held out (the same
split for every run on the file, whatever its seed). Normalisation constants are the training split's
per-channel mean and standard deviation.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from engine.errors import DataUnavailableError
from engine.science.data import DATASETS, Dataset, DatasetInfo

MAX_SIDE = 128
"""The largest image side a user's data set may have (engine.spec.runspec.IMAGE_VALUES counts it)."""

MAX_ARRAY_BYTES = 8 << 30
"""The most bytes an .npz may unpack to."""

DEFAULT_TEST_SHARE = 0.2
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLIT_SEED = 20260101


def _refuse(where: str, problem: str) -> DataUnavailableError:
    return DataUnavailableError(f"dataset.path: {where}: {problem}")


def _split(x: np.ndarray, y: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out `share` of each class (at least one image, and never a class's last), seeded the same for
    every run."""
    rng = np.random.default_rng(SPLIT_SEED)
    test = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        held = min(len(members) - 1, max(1, round(share * len(members))))
        chosen = rng.permutation(members)[:held]
        test[chosen] = True
    return x[~test], y[~test], x[test], y[test]


def _as_nchw(x: np.ndarray, where: str) -> np.ndarray:
    """(N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3} → (N, C, H, W)."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise _refuse(where, f"x has shape {x.shape}; expected (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or 3")
    if x.shape[2] != x.shape[3] or x.shape[2] > MAX_SIDE or x.shape[2] < 8:
        raise _refuse(where, f"images are {x.shape[2]}×{x.shape[3]}; square, 8 to {MAX_SIDE} px")
    return x


def _as_unit_float(x: np.ndarray, where: str) -> torch.Tensor:
    """uint8 → /255; floats must already lie in [0, 1]."""
    if x.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(x)).float().div_(255.0)
    if not np.issubdtype(x.dtype, np.floating):
        raise _refuse(where, f"x is {x.dtype}; give uint8 (0–255) or floats in [0, 1]")
    if not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0:
        raise _refuse(where, f"x holds values in [{np.nanmin(x):.3g}, {np.nanmax(x):.3g}]; floats must lie in [0, 1]")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _labels(y: np.ndarray, classes: int, where: str) -> torch.Tensor:
    if not np.issubdtype(y.dtype, np.integer) or y.ndim != 1:
        raise _refuse(where, f"y is {y.dtype} of shape {y.shape}; expected one integer label per image")
    bad = (y < 0) | (y >= classes)
    if bad.any():
        raise _refuse(
            where, f"label {int(y[bad][0])} is out of range: {classes} classes take labels 0 to {classes - 1}"
        )
    return torch.from_numpy(y.astype(np.int64))


def _dataset(
    splits: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], classes: tuple[str, ...], where: str
) -> Dataset:
    """Checked tensors and constants from numpy splits (x_train, y_train, x_test, y_test)."""
    x_train = _as_unit_float(_as_nchw(splits[0], where), where)
    y_train = _labels(splits[1], len(classes), where)
    x_test = _as_unit_float(_as_nchw(splits[2], where), where)
    y_test = _labels(splits[3], len(classes), where)
    if len(classes) < 2:
        raise _refuse(where, f"{len(classes)} class; a classifier needs at least two")
    if len(x_test) == 0:
        raise _refuse(where, "the test split is empty (each class needs two images to hold one out)")
    missing = sorted(set(range(len(classes))) - set(y_train.unique().tolist()))
    if missing:
        raise _refuse(where, f"class {classes[missing[0]]!r} has no training image")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise _refuse(where, f"train images are {tuple(x_train.shape[1:])}, test images {tuple(x_test.shape[1:])}")
    mean = tuple(float(v) for v in x_train.mean(dim=(0, 2, 3)))
    std = tuple(max(float(v), 1e-3) for v in x_train.std(dim=(0, 2, 3)))
    info = DatasetInfo(x_train.shape[1], x_train.shape[2], len(classes), mean, std, classes)
    return Dataset(x_train, y_train, x_test, y_test, info)


# --- .npz arrays -------------------------------------------------------------------------------------------------


def _npz_arrays(path: Path) -> dict[str, np.ndarray]:
    """The file's arrays, read without pickle after checking how large they unpack."""
    where = path.name
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        raise _refuse(where, "not an .npz file (numpy.savez / savez_compressed)") from None
    if unpacked > MAX_ARRAY_BYTES:
        raise _refuse(where, f"unpacks to {unpacked / 2**30:.1f} GiB, above {MAX_ARRAY_BYTES >> 30} GiB")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except ValueError as exc:  # object arrays need pickle: refused, never unpickled
        raise _refuse(where, f"cannot be read without pickle ({str(exc)[:80]}); save plain numeric arrays") from None


def load_arrays(path: Path, test_share: float | None = None) -> Dataset:
    """x and y (one split, held out by `test_share`), or x_train, y_train, x_test, y_test; optional
    `classes` (names, in label order)."""
    where, arrays = path.name, _npz_arrays(path)
    if {"x_train", "y_train", "x_test", "y_test"} <= arrays.keys():
        x_train, y_train, x_test, y_test = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    elif {"x", "y"} <= arrays.keys():
        x_train, y_train, x_test, y_test = arrays["x"], arrays["y"], arrays["x"][:0], arrays["y"][:0]
    else:
        raise _refuse(where, f"has arrays {sorted(arrays)[:8]}; expected x and y, or x_train, y_train, x_test, y_test")
    for x, y, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(x) != len(y):
            raise _refuse(where, f"{split}: {len(x)} images but {len(y)} labels")
        _labels(y, 2**31, where)  # integers, one per image, none negative
    if len(x_test) == 0:
        x_train, y_train, x_test, y_test = _split(x_train, y_train, test_share or DEFAULT_TEST_SHARE)
    names = arrays.get("classes")
    if names is not None:
        classes = tuple(str(name) for name in names.reshape(-1))
    else:
        classes = tuple(f"class {i}" for i in range(int(np.concatenate([y_train, y_test]).max()) + 1))
    return _dataset((x_train, y_train, x_test, y_test), classes, where)


# --- a folder of images ------------------------------------------------------------------------------------------


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_images(folders: list[Path], where: str) -> tuple[np.ndarray, np.ndarray]:
    """Every image of each class folder (label = folder index), as uint8 (N, C, H, W)."""
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415  only for a folder of images

    images, labels, first = [], [], None
    for label, folder in enumerate(folders):
        for file in sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES):
            try:
                with Image.open(file) as image:
                    mode = "L" if image.mode in ("1", "L", "I;16", "I") else "RGB"
                    pixels = np.asarray(image.convert(mode))
            except (UnidentifiedImageError, OSError):
                raise _refuse(f"{where}/{folder.name}/{file.name}", "not an image Pillow can read") from None
            shape = pixels.shape
            first = first or (shape, file)
            if shape != first[0]:
                raise _refuse(
                    where,
                    f"{folder.name}/{file.name} is {shape}, {first[1].parent.name}/{first[1].name} {first[0]}; "
                    "resize them alike",
                )
            images.append(pixels)
            labels.append(label)
    if not images:
        raise _refuse(where, f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class folders")
    return np.stack(images), np.array(labels, dtype=np.int64)


def load_folder(path: Path, test_share: float | None = None) -> Dataset:
    """`path/train/<class>/…` and `path/test/<class>/…`, or `path/<class>/…` with `test_share` held out."""
    where = path.name
    if not path.is_dir():
        raise _refuse(where, "not a folder")
    if (path / "train").is_dir() and (path / "test").is_dir():
        train_folders, test_folders = _class_folders(path / "train"), _class_folders(path / "test")
        names = tuple(f.name for f in train_folders)
        if tuple(f.name for f in test_folders) != names:
            raise _refuse(
                where, f"train/ has classes {list(names)[:6]}, test/ has {[f.name for f in test_folders][:6]}"
            )
        splits = (*_read_images(train_folders, f"{where}/train"), *_read_images(test_folders, f"{where}/test"))
    else:
        folders = _class_folders(path)
        names = tuple(f.name for f in folders)
        if len(folders) < 2:
            raise _refuse(
                where, f"{len(folders)} class folder; put each class's images in its own sub-folder (at least two)"
            )
        splits = _split(*_read_images(folders, where), test_share or DEFAULT_TEST_SHARE)
    return _dataset(splits, names, where)


@DATASETS.register("folder")
def folder(path: Path, test_share: float | None = None) -> Dataset:
    """Your images: a folder with one sub-folder per class (train/ and test/ splits, or a held-out share)."""
    return load_folder(path, test_share)


@DATASETS.register("arrays")
def arrays(path: Path, test_share: float | None = None) -> Dataset:
    """Your arrays: an .npz with x (uint8, or floats in [0, 1]) and integer labels y, or train/test splits."""
    return load_arrays(path, test_share)


# --- shape without reading the pixels (for a cost probe) ---------------------------------------------------------


def peek_info(name: str, path: Path) -> DatasetInfo | None:
    """A user's data set's shape (channels, side, classes; neutral normalisation) read from its headers,
    without loading its pixels: the first image of a folder, the .npy headers inside an .npz. None where
    the files do not tell (they are refused with a clear message when the run reads them)."""
    try:
        shape = _peek_folder(path) if name == "folder" else _peek_arrays(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    if shape is None:
        return None
    channels, side, classes = shape
    names = tuple(f"class {i}" for i in range(classes))
    return DatasetInfo(channels, side, classes, (0.5,) * channels, (0.25,) * channels, names)


def _peek_folder(path: Path) -> tuple[int, int, int] | None:
    from PIL import Image  # noqa: PLC0415  only for a folder of images

    root = path / "train" if (path / "train").is_dir() else path
    folders = _class_folders(root)
    for folder in folders:
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                with Image.open(file) as image:  # reads the header only
                    channels = 1 if image.mode in ("1", "L", "I;16", "I") else 3
                    return channels, max(image.size), len(folders)
    return None


def _peek_arrays(path: Path) -> tuple[int, int, int] | None:
    with zipfile.ZipFile(path) as archive:
        members = {Path(member).stem: member for member in archive.namelist()}
        key = "x_train" if "x_train" in members else "x"
        with archive.open(members[key]) as stream:
            major, _ = np.lib.format.read_magic(stream)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape = read_header(stream)[0]  # the header only: no pixels, never pickle
    shape = (*shape[:1], 1, *shape[1:]) if len(shape) == 3 else shape
    channels, side = (shape[1], shape[2]) if shape[1] in (1, 3) else (shape[3], shape[1])
    with np.load(path, allow_pickle=False) as npz:  # labels are small: one integer per image
        if "classes" in npz.files:
            return channels, side, len(npz["classes"].reshape(-1))
        labels = [npz[k] for k in ("y", "y_train", "y_test") if k in npz.files]
    return channels, side, int(max(int(y.max()) for y in labels)) + 1
