"""`edgecam listen`: a pretty or JSON-lines view of what edgecam devices publish."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import click

from ..errors import EdgecamError
from ..files import make_dir
from .fleet import CLEAR, FleetTable

REDRAW = 0.5  # seconds between redrawings of the fleet table


def describe(topic: str, payload: bytes) -> dict:
    """One received message as a JSON-able record (binary payloads summarised)."""
    parts = topic.split("/")
    record = {
        "topic": topic,
        "device": parts[1] if len(parts) > 1 else None,
        "received": round(time.time(), 3),
    }
    if topic.endswith("/snapshot"):
        record.update(kind="snapshot", bytes=len(payload))
        return record
    try:
        record["payload"] = json.loads(payload) if payload else None
    except ValueError:
        record["payload"] = payload.decode("utf-8", errors="replace")
    return record


def pretty(record: dict) -> str:
    """A one-line human view of a record."""
    topic = record["topic"]
    when = time.strftime("%H:%M:%S", time.localtime(record["received"]))
    if record.get("kind") == "snapshot":
        return f"{when} {topic}: JPEG {record['bytes']} bytes"
    p = record.get("payload")
    if isinstance(p, dict) and "detections" in p:
        dets = ", ".join(f"{d['label']} {d['score']:.2f}" for d in p["detections"]) or "nothing"
        return f"{when} {topic}: #{p.get('seq')} {p.get('inference_ms')} ms: {dets}"
    if isinstance(p, dict) and p.get("type") in ("start", "end"):
        return f"{when} {topic}: {p['type']} {p['label']} (score {p['score']}, id {p['id'][:8]})"
    if isinstance(p, dict):
        p = {k: v for k, v in p.items() if k != "v"}
    return f"{when} {topic}: {json.dumps(p) if isinstance(p, (dict, list)) else p}"


def _save_snapshot(directory: Path, topic: str, payload: bytes) -> Path:
    device = topic.split("/")[1] if "/" in topic else "device"
    path = directory / f"{device}-{time.strftime('%Y%m%d-%H%M%S')}-{int(time.time() * 1000) % 1000:03d}.jpg"
    path.write_bytes(payload)
    return path


def _draw_fleet(fleet: FleetTable, lock: threading.Lock, dirty: list, done: threading.Event, timeout) -> None:
    """Redraw the table twice a second while it changes (in place on a terminal, appended
    otherwise) until `done` or `timeout`; a last drawing at the end."""
    tty = sys.stdout.isatty()
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = None if deadline is None else deadline - time.monotonic()
        finished = done.wait(REDRAW if left is None else max(0.0, min(REDRAW, left)))
        finished = finished or (left is not None and left <= REDRAW)
        with lock:
            changed, dirty[0] = dirty[0], False
            if changed or finished or tty:  # on a terminal the "s ago" column moves on
                text = fleet.render()
        if changed or finished or tty:
            click.echo((CLEAR + text) if tty else text + "\n", nl=True)
            sys.stdout.flush()
        if finished:
            return


@click.command("listen")
@click.option(
    "--mqtt",
    "broker",
    default="localhost",
    show_default=True,
    metavar="HOST[:PORT]",
    help="Broker to listen on.",
)
@click.option("--device", "device", default=None, metavar="ID", help="Only this device.")
@click.option(
    "--all",
    "all_devices",
    is_flag=True,
    help="The fleet view: a table of every device under edgecam/ (online, fps, inference, "
    "temperature, spool, last event), redrawn in place; JSON lines of its rows with --json.",
)
@click.option(
    "--prefix", default=None, help="Listen under this topic prefix instead (e.g. a custom [mqtt] prefix)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option(
    "--save-snapshots",
    type=click.Path(file_okay=False),
    default=None,
    help="Write every snapshot received as a JPEG into this directory.",
)
@click.option("--mqtt-user", default=None, help="Username.")
@click.option(
    "--mqtt-password-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="File holding the password (or env EDGECAM_MQTT_PASSWORD).",
)
@click.option("--mqtt-tls-ca", type=click.Path(dir_okay=False), default=None, help="CA file: turns TLS on.")
@click.option("--count", type=int, default=None, help="Exit after this many messages.")
@click.option("--timeout", type=float, default=None, help="Exit after this many seconds.")
def listen_command(
    broker,
    device,
    all_devices,
    prefix,
    as_json,
    save_snapshots,
    mqtt_user,
    mqtt_password_file,
    mqtt_tls_ca,
    count,
    timeout,
):
    """Show what edgecam devices publish (pretty, or JSON lines with --json)."""
    from ..comms.identity import TOPIC_ROOT, parse_host_port, read_password, resolve_device_id, topic_prefix
    from ..comms.mqtt import BrokerLogin, paho_client
    from ..comms.topics import Topics

    if device and all_devices:
        raise EdgecamError("listen: give --device ID or --all, not both")
    host, port = parse_host_port(broker)
    fleet = FleetTable(TOPIC_ROOT) if all_devices else None
    if fleet is not None:
        topics = [f"{TOPIC_ROOT}/+/{name}" for name in ("availability", "stats", "events")]
    elif prefix:
        topic = Topics(prefix.rstrip("/")).everything
    elif device:
        topic = Topics(topic_prefix(None, resolve_device_id(device))).everything
    else:
        topic = Topics(TOPIC_ROOT).everything
    if fleet is None:
        topics = [topic]
    snap_dir = Path(save_snapshots) if save_snapshots else None
    if snap_dir:
        make_dir(snap_dir)

    done = threading.Event()
    lock = threading.Lock()
    dirty = [False]
    seen = [0]
    problem: list = []

    def on_connect(client, _u, _f, reason_code, _p):
        if reason_code.is_failure:
            problem.append(f"broker {host}:{port} refused the connection: {reason_code}")
            done.set()
        else:
            client.subscribe([(t, 1) for t in topics])

    def on_message(_c, _u, msg):
        seen[0] += 1
        if count is not None and seen[0] >= count:
            done.set()
        if fleet is not None:
            with lock:
                row = fleet.update(msg.topic, msg.payload)
                if row is not None and as_json:
                    click.echo(json.dumps(row.to_json()))
                    sys.stdout.flush()
                dirty[0] = dirty[0] or row is not None
            return
        record = describe(msg.topic, msg.payload)
        if snap_dir and record.get("kind") == "snapshot" and msg.payload:
            record["saved"] = str(_save_snapshot(snap_dir, msg.topic, msg.payload))
        click.echo(json.dumps(record) if as_json else pretty(record))
        sys.stdout.flush()

    client = paho_client(
        BrokerLogin(
            f"edgecam-listen-{os.getpid()}",
            username=mqtt_user,
            password=read_password(mqtt_password_file) if mqtt_user else None,
            tls_ca=mqtt_tls_ca,
        )
    )
    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(host, port)
    except OSError as exc:
        raise EdgecamError(f"cannot reach MQTT broker {host}:{port}: {exc}") from None
    client.loop_start()
    if not as_json:
        click.echo(f"listening on {host}:{port} {' '.join(topics)} (Ctrl-C to stop)", err=True)
    try:
        if fleet is not None and not as_json:
            _draw_fleet(fleet, lock, dirty, done, timeout)
        else:
            done.wait(timeout)
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    if problem:
        raise EdgecamError(problem[0])
