"""A user's data set: synthetic images in CIFAR shape as a folder, as an .npz and in CIFAR's binary format;
every refusal one line naming the problem; the run id covers the file's contents."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import DataUnavailableError, SpecError
from engine.science import user_data
from engine.science.data import DATASETS, load_dataset

SCHEDULE = {"name": "one_shot", "targets": [0.5]}


def cifar_like(n: int, seed: int = 0, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (n, 32, 32, 3) images whose class is a coarse colour template, and their labels."""
    rng = np.random.default_rng(seed)
    templates = np.random.default_rng(99).random((classes, 4, 4, 3))
    y = np.arange(n) % classes
    x = np.repeat(np.repeat(templates[y], 8, 1), 8, 2) + 0.2 * rng.standard_normal((n, 32, 32, 3))
    return (np.clip(x, 0, 1) * 255).astype(np.uint8), y


def write_folder(root, x: np.ndarray, y: np.ndarray, names=None) -> None:
    from PIL import Image

    for i, (image, label) in enumerate(zip(x, y)):
        folder = root / (names[label] if names else f"c{label}")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")


def one_line(exc: Exception) -> str:
    text = str(exc)
    assert "\n" not in text and len(text) < 300, text
    return text


def test_an_npz_in_cifar_shape_reads_as_nchw_floats_with_its_own_statistics(tmp_path):
    x_train, y_train = cifar_like(40)
    x_test, y_test = cifar_like(20, seed=1)
    np.savez(tmp_path / "d.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    data = user_data.load_arrays(tmp_path / "d.npz")
    assert data.x_train.shape == (40, 3, 32, 32) and data.x_test.shape == (20, 3, 32, 32)
    assert torch.equal(data.x_train[3], torch.from_numpy(x_train[3].transpose(2, 0, 1)).float() / 255)
    assert data.y_test.tolist() == y_test.tolist() and data.info.num_classes == 10
    assert data.info.mean == pytest.approx(tuple(x_train.reshape(-1, 3).mean(0) / 255), abs=1e-5)


def test_one_split_is_held_out_per_class_the_same_way_every_time(tmp_path):
    x, y = cifar_like(100)
    np.savez_compressed(tmp_path / "d.npz", x=x, y=y, classes=np.array([f"k{i}" for i in range(10)]))
    first, again = user_data.load_arrays(tmp_path / "d.npz", 0.3), user_data.load_arrays(tmp_path / "d.npz", 0.3)
    assert len(first.x_test) == 30 and first.y_test.bincount().tolist() == [3] * 10
    assert torch.equal(first.x_test, again.x_test) and first.info.classes[2] == "k2"


def test_a_folder_with_train_and_test_reads_its_class_names_in_order(tmp_path):
    names = ["cat", "dog", "emu"]
    x, y = cifar_like(12, classes=3)
    write_folder(tmp_path / "pets" / "train", x, y, names)
    write_folder(tmp_path / "pets" / "test", x[:6], y[:6], names)
    data = user_data.load_folder(tmp_path / "pets")
    assert data.info.classes == ("cat", "dog", "emu") and data.x_train.shape == (12, 3, 32, 32)
    assert len(data.x_test) == 6 and sorted(data.y_train.tolist()) == sorted(y.tolist())


def test_a_grey_folder_without_a_test_split_holds_out_a_share(tmp_path):
    x, y = cifar_like(20, classes=2)
    write_folder(tmp_path / "grey", x[..., 0], y)
    data = user_data.load_folder(tmp_path / "grey", 0.5)
    assert data.info.channels == 1 and len(data.x_test) == 10


def test_cifar_binary_batches_of_synthetic_images_load_as_cifar10(cache):
    from engine.science import data as datasets

    folder = datasets.data_dir() / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for i, name in enumerate([f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]):
        x, y = cifar_like(10, seed=i)
        records = np.concatenate([y[:, None], x.transpose(0, 3, 1, 2).reshape(10, -1)], axis=1).astype(np.uint8)
        records.tofile(folder / name)
    data = DATASETS.create("cifar10")
    assert data.x_train.shape == (50, 3, 32, 32) and data.info.classes[0] == "airplane"


@pytest.mark.parametrize(
    ("arrays", "problem"),
    [
        ({"x": cifar_like(10)[0], "y": np.zeros(10, dtype=np.int64)}, "1 class"),
        ({"x": cifar_like(10)[0], "y": np.arange(10) - 1}, "label -1 is out of range"),
        ({"x": cifar_like(10)[0], "y": np.arange(10), "classes": np.array(["a", "b"])}, "label 2 is out of range"),
        ({"x": cifar_like(10)[0], "y": np.arange(9)}, "10 images but 9 labels"),
        ({"x": cifar_like(10)[0].astype(np.float32), "y": np.arange(10)}, "must lie in [0, 1]"),
        ({"x": np.zeros((10, 5, 32, 32), np.uint8), "y": np.arange(10)}, "expected (N, H, W)"),
        ({"x": np.zeros((10, 200, 200), np.uint8), "y": np.arange(10)}, "square, 8 to 128 px"),
        ({"images": np.zeros((10, 32, 32), np.uint8)}, "expected x and y"),
        ({"x": cifar_like(10)[0], "y": np.arange(10).astype(np.float32)}, "expected one integer label"),
    ],
)
def test_bad_arrays_are_refused_in_one_line_naming_the_problem(tmp_path, arrays, problem):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataUnavailableError) as info:
        user_data.load_arrays(tmp_path / "bad.npz")
    assert problem in one_line(info.value) and "bad.npz" in str(info.value)


