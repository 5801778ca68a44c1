"""The README's two commands in order, on a copy of the clone: `./scripts/run`, then
`./scripts/test`. The test command's output is the test runner's alone.

Set up as the failure a user met: the Python that makes the venvs has click where other users
may not read it (here a user site-packages in a 0700 home), so a venv that sees the system's
site-packages gets no click of its own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import pytest

from conftest import ROOT, SHARED

PHOTO = SHARED / "images" / "pets.jpg"
# The tests that run edgecam as another user (nobody, when the tests run as root).
AS_ANOTHER_USER = "test_run_cli.py::test_an_unreadable_source_is_one_line_naming_the_likely_cause"


def _copy_clone(dest: Path) -> None:
    """The tracked files of this checkout, as a fresh clone has them (no venvs)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (ROOT / name).exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)


def _user_site_with_click(home: Path) -> None:
    """This interpreter's click copied into `home`'s user site-packages, then `home` made 0700."""
    site = home / ".local" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    dist = metadata.distribution("click")
    for name in dist.files or ():
        target = site / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(dist.locate_file(name), target)
    home.chmod(0o700)


@pytest.fixture(scope="module")
def in_order():
    """(scripts/run's result, scripts/test's result) on a fresh copy of the clone.

    The copy sits in a world-readable folder (pytest's tmp_path is under a 0700 one), so the
    user the inner tests switch to can reach its venv.
    """
    base = Path(tempfile.mkdtemp(prefix="edgecam-two-commands-"))
    base.chmod(0o755)
    clone, home = base / "edgecam", base / "home"
    clone.mkdir()
    home.mkdir()
    (base / "shared").symlink_to(SHARED)
    _copy_clone(clone)
    _user_site_with_click(home)
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONNOUSERSITE")}
    # The Python behind this test run is the one both scripts find as python3.
    env.update(HOME=str(home), EDGECAM_HOME=str(home / "edgecam"),
               EDGECAM_MODELS_FROM=str(SHARED / "models"),
               PATH=f"{Path(sys._base_executable).parent}:{env.get('PATH', '/usr/bin:/bin')}")
    try:
        ran = subprocess.run(["./scripts/run", "--source", str(PHOTO), "--json"], cwd=clone, env=env,
                             capture_output=True, text=True, timeout=900)
        tested = subprocess.run(["./scripts/test", "-q", "-p", "no:cacheprovider", "tests/" + AS_ANOTHER_USER],
                                cwd=clone, env=env, capture_output=True, text=True, timeout=900)
        yield ran, tested
    finally:
        home.chmod(0o700)
        shutil.rmtree(base, ignore_errors=True)


def test_the_test_commands_output_is_the_test_runners(in_order):
    ran, tested = in_order
    assert ran.returncode == 0, ran.stderr[-3000:]
    output = tested.stdout + tested.stderr
    assert "BuildBackendWarning" not in output and "WARNING" not in output, output[-3000:]
    assert tested.stderr == "", tested.stderr[-3000:]
    assert re.match(r"[.sxXEF]+ +\[100%\]\n", tested.stdout), tested.stdout[-3000:]


@pytest.mark.skipif(os.geteuid() != 0, reason="the tests switch to another user only as root")
def test_tests_that_run_edgecam_as_another_user_pass_after_scripts_run(in_order):
    ran, tested = in_order
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert tested.returncode == 0, tested.stdout[-3000:]
    assert re.search(r"^6 passed", tested.stdout, re.M), tested.stdout[-3000:]
