"""install.sh / uninstall.sh: shellcheck-clean, and --dry-run shows every step without root."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import MODELS, ROOT

INSTALL = ROOT / "scripts" / "install.sh"
UNINSTALL = ROOT / "scripts" / "uninstall.sh"
EXAMPLE = ROOT / "systemd" / "config.example.toml"


def _run(*args, timeout=60):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck missing (scripts/test installs it)")
def test_shellcheck_clean():
    result = _run("shellcheck", "-x", "--severity=style", INSTALL, UNINSTALL)
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
    # The config gets 0640 root:edgecam when new; an existing one only loses world access.
    assert any(("-m 0640 -o root -g edgecam" in c and c.endswith("/etc/edgecam/config.toml"))
               or c == "chmod o-rwx /etc/edgecam/config.toml" for c in commands)
    # Order matters: the venv exists before the model fetch, the model before the service starts.
    order = [joined.index(p) for p in ("pip install", "models fetch", "systemctl restart")]
    assert order == sorted(order)


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
    purge = _run("bash", UNINSTALL, "--dry-run", "--purge")
    assert purge.returncode == 0 and "+ rm -rf /etc/edgecam /var/lib/edgecam" in purge.stdout
    assert "+ userdel edgecam" in purge.stdout


def test_example_config_is_accepted(edgecam_cmd, cli_env):
    result = subprocess.run([*edgecam_cmd, "config", "check", str(EXAMPLE)], env=cli_env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip().endswith(": ok"), result.stderr
    text = EXAMPLE.read_text()
    # It is what install.sh writes to /etc/edgecam/config.toml: no secrets inline.
    assert "password =" not in text and "web_token =" not in text
