#!/usr/bin/env python3
"""A real Home Assistant across the upgrade to device-based discovery: entity ids kept.

Needs a Python with `homeassistant` installed (Python >= 3.13; not a test dependency: it is
large), given with --ha-python. On a real mosquitto on 127.0.0.1:

1. the per-entity discovery configs of the last edgecam before device-based discovery (that
   version's own ha_discovery.py, read from git) are retained; Home Assistant starts, discovers
   them, stops: its entity registry is read;
2. Home Assistant starts again and this edgecam's MQTT side starts (the migration runs with HA
   up, as after an upgrade of the camera); HA stops; the registry is read again;
3. HA starts a third time with only what is retained now (the device config) and stops.

It prints the registry entries of the device before and after (registry id, entity id, unique
id), whether those of the old entities are unchanged, the entities the upgrade added (the
`event` and, with tracking, `image` entities), and every warning or error HA logged.

Home Assistant's default integrations look at the network (zeroconf, network adapters), so run
it in a network namespace of its own with only the loopback, as root:

    python3.13 -m venv /tmp/ha && /tmp/ha/bin/pip install homeassistant home-assistant-frontend paho-mqtt
    unshare -n sh -c 'ip link set lo up && exec .venv/bin/python scripts/check_ha_migration.py \
        --ha-python /tmp/ha/bin/python'

(Measured with homeassistant 2025.4.4, the newest for Python 3.13.0: 11 entities, the same 11
registry ids and entity ids after the migration and after a restart, 4 new ones, no MQTT
warning.)
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from edgecam.comms import build_mqtt  # noqa: E402
from edgecam.comms.mqtt import DirectPublisher  # noqa: E402
from edgecam.comms.topics import Topics  # noqa: E402
from edgecam.config import DetectConfig, MqttConfig  # noqa: E402
from mqtt_fixtures import Broker, free_port  # noqa: E402

LAST_PER_ENTITY = "4b15ef3"  # the last commit whose discovery was one config per entity
DEVICE = "cam1"
WATCH = ("person", "dog")


def legacy_configs(prefix: str, broker_prefix: str = "homeassistant") -> Dict[str, dict]:
    """The per-entity configs that edgecam version published (its own code, from git)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show",
                             f"{LAST_PER_ENTITY}:edgecam/comms/ha_discovery.py"],
                            check=True, capture_output=True, text=True).stdout
    source = (source.replace("from ..labels import", "from edgecam.labels import")
              .replace("from .base import", "from edgecam.comms.base import")
              .replace("from .topics import", "from edgecam.comms.topics import"))
    module = types.ModuleType("edgecam_legacy_discovery")
    exec(compile(source, "legacy ha_discovery.py", "exec"), module.__dict__)
    return module.discovery_configs(DEVICE, Topics(prefix), broker_prefix, WATCH,
                                    "ssd_mobilenet_v1_coco_quant", "legacy")


def ha_config(confdir: Path, mqtt_port: int) -> None:
    """A minimal HA: MQTT on our broker (as a config entry, the only way HA takes it), the
    http server on 127.0.0.1 only, MQTT logged at debug."""
    confdir.mkdir(parents=True, exist_ok=True)
    (confdir / "configuration.yaml").write_text(
        "homeassistant:\n  name: edgecam check\n  latitude: 0\n  longitude: 0\n"
        "  elevation: 0\n  unit_system: metric\n  time_zone: UTC\n  country: US\n"
        f"http:\n  server_host: 127.0.0.1\n  server_port: {free_port()}\n"
        "logger:\n  default: warning\n  logs:\n    homeassistant.components.mqtt: debug\n")
    storage = confdir / ".storage"
    storage.mkdir(exist_ok=True)
    entry = {"entry_id": "edgecamcheckmqtt", "version": 1, "minor_version": 1, "domain": "mqtt",
             "title": "127.0.0.1", "source": "user",
             "data": {"broker": "127.0.0.1", "port": mqtt_port, "discovery": True,
                      "discovery_prefix": "homeassistant"}}
    (storage / "core.config_entries").write_text(json.dumps(
        {"version": 1, "minor_version": 1, "key": "core.config_entries",
         "data": {"entries": [entry]}}))


