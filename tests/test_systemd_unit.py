"""The shipped unit file: systemd's own checker accepts it and its sandbox scores <= 3.0."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

UNIT = ROOT / "systemd" / "edgecam.service"
EXEC = "/opt/edgecam/venv/bin/edgecam"
ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"

pytestmark = pytest.mark.skipif(not Path(ANALYZE).exists(),
                                reason="systemd-analyze missing (scripts/test installs systemd)")


def _analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60)


def _directives(text: str) -> dict:
    out: dict = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def _verify_copy(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    # Same file name as the real unit so that messages and unit-name checks stay identical.
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    return _analyze("verify", str(copy))


def test_verify_is_clean_apart_from_the_not_yet_installed_binary(tmp_path):
    text = UNIT.read_text()
    assert text.count(EXEC) == 1, "ExecStart must run the venv installed by scripts/install.sh"
    # The venv exists only after install.sh: point ExecStart at a real executable and change
    # nothing else, so any other complaint (unknown key, unparsable value) still fails here.
    result = _verify_copy(tmp_path, text.replace(EXEC, shutil.which("true") or "/bin/true"))
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and output == "", output


def test_verify_of_the_real_file_only_misses_the_binary():
    result = _analyze("verify", str(UNIT))
    lines = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip()]
    assert lines and all(EXEC in ln and "not executable" in ln for ln in lines), lines


def test_verify_catches_a_broken_directive(tmp_path):
    """Guard for the check above: systemd-analyze must report mistakes in this environment."""
    text = UNIT.read_text().replace(EXEC, shutil.which("true") or "/bin/true")
    broken = text.replace("DevicePolicy=closed", "DevicePolicy=clsed")
    result = _verify_copy(tmp_path, broken)
    assert "device policy" in (result.stdout + result.stderr).lower()


def test_security_exposure_at_most_3(tmp_path):
    result = _analyze("security", "--offline=true", str(UNIT))
    m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", result.stdout)
    assert m, result.stdout[-2000:] + result.stderr
    exposure = float(m.group(1))
    assert exposure <= 3.0, f"exposure {exposure} > 3.0:\n{result.stdout}"


def test_service_contract():
    """The settings the code and install.sh rely on (notify protocol, paths, user, devices)."""
    d = _directives(UNIT.read_text())
    assert d["Type"] == ["notify"] and d["NotifyAccess"] == ["main"]
    assert float(d["WatchdogSec"][0]) > 0
    assert d["Restart"] == ["on-failure"] and "StartLimitBurst" in d and "StartLimitIntervalSec" in d
    assert d["User"] == ["edgecam"] and "DynamicUser" not in d
    assert "video" in d["SupplementaryGroups"][0].split()
    assert d["StateDirectory"] == ["edgecam"]
    assert "EDGECAM_HOME=/var/lib/edgecam" in d["Environment"]
    assert d["ExecStart"] == [f"{EXEC} run --config /etc/edgecam/config.toml"]
    assert d["DevicePolicy"] == ["closed"]
    allowed = " ".join(d["DeviceAllow"])
    for dev in ("char-video4linux", "char-media", "char-dma_heap", "/dev/apex_0", "char-usb_device"):
        assert dev in allowed
    assert d["CapabilityBoundingSet"] == [""] and d["UMask"] == ["0077"]


def test_config_directory_stays_read_only():
    """ProtectSystem=strict makes /etc read-only; ConfigurationDirectory= or ReadWritePaths=
    would open /etc/edgecam again, where the service never writes (it only reads its config).
    scripts/system-test service checks it inside the running service too."""
    d = _directives(UNIT.read_text())
    assert d["ProtectSystem"] == ["strict"]
    assert "ConfigurationDirectory" not in d
    writable = " ".join(d.get("ReadWritePaths", []))
    assert "/etc" not in writable
