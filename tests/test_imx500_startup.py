"""The AI Camera's start-up: the firmware upload extends systemd's start timeout and shows its
progress, also for a user (the service's) who cannot read that progress, with each picamera2
release's behaviour."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from edgecam.detector import DetectOptions
from edgecam.errors import EdgecamError
from edgecam.sources import PicameraCapture, SourceSpec

from accelerator_fixtures import (
    NEW_PICAMERA2,
    OLD_PICAMERA2,
    extensions_before_ready,
    intrinsics,
    notify_messages,
    unprivileged,
)
from conftest import IMAGES


def test_firmware_upload_extends_start_up_and_shows_progress(standin, network, cli_env, notify_listener):
    """A 7 s upload: systemd hears EXTEND_TIMEOUT_USEC (well inside each extension) until
    the first frame, then READY=1; the log shows the upload's progress."""
    sock, address = notify_listener
    env = {**cli_env, **standin(scene=str(IMAGES / "pets.jpg"),
                                imx500={"intrinsics": intrinsics(), "upload_s": 7.0})}
    env.update(NOTIFY_SOCKET=address, WATCHDOG_USEC="20000000")
    proc = subprocess.Popen([sys.executable, "-m", "edgecam", "run", "--detector", "imx500",
                             "--model", str(network), "--source", "picamera", "--width", "640",
                             "--height", "480", "--max-frames", "3"],
                            env=dict(os.environ, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    messages = notify_messages(sock, proc)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    extends = extensions_before_ready(messages)
    assert "uploading" in extends[0][1]
    assert "imx500: uploading network firmware" in err and "network firmware uploaded in" in err



# --- the AI Camera under a user outside the sudo group (the service's) ---------------------------
# /sys/kernel/debug, where picamera2 reads the firmware upload progress, is root:sudo 0750 on
# Raspberry Pi OS. The stood-in debugfs is really unreadable: its folder belongs to nobody with
# mode 0750, and edgecam runs as root with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped
# (setpriv), so the kernel checks permissions for it as for any other user.


def test_old_picamera2_that_cannot_read_the_upload_progress_is_one_line(standin, network, cli_env,
                                                                         debugfs):
    env = {**cli_env, **standin(scene=str(IMAGES / "pets.jpg"), picamera2=OLD_PICAMERA2,
                                imx500={"intrinsics": intrinsics(),
                                        "debugfs": str(debugfs(readable=False))})}
    result = subprocess.run(unprivileged([sys.executable, "-m", "edgecam", "run", "--detector",
                                          "imx500", "--model", str(network), "--source",
                                          "picamera", "--max-frames", "1"]),
                            env=dict(os.environ, **env), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert "cannot read the firmware upload progress" in line and "fw_progress" in line
    assert "sudo group" in line and "0.3.35" in line and "python3-picamera2" in line
    assert "ribbon" not in line and "Traceback" not in result.stderr


def test_old_picamera2_reading_the_upload_progress_still_runs(standin, network, cli_env, debugfs):
    env = {**cli_env, **standin(scene=str(IMAGES / "pets.jpg"), picamera2=OLD_PICAMERA2,
                                imx500={"intrinsics": intrinsics(), "upload_s": 1.0,
                                        "debugfs": str(debugfs(readable=True))})}
    result = subprocess.run(unprivileged([sys.executable, "-m", "edgecam", "run", "--detector",
                                          "imx500", "--model", str(network), "--source",
                                          "picamera", "--json", "--max-frames", "1"]),
                            env=dict(os.environ, **env), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "network firmware uploaded in" in result.stderr
    assert [d["label"] for d in json.loads(result.stdout)["detections"]] == ["dog", "dog"]


def test_new_picamera2_without_upload_progress_waits_for_outputs_and_extends_start_up(
        standin, network, cli_env, notify_listener, debugfs):
    """picamera2 0.3.35+ uploads without progress: one warning, then `loading` until the first
    frame with outputs, so systemd hears EXTEND_TIMEOUT_USEC all through the 7 s upload."""
    sock, address = notify_listener
    env = {**cli_env, **standin(scene=str(IMAGES / "pets.jpg"), picamera2=NEW_PICAMERA2,
                                imx500={"intrinsics": intrinsics(), "upload_s": 7.0,
                                        "debugfs": str(debugfs(readable=False))})}
    env.update(NOTIFY_SOCKET=address, WATCHDOG_USEC="20000000")
    proc = subprocess.Popen(unprivileged([sys.executable, "-m", "edgecam", "run", "--detector",
                                          "imx500", "--model", str(network), "--source",
                                          "picamera", "--width", "640", "--height", "480",
                                          "--json", "--max-frames", "3"]),
                            env=dict(os.environ, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    messages = notify_messages(sock, proc)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert err.count("firmware upload progress is not readable for user") == 1, err
    extends = extensions_before_ready(messages)
    assert "progress not readable" in extends[0][1]
    assert "imx500: the network runs" in err
    assert all(json.loads(ln)["detections"] for ln in out.splitlines())


def test_waiting_without_upload_progress_is_bounded(standin, network):
    """No progress (here: debugfs not mounted) and no outputs: `loading` ends after
    BLIND_UPLOAD_S, so the watchdog is no longer fed for a camera that never delivers."""
    from edgecam.backends import imx500
    standin(scene=str(IMAGES / "pets.jpg"), picamera2=NEW_PICAMERA2,
            imx500={"intrinsics": intrinsics(), "upload_s": 3600.0, "debugfs": "/nonexistent"})
    loaded = imx500.Imx500Backend.load(str(network), None, DetectOptions(threshold=0.5))
    assert not imx500.progress_readable(loaded.device)
    now = [0.0]
    backend = imx500.Imx500Backend(loaded.device, loaded.intrinsics, loaded.labels, loaded.options,
                                   loaded.network_file, clock=lambda: now[0])
    cam = PicameraCapture(SourceSpec(uri="picamera", width=640, height=480), sensor=backend)
    try:
        assert "progress not readable" in backend.loading
        for now[0] in (1.0, imx500.BLIND_UPLOAD_S - 1):
            assert cam.read()[2] is None and backend.loading
        now[0] = imx500.BLIND_UPLOAD_S
        assert cam.read()[2] is None and backend.loading is None
    finally:
        cam.release()


def test_old_picamera2_without_debugfs_names_it(standin, network):
    from edgecam.backends.imx500 import Imx500Backend
    standin(scene=str(IMAGES / "pets.jpg"), picamera2=OLD_PICAMERA2,
            imx500={"intrinsics": intrinsics(), "debugfs": "/nonexistent"})
    with pytest.raises(EdgecamError) as raised:
        Imx500Backend.load(str(network), None)
    assert "is not mounted" in str(raised.value) and "0.3.35" in str(raised.value)
    assert "ribbon" not in str(raised.value)


@pytest.mark.parametrize("release,readable,expected", [
    (OLD_PICAMERA2, False, "warn"), (NEW_PICAMERA2, False, "ok"), (OLD_PICAMERA2, True, None)])
def test_doctor_warns_when_picamera2_cannot_go_on_without_the_progress(
        standin, cli_env, tmp_path, debugfs, release, readable, expected):
    root = tmp_path / "root"
    debugfs(readable, root / "sys/kernel/debug")
    env = {**cli_env, **standin(picamera2=release, imx500={"intrinsics": intrinsics()})}
    code = ("import json, sys; from pathlib import Path; "
            "from edgecam.doctor.accelerators import check_imx500_progress, imx500_progress_fix; "
            "print(json.dumps([r.__dict__ for r in check_imx500_progress(Path(sys.argv[1]), "
            "imx500_progress_fix)]))")
    result = subprocess.run(unprivileged([sys.executable, "-c", code, str(root)]),
                            env=dict(os.environ, **env), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["status"] for r in rows] == ([expected] if expected else [])
    if expected == "warn":
        assert "0.3.35" in rows[0]["fix"] and "python3-picamera2" in rows[0]["fix"]


def test_new_picamera2_without_sudo_installed_names_it(standin, network):
    """picamera2 0.3.35+ falls back to `sudo -n` and catches only CalledProcessError: with no
    sudo at all, IMX500() raises FileNotFoundError for "sudo" (here: debugfs not mounted)."""
    from edgecam.backends.imx500 import Imx500Backend
    standin(scene=str(IMAGES / "pets.jpg"), picamera2=NEW_PICAMERA2,
            imx500={"intrinsics": intrinsics(), "debugfs": "/nonexistent", "sudo": False})
    with pytest.raises(EdgecamError) as raised:
        Imx500Backend.load(str(network), None)
    assert "`sudo -n`, is not installed" in str(raised.value)
    assert "`apt install sudo`" in str(raised.value) and "ribbon" not in str(raised.value)
