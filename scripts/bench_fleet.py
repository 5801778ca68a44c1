#!/usr/bin/env python3
"""A fleet of real `edgecam run` processes on one real mosquitto (127.0.0.1), and its faults.

Each camera plays the same video made from the shared photos (640x480, each photo held a few
frames, at a low fps, paced like a live camera) with the tracker on, and publishes to one
broker; `edgecam listen --all --json` runs beside as the fleet view, and a subscriber with a
persistent session counts every event. Measured per run (`--cameras N`, repeatable):

- CPU (% of one core) and RSS (MB) of each camera process over the measured window;
- messages per second at the broker (its `$SYS/broker/messages/received` counter);
- time from Home Assistant's birth message to every device config re-published;
- subscriber latency p50/p95 from a frame's time (`detections.ts`) to its arrival, and the
  frames per second each camera processed (its detections messages over the window).

`--faults` adds, on the last fleet size: the broker restarted twice (every camera reconnects;
events lost and duplicated after de-duplication by (id, event, ts)), one camera SIGKILLed (its
`offline` last will within keepalive x 1.5; its open starts ended at its restart), and a site
broker bridging `edgecam/#` to a central one that is down `--central-down` s (events queued at
the site and delivered after). tests/test_fleet_faults.py runs the same faults, short.

    .venv/bin/python scripts/bench_fleet.py --cameras 1 --cameras 5 --cameras 20 --faults
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import cv2  # noqa: E402
import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402

from edgecam.stats import summarize  # noqa: E402
from mqtt_fixtures import Broker  # noqa: E402

SHARED = ROOT.parent / "shared"
IMAGES = SHARED / "images"
MODEL = SHARED / "models" / "ssd_mobilenet_v1_coco_quant.tflite"
LABELS = SHARED / "models" / "coco_labels.txt"
PHOTOS = ("grace_hopper.bmp", "pets.jpg", "traffic.bmp", "cat_720p.jpg", "kite_and_cold.jpg")
WATCH = "person,dog,cat,car"
KEEPALIVE = 10  # the cameras' MQTT keepalive (s): the last will must arrive within 1.5 x this


def scene_video(path: Path, fps: float = 1.0, hold: int = 5) -> Path:
    """A video of the shared photos, each held `hold` frames at `fps` (written to `path`, a
    temporary file: nothing derived from the shared data is kept)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    for name in PHOTOS:
        frame = cv2.resize(cv2.imread(str(IMAGES / name)), (640, 480))
        for _ in range(hold):
            writer.write(frame)
    writer.release()
    return path


def fleet_config(path: Path, stats_interval: float = 2.0) -> Path:
    """The cameras' shared TOML: tracker on, short event ends, a short keepalive."""
    path.write_text(
        "[track]\nenabled = true\nmin_hits = 2\nmax_missed = 3\n"
        f"[mqtt]\nkeepalive = {KEEPALIVE}\nstats_interval = {stats_interval}\n"
        "[pipeline]\nworkers = 1\n[model]\nthreads = 1\n")
    return path


