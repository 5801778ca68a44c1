"""Stand-ins for the accelerator hardware, as fixtures and helpers shared by the backend tests
(tests/test_imx500*.py, test_hailo.py, test_backend_failures.py, test_probe_sensor.py).

The stand-ins in tests/standins/ play picamera2's Picamera2, IMX500 and Hailo classes, with
the tensors the real CPU SSD model computes on the shared photos; edgecam's own code runs
unchanged. Results are compared with the CPU backend's on the same photo (`assert_same`).
Registered as a plugin in tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest

from edgecam.datatypes import Frame
from edgecam.detector import Detector
from edgecam.sources import PicameraCapture, SourceSpec

from conftest import COCO_LABELS, COCO_LABELS_90, ROOT, SSD_MODEL

STANDINS = ROOT / "tests" / "standins"
# Photos whose detections are well clear of the 0.5 threshold (shared/README.md).
PHOTOS = ("pets.jpg", "cat_720p.jpg", "grace_hopper.bmp", "traffic.bmp")
LAYOUTS = [("yx", False), ("yx", True), ("xy", False), ("xy", True)]


def picamera2_labels():
    """The COCO list as picamera2's examples ship it: 90 ids, `-` in the gaps."""
    return ["-" if n.strip() == "n/a" else n.strip()
            for n in COCO_LABELS_90.read_text().splitlines()]


def intrinsics(order="yx", normalized=False, **extra):
    cpu = {"bbox_order": order, **({"bbox_normalization": True} if normalized else {})}
    return {"task": "object detection", "inference_rate": 30.0, "cpu": cpu,
            "classes": {"labels": picamera2_labels()}, **extra}


@pytest.fixture
def standin(tmp_path, monkeypatch):
    """describe(**hardware) -> env for subprocesses; also puts the stand-in picamera2 on
    this process's path, freshly imported (a new camera, firmware not yet uploaded)."""
    monkeypatch.syspath_prepend(str(STANDINS))

    def forget_picamera2():
        for name in [m for m in sys.modules if m == "picamera2" or m.startswith("picamera2.")]:
            del sys.modules[name]

    def describe(**hardware):
        forget_picamera2()
        path = tmp_path / f"hardware-{uuid.uuid4().hex}.json"
        path.write_text(json.dumps(hardware))
        monkeypatch.setenv("EDGECAM_STANDIN_HARDWARE", str(path))
        return {"EDGECAM_STANDIN_HARDWARE": str(path),
                "PYTHONPATH": os.pathsep.join([str(STANDINS), str(ROOT)])}
    yield describe
    forget_picamera2()  # later tests must not find a picamera2 on this machine


@pytest.fixture(scope="module")
def cpu():
    return Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=2)


@pytest.fixture
def network(tmp_path):
    path = tmp_path / "imx500_network_ssd_mobilenetv2_fpnlite_320x320_pp.rpk"
    path.write_bytes(b"9464")  # only opened by the device, which is stood in for
    return path



# Preprocessing moves scores by about ±0.02 (shared/README.md): a detection this close to the
# 0.5 threshold may be on either side of it in two paths that resize differently.
BAND = 0.05


def _as_tuples(detections):
    out = []
    for d in detections:
        if isinstance(d, dict):
            out.append((d["label"], d["score"], d["box"]))
        else:
            out.append((d.label, d.score, d.bbox.as_list(6)))
    return out


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def assert_same(found, expected, tolerance=0.02, threshold=0.5):
    """Same labels, each box within `tolerance` of its counterpart (matched by label and IoU);
    a detection within BAND of the threshold need not have one."""
    found, expected = _as_tuples(found), _as_tuples(expected)
    assert found, "nothing detected"
    for ours, theirs in ((found, expected), (expected, found)):
        left = list(theirs)
        for label, score, box in ours:
            candidates = [t for t in left if t[0] == label]
            if not candidates:
                assert score < threshold + BAND, (label, score, box, found, expected)
                continue
            best = max(candidates, key=lambda t: _iou(t[2], box))
            left.remove(best)
            assert all(abs(a - b) <= tolerance for a, b in zip(box, best[2])), (box, best, found, expected)
        assert all(t[1] < threshold + BAND for t in left), (left, found, expected)


