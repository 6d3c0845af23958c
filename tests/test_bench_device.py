"""The GPU path's bench (`python -m bench --device cuda`), run here on the CPU with a tiny model: every
figure it prints comes out, the surface it times agrees with the torchattacks loop by the paired test, and
a device this machine lacks is refused before anything is measured."""

from __future__ import annotations

import pytest
import torch

from bench import device


def test_a_missing_cuda_device_is_refused_with_the_flag_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="--device cuda"):
        device.resolve("cuda")
    with pytest.raises(SystemExit, match="'cpu' or 'cuda'"):
        device.resolve("meta")
    assert device.resolve("cpu") == torch.device("cpu")


def test_the_device_surface_matches_the_torchattacks_loop_on_the_same_device(tiny_cnn, synthetic):
    x, y = synthetic.x_test[:60], synthetic.y_test[:60]
    figures = device.surface(torch.device("cpu"), [tiny_cnn], x, y)
    assert figures["torchattacks_s"] > 0 and figures["ours_s"] > 0
    assert figures["significant_over_pt"] <= 0  # never significantly more robust than the plain attack


def test_certification_and_training_throughput_are_measured(tiny_cnn, synthetic):
    cpu = torch.device("cpu")
    assert device.certification_throughput(cpu, tiny_cnn, synthetic.x_test, images=2, samples=50) > 0
    result, seconds = device.synchronised(cpu, lambda: 7)
    assert result == 7 and seconds >= 0
