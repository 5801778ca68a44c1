"""Shared fixtures: paths to the real models and images in ../shared (never copied here)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
MODELS = SHARED / "models"
IMAGES = SHARED / "images"

SSD_MODEL = MODELS / "ssd_mobilenet_v1_coco_quant.tflite"
COCO_LABELS = MODELS / "coco_labels.txt"
COCO_LABELS_90 = MODELS / "coco_labels_90.txt"
EDGETPU_MODEL = MODELS / "ssd_mobilenet_v1_coco_segment0_edgetpu.tflite"
CLASSIFIER_025 = MODELS / "mobilenet_v1_0.25_128_quant.tflite"
CLASSIFIER_050 = MODELS / "mobilenet_v1_0.5_160_quant.tflite"
IMAGENET_LABELS = MODELS / "imagenet_labels.txt"

# Fixture modules of each area register here, so test files stay independent.
pytest_plugins = ["mqtt_fixtures", "accelerator_fixtures"]


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (scripts/test): no workers when every argument names single tests (`file::test`):
    starting them costs more than those few tests, and the output stays the test runner's
    dots alone (tests/test_two_commands.py)."""
    args = [a for a in config.args if not a.startswith("-")]
    if args and all("::" in a for a in args):
        return 0
    return None


def pytest_configure(config):
    if not SSD_MODEL.exists():
        pytest.exit(f"test data missing: {SHARED} must sit beside the repo (see README)", 3)


@pytest.fixture(scope="session")
def edgecam_cmd():
    """argv prefix that runs this checkout's CLI with the test interpreter."""
    return [sys.executable, "-m", "edgecam"]


@pytest.fixture
def cli_env(tmp_path):
    """Environment for CLI subprocesses: an empty model cache and state dir, no stray config."""
    env = dict(os.environ)
    env["EDGECAM_HOME"] = str(tmp_path / "home")
    env["STATE_DIRECTORY"] = str(tmp_path / "state")
    env.pop("NOTIFY_SOCKET", None)
    return env
