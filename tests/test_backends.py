"""The backend registry: one name -> loader table that the CLI, the config, `auto` and the
wiring read, and loaders that give objects of the one Backend interface (the hardware
backends are loaded through it in test_imx500.py and test_hailo.py, against their stand-ins)."""

from __future__ import annotations

import importlib
import json
import sys

import pytest
from click.testing import CliRunner

from conftest import COCO_LABELS, SSD_MODEL
from edgecam import backends, config as cfg
from edgecam.backends import REGISTRY, Backend, LoadRequest
from edgecam.cli import main
from edgecam.datatypes import DetectOptions
from edgecam.errors import EdgecamError



def test_every_registered_loader_is_a_function_of_its_module():
    # A loader is named by a string (so naming backends imports none): a rename is caught here.
    for name, entry in REGISTRY.items():
        module, _, function = entry.loader.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), name
    assert backends.CHOICES == (*REGISTRY, "auto")


def test_listing_the_backends_imports_no_backend(tmp_path):
    import subprocess
    code = ("import sys, edgecam.config, edgecam.backends; "
            "print(sorted(m for m in sys.modules if m in ('cv2', 'edgecam.detector', "
            "'edgecam.backends.imx500', 'edgecam.backends.hailo')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_cli_and_the_config_accept_exactly_the_registry():
    run_help = CliRunner().invoke(main, ["run", "--help"], terminal_width=400).output
    assert "[" + "|".join(backends.CHOICES) + "]" in run_help
    for name in backends.CHOICES:
        assert cfg.resolve(None, {"model": {"detector": name}}).model.detector == name
    with pytest.raises(EdgecamError) as refused:
        cfg.resolve(None, {"model": {"detector": "gpu"}})
    assert "must be one of " + ", ".join(backends.CHOICES) in str(refused.value)
    assert backends.choices_help() in cfg.reference_markdown()


def test_an_unknown_name_is_refused_by_the_registry():
    with pytest.raises(ValueError, match="unknown detector backend 'gpu'"):
        backends.info("gpu")


def test_the_cpu_loader_gives_one_backend_per_worker_sharing_the_runtime():
    loaded = backends.load("cpu", LoadRequest(str(SSD_MODEL), str(COCO_LABELS),
                                              DetectOptions(threshold=0.5), workers=2, threads=1))
    assert len(loaded) == 2 and all(isinstance(b, Backend) for b in loaded)
    first, second = loaded
    assert first.runtime is second.runtime and first.threads == 1
    assert first.name == "cpu" and first.sensor is None
    assert first.describe() == first.runtime.describe()
