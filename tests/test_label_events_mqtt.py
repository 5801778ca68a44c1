"""Per-label events and occupancy made in the pipeline (edgecam.label_events), as the real
`edgecam run` process publishes them to a real mosquitto and prints them with --json."""

from __future__ import annotations

import json
import signal
import subprocess

from conftest import COCO_LABELS, IMAGES, SSD_MODEL
from mqtt_helpers import validate

PREFIX = "edgecam/cam1"


def test_a_clean_stop_leaves_occupancy_off(edgecam_cmd, cli_env, mqtt_broker, subscriber_factory):
    # A person in view on a looping photo: occupancy ON, then SIGTERM. What a subscriber finds
    # retained after the stop must not say someone is there while the count reads 0.
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, f"{PREFIX}/#")
    proc = subprocess.Popen(
        [*edgecam_cmd, "run", "--model", str(SSD_MODEL), "--labels", str(COCO_LABELS),
         "--source", str(IMAGES / "grace_hopper.bmp"), "--loop", "--watch", "person",
         "--mqtt", f"{mqtt_broker.host}:{mqtt_broker.port}", "--device-id", "cam1"],
        env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    occupancy = f"{PREFIX}/person/occupancy"
    try:
        assert sub.wait_for(lambda s: s.on(occupancy)[-1:] == [b"ON"], 30), \
            proc.stderr.read() if proc.poll() is not None else sub.on(occupancy)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, proc.stderr.read()
    assert sub.wait_for(lambda s: s.on(f"{PREFIX}/availability")[-1:] == [b"offline"], 5)
    assert sub.on(occupancy)[-1:] == [b"OFF"], sub.on(occupancy)
    events = [validate("event", p) for p in sub.on(f"{PREFIX}/events")]
    assert [(e["type"], e["reason"]) for e in events][-1] == ("end", "shutdown")
    late = subscriber_factory(mqtt_broker.host, mqtt_broker.port, f"{PREFIX}/person/#")
    assert late.wait_for(lambda s: s.on(occupancy) and s.on(f"{PREFIX}/person/count"), 5)
    assert late.on(occupancy) == [b"OFF"]


def test_json_and_mqtt_report_the_same_per_label_events(edgecam_cmd, cli_env, mqtt_broker,
                                                        subscriber_factory):
    sub = subscriber_factory(mqtt_broker.host, mqtt_broker.port, f"{PREFIX}/events")
    out = subprocess.run(
        [*edgecam_cmd, "run", "--model", str(SSD_MODEL), "--labels", str(COCO_LABELS),
         "--source", str(IMAGES / "grace_hopper.bmp"), "--loop", "--max-frames", "6",
         "--watch", "person", "--json", "--mqtt", f"{mqtt_broker.host}:{mqtt_broker.port}",
         "--device-id", "cam1"], env=cli_env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(ln) for ln in out.stdout.splitlines()]
    printed = [ln for ln in lines if ln["type"] == "event"]
    assert [(e["event"], e["label"], e["reason"]) for e in printed] == \
        [("start", "person", None), ("end", "person", "shutdown")]
    assert "box" not in printed[0], "a label's event has no box"
    assert printed[0]["seq"] == 1, "started on the second frame with a person ([events] start_frames)"
    assert sub.wait_for(lambda s: len(s.on(f"{PREFIX}/events")) >= 2, 10)
    published = [validate("event", p) for p in sub.on(f"{PREFIX}/events")]
    assert [(e["type"], e["id"], e["label"], e["score"], e["start_ts"], e["end_ts"], e["reason"],
             e["seq"]) for e in published] == \
        [(e["event"], e["id"], e["label"], e["top_score"], e["first_seen"],
          e["last_seen"] if e["event"] == "end" else None, e["reason"], e["seq"]) for e in printed]