def capture_once(backend, size=(1280, 720)):
    cam = PicameraCapture(SourceSpec(uri="picamera", width=size[0], height=size[1], fps=30),
                          sensor=backend)
    try:
        main, _lores, detected, _ts = cam.read()
    finally:
        cam.release()
    return cam, Frame(0, time.time(), time.monotonic(), main, "picamera", None, detected)


def imx500_detections(backend, frame):
    prepared = backend.prepare(frame)
    assert prepared is not None
    return backend.postprocess(backend.invoke(prepared[0]), prepared[1])


def run_edgecam(env, *args, timeout=180):
    full = dict(os.environ, **env)
    full.pop("NOTIFY_SOCKET", None)
    return subprocess.run([sys.executable, "-m", "edgecam", "run", *args], env=full,
                          capture_output=True, text=True, timeout=timeout)


def notify_messages(sock, proc, limit=120.0):
    """(arrival time, text) of every sd_notify datagram until the process has exited."""
    messages = []
    sock.settimeout(1.0)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            messages.append((time.monotonic(), sock.recv(4096).decode()))
        except socket.timeout:
            if proc.poll() is not None:
                break
    return messages


def extensions_before_ready(messages):
    """The EXTEND_TIMEOUT_USEC messages, checked to come before READY=1 and in time."""
    ready_at = next(t for t, m in messages if m.startswith("READY=1"))
    extends = [(t, m) for t, m in messages if "EXTEND_TIMEOUT_USEC=30000000" in m]
    assert len(extends) >= 2 and all(t < ready_at for t, _ in extends), messages
    times = [t for t, _ in extends] + [ready_at]
    assert max(b - a for a, b in zip(times, times[1:])) < 15, "each extension (30 s) is renewed in time"
    return extends


@pytest.fixture
def notify_listener():
    name = f"edgecam-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    yield sock, "@" + name
    sock.close()


@pytest.fixture
def hef(tmp_path):
    path = tmp_path / "yolov8s_h8l.hef"
    path.write_bytes(b"HEF")
    return path



# --- the AI Camera under a user outside the sudo group (the service's) ---------------------------
# /sys/kernel/debug, where picamera2 reads the firmware upload progress, is root:sudo 0750 on
# Raspberry Pi OS. The stood-in debugfs is really unreadable: its folder belongs to nobody with
# mode 0750, and edgecam runs as root with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped
# (setpriv), so the kernel checks permissions for it as for any other user.
NO_FILE_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
                    "--inh-caps", "-dac_override,-dac_read_search", "--"]
OLD_PICAMERA2, NEW_PICAMERA2 = "0.3.34", "0.3.35"


def unprivileged(cmd):
    if os.geteuid() != 0:
        return cmd
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop root's file-permission override")
    return [*NO_FILE_OVERRIDE, *cmd]


@pytest.fixture
def debugfs(tmp_path):
    """debugfs(readable[, folder]) -> a stood-in /sys/kernel/debug with the AI Camera's
    progress files."""
    made = []

    def make(readable: bool, folder=None):
        folder = folder or tmp_path / f"debug-{len(made)}"
        (folder / "imx500-fw:10-001a").mkdir(parents=True)
        (folder / "rp2040-spi:10-0040").mkdir()
        (folder / "imx500-fw:10-001a" / "fw_progress").write_text("0 0 0\n")
        (folder / "rp2040-spi:10-0040" / "transfer_progress").write_text("0\n")
        if not readable:
            if os.geteuid() == 0:
                os.chown(folder, 65534, 65534)
            folder.chmod(0o750 if os.geteuid() == 0 else 0)
        made.append(folder)
        return folder
    yield make
    for folder in made:
        folder.chmod(0o755)
