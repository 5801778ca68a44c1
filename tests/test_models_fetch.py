"""Model manifest and cache: fetch from a local folder, an archive, or a local HTTP server;
good and bad hashes; atomic writes; the default-model error."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import io
import shutil
import subprocess
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from conftest import CLASSIFIER_025, COCO_LABELS, IMAGENET_LABELS, MODELS, SSD_MODEL
from edgecam import models
from edgecam.errors import EdgecamError

ZIP_NAME = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.zip"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(cmd, env, *args):
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def manifest():
    return models.load_manifest()


def test_manifest_hashes_are_those_of_the_shared_test_models(manifest):
    """The sha256s in models/manifest.toml were taken from ../shared; they must still match."""
    ssd = manifest["ssd_mobilenet_v1_coco"]
    assert ssd.default and ssd.kind == "detector" and ssd.input_size == (300, 300)
    assert ssd.sha256 == _sha(SSD_MODEL) and ssd.labels_sha256 == _sha(COCO_LABELS)
    assert ssd.url.endswith(ZIP_NAME) and ssd.member == "detect.tflite"
    assert manifest["mobilenet_v1_0.25_128_quant"].sha256 == _sha(CLASSIFIER_025)
    assert manifest["mobilenet_v1_0.5_160_quant"].sha256 == _sha(MODELS / "mobilenet_v1_0.5_160_quant.tflite")
    assert all(e.license and e.description and e.file for e in manifest.values())


def test_cache_dir_follows_edgecam_home(tmp_path):
    assert models.model_cache_dir({"EDGECAM_HOME": str(tmp_path)}) == tmp_path / "models"
    assert models.model_cache_dir({"HOME": "/home/pi"}).parts[-3:] == ("share", "edgecam", "models")


def test_fetch_from_shared_folder_with_the_cli(edgecam_cmd, cli_env, tmp_path):
    cache = tmp_path / "home" / "models"
    result = _run(edgecam_cmd, cli_env, "models", "fetch", "ssd_mobilenet_v1_coco", "--from", str(MODELS))
    assert result.returncode == 0, result.stderr
    model, labels = cache / "ssd_mobilenet_v1_coco_quant.tflite", cache / "ssd_mobilenet_v1_coco_quant.labels.txt"
    assert model.read_bytes() == SSD_MODEL.read_bytes()
    assert labels.read_bytes() == COCO_LABELS.read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == sorted([model.name, labels.name]), "temp files left"

    again = _run(edgecam_cmd, cli_env, "models", "fetch", "ssd_mobilenet_v1_coco", "--from", str(MODELS))
    assert again.returncode == 0 and "already installed" in again.stdout
    forced = _run(edgecam_cmd, cli_env, "models", "fetch", "ssd_mobilenet_v1_coco", "--from", str(MODELS), "--force")
    assert forced.returncode == 0 and "installed" in forced.stdout and str(model) in forced.stdout

    listing = _run(edgecam_cmd, cli_env, "models", "list")
    assert listing.returncode == 0, listing.stderr
    line = next(ln for ln in listing.stdout.splitlines() if ln.startswith("ssd_mobilenet_v1_coco"))
    assert "(default)" in line and " yes " in line
    assert any(ln.startswith("mobilenet_v1_0.25_128_quant") and " no " in ln for ln in listing.stdout.splitlines())


def test_corrupted_copy_is_refused_and_nothing_is_written(edgecam_cmd, cli_env, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    data = bytearray(SSD_MODEL.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (src / "detect.tflite").write_bytes(bytes(data))
    shutil.copy(COCO_LABELS, src / "labelmap.txt")
    result = _run(edgecam_cmd, cli_env, "models", "fetch", "ssd_mobilenet_v1_coco", "--from", str(src))
    assert result.returncode == 2
    err = result.stderr.strip()
    assert err.startswith("edgecam: error: sha256 mismatch for the model of ssd_mobilenet_v1_coco")
    assert len(err.splitlines()) == 1 and "Traceback" not in result.stderr
    assert hashlib.sha256(bytes(data)).hexdigest() in err and "nothing was written" in err
    cache = tmp_path / "home" / "models"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_bad_labels_keep_an_existing_good_model_untouched(tmp_path, manifest):
    cache = tmp_path / "cache"
    models.fetch("ssd_mobilenet_v1_coco", from_dir=MODELS, cache_dir=cache, manifest=manifest)
    before = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SSD_MODEL, src / "detect.tflite")
    (src / "labelmap.txt").write_text("person\ncar\n")
    with pytest.raises(EdgecamError, match="sha256 mismatch for the labels"):
        models.fetch("ssd_mobilenet_v1_coco", from_dir=src, cache_dir=cache, manifest=manifest, force=True)
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == before


def test_fetch_from_the_release_zip_in_a_folder(tmp_path, manifest):
    """The TFLite zip (detect.tflite + labelmap.txt) copied over by hand is unpacked and verified."""
    src = tmp_path / "src"
    src.mkdir()
    with zipfile.ZipFile(src / ZIP_NAME, "w") as zf:
        zf.write(SSD_MODEL, "detect.tflite")
        zf.write(COCO_LABELS, "labelmap.txt")
    result = models.fetch("ssd_mobilenet_v1_coco", from_dir=src, cache_dir=tmp_path / "cache", manifest=manifest)
    assert result.model_path.read_bytes() == SSD_MODEL.read_bytes()
    assert result.labels_path.read_bytes() == COCO_LABELS.read_bytes()


def test_classifier_from_a_tgz_with_dot_slash_members(tmp_path, manifest):
    entry = manifest["mobilenet_v1_0.25_128_quant"]
    src = tmp_path / "src"
    src.mkdir()
    with tarfile.open(src / entry.url.rsplit("/", 1)[-1], "w:gz") as tf:
        tf.add(CLASSIFIER_025, f"./{entry.member}")
    shutil.copy(IMAGENET_LABELS, src / "imagenet_labels.txt")
    result = models.fetch(entry.name, from_dir=src, cache_dir=tmp_path / "cache", manifest=manifest)
    assert _sha(result.model_path) == entry.sha256 and _sha(result.labels_path) == entry.labels_sha256


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_dir(tmp_path):
    """(folder, base URL) of a real HTTP server on localhost: the urllib download path runs for real."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_over_http_unpacks_and_verifies(tmp_path, manifest, http_dir):
    root, base = http_dir
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(SSD_MODEL, "detect.tflite")
        zf.write(COCO_LABELS, "labelmap.txt")
    (root / ZIP_NAME).write_bytes(buf.getvalue())
    entry = dataclasses.replace(manifest["ssd_mobilenet_v1_coco"], url=f"{base}/{ZIP_NAME}",
                                labels_url=f"{base}/{ZIP_NAME}")
    result = models.fetch(entry.name, cache_dir=tmp_path / "cache", manifest={entry.name: entry})
    assert result.model_path.read_bytes() == SSD_MODEL.read_bytes()
    assert len(result.written) == 2

    missing = dataclasses.replace(entry, url=f"{base}/nothing.zip", labels_url=f"{base}/nothing.zip")
    with pytest.raises(EdgecamError, match="cannot download .*nothing.zip.*--from DIR"):
        models.fetch(entry.name, cache_dir=tmp_path / "cache2", manifest={entry.name: missing})


