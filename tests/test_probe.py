"""`edgecam probe`: JSON contract, percentile order, run counts, stages, budget pick, remote hook.

Real interpreter on the shared models and photos; no timing assertions.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import pytest

from edgecam.errors import EdgecamError
from edgecam.modelinfo import model_info
from edgecam.probe.measure import (STAGES, load_frames, parse_threads, probe_to_payload, run_probe,
                                   select_within_budget)
from edgecam.probe.remote import RemoteProbe, parse_probe_request

from conftest import CLASSIFIER_025, CLASSIFIER_050, COCO_LABELS, IMAGES, SSD_MODEL
from mqtt_fixtures import free_port

RUNS, WARMUP = 5, 1
PCTS = ("p50_ms", "p95_ms", "p99_ms", "max_ms")


def _ordered(summary):
    values = [summary[k] for k in PCTS]
    return values == sorted(values) and values[0] > 0


@pytest.fixture(scope="module")
def probe_doc():
    """One CLI probe of the SSD model and a classifier at two thread counts, as JSON."""
    import sys
    proc = subprocess.run(
        [sys.executable, "-m", "edgecam", "probe", "--model", str(SSD_MODEL),
         "--model", str(CLASSIFIER_025), "--labels", str(COCO_LABELS), "--source", str(IMAGES),
         "--threads", "1,2", "--runs", str(RUNS), "--warmup", str(WARMUP), "--json",
         "--budget-ms", "100000"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_json_contract(probe_doc):
    assert probe_doc["v"] == 1 and probe_doc["runtime"]
    assert len(probe_doc["results"]) == 4  # 2 models x 2 thread counts
    for r in probe_doc["results"]:
        for key in ("model", "threads", "raw_invoke_fps", "pipeline_fps", "stages", "macs", "params"):
            assert key in r
        assert r["threads"] in (1, 2)
        assert r["raw_invoke_fps"] > 0
        assert r["macs"] == model_info(r["model"]).macs


def test_detector_has_every_stage_ordered_and_counted(probe_doc):
    ssd = [r for r in probe_doc["results"] if r["model"] == str(SSD_MODEL)]
    assert [r["threads"] for r in ssd] == [1, 2]
    for r in ssd:
        assert r["kind"] == "detector" and r["pipeline_fps"] > 0
        assert list(r["stages"]) == list(STAGES)
        for name, s in r["stages"].items():
            assert s["count"] == RUNS, name
            assert _ordered(s), (name, s)
        assert r["raw_invoke"]["count"] == RUNS and _ordered(r["raw_invoke"])
        assert "skipped_stages" not in r
        # Real photos with people, cats, dogs, cars: something is found.
        assert r["detections"] > 0


def test_classifier_is_raw_invoke_only(probe_doc):
    cls = [r for r in probe_doc["results"] if r["model"] == str(CLASSIFIER_025)]
    for r in cls:
        assert r["kind"] == "classifier" and r["pipeline_fps"] is None
        assert list(r["stages"]) == ["invoke"]
        assert r["stages"]["invoke"]["count"] == RUNS and _ordered(r["stages"]["invoke"])
        assert set(r["skipped_stages"]) == set(STAGES) - {"invoke"}


def test_budget_names_most_capable_in_json(probe_doc):
    # A huge budget fits everything: the SSD model has the most Mult-Adds.
    assert probe_doc["budget"]["model"] == str(SSD_MODEL)
    assert probe_doc["budget"]["stat"] == "raw_invoke.p95_ms"


def _r(name, macs, p95):
    return {"model": name, "name": name, "threads": 2, "macs": macs,
            "raw_invoke": {"p50_ms": p95 / 2, "p95_ms": p95}}


def test_select_within_budget_pure():
    results = [_r("small", 13_000_000, 3.0), _r("mid", 76_000_000, 9.0),
               _r("big", 728_000_000, 40.0), _r("mid-slow", 76_000_000, 12.0)]
    assert select_within_budget(results, 50)["model"] == "big"
    assert select_within_budget(results, 39.9)["model"] == "mid"  # tie on macs: faster wins
    assert select_within_budget(results, 10)["model"] == "mid"
    assert select_within_budget(results, 3.0)["model"] == "small"  # the budget is inclusive
    assert select_within_budget(results, 2.9) is None
    assert select_within_budget(results, 25, stat="p50_ms")["model"] == "big"


def test_parse_threads():
    assert parse_threads("1,2,4") == (1, 2, 4)
    assert parse_threads("2, 2") == (2,)
    assert len(parse_threads(None)) == 1
    with pytest.raises(EdgecamError, match="--threads"):
        parse_threads("1,x")


def test_noise_source_says_so():
    frames = load_frames(None)
    assert frames.synthetic and "noise" in frames.description
    assert len(load_frames(str(IMAGES)).images) == len(list(IMAGES.iterdir()))


def test_bad_inputs_are_one_line_errors(edgecam_cmd, cli_env, tmp_path):
    proc = subprocess.run(edgecam_cmd + ["probe", "--model", str(tmp_path / "none.tflite")],
                          capture_output=True, text=True, env=cli_env, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith("edgecam: error: model not found")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    from edgecam.probe.report import write_plot
    report = run_probe([str(SSD_MODEL), str(CLASSIFIER_050)], threads=(1,), runs=3, warmup=0,
                       source=str(IMAGES / "pets.jpg"))
    out = tmp_path / "probe.png"
    write_plot(report, str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_parse_probe_request_restricts_models():
    req = parse_probe_request(b"", str(SSD_MODEL))
    assert req.models == (str(SSD_MODEL),) and req.runs > 0
    req = parse_probe_request(json.dumps({"models": [CLASSIFIER_025.name], "threads": [1],
                                          "runs": 4}).encode(),
                              str(SSD_MODEL), allowed_models=[str(CLASSIFIER_025)])
    assert req.models == (str(CLASSIFIER_025),) and req.threads == (1,) and req.runs == 4
    with pytest.raises(ValueError, match="may not be probed"):
        parse_probe_request(b'{"models": ["/etc/passwd"]}', str(SSD_MODEL))
    with pytest.raises(ValueError, match="runs"):
        parse_probe_request(b'{"runs": 100000}', str(SSD_MODEL))
    with pytest.raises(ValueError, match="JSON"):
        parse_probe_request(b"{", str(SSD_MODEL))


class _Collector:
    """A real in-process publish target (what a Communicator.publish receives)."""

    def __init__(self):
        self.messages = []

    def __call__(self, topic, payload, retain=False, qos=0):
        self.messages.append((topic, payload, retain))


def test_remote_probe_publishes_retained_report():
    sent = _Collector()
    remote = RemoteProbe(sent, "edgecam/test", str(CLASSIFIER_025), source=str(IMAGES / "pets.jpg"))
    assert remote.handle("edgecam/test/cmd/probe", b'{"threads": [1], "runs": 3, "warmup": 0}')
    assert remote.wait(60)
    topic, payload, retain = sent.messages[-1]
    assert topic == "edgecam/test/probe" and retain
    doc = json.loads(payload)
    assert doc["v"] == 1 and doc["results"][0]["stages"]["invoke"]["count"] == 3
    assert not remote.handle("edgecam/test/cmd/probe", b'{"runs": -1}')
    assert "error" in json.loads(sent.messages[-1][1])


def test_probe_to_payload_roundtrip():
    report = run_probe([str(CLASSIFIER_025)], threads=(1,), runs=2, warmup=0)
    doc = json.loads(probe_to_payload(report))
    assert doc["results"][0]["raw_invoke"]["count"] == 2 and "noise" in doc["source"]




@pytest.mark.skipif(not shutil.which("mosquitto"), reason="mosquitto not installed")
def test_probe_mqtt_publishes_retained_results(edgecam_cmd, cli_env, tmp_path):
    import paho.mqtt.client as mqtt
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        proc = subprocess.run(edgecam_cmd + ["probe", "--model", str(SSD_MODEL), "--source",
                                             str(IMAGES / "pets.jpg"), "--runs", "3", "--warmup",
                                             "0", "--threads", "1", "--json", "--mqtt",
                                             f"127.0.0.1:{port}", "--mqtt-prefix", "edgecam/t"],
                              capture_output=True, text=True, env=cli_env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        got = []
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.on_message = lambda c, u, m: got.append((m.topic, m.payload, m.retain))
        client.connect("127.0.0.1", port)
        client.subscribe("edgecam/t/probe")
        client.loop_start()
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        client.loop_stop()
        client.disconnect()
        assert got, "no retained probe result on edgecam/t/probe"
        topic, payload, retain = got[0]
        assert retain and json.loads(payload)["results"][0]["stages"]["publish"]["count"] == 3
    finally:
        broker.terminate()
        broker.wait(10)


class _Registry:
    """The dispatcher's registration surface, recorded (a real object, not a mock)."""

    def __init__(self):
        self.commands = {}

    def register_command(self, name, handler):
        self.commands[name] = handler


def test_remote_probe_registers_cmd_probe_and_refuses_bad_requests():
    sent = _Collector()
    registry = _Registry()
    remote = RemoteProbe(sent, "edgecam/x/", str(CLASSIFIER_025), source=str(IMAGES / "pets.jpg"))
    remote.register(registry)
    handler = registry.commands["probe"]
    with pytest.raises(ValueError, match="may not be probed"):
        handler(b'{"models": ["other.tflite"]}')
    handler(b'{"runs": 2, "warmup": 0, "threads": [1]}')
    assert remote.wait(60)
    assert sent.messages[-1][0] == "edgecam/x/probe"
    assert json.loads(sent.messages[-1][1])["results"][0]["raw_invoke"]["count"] == 2
