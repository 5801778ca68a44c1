"""install.sh / uninstall.sh: shellcheck-clean, and --dry-run shows every step without root."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import MODELS, ROOT

INSTALL = ROOT / "scripts" / "install.sh"
UNINSTALL = ROOT / "scripts" / "uninstall.sh"
SYSTEM_TEST = ROOT / "scripts" / "system-test"
SERVICE_TEST = ROOT / "scripts" / "systest" / "service.sh"
EXAMPLE = ROOT / "systemd" / "config.example.toml"


def _run(*args, timeout=60):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck missing (scripts/test installs it)")
def test_shellcheck_clean():
    result = _run("shellcheck", "-x", "--severity=style", INSTALL, UNINSTALL, SYSTEM_TEST, SERVICE_TEST)
    assert result.returncode == 0, result.stdout + result.stderr


def test_install_dry_run_prints_every_step(tmp_path):
    result = _run("bash", INSTALL, "--dry-run", "--from", MODELS)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    commands = [ln[2:] for ln in out.splitlines() if ln.startswith("+ ")]
    joined = "\n".join(commands)
    expected = [
        "apt-get install",
        "python3-venv",
        "python3 -m venv --system-site-packages /opt/edgecam/venv",
        f"/opt/edgecam/venv/bin/python -m pip install -q --upgrade {ROOT}",
        "/opt/edgecam/venv/share/edgecam/manifest.toml",
        "usermod -a -G video edgecam",
        "install -d -m 0750 -o edgecam -g edgecam /var/lib/edgecam",
        "/etc/edgecam/config.toml",
        f"env EDGECAM_HOME=/var/lib/edgecam /opt/edgecam/venv/bin/edgecam models fetch ssd_mobilenet_v1_coco --from {MODELS}",
        "install -m 0644 " + str(ROOT / "systemd" / "edgecam.service") + " /etc/systemd/system/edgecam.service",
        "systemctl daemon-reload",
        "systemctl enable edgecam.service",
        "systemctl restart edgecam.service",
        "edgecam doctor --config /etc/edgecam/config.toml",
    ]
    for piece in expected:
        assert piece in joined, f"missing step {piece!r} in:\n{out}"
    # The config is 0640 root:edgecam whether install.sh writes it or finds it: one that was
    # there before as root:root 0644 would otherwise stay unreadable to the service.
    conf = commands.index("chown root:edgecam /etc/edgecam/config.toml")
    assert commands[conf + 1] == "chmod 0640 /etc/edgecam/config.toml"
    assert conf < commands.index("/opt/edgecam/venv/bin/edgecam config check /etc/edgecam/config.toml")
    # Order matters: the venv exists before the model fetch, the model before the service starts.
    order = [joined.index(p) for p in ("pip install", "models fetch", "systemctl restart")]
    assert order == sorted(order)


def test_install_dry_run_with_numpy_1_caps_what_needs_numpy_2(tmp_path):
    """With the system's numpy at 1.x the venv keeps numpy<2, and the packages whose newest
    wheels need numpy 2 are capped too, or pip downloads (and rejects) ~200 MB of them."""
    fake = tmp_path / "bin"
    (fake / "numpy").mkdir(parents=True)
    (fake / "numpy" / "__init__.py").write_text("__version__ = '1.24.2'\n")
    env = {**os.environ, "PYTHONPATH": str(fake)}
    result = subprocess.run(["bash", str(INSTALL), "--dry-run", "--no-model"], capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert "system numpy 1.24.2: pinning numpy<2" in result.stdout
    pins = next(ln for ln in result.stdout.splitlines() if ln.startswith("+ write /opt/edgecam/constraints.txt"))
    assert pins.split(": ", 1)[1].split() == ["numpy<2", "opencv-python-headless<4.12", "ml-dtypes<0.6"]
    assert "pip install -q --upgrade -c /opt/edgecam/constraints.txt" in result.stdout


def test_install_options():
    assert _run("bash", INSTALL, "--dry-run", "--from", "/nonexistent/dir").returncode == 2
    assert _run("bash", INSTALL, "--bogus").returncode == 2
    no_start = _run("bash", INSTALL, "--dry-run", "--no-start", "--no-model")
    assert no_start.returncode == 0
    commands = [ln for ln in no_start.stdout.splitlines() if ln.startswith("+ ")]
    assert not any("systemctl restart" in c or "models fetch" in c for c in commands)
    assert any("systemctl enable" in c for c in commands)


def test_uninstall_dry_run():
    keep = _run("bash", UNINSTALL, "--dry-run")
    assert keep.returncode == 0, keep.stderr
    assert "+ systemctl disable --now edgecam.service" in keep.stdout
    assert "+ rm -rf /opt/edgecam" in keep.stdout and "/var/lib/edgecam" not in keep.stdout.split("kept:")[0]
    # Said, not silently kept: the cache is not removed without --purge.
    assert "/var/cache/edgecam (cache)" in keep.stdout.split("kept:")[1]
    # reset-failed while the unit file still exists (afterwards systemctl prints an error).
    steps = [ln for ln in keep.stdout.splitlines() if ln.startswith("+ ")]
    assert steps.index("+ systemctl reset-failed edgecam.service") < steps.index(
        "+ rm -f /etc/systemd/system/edgecam.service")
    purge = _run("bash", UNINSTALL, "--dry-run", "--purge")
    assert purge.returncode == 0 and "+ rm -rf /etc/edgecam /var/lib/edgecam" in purge.stdout
    assert "+ userdel edgecam" in purge.stdout


def test_install_refuses_a_32_bit_userland_in_one_line(tmp_path):
    """32-bit Raspberry Pi OS on a Pi 4's 64-bit kernel says aarch64; only getconf tells."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "getconf").write_text("#!/bin/sh\necho 32\n")
    (fake / "getconf").chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}")
    result = subprocess.run(["bash", str(INSTALL), "--dry-run", "--from", str(MODELS)],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "64-bit Raspberry Pi OS" in result.stderr
    assert "+ " not in result.stdout, "nothing is installed"
