"""The pruned model back out (issue 30, item 4): `engine export RUN --step N --format safetensors|onnx`.
The safetensors file holds the checkpoint's weights and masks as stored; the ONNX file's logits equal
PyTorch's within 1e-5 on the run's own evaluation images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from engine import api
from engine.__main__ import main


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """A cache with the finished smoke run; its id."""
    root = tmp_path_factory.mktemp("export-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AER_CACHE_DIR", str(root))
        api.forget_stores()
        run_id = api.run(api.load_spec(preset="smoke"), api.open_store(root))["run_id"]
    api.forget_stores()
    return root, run_id


def export(root, run_id, tmp_path, fmt, step, capsys, monkeypatch):
    monkeypatch.setenv("AER_CACHE_DIR", str(root))
    api.forget_stores()
    out = tmp_path / f"model.{fmt}"
    code = main(
        ["--cache-dir", str(root), "export", run_id[:12], "--format", fmt, "--step", str(step), "--out", str(out)]
    )
    return code, out, capsys.readouterr()


def test_safetensors_holds_the_checkpoints_weights_and_masks(smoke, tmp_path, capsys, monkeypatch):
    root, run_id = smoke
    code, out, _ = export(root, run_id, tmp_path, "safetensors", 2, capsys, monkeypatch)
    assert code == 0
    model = api.load_checkpoint(run_id, 2, api.open_store(root))
    with safe_open(str(out), framework="pt") as handle:
        about = json.loads(handle.metadata()["aer"])
        weights = {k.removeprefix("weights."): handle.get_tensor(k) for k in handle.keys() if k.startswith("weights.")}
        masks = {k.removeprefix("masks."): handle.get_tensor(k) for k in handle.keys() if k.startswith("masks.")}
    assert about["run_id"] == run_id and about["step"] == "2" and about["model"] == "mlp"
    state = model.state_dict()
    assert weights.keys() == state.keys() and all(torch.equal(weights[k], state[k].cpu()) for k in state)
    assert masks, "a pruned checkpoint carries its masks"
    for name, mask in masks.items():
        weight = weights[f"{name}.weight"] if f"{name}.weight" in weights else weights[name]
        assert torch.equal(weight[mask == 0], torch.zeros_like(weight[mask == 0]))  # pruned means zero
    kept = sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    assert 1 - kept == pytest.approx(float(about["sparsity"]), abs=0.02)


def test_onnx_logits_equal_pytorchs(smoke, tmp_path, capsys, monkeypatch):
    import onnxruntime

    root, run_id = smoke
    code, out, _ = export(root, run_id, tmp_path, "onnx", 2, capsys, monkeypatch)
    assert code == 0
    store = api.open_store(root)
    x = api.eval_subset(run_id, store)[0][:64]
    with torch.no_grad():
        expected = api.load_checkpoint(run_id, 2, store).cpu()(x).numpy()
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--format", "onnx"], "--step: give the checkpoint to export as onnx"),
        (["--format", "safetensors", "--step", "9"], "has no checkpoint 9; it has [0, 1, 2]"),
    ],
)
def test_a_model_export_without_a_valid_step_is_one_line(smoke, tmp_path, capsys, monkeypatch, argv, message):
    root, run_id = smoke
    monkeypatch.setenv("AER_CACHE_DIR", str(root))
    api.forget_stores()
    code = main(["--cache-dir", str(root), "export", run_id[:12], *argv, "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


def test_shrunk_export_of_a_filter_pruned_residual_network_predicts_as_the_masked_one(cache, tmp_path):
    from safetensors.torch import load_file

    tree = {
        "dataset": {"name": "synthetic"},
        "model": {"name": "resnet8"},
        "train": {"epochs": 1, "batch_size": 64},
        "prune": {"method": "filter_layer", "batch_size": 64},
        "schedule": {"name": "one_shot", "targets": [0.5]},
        "eval": {"n_samples": 100, "batch_size": 100},
    }
    run_id = api.run(api.validate_tree(tree))["run_id"]
    out = api.export_model(run_id, 1, "safetensors", tmp_path / "small.safetensors", shrunk=True)
    small_state = load_file(str(out))
    masked = api.load_checkpoint(run_id, 1)
    assert sum(t.numel() for t in small_state.values()) < 0.8 * sum(t.numel() for t in masked.state_dict().values())
    onnx = api.export_model(run_id, 1, "onnx", tmp_path / "small.onnx", shrunk=True)
    import onnxruntime

    x, _ = api.eval_subset(run_id)
    session = onnxruntime.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(logits, masked(x).numpy(), atol=1e-4)


def test_shrunk_export_of_weight_pruning_says_there_is_nothing_to_remove(smoke, tmp_path, monkeypatch):
    from engine.errors import SpecError

    root, run_id = smoke
    monkeypatch.setenv("AER_CACHE_DIR", str(root))
    api.forget_stores()
    with pytest.raises(SpecError, match="--shrunk: this checkpoint has no filter that can be removed"):
        api.model_file(run_id, 1, "onnx", shrunk=True)
