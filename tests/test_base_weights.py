"""A trained checkpoint as the base: read as weights only, matched strictly, pinned by SHA-256; the
export → import round trip gives the same clean accuracy to the image."""

from __future__ import annotations

import io

import pytest
import torch

from engine import api
from engine.errors import SpecError
from engine.spec.user_files import weights_dir

TINY = {
    "dataset": {"name": "synthetic"},
    "model": {"name": "small_cnn"},
    "train": {"epochs": 1, "batch_size": 64},
    "prune": {"method": "global_magnitude", "batch_size": 64},
    "schedule": {"name": "one_shot", "targets": [0.6], "finetune_steps": 10},
    "eval": {"n_samples": 200, "batch_size": 200, "attacks": [{"name": "fgsm", "eps": [0, 0.05]}]},
}


def saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def test_an_exported_checkpoint_as_the_base_of_a_new_run_predicts_the_same_to_the_image(cache):
    first = api.run(api.validate_tree(TINY))
    exported = api.model_file(first["run_id"], 1, "safetensors")
    relative = api.upload_weights("pruned.safetensors", exported)
    tree = {**TINY, "base": {"weights": relative}, "schedule": {"name": "one_shot", "targets": [0.8]}}
    spec = api.validate_tree(tree)
    assert spec.base.sha256 and spec.base_passes() == 0
    second = api.run(spec)
    assert second["points"][0]["clean_acc"] == first["points"][1]["clean_acc"]
    x, _ = api.eval_subset(second["run_id"])
    with torch.no_grad():
        before = api.load_checkpoint(first["run_id"], 1)(x).argmax(1)
        after = api.load_checkpoint(second["run_id"], 0)(x).argmax(1)
    assert torch.equal(before, after)
    base = api.open_store().base(spec.base_id())
    assert base["train_seconds"] == 0.0 and 0.0 < base["clean_acc"] <= 1.0


def test_a_bare_networks_state_dict_saved_by_torch_loads_with_the_data_sets_normalisation(cache):
    from engine.science.data import load_dataset
    from engine.science.models import build_model
    from engine.science.weights import fit_state

    model = build_model("small_cnn", load_dataset("synthetic").info)
    bare = {k: v for k, v in model.state_dict().items() if not k.startswith("norm.")}
    relative = api.upload_weights("net.pt", saved({"epoch": 3, "state_dict": bare}))
    spec = api.validate_tree({**TINY, "base": {"weights": relative}})
    state = fit_state(model, dict(bare), "net.pt")
    assert torch.equal(state["norm.mean"], model.get_buffer("norm.mean")) and spec.base.weights == relative


def test_a_pickle_that_needs_code_is_refused_in_one_line_and_nothing_is_written(cache):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    with pytest.raises(SpecError) as info:
        api.upload_weights("evil.pt", saved({"weights": Payload()}))
    message = str(info.value)
    assert "\n" not in message and "weights_only=True" in message and "evil.pt" in message
    assert not weights_dir().exists() or not any(weights_dir().rglob("*"))


def test_weights_of_another_architecture_name_the_missing_and_unexpected_keys(cache):
    from engine.science.data import load_dataset
    from engine.science.models import build_model

    mlp = build_model("mlp", load_dataset("synthetic").info)
    relative = api.upload_weights("mlp.pt", saved(mlp.state_dict()))
    spec = api.validate_tree({**TINY, "base": {"weights": relative}})
    with pytest.raises(SpecError, match=r"base\.weights: .* does not fit this architecture: missing features\.conv1"):
        api.run(spec)


def test_a_shape_that_differs_is_named(cache):
    from engine.science.data import load_dataset
    from engine.science.models import build_model
    from engine.science.weights import fit_state

    model = build_model("small_cnn", load_dataset("synthetic").info)
    state = model.state_dict() | {"fc2.weight": torch.zeros(3, 128)}
    with pytest.raises(SpecError, match=r"fc2\.weight \(3, 128\) ≠ \(10, 128\)"):
        fit_state(model, state, "x.pt")


def test_the_run_id_covers_the_files_contents_and_given_weights_skip_training_settings(cache):
    a = api.upload_weights("a.pt", saved({"w": torch.zeros(2)}))
    b = api.upload_weights("b.pt", saved({"w": torch.ones(2)}))
    spec_a = api.validate_tree({**TINY, "base": {"weights": a}})
    spec_b = api.validate_tree({**TINY, "base": {"weights": b}})
    assert spec_a.run_id() != spec_b.run_id() and spec_a.base_id() != spec_b.base_id()
    longer = api.validate_tree({**TINY, "base": {"weights": a}, "train": {"epochs": 9}})
    assert longer.run_id() == spec_a.run_id()  # training settings do nothing to given weights


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("w.exe", b"MZ", "is not a .safetensors / .pt / .pth / .bin file"),
        ("w.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}", "not a readable safetensors file"),
        ("w.pt", b"plain text", "not a plain state dict"),
        ("w.pt", saved([1, 2, 3]), "holds no state dict"),
    ],
)
def test_bad_uploads_are_one_line_each_and_write_nothing(cache, name, data, problem):
    with pytest.raises(SpecError) as info:
        api.upload_weights(name, data)
    assert problem in str(info.value) and "\n" not in str(info.value)
    assert not weights_dir().exists() or not any(weights_dir().rglob("*"))


def test_an_oversized_upload_is_refused_before_it_is_read(cache, monkeypatch):
    from engine.spec import user_files

    monkeypatch.setattr(user_files, "MAX_UPLOAD_BYTES", 100)
    with pytest.raises(SpecError, match="above the 0 MiB a page takes"):
        api.upload_weights("big.safetensors", b"x" * 200)


def test_an_uploaded_npz_is_checked_before_it_is_stored(cache):
    import numpy as np

    from engine.paths import data_dir

    buffer = io.BytesIO()
    np.savez(buffer, x=np.zeros((4, 32, 32), np.uint8), y=np.array([0, 0, 0, 9]))
    buffer_ok = io.BytesIO()
    np.savez(buffer_ok, x=np.zeros((4, 32, 32), np.uint8), y=np.array([0, 1, 0, 1]))
    with pytest.raises(SpecError, match="upload: mine.npz: class 'class 1' has no training image"):
        api.upload_data("mine.npz", buffer.getvalue())
    assert not any(data_dir().rglob("*.npz"))
    relative = api.upload_data("mine.npz", buffer_ok.getvalue())
    assert relative.startswith("uploads/") and (data_dir() / relative).is_file()


def test_the_cli_imports_weights_and_data_and_prints_the_spec_lines(cache, tmp_path, capsys):
    import numpy as np

    from engine.__main__ import main

    weights = tmp_path / "net.pt"
    torch.save({"w": torch.zeros(3)}, weights)
    assert main(["import", str(weights)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("base: {weights: uploads/") and line.endswith(".pt}")
    arrays = tmp_path / "mine.npz"
    np.savez(arrays, x=np.zeros((4, 16, 16), np.uint8), y=np.array([0, 1, 0, 1]))
    assert main(["import", str(arrays)]) == 0
    assert capsys.readouterr().out.startswith("dataset: {name: arrays, path: uploads/")
    evil = tmp_path / "evil.npz"
    np.savez(evil, x=np.array([object()], dtype=object), y=np.arange(1))
    assert main(["import", str(evil)]) == 2
    assert "without pickle" in capsys.readouterr().err
