"""Loaders on small files written in each dataset's real format; the real Fashion-MNIST when present."""

import gzip
import os
import struct

import numpy as np
import pytest
import torch

from engine.errors import DataUnavailableError
from engine.science import data as datasets
from engine.science.data import DATASETS


def write_idx(path, array: np.ndarray, gz: bool) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)


def write_mnist_folder(folder, n_train=12, n_test=5, gz=True) -> dict:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test),
    }
    for name, array in arrays.items():
        write_idx(folder / name, array, gz)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_idx_files(cache, gz):
    arrays = write_mnist_folder(datasets.data_dir() / "MNIST" / "raw", gz=gz)
    data = DATASETS.create("mnist")
    assert data.x_train.shape == (12, 1, 28, 28) and data.x_test.shape == (5, 1, 28, 28)
    assert data.x_train.dtype == torch.float32 and 0 <= data.x_train.min() and data.x_train.max() <= 1
    assert torch.equal(data.x_train[3, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"][3]).float() / 255)
    assert data.y_test.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()


def test_idx_reader_refuses_a_truncated_file(tmp_path):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(struct.pack(">HBB", 0, 8, 3) + struct.pack(">3I", 10, 28, 28) + b"\x00" * 100)
    with pytest.raises(ValueError, match="expected"):
        datasets.read_idx(path)


def test_cifar10_reads_the_binary_batches(cache):
    folder = datasets.data_dir() / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    records = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rec = np.concatenate([rng.integers(0, 10, (4, 1)), rng.integers(0, 256, (4, 3072))], axis=1).astype(np.uint8)
        rec.tofile(folder / name)
        records[name] = rec
    data = DATASETS.create("cifar10")
    assert data.x_train.shape == (20, 3, 32, 32) and data.x_test.shape == (4, 3, 32, 32)
    first = records["data_batch_1.bin"][0]
    assert data.y_train[0] == first[0]
    assert torch.equal(data.x_train[0], torch.from_numpy(first[1:].reshape(3, 32, 32)).float() / 255)


def test_svhn_reads_the_mat_files_and_maps_label_10_to_0(cache):
    from scipy.io import savemat

    folder = datasets.data_dir() / "svhn"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for split, n in (("train", 6), ("test", 3)):
        x = rng.integers(0, 256, (32, 32, 3, n)).astype(np.uint8)
        y = np.array([[10], [1], [2], [3], [9], [10]][:n], dtype=np.uint8)
        savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
    data = DATASETS.create("svhn")
    assert data.x_train.shape == (6, 3, 32, 32) and data.y_train.tolist() == [0, 1, 2, 3, 9, 0]
    assert data.info.channels == 3


def test_a_failed_download_becomes_one_line_saying_how_to_get_the_data():
    def offline(_torchvision):
        raise OSError("Name or service not known")

    with pytest.raises(DataUnavailableError) as info:
        datasets._download(offline, "MNIST not found: put the IDX files in X")
    assert "\n" not in str(info.value) and "MNIST not found" in str(info.value)


def test_synthetic_is_deterministic():
    a, b = DATASETS.create("synthetic"), DATASETS.create("synthetic")
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert a.x_train.shape == (2000, 1, 16, 16) and sorted(a.y_train.unique().tolist()) == list(range(10))


@pytest.mark.skipif(
    not datasets.DEBIAN_FASHION_MNIST.is_dir() and not os.environ.get("CI"),
    reason="Debian's dataset-fashion-mnist is not installed (CI installs it)",
)
def test_real_fashion_mnist_has_its_known_statistics():
    data = datasets.load_dataset("fashion_mnist")
    assert data.x_train.shape == (60000, 1, 28, 28) and data.x_test.shape == (10000, 1, 28, 28)
    assert float(data.x_train.mean()) == pytest.approx(0.2860, abs=1e-3)
    assert float(data.x_train.std()) == pytest.approx(0.3530, abs=1e-3)
    assert data.y_test.bincount().tolist() == [1000] * 10


def test_every_data_set_states_the_size_of_its_test_split():
    from engine.spec.runspec import PATH_DATASETS, TEST_SPLIT_SIZES

    assert set(TEST_SPLIT_SIZES) == set(DATASETS.names()) - set(PATH_DATASETS)
    assert len(DATASETS.get("synthetic")().x_test) == TEST_SPLIT_SIZES["synthetic"]


def test_every_data_set_states_its_classes_and_image_size_for_the_spec():
    from engine.spec.runspec import DATASET_CLASSES, IMAGE_VALUES

    assert set(DATASET_CLASSES) == set(IMAGE_VALUES) == set(DATASETS.names())
    synthetic = DATASETS.get("synthetic")()
    assert synthetic.info.num_classes == DATASET_CLASSES["synthetic"]
    assert synthetic.x_test[0].numel() == IMAGE_VALUES["synthetic"]


def test_cifar100_reads_the_binary_files_fine_label_last(cache):
    folder = datasets.data_dir() / "cifar-100-binary"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for name, n in (("train.bin", 6), ("test.bin", 3)):
        coarse, fine = rng.integers(0, 20, (n, 1)), rng.integers(0, 100, (n, 1))
        np.concatenate([coarse, fine, rng.integers(0, 256, (n, 3072))], axis=1).astype(np.uint8).tofile(folder / name)
        if name == "train.bin":
            expected_fine = fine[:, 0]
    data = DATASETS.create("cifar100")
    assert data.x_train.shape == (6, 3, 32, 32) and data.info.num_classes == 100
    assert data.y_train.tolist() == expected_fine.tolist()
