"""`edgecam probe` on the command line: the report as text or JSON, a plot, an MQTT publish."""

from __future__ import annotations

import json
import logging
import os

import click

from ..probe.measure import parse_threads, probe_to_payload, run_probe
from ..probe.report import format_report, write_plot

log = logging.getLogger(__name__)


@click.command("probe")
@click.option(
    "--model",
    "models",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Model to probe (repeat to compare several); with --detector imx500 the .rpk "
    "network (default: imx500-all's SSD).",
)
@click.option("--labels", type=click.Path(dir_okay=False), help="Label file for detection models.")
@click.option(
    "--threads",
    "threads_text",
    default=None,
    metavar="N[,N...]",
    help="Interpreter thread counts to try, e.g. 1,2,4 (default: number of cores).",
)
@click.option(
    "--runs",
    default=50,
    show_default=True,
    type=click.IntRange(1, 100000),
    help="Timed runs per model and thread count.",
)
@click.option(
    "--warmup", default=5, show_default=True, type=click.IntRange(0, 10000), help="Untimed runs first."
)
@click.option(
    "--source",
    default=None,
    help="Image, folder of images, video file or camera to "
    "take frames from (default: a noise frame; real frames are better).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON document.")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write a PNG of per-stage latency and invoke histograms (needs matplotlib).",
)
@click.option(
    "--budget-ms",
    type=float,
    default=None,
    help="Name the most capable model whose raw invoke p95 fits this budget.",
)
@click.option("--delegate", type=click.Choice(["cpu", "edgetpu"]), default="cpu", show_default=True)
@click.option(
    "--detector",
    type=click.Choice(["imx500"]),
    default=None,
    help="imx500: time the AI Camera's own DNN and DSP per frame beside the CPU's work.",
)
@click.option(
    "--mqtt",
    "mqtt_broker",
    default=None,
    metavar="HOST[:PORT]",
    help="Publish each frame's JSON for real, and the results retained on <prefix>/probe.",
)
@click.option("--mqtt-prefix", default=None, help="Topic prefix (default: edgecam/<hostname>).")
@click.option(
    "--clips",
    "clips",
    is_flag=True,
    help="Measure what recording event clips costs instead: H.264 encoder CPU per "
    "second of video at the configured size and fps (x264 ultrafast/veryfast, "
    "h264_v4l2m2m where present).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="With --clips: the config whose [source] width/height/fps and [clips] bitrate to use.",
)
def probe_command(
    models,
    labels,
    threads_text,
    runs,
    warmup,
    source,
    as_json,
    plot,
    budget_ms,
    delegate,
    detector,
    mqtt_broker,
    mqtt_prefix,
    clips,
    config_path,
):
    """Measure each model's latency on this device: per stage p50/p95/p99/max, fps, CPU, RSS."""
    if clips:
        from .. import config as cfg
        from ..probe.clips import format_clip_costs, probe_clip_encoders

        config = cfg.resolve(config_path, {})
        s = config.source
        rows = probe_clip_encoders(
            s.width,
            s.height,
            s.fps,
            bitrate_kbps=config.clips.bitrate,
            progress=None if as_json else (lambda m: click.echo(m, err=True)),
        )
        click.echo(json.dumps([r.to_json() for r in rows]) if as_json else format_clip_costs(rows))
        return
    if detector == "imx500":
        from ..backends.imx500 import Imx500Backend
        from ..probe.sensor import format_sensor_report, probe_imx500

        backend = Imx500Backend.load(models[0] if models else None, labels)
        sensor_report = probe_imx500(
            backend, runs, progress=None if as_json else (lambda msg: click.echo(msg, err=True))
        )
        click.echo(json.dumps(sensor_report) if as_json else format_sensor_report(sensor_report))
        return
    if not models:
        raise click.UsageError("give --model (or --detector imx500)")
    threads = parse_threads(threads_text)
    from ..comms.topics import Topics

    publisher = None
    topics = Topics("edgecam")  # only named in the JSON-only publish stage without --mqtt
    if mqtt_broker:
        from ..comms.identity import parse_host_port, resolve_device_id, topic_prefix
        from ..comms.mqtt import DirectPublisher

        topics = Topics(topic_prefix(mqtt_prefix, resolve_device_id(None)))
        publisher = DirectPublisher(*parse_host_port(mqtt_broker), f"edgecam-probe-{os.getpid()}")
    try:
        progress = None if as_json else (lambda msg: click.echo(msg, err=True))
        report = run_probe(
            list(models),
            threads=threads,
            runs=runs,
            warmup=warmup,
            source=source,
            labels=labels,
            delegate=None if delegate == "cpu" else delegate,
            budget_ms=budget_ms,
            publish=publisher,
            topic=topics.probe_frame,
            progress=progress,
        )
        if publisher is not None:
            publisher.publish_retained(topics.probe, probe_to_payload(report))
    finally:
        if publisher is not None:
            publisher.close()
    if plot:
        write_plot(report, plot)
    click.echo(json.dumps(report.to_dict()) if as_json else format_report(report))
