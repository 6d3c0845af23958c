"""FLOPs, compression and speed-up with ShrinkBench's definitions."""

import pytest


def test_flops_follow_the_weight_density():
    from engine.science.data import load_dataset
    from engine.science.efficiency import layer_flops, measure
    from engine.science.models import build_model
    from engine.science.pruning.masks import METHODS, apply_masks, compute_masks, prunable_layers

    data = load_dataset("synthetic")
    model = build_model("mlp", data.info)
    flops = layer_flops(model, data.x_test[:1])
    assert flops["fc1"] == 2 * 256 * 256 and flops[""] == flops["fc1"] + flops["fc2"] + flops["fc3"]
    layers = prunable_layers(model)
    masks = compute_masks(layers, 0.5, METHODS.get("layer_magnitude")())
    apply_masks(layers, masks)
    cost = measure(model, masks, data.x_test[:1])
    assert cost["sparse_flops"] == pytest.approx(flops[""] - 0.5 * (flops["fc1"] + flops["fc2"]), rel=1e-6)


def test_latencies_are_timed_in_turn_and_keep_their_spread():
    import torch

    from engine.science.data import load_dataset
    from engine.science.efficiency import interleaved_latencies, latency_columns
    from engine.science.models import build_model

    data = load_dataset("synthetic")
    model = build_model("mlp", data.info).eval()
    calls: list[str] = []
    model.register_forward_pre_hook(lambda module, args: calls.append("model"))
    other = build_model("mlp", data.info).eval()
    other.register_forward_pre_hook(lambda module, args: calls.append("other"))
    measured = interleaved_latencies([model, other], data.x_test[:1], batch=4, rounds=3, min_run_time=0.001)
    assert len(measured) == 2 and all(m.ms > 0 and m.spread >= 0 for m in measured)
    switches = sum(a != b for a, b in zip(calls, calls[1:]))
    assert switches >= 2 * 3 - 1  # round after round, each model in turn: never one model's rounds in a row
    columns = latency_columns({"": model, "dense_": other}, data.x_test[:1], min_run_time=0.001)
    assert set(columns) == {
        f"{prefix}latency_{kind}_b{batch}"
        for prefix in ("", "dense_")
        for kind in ("ms", "spread")
        for batch in (1, 128)
    }
    assert torch.get_num_threads() >= 1


def test_the_onnx_deployment_path_computes_what_pytorch_computes():
    import torch

    from engine.science.data import load_dataset
    from engine.science.efficiency import OnnxModel, interleaved_latencies, shrunk_model
    from engine.science.models import build_model
    from engine.science.pruning.masks import apply_masks, prunable_layers
    from engine.science.pruning.methods import METHODS
    from engine.science.pruning.structured import norm_followers, silence_dead_channels

    data = load_dataset("synthetic")
    torch.manual_seed(0)
    model = build_model("small_cnn", data.info).eval()
    criterion = METHODS.get("filter_layer")()
    layers = prunable_layers(model, False, criterion.layer_kinds)
    masks = criterion.select(layers, 0.5, None, torch.Generator().manual_seed(0))
    apply_masks(layers, masks)
    silence_dead_channels(layers, masks, norm_followers(model))
    x = data.x_test[:16]
    small = shrunk_model(model, masks, x)
    assert small is not None
    for eager in (model, small):
        deployed = OnnxModel(eager, x)
        with torch.no_grad():
            assert torch.allclose(deployed(x), eager(x), atol=1e-5)  # any batch size: the batch axis is dynamic
    (latency,) = interleaved_latencies([deployed], x, batch=4, rounds=2, min_run_time=0.001)
    assert latency.ms > 0
    options = deployed.session.get_session_options()  # its threads sleep between calls: no spinning into torch's
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_batch_one_is_also_timed_on_one_thread_the_same_choice_for_every_model(monkeypatch):
    """A batch-1 pass of a small model is often fastest on one thread; dense, masked and smaller models
    (eager and ONNX) are all offered the same thread counts and each keeps its best."""
    import torch

    from engine.science import efficiency
    from engine.science.data import load_dataset
    from engine.science.models import build_model

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert efficiency.thread_choices(1) == (2, 1) and efficiency.thread_choices(128) == (2,)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert efficiency.thread_choices(1) == (1,)
    monkeypatch.undo()

    data = load_dataset("synthetic")
    deployed = efficiency.OnnxModel(build_model("mlp", data.info).eval(), data.x_test[:2])
    single = deployed.session_for(1)
    assert single is deployed.session_for(1)  # built once per count
    assert single.get_session_options().intra_op_num_threads == 1
    timed: list[int] = []
    real = efficiency._timer
    monkeypatch.setattr(efficiency, "_timer", lambda m, x, threads: timed.append(threads) or real(m, x, threads))
    monkeypatch.setattr(efficiency, "thread_choices", lambda batch: (2, 1) if batch == 1 else (2,))
    efficiency.interleaved_latencies([deployed, deployed], data.x_test[:1], batch=1, rounds=1, min_run_time=0.001)
    assert timed == [2, 1, 2, 1]