def test_unverifiable_entries_are_refused(tmp_path, manifest):
    unverified = [e for e in manifest.values() if not e.verifiable]
    assert unverified, "the Coral entries carry no sha256 in the manifest"
    with pytest.raises(EdgecamError, match="no recorded sha256"):
        models.fetch(unverified[0].name, from_dir=MODELS, cache_dir=tmp_path, manifest=manifest)


def test_unknown_name_and_missing_folder(tmp_path, manifest):
    with pytest.raises(EdgecamError, match="unknown model 'yolo'.*edgecam models list"):
        models.fetch("yolo", manifest=manifest, cache_dir=tmp_path)
    with pytest.raises(EdgecamError, match="not a directory"):
        models.fetch("ssd_mobilenet_v1_coco", from_dir=tmp_path / "nope", manifest=manifest, cache_dir=tmp_path)
    with pytest.raises(EdgecamError, match="has no model file for ssd_mobilenet_v1_coco"):
        models.fetch("ssd_mobilenet_v1_coco", from_dir=tmp_path, manifest=manifest, cache_dir=tmp_path / "c")


def test_default_model_missing_names_the_fetch_command(tmp_path):
    env = {"EDGECAM_HOME": str(tmp_path)}
    with pytest.raises(EdgecamError) as info:
        models.default_model(env)
    assert "run `edgecam models fetch ssd_mobilenet_v1_coco`" in str(info.value)
    models.fetch("ssd_mobilenet_v1_coco", from_dir=MODELS, cache_dir=models.model_cache_dir(env))
    model, labels = models.default_model(env)
    assert _sha(model) == _sha(SSD_MODEL) and _sha(labels) == _sha(COCO_LABELS)


def test_broken_manifest_is_a_clear_error(tmp_path):
    bad = tmp_path / "manifest.toml"
    bad.write_text('[[model]]\nname = "x"\nfile = "../evil.tflite"\nsha256 = "00"\n')
    with pytest.raises(EdgecamError, match="entry 1"):
        models.load_manifest(bad)
    with pytest.raises(EdgecamError, match="manifest not found"):
        models.load_manifest(tmp_path / "none.toml")


def test_a_model_cache_that_cannot_be_made_is_one_line(edgecam_cmd, cli_env, tmp_path):
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a folder")
    env = dict(cli_env, EDGECAM_HOME=str(in_the_way / "home"))
    result = _run(edgecam_cmd, env, "models", "fetch", "ssd_mobilenet_v1_coco", "--from", str(MODELS))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and str(in_the_way / "home" / "models") in err, err
