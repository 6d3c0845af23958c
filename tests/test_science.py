"""Science checks on the real Fashion-MNIST quickstart (minutes, marked slow; CI runs them)."""

import json
import os
import subprocess
import sys

import pytest

from engine.science.data import DEBIAN_FASHION_MNIST
from engine.spec.schedules import zhu_gupta
from tests.support import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not DEBIAN_FASHION_MNIST.is_dir() and not os.environ.get("CI"),
        reason="needs Debian's dataset-fashion-mnist (CI installs it)",
    ),
]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    root = tmp_path_factory.mktemp("quickstart")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "--cache-dir",
            str(root),
            "run",
            "--preset",
            "quickstart",
            "--json",
            "--quiet",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=1200,
    )
    return root, json.loads(out.stdout)


def test_quickstart_reaches_every_target_sparsity(quickstart):
    _, doc = quickstart
    expected = [0.0] + [zhu_gupta(t, 0, 0.95, 0, 500, 3) for t in (100, 200, 300, 400, 500)]
    assert [p["sparsity"] for p in doc["points"]] == pytest.approx(expected, abs=1e-5)


def test_quickstart_base_is_a_real_classifier_and_pruning_keeps_clean_accuracy(quickstart):
    _, doc = quickstart
    clean = [p["clean_acc"] for p in doc["points"]]
    assert clean[0] >= 0.85  # small CNN, 2 epochs of Fashion-MNIST
    assert min(clean) >= clean[0] - 0.03  # gradual magnitude pruning with fine-tuning holds it to 95 %


def test_quickstart_curves_are_honest_and_pgd_bites(quickstart):
    _, doc = quickstart
    for point in doc["points"]:
        curve = [r["acc"] for r in point["robust"]]
        assert curve[0] == point["clean_acc"] and all(b <= a for a, b in zip(curve, curve[1:]))
        assert curve[-1] < 0.3  # ε = 0.1 (25.5/255) PGD-10 breaks a naturally trained model


def test_quickstart_again_is_cached(quickstart):
    root, doc = quickstart
    out = subprocess.run(
        [sys.executable, "-m", "engine", "--cache-dir", str(root), "run", "--preset", "quickstart", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    again = json.loads(out.stdout)
    assert again["cached"] is True and again["points"] == doc["points"]