class Camera:
    """One real `edgecam run` process; its `--json` event lines are what it published."""

    def __init__(self, name: str, port: int, video: Path, config: Path, workdir: Path):
        self.name, self.port, self.video, self.config = name, port, video, config
        self.state = workdir / name
        self.state.mkdir(parents=True, exist_ok=True)
        self.events: List[dict] = []  # the event lines of every run of this camera
        self.proc: Optional[subprocess.Popen] = None
        self._cpu0: Tuple[float, float] = (0.0, 0.0)
        self.start()

    def start(self) -> None:
        """Start (again, after a kill: same state dir, so its spool carries over)."""
        cmd = [sys.executable, "-m", "edgecam", "run", "--config", str(self.config),
               "--model", str(MODEL), "--labels", str(LABELS), "--source", str(self.video),
               "--loop", "--realtime", "--watch", WATCH, "--json",
               "--mqtt", f"127.0.0.1:{self.port}", "--device-id", self.name,
               "--state-dir", str(self.state)]
        log = open(self.state / "stderr.log", "a")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("type") == "event":
                self.events.append(record)

    def mark_cpu(self) -> None:
        """Start the CPU window."""
        self._cpu0 = (self.cpu_seconds(), time.monotonic())

    def cpu_percent(self) -> float:
        """CPU time over the wall time since mark_cpu, in % of one core."""
        cpu, wall = self._cpu0
        return 100.0 * (self.cpu_seconds() - cpu) / max(1e-6, time.monotonic() - wall)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the process (from /proc)."""
        fields = (Path("/proc") / str(self.proc.pid) / "stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        """Resident memory of the process, MB."""
        for line in (Path("/proc") / str(self.proc.pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Signal the process and wait for it (SIGTERM: a clean stop that flushes the spool)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Ledger:
    """A subscriber with a persistent session (MQTT 5, no clean start, a long session expiry)
    recording every event, availability change, detections latency and device config."""

    def __init__(self, port: int, client_id: str = "fleet-ledger"):
        self.events: List[Tuple[float, dict]] = []
        self.availability: List[Tuple[float, str, bytes]] = []
        self.configs: List[Tuple[float, str]] = []
        self.latency_ms: List[float] = []
        self.frames: List[str] = []  # the device of every detections message (one per frame)
        self.sys_received: List[Tuple[float, int]] = []
        self.connects = 0
        self._cond = threading.Condition()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=paho.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()
        if not self.wait(lambda: self.connects > 0, 10):
            raise RuntimeError("the ledger could not connect")

    def _on_connect(self, client, _u, _f, reason_code, _p) -> None:
        if not reason_code.is_failure:
            client.subscribe([("edgecam/+/events", 1), ("edgecam/+/availability", 1),
                              ("edgecam/+/detections", 0), ("homeassistant/device/+/config", 1),
                              ("$SYS/broker/messages/received", 0)])
            with self._cond:
                self.connects += 1
                self._cond.notify_all()

    def _on_message(self, _c, _u, msg) -> None:
        now = time.time()
        topic = msg.topic
        with self._cond:
            if topic.endswith("/events"):
                self.events.append((now, json.loads(msg.payload)))
            elif topic.endswith("/availability"):
                self.availability.append((now, topic.split("/")[1], msg.payload))
            elif topic.endswith("/detections"):
                self.latency_ms.append(1000.0 * (now - json.loads(msg.payload)["ts"]))
                self.frames.append(topic.split("/")[1])
            elif topic.startswith("homeassistant/device/") and msg.payload:
                self.configs.append((now, topic.split("/")[2]))
            elif topic.startswith("$SYS/"):
                self.sys_received.append((time.monotonic(), int(msg.payload)))
            self._cond.notify_all()

    def wait(self, predicate, timeout: float) -> bool:
        """Wait until `predicate()` holds (checked on every message); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
        return True

    def online(self, name: str, since: float = 0.0) -> bool:
        """True when `name`'s latest availability since `since` is `online`."""
        states = [p for t, d, p in self.availability if d == name and t >= since]
        return states[-1:] == [b"online"]

    def close(self) -> None:
        """Disconnect (the session stays on the broker until it expires)."""
        self.client.disconnect()
        self.client.loop_stop()


def event_key(ev: dict) -> Tuple[str, str, float]:
    """What de-duplicates an event message: (id, event, ts) (a re-send carries the same ts)."""
    return ev["id"], ev["type"], ev["ts"]


def tally(cameras: List[Camera], ledger: Ledger) -> dict:
    """Events each camera made (its --json lines) against those the ledger received, after
    de-duplication by (id, event, ts): lost, duplicated (an (id, event) twice, other than
    updates), extra (received, never made), and the raw re-sends the de-duplication removed."""
    made = Counter((e["id"], e["event"]) for cam in cameras for e in cam.events)
    received = [ev for _, ev in ledger.events]
    unique = {event_key(ev): ev for ev in received}
    got = Counter((ev["id"], ev["type"]) for ev in unique.values() if ev.get("reason") != "restart")
    restart_ends = [ev for ev in unique.values() if ev.get("reason") == "restart"]
    lost = made - got
    extra = got - made
    duplicated = {k: n for k, n in got.items() if n > 1 and k[1] != "update"}
    return {"made": sum(made.values()), "received": len(received), "unique": len(unique),
            "lost": sum(lost.values()), "extra": sum(extra.values()),
            "duplicated": len(duplicated), "resent": len(received) - len(unique),
            "restart_ends": len(restart_ends), "lost_ids": sorted(lost)[:10]}


