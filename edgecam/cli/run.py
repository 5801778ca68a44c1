"""`edgecam run`: options -> Config -> app.run, with a clean exit on Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
import sys
import threading

import click

from .. import backends
from .. import config as cfg

log = logging.getLogger("edgecam")


def _split_host_port(value):
    """(host, port) of --mqtt, (None, None) when not given; the port only when written."""
    if value is None:
        return None, None
    from ..comms.identity import parse_host_port
    host, port = parse_host_port(value, default_port=0)
    return host, port or None


@click.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML config file (default /etc/edgecam/config.toml when present).")
@click.option("--model", help="Detection model (.tflite). Default: the installed default model.")
@click.option("--labels", help="Label file for the model.")
@click.option("--threads", type=int, help="Interpreter threads (default: number of cores / workers).")
@click.option("--detector", type=click.Choice(backends.CHOICES), help=f"Detector backend: {backends.choices_help()} (README: Accelerators).")
@click.option("--delegate", type=click.Choice(["cpu", "edgetpu"]), help="Alias of --detector cpu|edgetpu.")
@click.option("--threshold", type=float, help="Minimum score (0..1).")
@click.option("--classes", help="Only report these labels, comma-separated.")
@click.option("--max-detections", type=int, help="At most this many detections per frame.")
@click.option("--min-area", type=float, help="Ignore boxes smaller than this fraction of the frame.")
@click.option("--resize", type=click.Choice(["stretch", "letterbox"]), help="How frames are fitted to the model input.")
@click.option("--watch", help="Labels that make events, counts and snapshots (default person).")
@click.option("--source", help="auto, picamera, N, /dev/videoN, rtsp://..., http://..., a video file, an image or a folder.")
@click.option("--width", type=int, help="Camera capture width.")
@click.option("--height", type=int, help="Camera capture height.")
@click.option("--fps", type=float, help="Camera frame rate.")
@click.option("--loop/--no-loop", default=None, help="Repeat file sources.")
@click.option("--realtime/--no-realtime", default=None, help="Pace a video file at its fps, like a camera.")
@click.option("--drop/--no-drop", default=None, help="Drop frames when busy (default: live sources only).")
@click.option("--workers", type=int, help="Interpreters on consecutive frames (throughput mode); 1: latency mode; default: 1 for cameras, one per core for files.")
@click.option("--output", help="FILE.mp4 for annotated video, or DIR/ for annotated JPEGs.")
@click.option("--snapshot-dir", help="Write a JPEG when a watched label is seen.")
@click.option("--track/--no-track", default=None, help="Track watched objects: start/update/end events, zones, masks ([track]).")
@click.option("--motion/--no-motion", default=None, help="Run the detector only on motion, while tracking, or every keep-alive ([motion]).")
@click.option("--keepalive", type=float, help="Seconds between inferences when nothing moves (with --motion).")
@click.option("--clips", "clips_dir", help="Record a clip of each tracked event into DIR ([clips]; needs --track).")
@click.option("--json", "json_output", is_flag=True, help="One JSON object per frame on stdout.")
@click.option("--max-frames", type=int, help="Stop after N processed frames.")
@click.option("--duration", type=float, help="Stop after S seconds.")
@click.option("--mqtt", help="MQTT broker HOST[:PORT].")
@click.option("--device-id", help="Device id in topics (default: hostname).")
@click.option("--mqtt-user", help="MQTT username.")
@click.option("--mqtt-password-file", help="File with the MQTT password (or env EDGECAM_MQTT_PASSWORD).")
@click.option("--mqtt-tls-ca", help="CA certificate: turns TLS on.")
@click.option("--state-dir", help="Where the MQTT spool and state live.")
@click.option("--web", help="Serve the live preview on HOST:PORT.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), help="Log level.")
def run_command(config_path, **opts):
    """Detect objects in frames from a camera, stream or files, and report them."""
    from ..app import format_summary, install_signal_handlers, run
    host, port = _split_host_port(opts["mqtt"])
    listed = lambda v: None if v is None else tuple(x.strip() for x in v.split(",") if x.strip())  # noqa: E731
    overrides = {
        "model": {"path": opts["model"], "labels": opts["labels"], "threads": opts["threads"],
                  "delegate": opts["delegate"], "detector": opts["detector"]},
        "detect": {"threshold": opts["threshold"], "classes": listed(opts["classes"]),
                   "max_detections": opts["max_detections"], "min_area": opts["min_area"],
                   "resize": opts["resize"], "watch": listed(opts["watch"])},
        "source": {"uri": opts["source"], "width": opts["width"], "height": opts["height"],
                   "fps": opts["fps"], "loop": opts["loop"], "realtime": opts["realtime"]},
        "pipeline": {"workers": opts["workers"], "drop": opts["drop"],
                     "max_frames": opts["max_frames"], "duration": opts["duration"]},
        "output": {"path": opts["output"], "snapshot_dir": opts["snapshot_dir"]},
        "mqtt": {"host": host, "port": port, "device_id": opts["device_id"], "user": opts["mqtt_user"],
                 "password_file": opts["mqtt_password_file"], "tls_ca": opts["mqtt_tls_ca"]},
        "track": {"enabled": opts["track"]},
        "motion": {"enabled": opts["motion"], "keepalive": opts["keepalive"]},
        "clips": {"enabled": True if opts["clips_dir"] else None, "dir": opts["clips_dir"]},
        "service": {"state_dir": opts["state_dir"], "web": opts["web"], "log_level": opts["log_level"]},
    }
    config = cfg.resolve(config_path, overrides)
    _setup_logging(config.service.log_level)
    stop = threading.Event()
    install_signal_handlers(stop)
    summary = run(config, json_output=opts["json_output"], stop=stop)
    line = format_summary(summary)
    if opts["json_output"]:
        log.info(line)
        _quiet_closed_stdout()
        return
    try:
        click.echo(line)
    except BrokenPipeError:
        pass
    finally:
        _quiet_closed_stdout()


def _quiet_closed_stdout() -> None:
    # Python flushes stdout at exit; if the reader is gone that flush would print a traceback.
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _setup_logging(level: str) -> None:
    from ..logs import setup_logging
    setup_logging(level)
