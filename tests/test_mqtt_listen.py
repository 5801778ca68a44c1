"""`edgecam listen` against a real broker and a real publishing sink."""

from __future__ import annotations

import json
import subprocess

from mqtt_helpers import build_mqtt, detect_config, frame_result, mqtt_config


def test_listen_json_lines_and_saved_snapshots(mqtt_broker, tmp_path, subscriber_factory,
                                               edgecam_cmd, cli_env):
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, "edgecam/cam1/snapshot")
    sink, *_ = build_mqtt(mqtt_config(mqtt_broker, discovery=False), detect_config(),
                          tmp_path / "state", "ssd")
    try:
        sink.handle(frame_result(0))
        sink.handle(frame_result(1))
        assert sub.wait_topic("edgecam/cam1/snapshot")
        snaps = tmp_path / "snaps"
        out = subprocess.run(
            [*edgecam_cmd, "listen", "--mqtt", f"{mqtt_broker.host}:{mqtt_broker.port}",
             "--device", "cam1", "--json", "--save-snapshots", str(snaps), "--timeout", "2"],
            capture_output=True, text=True, env=cli_env, timeout=30)
        assert out.returncode == 0, out.stderr
        records = [json.loads(line) for line in out.stdout.splitlines()]
        by_topic = {r["topic"]: r for r in records}
        assert by_topic["edgecam/cam1/availability"]["payload"] == "online"
        assert by_topic["edgecam/cam1/person/count"]["payload"]["count"] == 1
        assert by_topic["edgecam/cam1/snapshot"]["kind"] == "snapshot"
        saved = list(snaps.glob("cam1-*.jpg"))
        assert saved and saved[0].read_bytes()[:2] == b"\xff\xd8"
        assert all(r["device"] == "cam1" for r in records)
    finally:
        sink.close()


def test_listen_pretty_and_clear_errors(mqtt_broker, edgecam_cmd, cli_env, tmp_path):
    sink, *_ = build_mqtt(mqtt_config(mqtt_broker, discovery=False), detect_config(),
                          tmp_path / "state", "ssd")
    try:
        out = subprocess.run([*edgecam_cmd, "listen", "--mqtt", f"{mqtt_broker.host}:{mqtt_broker.port}",
                              "--count", "1", "--timeout", "5"],
                             capture_output=True, text=True, env=cli_env, timeout=30)
        assert out.returncode == 0 and "edgecam/cam1/" in out.stdout
    finally:
        sink.close()
    both = subprocess.run([*edgecam_cmd, "listen", "--device", "a", "--all"],
                          capture_output=True, text=True, env=cli_env, timeout=30)
    assert both.returncode == 2 and "edgecam: error: listen:" in both.stderr
    bad = subprocess.run([*edgecam_cmd, "listen", "--device", "a/b", "--timeout", "1"],
                         capture_output=True, text=True, env=cli_env, timeout=30)
    assert bad.returncode == 2 and "device id" in bad.stderr


def test_a_snapshot_folder_that_cannot_be_made_is_one_line(mqtt_broker, edgecam_cmd, cli_env,
                                                           tmp_path):
    a_file = tmp_path / "somefile"
    a_file.write_text("not a folder\n")
    out = subprocess.run(
        [*edgecam_cmd, "listen", "--mqtt", f"{mqtt_broker.host}:{mqtt_broker.port}",
         "--save-snapshots", str(a_file / "x"), "--timeout", "1"],
        capture_output=True, text=True, env=cli_env, timeout=30)
    assert out.returncode == 2 and out.stdout == "", out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgecam: error: "), out.stderr
    assert str(a_file / "x") in lines[0] and "Not a directory" in lines[0]
