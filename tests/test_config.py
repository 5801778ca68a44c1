"""Configuration: a TOML file < EDGECAM_<SECTION>__<KEY> variables < options, every key
validated with an error naming it (`edgecam config check`), the commented example, and the
default file (/etc/edgecam/config.toml, the service's) against a user's own runs.

After install.sh that default file is 0640 root:edgecam: a desktop user cannot read it, and
that must not stop their own `edgecam run` or `edgecam doctor`. The default's folder follows
systemd's $CONFIGURATION_DIRECTORY, so these tests never touch /etc.

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

from conftest import COCO_LABELS, IMAGES, ROOT, SSD_MODEL
from edgecam.config import env_overrides, resolve
from edgecam.errors import EdgecamError

MODEL_ARGS = ["--model", str(SSD_MODEL), "--labels", str(COCO_LABELS)]
EXAMPLE = ROOT / "systemd" / "config.example.toml"
NO_FILE_OVERRIDE = ["--bounding-set", "-dac_override,-dac_read_search",
                    "--inh-caps", "-dac_override,-dac_read_search"]


def _unprivileged(cmd):
    """`cmd` run without the power to read files it has no permission for."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop root's file-permission override")
    return ["setpriv", *NO_FILE_OVERRIDE, *cmd]



def run(cmd, env, *args, timeout=120):
    """`edgecam run ARGS`, as the user running the tests."""
    return subprocess.run([*cmd, "run", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def json_lines(stdout):
    return [json.loads(line) for line in stdout.splitlines()]


def test_file_then_environment_then_options(tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text('[detect]\nthreshold = 0.4\nwatch = ["cat"]\n[mqtt]\nport = 1884\n')
    env = {"EDGECAM_DETECT__THRESHOLD": "0.6", "EDGECAM_MQTT__HOST": "broker.lan"}
    config = resolve(str(conf), {}, env)
    assert (config.detect.threshold, config.detect.watch) == (0.6, ("cat",))
    assert (config.mqtt.host, config.mqtt.port) == ("broker.lan", 1884)
    config = resolve(str(conf), {"detect": {"threshold": 0.7, "classes": None}}, env)
    assert config.detect.threshold == 0.7 and config.detect.classes == (), "None: not given"
    assert env_overrides({"EDGECAM_SOURCE__LOOP": "true", "EDGECAM_DETECT__CLASSES": '["car"]',
                          "EDGECAM_SERVICE__WEB": "0.0.0.0:8080", "OTHER": "x"}) == {
        "source": {"loop": True}, "detect": {"classes": ["car"]}, "service": {"web": "0.0.0.0:8080"}}


@pytest.mark.parametrize("text,words", [
    ("[detect]\nthreshhold = 0.4\n", "unknown key [detect] threshhold"),
    ("[detekt]\nthreshold = 0.4\n", "unknown section [detekt]"),
    ("[detect]\nthreshold = \"high\"\n", "[detect] threshold: expected float"),
    ("[detect]\nthreshold = 1.5\n", "[detect] threshold = 1.5"),
    ("[detect\n", "is not valid TOML"),
])
def test_a_bad_file_is_an_error_naming_the_key(tmp_path, text, words):
    conf = tmp_path / "bad.toml"
    conf.write_text(text)
    with pytest.raises(EdgecamError) as raised:
        resolve(str(conf), {}, {})
    assert words in str(raised.value) and "\n" not in str(raised.value)



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


def test_config_file_and_cli_override(edgecam_cmd, cli_env, tmp_path):
    conf = tmp_path / "c.toml"
    conf.write_text(f'[model]\npath = "{SSD_MODEL}"\nlabels = "{COCO_LABELS}"\n'
                    f'[detect]\nclasses = ["car"]\n[source]\nuri = "{IMAGES}"\n')
    out = run(edgecam_cmd, cli_env, "--config", str(conf), "--json")
    assert out.returncode == 0, out.stderr
    labels = {d["label"] for f in json_lines(out.stdout) for d in f["detections"]}
    assert labels == {"car"}
    out = run(edgecam_cmd, cli_env, "--config", str(conf), "--classes", "dog", "--json")
    assert {d["label"] for f in json_lines(out.stdout) for d in f["detections"]} == {"dog"}


def test_config_check(edgecam_cmd, cli_env, tmp_path):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text('[detect]\nthreshold = 0.4\nwatch = ["person", "car"]\n[mqtt]\nhost = "broker"\n')
    bad.write_text('[detect]\nthreshhold = 0.4\n')
    ok = subprocess.run([*edgecam_cmd, "config", "check", str(good)], env=cli_env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    no = subprocess.run([*edgecam_cmd, "config", "check", str(bad)], env=cli_env, capture_output=True, text=True)
    assert no.returncode == 2 and "unknown key [detect] threshhold" in no.stderr


@pytest.mark.parametrize("detector", ["hailo", "cpu", "auto"])
def test_a_delegate_contradicting_the_detector_is_refused_by_check_run_and_doctor(
        edgecam_cmd, cli_env, tmp_path, detector):
    path = tmp_path / "contradiction.toml"
    path.write_text(f'[model]\ndelegate = "edgetpu"\ndetector = "{detector}"\n')
    checked = subprocess.run([*edgecam_cmd, "config", "check", str(path)], env=cli_env,
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 2 and checked.stdout == "", checked.stdout + checked.stderr
    lines = checked.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgecam: error: "), checked.stderr
    message = lines[0][len("edgecam: error: "):]
    assert "[model] delegate" in message and repr(detector) in message and "remove" in message
    ran = run(edgecam_cmd, cli_env, "--config", str(path), *MODEL_ARGS, "--source", str(IMAGES))
    assert ran.returncode == 2 and ran.stderr.strip() == lines[0], ran.stderr
    doctor = subprocess.run([*edgecam_cmd, "doctor", "--config", str(path)], env=cli_env,
                            capture_output=True, text=True, timeout=120)
    rows = [row for row in doctor.stdout.splitlines() if row.split()[1:2] == ["config"]]
    assert doctor.returncode == 1 and len(rows) == 1, doctor.stdout + doctor.stderr
    assert rows[0].startswith("FAIL") and message in rows[0], doctor.stdout


def test_example_config_is_accepted(edgecam_cmd, cli_env):
    result = subprocess.run([*edgecam_cmd, "config", "check", str(EXAMPLE)], env=cli_env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip().endswith(": ok"), result.stderr
    text = EXAMPLE.read_text()
    # It is what install.sh writes to /etc/edgecam/config.toml: no secrets inline.
    assert "password =" not in text and "web_token =" not in text


def test_run_options_are_generated_from_the_config_keys():
    # Every key with a `cli` name has its option, with the key's own help; a value given on
    # the command line lands on that key, and an option not given leaves the key alone.
    import click

    from edgecam.cli.run import config_overrides, run_command
    from edgecam.config import command_line_keys

    keys = command_line_keys()
    options = {p.opts[0]: p for p in run_command.params if isinstance(p, click.Option)}
    for section, key, meta in keys:
        option = options[f"--{meta['cli']}"]
        assert meta["help"] in option.help and f"[{section}] {key}" in option.help
    assert list(options["--resize"].type.choices) == ["stretch", "letterbox"]
    args = ["--threshold", "0.7", "--watch", "dog, cat", "--no-loop", "--source", "x.mp4",
            "--max-frames", "3", "--track", "--log-level", "debug"]
    params = run_command.make_context("run", args).params
    config = resolve(None, config_overrides(params))
    assert (config.detect.threshold, config.detect.watch, config.source.loop) == (0.7, ("dog", "cat"), False)
    assert (config.source.uri, config.pipeline.max_frames, config.track.enabled) == ("x.mp4", 3, True)
    assert config.service.log_level == "debug"
    assert config.detect.max_detections == 20 and config.source.realtime is False  # defaults
    with pytest.raises(click.BadParameter):
        run_command.make_context("run", ["--resize", "crop"])
