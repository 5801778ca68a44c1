"""Stats and Home Assistant discovery carry the detector backend, and for the IMX500 the
sensor's own inference time (real broker)."""

from __future__ import annotations

import json

from mqtt_helpers import build_mqtt, detect_config, frame_result, mqtt_config, validate

PREFIX = "edgecam/cam1"
DEVICE_TOPIC = "homeassistant/device/edgecam_cam1/config"


def _run(broker, tmp_path, subscriber_factory, backend, sensor_ms=()):
    sub = subscriber_factory(broker.host, broker.port, "#")
    sink, *_ = build_mqtt(mqtt_config(broker, stats_interval=2.0), detect_config(),
                          tmp_path / "state", "net", backend=backend)
    try:
        for seq, ms in enumerate(sensor_ms or (None,) * 3):
            result = frame_result(seq)
            result.inference_ms = 0.0 if ms is not None else 40.0
            if ms is not None:
                result.timings = {"sensor_dnn": ms, "sensor_dsp": 1.2}
            sink.handle(result)
        frames = len(sensor_ms or (None,) * 3)

        def counted(s):  # a stats message that covers every frame handled above
            return any(json.loads(p)["frames"] == frames for p in s.on(f"{PREFIX}/stats"))
        assert sub.wait_for(counted, 10)
        stats = validate("stats", [p for p in sub.on(f"{PREFIX}/stats")
                                   if json.loads(p)["frames"] == frames][0])
        assert sub.wait_for(lambda s: s.on(DEVICE_TOPIC), 10)
        configs = json.loads(sub.on(DEVICE_TOPIC)[-1])["cmps"]
    finally:
        sink.close()
    return stats, configs


def test_imx500_stats_and_discovery_carry_the_sensor_time(mqtt_broker, tmp_path, subscriber_factory):
    stats, configs = _run(mqtt_broker, tmp_path, subscriber_factory, "imx500", (11.0, 12.0, 30.0))
    assert stats["backend"] == "imx500"
    assert stats["sensor_inference_ms"]["p50"] == 12.0 and stats["inference_ms"]["p50"] == 0.0
    sensor = configs["sensor_inference_ms"]
    assert sensor["value_template"] == "{{ value_json.sensor_inference_ms.p50 }}"
    assert sensor["unit_of_measurement"] == "ms" and sensor["state_topic"] == f"{PREFIX}/stats"
    detector = configs["detector"]
    assert detector["value_template"] == "{{ value_json.backend }}"


def test_cpu_stats_name_the_backend_without_a_sensor_time(mqtt_broker, tmp_path, subscriber_factory):
    stats, configs = _run(mqtt_broker, tmp_path, subscriber_factory, "cpu")
    assert stats["backend"] == "cpu" and "sensor_inference_ms" not in stats
    assert stats["inference_ms"]["p50"] == 40.0
    assert configs["detector"]["p"] == "sensor"
    assert not any("sensor_inference_ms" in t for t in configs)
