"""scripts/run, the README's first command, with Debian's own Python as a Pi user has it.

Debian's /usr/bin/python3 with apt's numpy and python3-bottleneck, a module compiled against
apt's numpy the way picamera2's simplejpeg is on Raspberry Pi OS. The run must leave that numpy
in charge (no numpy wheel shadowing it in the venv), keep stdout to `edgecam run`'s own output,
and, once installed, run again without pip and without a network.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEBIAN_PYTHON = "/usr/bin/python3"
PHOTO = SHARED / "images" / "pets.jpg"


def _debian_python_ready():
    if not os.path.exists(DEBIAN_PYTHON):
        return False
    probe = subprocess.run([DEBIAN_PYTHON, "-s", "-c", "import bottleneck, ensurepip"], capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _debian_python_ready(),
    reason="needs Debian's python3-venv, python3-numpy, python3-bottleneck (scripts/test installs them)")


def _system_numpy():
    return subprocess.run([DEBIAN_PYTHON, "-s", "-c", "import numpy; print(numpy.__version__)"],
                          capture_output=True, text=True, check=True).stdout.strip()


def _copy_clone(dest):
    """The tracked files of this checkout, as a fresh clone has them (no .venv)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        src = ROOT / name
        if src.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def _env(home, offline=False):
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(PATH="/usr/bin:/bin:" + env.get("PATH", ""), EDGECAM_HOME=str(home),
               EDGECAM_MODELS_FROM=str(SHARED / "models"))
    if offline:
        # pip would fail at once: no config, no local wheels, an index nobody listens on.
        env.update(PIP_CONFIG_FILE=os.devnull, PIP_FIND_LINKS="", PIP_RETRIES="0",
                   PIP_INDEX_URL="http://127.0.0.1:9/simple")
    return env


def _run(clone, home, *args, offline=False):
    return subprocess.run([str(clone / "scripts" / "run"), *args], cwd=clone, env=_env(home, offline),
                          capture_output=True, text=True, timeout=900)


def _json_lines(stdout):
    """Every stdout line parsed as JSON; fails on the first line that is not."""
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A copy of the clone after its first `scripts/run --json` on a photo: (clone, home, result)."""
    clone = tmp_path_factory.mktemp("clone")
    home = tmp_path_factory.mktemp("home")
    _copy_clone(clone)
    return clone, home, _run(clone, home, "--source", str(PHOTO), "--json")


def test_first_run_detects_with_json_only_on_stdout(installed):
    _, _, result = installed
    assert result.returncode == 0, result.stderr[-3000:]
    records = _json_lines(result.stdout)
    assert [d["label"] for d in records[0]["detections"]] == ["dog", "dog"]
    assert "BuildBackendWarning" not in result.stderr


def test_apt_numpy_module_still_imports_in_the_venv(installed):
    clone, _, result = installed
    assert result.returncode == 0, result.stderr[-3000:]
    venv_python = str(clone / ".venv" / "bin" / "python")
    check = subprocess.run([venv_python, "-c", "import bottleneck, numpy; print(numpy.__version__)"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr[-2000:]
    assert check.stdout.strip() == _system_numpy()


def test_second_run_needs_no_pip_and_no_network(installed):
    clone, home, first = installed
    assert first.returncode == 0, first.stderr[-3000:]
    again = _run(clone, home, "--source", str(PHOTO), "--json", offline=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _json_lines(again.stdout)[0]["detections"]
    assert "installing" not in again.stderr and "Warning" not in again.stderr


def test_a_changed_pyproject_installs_again(installed):
    clone, home, first = installed
    assert first.returncode == 0, first.stderr[-3000:]
    pyproject = clone / "pyproject.toml"
    original = pyproject.read_text()
    pyproject.write_text(original + "\n# changed\n")
    try:
        # Offline, so the reinstall it must attempt fails: proof that pip ran.
        again = _run(clone, home, "--source", str(PHOTO), "--json", offline=True)
    finally:
        pyproject.write_text(original)
    assert again.returncode == 1
    assert again.stdout == ""
    assert again.stderr.strip().splitlines()[-1].startswith("scripts/run: pip install failed")


@pytest.mark.parametrize("machine, long_bit, refused", [
    ("armv7l", "32", True),     # 32-bit Raspberry Pi OS on a 32-bit kernel
    ("aarch64", "32", True),    # 32-bit Raspberry Pi OS on the Pi 4's default 64-bit kernel
    ("aarch64", "64", False),
    ("x86_64", "64", False),
])
def test_32_bit_systems_are_refused_in_one_line(machine, long_bit, refused):
    result = subprocess.run(
        ["bash", "-c", '. "$1"; edgecam_platform_check "$2" "$3"', "_",
         str(ROOT / "scripts" / "platform.sh"), machine, long_bit],
        capture_output=True, text=True)
    assert result.returncode == (2 if refused else 0)
    assert result.stdout == ""
    if refused:
        assert result.stderr.count("\n") == 1 and "64-bit Raspberry Pi OS" in result.stderr
    else:
        assert result.stderr == ""


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck missing (scripts/test installs it)")
def test_run_and_platform_pass_shellcheck():
    result = subprocess.run(["shellcheck", "-x", "scripts/run", "scripts/platform.sh", "scripts/systest/pi.sh"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