class HomeAssistant:
    """One run of the real Home Assistant on `confdir`, its log in `log`."""

    def __init__(self, python: str, confdir: Path, log: Path):
        self.log = log
        self.offset = log.stat().st_size if log.exists() else 0
        out = open(log, "a")
        self.proc = subprocess.Popen([python, "-m", "homeassistant", "-c", str(confdir),
                                      "--skip-pip"], stdout=out, stderr=subprocess.STDOUT)
        out.close()

    def text(self) -> str:
        """What this run logged so far."""
        with open(self.log, errors="replace") as fh:
            fh.seek(self.offset)
            return fh.read()

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 300.0) -> bool:
        """Wait until `pattern` (a regex) is in this run's log `count` times."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(re.findall(pattern, self.text())) >= count:
                return True
            if self.proc.poll() is not None:
                raise RuntimeError(f"Home Assistant exited:\n{self.text()[-3000:]}")
            time.sleep(0.5)
        return False

    def stop(self) -> None:
        """SIGTERM: HA writes its registries as it stops."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)


def registry(confdir: Path) -> List[dict]:
    """The MQTT entities of the device in HA's entity registry."""
    data = json.loads((confdir / ".storage" / "core.entity_registry").read_text())
    return sorted(({"id": e["id"], "entity_id": e["entity_id"], "unique_id": e["unique_id"]}
                   for e in data["data"]["entities"]
                   if e["platform"] == "mqtt" and e["unique_id"].startswith(f"edgecam_{DEVICE}_")),
                  key=lambda e: e["unique_id"])


def problems(text: str) -> List[str]:
    """Warnings and errors HA logged (any logger), one line each."""
    return [line for line in text.splitlines() if re.search(r"\b(WARNING|ERROR)\b", line)]


def main() -> None:
    """Run the three phases; print the registries and HA's warnings as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ha-python", required=True, help="a python with homeassistant installed")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgecam-ha-") as tmp:
        work = Path(tmp)
        (work / "broker").mkdir()
        broker = Broker(work / "broker").start()
        confdir, log = work / "ha", work / "ha.log"
        ha_config(confdir, broker.port)
        prefix = f"edgecam/{DEVICE}"
        old = legacy_configs(prefix)
        pub = DirectPublisher(broker.host, broker.port, "old-edgecam")
        pub.publish_retained(f"{prefix}/availability", b"online")
        for topic, payload in old.items():
            pub.publish_retained(topic, json.dumps(payload).encode())
        pub.close()
        report: dict = {"legacy_configs": len(old)}

        ha = HomeAssistant(args.ha_python, confdir, log)  # 1: HA meets the old edgecam
        ha.wait_for(r"Found new component", len(old))
        time.sleep(3)
        ha.stop()
        before = registry(confdir)
        report["phase1_problems"] = problems(ha.text())

        ha = HomeAssistant(args.ha_python, confdir, log)  # 2: the camera is upgraded
        ha.wait_for(r"Found new component", len(old))
        cfg = MqttConfig(host=broker.host, port=broker.port, device_id=DEVICE)
        # With tracking, so the new entity kinds (event, image) meet a real HA too.
        sink, *_ = build_mqtt(cfg, DetectConfig(watch=WATCH), work / "state",
                              "ssd_mobilenet_v1_coco_quant", tracked_events=True)
        ha.wait_for(r"Migration to MQTT device discovery schema started", len(old), 120)
        ha.wait_for(r"Processing device discovery for 'edgecam_cam1'", 1, 120)
        time.sleep(8)
        ha.stop()
        middle = registry(confdir)
        report["phase2_problems"] = problems(ha.text())
        report["phase2_migration_lines"] = len(re.findall(r"Migration to MQTT device discovery "
                                                          r"schema started", ha.text()))

        ha = HomeAssistant(args.ha_python, confdir, log)  # 3: HA restarts on the new schema
        ha.wait_for(r"Processing device discovery for 'edgecam_cam1'", 1, 300)
        time.sleep(5)
        ha.stop()
        after = registry(confdir)
        report["phase3_problems"] = problems(ha.text())
        sink.close()
        broker.kill()
        kept = {e["unique_id"] for e in before}
        report.update(
            entities_before=len(before), entities_after_migration=len(middle),
            entities_after_restart=len(after),
            registry_unchanged=before == [e for e in middle if e["unique_id"] in kept]
            == [e for e in after if e["unique_id"] in kept],
            new_entities=[e["entity_id"] for e in after if e["unique_id"] not in kept],
            before=before, after=after)
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