class Fleet:
    """N cameras on one broker, the ledger and the fleet view (`edgecam listen --all --json`)."""

    def __init__(self, n: int, workdir: Path, broker: Broker, video: Path, config: Path,
                 ledger_port: Optional[int] = None, view: bool = True):
        self.workdir, self.broker = workdir, broker
        self.ledger = Ledger(ledger_port or broker.port, client_id=f"ledger-{workdir.name}")
        self.cameras = [Camera(f"cam{i:02d}", broker.port, video, config, workdir)
                        for i in range(n)]
        self.view_rows: Dict[str, dict] = {}
        self._view: Optional[subprocess.Popen] = None
        if view:
            self._view = subprocess.Popen(
                [sys.executable, "-m", "edgecam", "listen", "--mqtt",
                 f"127.0.0.1:{ledger_port or broker.port}", "--all", "--json"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            threading.Thread(target=self._read_view, daemon=True).start()

    def _read_view(self) -> None:
        for line in self._view.stdout:
            row = json.loads(line)
            self.view_rows[row["device"]] = row

    def wait_online(self, since: float = 0.0, timeout: float = 120.0) -> bool:
        """Wait until every camera said `online` after `since` (unix time)."""
        return self.ledger.wait(lambda: all(self.ledger.online(c.name, since)
                                            for c in self.cameras), timeout)

    def wait_events(self, count: int, timeout: float) -> bool:
        """Wait until the ledger has `count` more events than now."""
        have = len(self.ledger.events)
        return self.ledger.wait(lambda: len(self.ledger.events) >= have + count, timeout)

    def close(self) -> None:
        """Stop every camera cleanly (open events end, spools flush), then the view and ledger."""
        threads = [threading.Thread(target=c.stop) for c in self.cameras]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if self._view is not None:
            self._view.terminate()
            self._view.wait(10)

    def settle(self, timeout: float = 60.0) -> float:
        """After close(): wait (at most `timeout` s) until the ledger has every event the
        cameras made, then 1 s more for late re-sends; what is still missing then is lost.
        Returns the seconds the last of them took to arrive."""
        def made() -> Counter:
            return Counter((e["id"], e["event"]) for c in self.cameras for e in c.events)

        def arrived() -> bool:
            got = Counter((ev["id"], ev["type"]) for ev in
                          {event_key(ev): ev for _, ev in self.ledger.events}.values())
            return not (made() - got)
        started = time.monotonic()
        self.ledger.wait(arrived, timeout)
        waited = time.monotonic() - started
        time.sleep(1.0)
        return round(waited, 2)


def outage(fleet: Fleet, broker: Broker, down: float, new_events: int = 1,
           timeout: float = 120.0) -> dict:
    """Stop `broker` for at least `down` s and until the cameras made `new_events` more events
    (at most `timeout` s), start it again; wait until every camera is online again. Returns the
    time down, the events made meanwhile and the seconds until the fleet was back."""
    made = sum(len(c.events) for c in fleet.cameras)
    broker.stop()
    stopped = time.monotonic()
    deadline = stopped + timeout
    while time.monotonic() < deadline and (
            time.monotonic() - stopped < down
            or sum(len(c.events) for c in fleet.cameras) < made + new_events):
        time.sleep(0.1)
    during = sum(len(c.events) for c in fleet.cameras) - made
    since = time.time()
    broker.start()
    if not fleet.wait_online(since, timeout):
        raise RuntimeError("not every camera came back after the outage")
    return {"down_s": round(time.monotonic() - stopped - (time.time() - since), 1),
            "made_while_down": during, "back_s": round(time.time() - since, 2)}


def kill_one(fleet: Fleet, camera: Camera, timeout: float = 60.0) -> dict:
    """SIGKILL `camera`: seconds to its `offline` will; restart it and check that every start
    it left open gets an end (reason restart)."""
    killed = time.time()
    camera.stop(signal.SIGKILL)
    ledger = fleet.ledger
    ledger.wait(lambda: any(d == camera.name and p == b"offline" and t >= killed
                            for t, d, p in ledger.availability), KEEPALIVE * 3)
    will = [t for t, d, p in ledger.availability if d == camera.name and p == b"offline" and t >= killed]
    will_s = will[0] - killed if will else None
    # What it left open: the starts it made (its own event lines) without an end.
    started = {ev["id"] for ev in camera.events if ev["event"] == "start"}
    ended = {ev["id"] for ev in camera.events if ev["event"] == "end"}
    orphans = started - ended
    camera.start()

    def all_ended() -> bool:
        done = {ev["id"] for _, ev in ledger.events if ev["device"] == camera.name and ev["type"] == "end"}
        return orphans <= done
    ledger.wait(all_ended, timeout)
    closed = {ev["id"] for _, ev in ledger.events
              if ev["device"] == camera.name and ev["type"] == "end" and ev.get("reason") == "restart"}
    return {"will_s": will_s, "will_limit_s": KEEPALIVE * 1.5, "orphans": len(orphans),
            "orphans_ended_at_restart": len(orphans & closed)}


BRIDGE_CONF = """connection central
address 127.0.0.1:{port}
topic edgecam/# out 1
cleansession false
clientid site-bridge
bridge_protocol_version mqttv311
restart_timeout 1 5
max_queued_messages {queue}
"""


def bridged_brokers(workdir: Path, queue: int = 100000) -> Tuple[Broker, Broker]:
    """(site, central): the site bridges `edgecam/#` out to the central at QoS 1 with a
    persistent session, queueing up to `queue` messages while the central is away."""
    (workdir / "central").mkdir(parents=True, exist_ok=True)
    (workdir / "site").mkdir(parents=True, exist_ok=True)
    central = Broker(workdir / "central", persistent=True).start()
    site = Broker(workdir / "site", BRIDGE_CONF.format(port=central.port, queue=queue),
                  persistent=True).start()
    return site, central


def measure(fleet: Fleet, seconds: float) -> dict:
    """Run `seconds` with the fleet up: CPU, RSS, broker messages/s, latency; then HA's birth."""
    ledger = fleet.ledger
    for cam in fleet.cameras:
        cam.mark_cpu()
    lat0, sys0, frames0 = len(ledger.latency_ms), len(ledger.sys_received), len(ledger.frames)
    started = time.monotonic()
    time.sleep(seconds)
    fps = len(ledger.frames[frames0:]) / (time.monotonic() - started) / len(fleet.cameras)
    cpu = [c.cpu_percent() for c in fleet.cameras]
    rss = [c.rss_mb() for c in fleet.cameras]
    sys_samples = ledger.sys_received[sys0:]
    rate = None
    if len(sys_samples) >= 2:
        (t0, v0), (t1, v1) = sys_samples[0], sys_samples[-1]
        rate = (v1 - v0) / max(1e-6, t1 - t0)
    lat = summarize(ledger.latency_ms[lat0:]) if len(ledger.latency_ms) > lat0 else None
    birth = ha_birth(fleet)
    return {"cameras": len(fleet.cameras), "cpu_pct_mean": sum(cpu) / len(cpu), "cpu_pct_max": max(cpu),
            "rss_mb_mean": sum(rss) / len(rss), "rss_mb_max": max(rss), "broker_msgs_per_s": rate,
            "latency_p50_ms": lat.p50 if lat else None, "latency_p95_ms": lat.p95 if lat else None,
            **birth, "view_devices": len(fleet.view_rows),
            "view_online": sum(1 for r in fleet.view_rows.values() if r.get("online")),
            "fps_mean": fps}


def ha_birth(fleet: Fleet, timeout: float = 30.0) -> dict:
    """Publish HA's birth message; the seconds until each device's config came again."""
    ledger = fleet.ledger
    sent = time.time()
    ledger.client.publish("homeassistant/status", "online", qos=1)
    names = {f"edgecam_{c.name}" for c in fleet.cameras}
    ledger.wait(lambda: names <= {n for t, n in ledger.configs if t >= sent}, timeout)
    first: Dict[str, float] = {}
    for t, n in ledger.configs:
        if t >= sent and n in names:
            first.setdefault(n, t - sent)
    delays = sorted(first.values())
    return {"birth_all_s": delays[-1] if len(delays) == len(names) else None,
            "birth_p50_s": delays[len(delays) // 2] if delays else None}


def run(n: int, seconds: float, workdir: Path, video: Path, config: Path) -> dict:
    """One fleet size: start, wait for every camera online, measure, stop."""
    workdir.mkdir(parents=True, exist_ok=True)
    broker = Broker(workdir, "sys_interval 1\n", persistent=True).start()
    fleet = Fleet(n, workdir, broker, video, config)
    try:
        t0 = time.monotonic()
        if not fleet.wait_online(0.0, 60 + 10 * n):
            raise RuntimeError("the fleet did not come online")
        result = {"startup_s": time.monotonic() - t0, **measure(fleet, seconds)}
    finally:
        fleet.close()
        fleet.ledger.close()
        broker.stop()
    return result


def restart_faults(n: int, workdir: Path, video: Path, config: Path, down: float,
                   run_s: float) -> dict:
    """The broker restarted twice under an N-camera fleet, then one camera SIGKILLed and
    started again; the events tally over all of it."""
    workdir.mkdir(parents=True, exist_ok=True)
    broker = Broker(workdir, persistent=True).start()
    fleet = Fleet(n, workdir, broker, video, config, view=False)
    out: dict = {}
    try:
        if not fleet.wait_online(0.0, 60 + 10 * n):
            raise RuntimeError("the fleet did not come online")
        fleet.wait_events(n, 120)
        out["restarts"] = [outage(fleet, broker, down) for _ in range(2)]
        fleet.wait_events(n, 120)
        out["kill"] = kill_one(fleet, fleet.cameras[0])
        fleet.wait_events(n, 120)
        time.sleep(run_s)
    finally:
        fleet.close()
        drain = fleet.settle()
        fleet.ledger.close()
        broker.stop()
    out["events"] = {**tally(fleet.cameras, fleet.ledger), "drain_s": drain}
    return out


def bridge_fault(n: int, workdir: Path, video: Path, config: Path, central_down: float,
                 run_s: float) -> dict:
    """The cameras on a site broker bridged to a central one, the ledger on the central; the
    central down `central_down` s; the events tally."""
    site, central = bridged_brokers(workdir)
    fleet = Fleet(n, workdir, site, video, config, ledger_port=central.port, view=False)
    try:
        if not fleet.wait_online(0.0, 60 + 10 * n):
            raise RuntimeError("the fleet did not come online")
        fleet.wait_events(n, 120)
        down = outage_central(fleet, central, central_down)
        fleet.wait_events(1, 60)
        time.sleep(run_s)
    finally:
        fleet.close()
        drain = fleet.settle()
        fleet.ledger.close()
        site.stop()
        central.stop()
    return {**down, **tally(fleet.cameras, fleet.ledger), "drain_s": drain}


def outage_central(fleet: Fleet, central: Broker, down: float) -> dict:
    """The central broker away `down` s (and until an event was made meanwhile); the cameras
    stay connected to the site, so only the ledger's reconnect is waited for."""
    made = sum(len(c.events) for c in fleet.cameras)
    connects = fleet.ledger.connects
    central.stop()
    stopped = time.monotonic()
    while time.monotonic() - stopped < max(down, 0) or (
            sum(len(c.events) for c in fleet.cameras) == made and time.monotonic() - stopped < 120):
        time.sleep(0.1)
    during = sum(len(c.events) for c in fleet.cameras) - made
    down_s = time.monotonic() - stopped
    central.start()
    fleet.ledger.wait(lambda: fleet.ledger.connects > connects, 60)
    return {"central_down_s": round(down_s, 1), "made_while_down": during}


def table(rows: List[dict]) -> str:
    """The docs table of the fleet sizes."""
    def f(v, fmt="{:.1f}"):
        return "-" if v is None else fmt.format(v)
    lines = ["| cameras | CPU per camera, % of a core (mean / max) | RSS per camera, MB (mean / max) "
             "| fps per camera | broker msgs/s | birth -> all configs, s | latency p50 / p95, ms |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['cameras']} | {f(r['cpu_pct_mean'])} / {f(r['cpu_pct_max'])} "
                     f"| {f(r['rss_mb_mean'], '{:.0f}')} / {f(r['rss_mb_max'], '{:.0f}')} "
                     f"| {f(r['fps_mean'], '{:.2f}')} | {f(r['broker_msgs_per_s'], '{:.0f}')} "
                     f"| {f(r['birth_all_s'], '{:.2f}')} "
                     f"| {f(r['latency_p50_ms'], '{:.0f}')} / {f(r['latency_p95_ms'], '{:.0f}')} |")
    return "\n".join(lines)


def main() -> None:
    """Run the fleet sizes asked for (and the faults on the last one); print JSON and a table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameras", type=int, action="append", help="fleet size (repeatable; default 20)")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured window per size")
    ap.add_argument("--fps", type=float, default=1.0, help="frames per second of each camera")
    ap.add_argument("--faults", action="store_true", help="also run the faults on the last size")
    ap.add_argument("--down", type=float, default=3.0, help="seconds the broker stays down per restart")
    ap.add_argument("--central-down", type=float, default=30.0, help="seconds the central broker is down")
    args = ap.parse_args()
    sizes = args.cameras or [20]
    with tempfile.TemporaryDirectory(prefix="edgecam-fleet-") as tmp:
        work = Path(tmp)
        video = scene_video(work / "scene.mp4", args.fps)
        config = fleet_config(work / "fleet.toml")
        rows = []
        for n in sizes:
            row = run(n, args.seconds, work / f"n{n}", video, config)
            rows.append(row)
            print(json.dumps(row), flush=True)
        print(table(rows))
        if args.faults:
            n = sizes[-1]
            print(json.dumps({"cameras": n,
                              **restart_faults(n, work / "restart", video, config, args.down, 10.0),
                              "bridge": bridge_fault(n, work / "bridge", video, config,
                                                     args.central_down, 10.0)}, indent=1))


if __name__ == "__main__":
    main()