def test_an_npz_holding_a_pickled_object_is_refused_unread(tmp_path):
    np.savez(tmp_path / "evil.npz", x=np.array([object()], dtype=object), y=np.arange(1))
    with pytest.raises(DataUnavailableError, match="without pickle"):
        user_data.load_arrays(tmp_path / "evil.npz")


def test_a_text_file_is_not_an_npz(tmp_path):
    (tmp_path / "notes.npz").write_text("hello")
    with pytest.raises(DataUnavailableError, match="not an .npz file"):
        user_data.load_arrays(tmp_path / "notes.npz")


def test_a_folder_with_one_class_or_mixed_sizes_is_refused(tmp_path):
    x, y = cifar_like(4, classes=1)
    write_folder(tmp_path / "one", x, y)
    with pytest.raises(DataUnavailableError, match="at least two"):
        user_data.load_folder(tmp_path / "one")
    from PIL import Image

    x, y = cifar_like(4, classes=2)
    write_folder(tmp_path / "mixed", x, y)
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(tmp_path / "mixed" / "c1" / "odd.png")
    with pytest.raises(DataUnavailableError, match="resize them alike") as info:
        user_data.load_folder(tmp_path / "mixed")
    one_line(info.value)


def test_a_spec_pins_the_file_so_that_a_changed_file_is_a_new_run_and_an_old_run_refuses_it(cache):
    from engine import api
    from engine.science import data as datasets

    x, y = cifar_like(40)
    path = datasets.data_dir() / "mine.npz"
    np.savez(path, x=x, y=y)
    tree = {"dataset": {"name": "arrays", "path": "mine.npz"}, "schedule": SCHEDULE}
    first = api.validate_tree(tree)
    assert first.dataset.sha256 is not None and first.dataset.sha256 in first.canonical_json()
    np.savez(path, x=x[::-1].copy(), y=y[::-1].copy())
    second = api.validate_tree(tree)
    assert second.run_id() != first.run_id()
    with pytest.raises(DataUnavailableError, match="changed since the run was submitted"):
        load_dataset("arrays", "mine.npz", first.dataset.sha256)


@pytest.mark.parametrize("path", ["../outside.npz", "/etc/passwd", "a/../../b.npz", "~/x.npz", "x\\y.npz"])
def test_a_path_outside_the_data_folder_is_refused_before_any_file_is_touched(path):
    from engine.spec.runspec import validate

    with pytest.raises(SpecError, match=r"dataset\.path: .* is not a relative path"):
        validate({"dataset": {"name": "arrays", "path": path}, "schedule": SCHEDULE})


def test_a_missing_file_names_the_field_and_where_to_put_it(cache):
    from engine import api

    with pytest.raises(SpecError, match=r"dataset\.path: gone\.npz is not in the data folder") as info:
        api.validate_tree({"dataset": {"name": "arrays", "path": "gone.npz"}, "schedule": SCHEDULE})
    one_line(info.value)


def test_registered_data_sets_take_no_path_and_user_ones_need_one():
    from engine.spec.runspec import validate

    with pytest.raises(SpecError, match="dataset.path: dataset mnist is registered"):
        validate({"dataset": {"name": "mnist", "path": "x.npz"}, "schedule": SCHEDULE})
    with pytest.raises(SpecError, match="dataset.path: dataset folder reads a folder"):
        validate({"dataset": {"name": "folder"}, "schedule": SCHEDULE})


def test_augmentation_is_on_by_default_where_it_is_standard_and_can_be_turned_off():
    from engine.spec.runspec import validate

    def augmentation(dataset):
        return validate({"dataset": dataset, "schedule": SCHEDULE}).dataset.augmentation()

    assert augmentation({"name": "cifar10"}) == "crop_flip" and augmentation({"name": "svhn"}) == "crop"
    assert augmentation({"name": "cifar10", "augment": False}) is None
    assert augmentation({"name": "fashion_mnist"}) is None
    assert augmentation({"name": "arrays", "path": "x.npz", "augment": True}) == "crop_flip"


def test_the_crop_is_torchvisions_random_crop_with_4_pixel_zero_padding_and_the_flip_mirrors():
    import torch.nn.functional as F

    from engine.science.training import augment_batch

    x = torch.rand(6, 3, 8, 8)
    generator = torch.Generator().manual_seed(5)
    out = augment_batch(x, "crop_flip", generator)
    replay = torch.Generator().manual_seed(5)
    offsets = torch.randint(0, 9, (6, 2), generator=replay)
    flips = torch.rand(6, generator=replay) < 0.5
    padded = F.pad(x, (4, 4, 4, 4))
    for i in range(6):
        window = padded[i, :, offsets[i, 0] : offsets[i, 0] + 8, offsets[i, 1] : offsets[i, 1] + 8]
        assert torch.equal(out[i], window.flip(2) if flips[i] else window)
    assert augment_batch(x, None, generator) is x
