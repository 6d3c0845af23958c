"""The Runs page's "Your model & data" tab: a standard architecture by name, an uploaded data set and
trained weights as the base, on a preset's pruning and evaluation."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from engine import api
from engine.errors import SpecError

CUSTOM = "another: torchvision:… or timm:…"


def _uploaded(label: str, kind: str, types: list[str], key: str, store: Callable[[str, bytes], str]) -> str | None:
    """An upload stored by its SHA-256 (read and checked first), as the path a spec names it by."""
    upload = st.file_uploader(label, type=types, key=key)
    if upload is None:
        return None
    if upload.size > api.MAX_UPLOAD_BYTES:
        st.error(f"upload: {upload.size / 2**20:,.0f} MiB is above the {api.MAX_UPLOAD_BYTES >> 20} MiB a page takes")
        return None
    try:
        relative = store(upload.name, upload.getvalue())
    except SpecError as exc:
        for line in exc.problems:
            st.error(line)
        return None
    st.caption(f":material/check: stored as `{relative}` ({kind}, read as data only)")
    return relative


def _architecture(models: list[str]) -> dict:
    left, right = st.columns(2)
    choice = left.selectbox("Architecture", [*models, CUSTOM], index=models.index("small_cnn"), key="bring-model")
    if choice == CUSTOM:
        choice = left.text_input(
            "Name",
            "torchvision:resnet18",
            key="bring-model-name",
            help="Any torchvision classification builder (torchvision:resnet18, torchvision:vgg11, …) or timm model "
            "(timm:resnet18, …), built without downloaded weights, with a small-image stem on 28–32 px inputs.",
        )
    width = right.select_slider(
        "Width (share of each hidden layer's channels)",
        [0.0625, 0.125, 0.25, 0.5, 1.0],
        value=1.0 if choice in models else 0.125,
        key="bring-width" if choice in models else "bring-width-named",  # each keeps its own default
        help="A ResNet-18 at full width has 11 M weights; ⅛ keeps 1/64 of them, which trains on a laptop.",
    )
    return {"name": choice, **({"width": width} if width < 1.0 else {})}


def _dataset(datasets: list[str]) -> dict:
    registered = [name for name in datasets if name not in ("folder", "arrays")]
    source = st.radio("Data", ["a registered data set", "my .npz"], horizontal=True, key="bring-data-source")
    if source == "a registered data set":
        return {"name": st.selectbox("Data set", registered, key="bring-dataset")}
    st.caption(
        "An .npz with `x` (N images: uint8, or floats in [0, 1]; N×H×W, N×H×W×C or N×C×H×W) and integer labels "
        "`y`, or `x_train`, `y_train`, `x_test`, `y_test`; optional `classes` (names). Without a test split, "
        "a fifth of each class is held out. A folder of images goes in the data folder: see docs/specs.md."
    )
    path = _uploaded("Data set (.npz)", "data set", ["npz"], "bring-npz", api.upload_data)
    return {"name": "arrays", "path": path} if path else {}


def bring_your_own(models: list[str], datasets: list[str], submit: Callable[[dict], None]) -> None:
    """The tab: architecture, data and optional weights over a preset; the estimate; submit."""
    presets = list(api.presets())
    preset = st.selectbox("Pruning and evaluation from preset", presets, index=presets.index("quickstart"))
    model = _architecture(models)
    dataset = _dataset(datasets)
    weights = _uploaded(
        "Trained weights as the base (optional: safetensors, or a state dict saved with torch.save)",
        "weights",
        ["safetensors", "pt", "pth", "bin"],
        "bring-weights",
        api.upload_weights,
    )
    if not dataset:
        st.info("Upload the data set to go on.")
        return
    tree = {**api.load_tree(preset=preset), "model": model, "dataset": dataset}
    if weights:
        tree["base"] = {"weights": weights}
        st.caption("The base is not trained: the weights are loaded strictly and measured like a trained base.")
    with st.expander("The spec this submits"):
        st.code(api.spec_text(tree), language="yaml")
    try:
        specs = api.validate_trees(tree)
    except SpecError as exc:
        for line in exc.problems:
            st.error(line)
        return
    st.caption(f":material/timer: {api.estimate(specs[0]).line()}")
    if st.button("Submit", type="primary", key="bring-submit"):
        submit(tree)
