"""Event clips on MQTT, for real: `edgecam run --track --clips --web --mqtt` against a real
mosquitto. The end event carries `clip`, `clip_seconds` and a `clip_url` on the preview server
that serves that very file; `<prefix>/clips/latest` (retained) names the newest clip."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import scenes
from conftest import COCO_LABELS, SSD_MODEL
from mqtt_fixtures import free_port
from mqtt_helpers import validate

PREFIX = "edgecam/clipcam"


def test_end_event_names_its_clip_and_latest_is_retained(
        edgecam_cmd, cli_env, mqtt_broker, subscriber_factory, tmp_path):
    frames = scenes.cat_frames(still_before=5, moving=25, still_after=15)
    video = scenes.write_video(tmp_path / "cat.avi", frames, 10.0)
    config = tmp_path / "c.toml"
    config.write_text("[clips]\npre_roll = 0.5\npost_roll = 0.5\n")
    folder = tmp_path / "clips"
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, f"{PREFIX}/#")
    port = free_port()
    proc = subprocess.Popen(
        [*edgecam_cmd, "run", "--config", str(config), "--model", str(SSD_MODEL),
         "--labels", str(COCO_LABELS), "--source", str(video), "--realtime", "--loop",
         "--threads", "1", "--track", "--watch", "cat", "--clips", str(folder),
         "--web", f"127.0.0.1:{port}", "--mqtt", f"{mqtt_broker.host}:{mqtt_broker.port}",
         "--device-id", "clipcam"],
        env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        ended = lambda s: [e for e in map(json.loads, s.on(f"{PREFIX}/events")) if e["type"] == "end"]  # noqa: E731
        assert sub.wait_for(lambda s: len(s.on(f"{PREFIX}/clips/latest")) >= 2
                            and len(ended(s)) >= 2, 90)
        events = [validate("event", p) for p in sub.on(f"{PREFIX}/events")]
        ends = [e for e in events if e["type"] == "end"]
        latest = [validate("clip_latest", p) for p in sub.on(f"{PREFIX}/clips/latest")]
        assert len(ends) >= 2 and len(latest) >= 2
        assert [e["clip"] for e in ends][:len(latest)] == [m["clip"] for m in latest]
        for end in ends[:2]:
            assert end["clip_url"] == f"http://127.0.0.1:{port}/clips/{end['clip']}"
            assert end["clip_seconds"] >= end["duration_s"] + 0.9
            assert not any("clip" in e for e in events if e["type"] != "end")
        # The URL serves the clip itself, once it is complete (post-roll written).
        end = ends[0]
        assert sub.wait_for(lambda s: (folder / end["clip"]).exists(), 20)
        with urllib.request.urlopen(end["clip_url"], timeout=5) as r:
            assert r.headers["Content-Type"] == "video/mp4"
            assert r.read() == (folder / end["clip"]).read_bytes()
    finally:
        proc.terminate()
        assert proc.wait(20) == 0, proc.stderr.read()[-2000:]
        proc.stderr.close()
    # Retained: a client that connects later is told the newest clip.
    late = subscriber_factory(mqtt_broker.host, mqtt_broker.port, f"{PREFIX}/clips/latest")
    newest = validate("clip_latest", late.wait_topic(f"{PREFIX}/clips/latest")[0])
    assert newest["clip"] == [e["clip"] for e in
                              (json.loads(p) for p in sub.on(f"{PREFIX}/events"))
                              if e["type"] == "end"][-1]
