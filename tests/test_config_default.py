"""The default config file (/etc/edgecam/config.toml, the service's) and a user's own runs.

After install.sh that file is 0640 root:edgecam: a desktop user cannot read it, and that must
not stop their own `edgecam run` or `edgecam doctor`. The default's folder follows systemd's
$CONFIGURATION_DIRECTORY, so these tests never touch /etc.

The file is really unreadable: it belongs to `nobody` with mode 0640. The tests run as root,
and this venv's interpreter sits under /root (0700), which uid `nobody` cannot execute; so the
CLI runs as root with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped (setpriv), which makes
the kernel check file permissions for it like for any other user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import COCO_LABELS, IMAGES, SSD_MODEL

MODEL_ARGS = ["--model", str(SSD_MODEL), "--labels", str(COCO_LABELS)]
NO_FILE_OVERRIDE = ["--bounding-set", "-dac_override,-dac_read_search",
                    "--inh-caps", "-dac_override,-dac_read_search"]


def _unprivileged(cmd):
    """`cmd` run without the power to read files it has no permission for."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop root's file-permission override")
    return ["setpriv", *NO_FILE_OVERRIDE, *cmd]


@pytest.fixture
def service_config(tmp_path):
    """A config folder whose config.toml the test's user cannot read; yields the file."""
    folder = tmp_path / "etc-edgecam"
    folder.mkdir()
    conf = folder / "config.toml"
    conf.write_text('[detect]\nclasses = ["cat"]\n')  # pets.jpg: two dogs, no cat
    if os.geteuid() == 0:
        os.chown(conf, 65534, 65534)  # nobody: the test's process is "other"
        conf.chmod(0o640)
    else:
        conf.chmod(0)
    return conf


def _run(edgecam_cmd, env, *args):
    return subprocess.run(_unprivileged([*edgecam_cmd, *args]), env=env, capture_output=True,
                          text=True, timeout=120)


def test_an_unreadable_default_config_is_skipped_with_one_note(edgecam_cmd, cli_env, service_config):
    env = dict(cli_env, CONFIGURATION_DIRECTORY=str(service_config.parent))
    out = _run(edgecam_cmd, env, "run", *MODEL_ARGS, "--source", str(IMAGES / "pets.jpg"), "--json")
    assert out.returncode == 0, out.stderr
    frames = [json.loads(line) for line in out.stdout.splitlines()]
    labels = [d["label"] for d in frames[0]["detections"]]
    assert labels == ["dog", "dog"], "the file's classes = [cat] must not apply: it was not read"
    notes = [line for line in out.stderr.splitlines() if str(service_config) in line]
    assert len(notes) == 1 and "--config" in notes[0], out.stderr
    assert "Traceback" not in out.stderr and "error" not in out.stderr.lower()


def test_an_unreadable_config_named_with_config_is_an_error(edgecam_cmd, cli_env, service_config):
    out = _run(edgecam_cmd, cli_env, "run", *MODEL_ARGS, "--source", str(IMAGES / "pets.jpg"),
               "--config", str(service_config), "--json")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgecam: error: "), out.stderr
    # click checks the named file first ("... is not readable"); either way, one clear line.
    assert str(service_config) in lines[0]
    assert "not readable" in lines[0] or "Permission denied" in lines[0]
    assert out.stdout == ""


def test_a_readable_default_config_is_still_read(edgecam_cmd, cli_env, service_config):
    service_config.chmod(0o644)
    env = dict(cli_env, CONFIGURATION_DIRECTORY=str(service_config.parent))
    out = _run(edgecam_cmd, env, "run", *MODEL_ARGS, "--source", str(IMAGES / "pets.jpg"), "--json")
    assert out.returncode == 0, out.stderr
    frames = [json.loads(line) for line in out.stdout.splitlines()]
    assert frames[0]["detections"] == [], "classes = [cat] applies"
    assert out.stderr.count(str(service_config)) == 0


def test_doctor_warns_about_an_unreadable_default_config_and_goes_on(edgecam_cmd, cli_env,
                                                                    service_config):
    env = dict(cli_env, CONFIGURATION_DIRECTORY=str(service_config.parent))
    out = _run(edgecam_cmd, env, "doctor")
    assert "Traceback" not in out.stderr
    rows = [line for line in out.stdout.splitlines() if line.split()[1:2] == ["config"]]
    assert len(rows) == 1 and rows[0].startswith("WARN") and str(service_config) in rows[0], out.stdout
    assert "runtime" in out.stdout and "disk" in out.stdout, "the other checks still run"
