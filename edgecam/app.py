"""Wire the stages for `edgecam run`: config in, a running pipeline out. Wiring lives only here."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence, TextIO

from .annotate import Annotate, Annotator
from . import backends
from .backends import Backend, LoadRequest, resolve_backend, with_backend
from .config import Config, check_combination, state_dir
from .datatypes import DetectOptions, EndReason
from .errors import EdgecamError
from .label_events import label_events_from_config
from .logs import stderr_is_journal
from .models import resolve_model
from .pipeline import Pipeline
from .settings import THRESHOLD_MIN
from .sinks import JsonLinesSink, SnapshotSink, SummarySink, output_sink
from .sources import REMUX_SCHEMES, SourceSpec, is_live, open_source
from .stages import Sink
from .stats import ClipCounts, EventCounts, PipelineStats, RunSummary

log = logging.getLogger(__name__)

# How often a long run logs its figures (a camera prints no per-frame lines).
LOG_EVERY_S = 60.0
# How long a stop waits for frames in flight before closing the sinks regardless; systemd's
# TimeoutStopSec (20 s) and the 5 s promised for SIGTERM both leave room for the MQTT flush.
SHUTDOWN_WAIT_S = 2.5
# How long the outputs may take to catch up once a file source has ended.
DRAIN_WAIT_S = 60.0


def installed_labels(env=None) -> Optional[str]:
    """The label file installed with the default (COCO) model, or None: the labels an
    accelerator's COCO model falls back to."""
    from .models import default_model

    try:
        return str(default_model(env)[1] or "") or None
    except EdgecamError:
        return None


def detect_options(config: Config) -> DetectOptions:
    """The [detect] settings every backend filters with."""
    d = config.detect
    return DetectOptions(d.threshold, tuple(d.classes), d.max_detections, d.min_area, d.resize)


def lowest_threshold(config: Config) -> float:
    """The lowest detection threshold this run can filter with: the configured one, or with
    [mqtt] host set the lowest `set/threshold` accepts (the command can lower it at run time)."""
    return THRESHOLD_MIN if config.mqtt.host else config.detect.threshold


def resolved_backend(config: Config) -> Config:
    """The config with `[model] detector` made concrete (auto resolved, the delegate alias
    folded in), so everything downstream reads one name."""
    return dataclasses.replace(
        config, model=with_backend(config.model, resolve_backend(config.model.backend))
    )


AUTO_WORKERS_MAX = 4  # beyond this, more interpreters add memory, not frames


def worker_count(config: Config, cores: int) -> int:
    """Interpreters to run: the configured number, or for 0 (auto) one for live sources, a
    backend that is one device (the Edge TPU, the accelerators), motion gating and motion
    regions (latency mode: the freshest frame; one device; frames mostly skipped; motion
    measured frame after frame), and for files one per core (or per `threads` cores), up to AUTO_WORKERS_MAX (throughput mode: files have no
    deadline, and single-thread interpreters waste less CPU than one spread over the cores)."""
    if config.pipeline.workers:
        return config.pipeline.workers
    if (
        not backends.info(config.model.backend).parallel
        or config.motion.enabled
        or config.detect.regions == "motion"
        or is_live(config.source.uri, config.source.realtime)
    ):
        return 1
    return max(1, min(AUTO_WORKERS_MAX, cores // (config.model.threads or 1)))


def load_request(config: Config) -> LoadRequest:
    """What the configured backend is loaded with: a TFLite backend gets the default model
    when none is set, one interpreter per worker and the cores split between them unless
    threads are set; an accelerator its own default model, with the installed COCO labels to
    fall back on."""
    options = detect_options(config)
    if not backends.info(config.model.backend).tflite:
        return LoadRequest(
            config.model.path,
            config.model.labels,
            options,
            score_floor=lowest_threshold(config),
            fallback_labels=installed_labels(),
        )
    model, labels = resolve_model(config.model)
    cores = os.cpu_count() or 1
    workers = worker_count(config, cores)
    return LoadRequest(
        model, labels, options, workers=workers, threads=config.model.threads or max(1, cores // workers)
    )


def make_state_dir(config: Config) -> Path:
    """The state directory (config.state_dir), created if missing; an EdgecamError if it cannot be."""
    path = state_dir(config)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgecamError(
            f"cannot create the state directory {path}: {exc.strerror} "
            "(set [service] state_dir or --state-dir)"
        ) from None
    return path


def run(
    config: Config,
    json_output: bool = False,
    stdout: TextIO = sys.stdout,
    stop: Optional[threading.Event] = None,
) -> RunSummary:
    """Run until the source ends, a limit is reached or `stop` is set; returns the summary."""
    config = resolved_backend(check_combination(config))  # a Config not made by config.resolve too
    check_regions(config)
    # Loaded first: the IMX500 must exist before Picamera2 is created.
    request = load_request(config)
    with contextlib.ExitStack() as run_stack, contextlib.ExitStack() as setup:
        # Released once, when the run ends (or its setup fails), after the sinks are closed.
        detectors: Sequence[Backend] = backends.load(config.model.backend, request)
        run_stack.callback(close_backends, detectors)
        first = detectors[0]
        model, labels, sensor = first.model_path, request.labels, first.sensor
        # Until the pipeline owns them, a failed setup closes the source, then every sink:
        # nothing queued for MQTT may be lost on a bad setup.
        sinks: list = []
        setup.callback(close_each, sinks)
        stage, gate = tracking_stages(config)
        motion, plan = region_stages(config, stage, detectors[0].input_size)
        # Built in dependency order: the counters first, then what reads them, the pipeline last.
        stats = PipelineStats()
        annotate = Annotator(stats.fps.rate)
        mqtt_sink, settings, mqtt_reads = mqtt_side(config, model, labels, annotate, stats, stage is not None)
        if mqtt_sink is not None:
            sinks.append(mqtt_sink)
        s = config.source
        tap = clip_tap(config)
        source = open_source(
            SourceSpec(
                s.uri, s.width, s.height, s.fps, s.loop, s.stall_timeout, s.realtime, detectors[0].input_size
            ),
            sensor=sensor,
            recorder=tap,
        )
        setup.callback(source.close)
        if json_output:
            sinks.insert(0, JsonLinesSink(stdout))
        elif not (source.live or s.loop or stderr_is_journal(os.environ, stdout)):
            # A line per frame only for files that end, on a terminal: a camera, a looping
            # file or the service would flood the journal (the periodic summary says enough).
            sinks.insert(0, SummarySink(stdout))
        sinks += local_sinks(config, annotate, stats, mqtt_reads, source.fps or s.fps)
        processor, clip_sink = clip_side(config, stage, annotate, tap)
        # After the tracker: its events come first on a result, as they always reached MQTT.
        per_label = label_events_from_config(config.events, config.detect.watch, stage is not None)
        if clip_sink is not None:
            sinks.append(clip_sink)
        drop = config.pipeline.drop if config.pipeline.drop is not None else source.live
        pipeline = Pipeline(
            source,
            detectors,
            sinks,
            drop=drop,
            settings=settings,
            max_frames=config.pipeline.max_frames,
            processors=[*([processor] if processor else []), per_label],
            gate=gate,
            motion=motion,
            plan=plan,
            stats=stats,
            pause_ends_tracks_after=config.events.occupancy_off_delay,
        )
        # A source reports its status only while its frames are read, i.e. once the pipeline
        # runs: the pipeline it tells about a lost camera exists by then.
        source.on_status = functools.partial(camera_status, mqtt_sink=mqtt_sink, pipeline=pipeline)
        setup.pop_all()  # the pipeline owns the source and the sinks now: supervise closes them
        log.info(
            "model %s on %s (detector %s, %d worker(s) x %s thread(s)), source %s",
            model,
            first.describe(),
            first.name,
            len(detectors),
            first.threads,
            source.name,
        )
        summary = supervise(
            pipeline,
            stop or threading.Event(),
            config.pipeline.duration,
            starting=(lambda: sensor.loading) if sensor is not None else None,
        )
    return dataclasses.replace(
        summary,
        motion=dataclasses.replace(gate.stats) if gate is not None else None,
        events=EventCounts(stage.started, stage.ended) if stage is not None else None,
        clips=ClipCounts(clip_sink.written, clip_sink.failed) if clip_sink is not None else None,
    )


def close_each(sinks: Sequence[Sink]) -> None:
    """Close every sink of a setup that failed (supervise closes them after a run)."""
    for sink in sinks:
        sink.close()


def close_backends(detectors) -> None:
    """Release what the backends hold (the Hailo's VDevice), once, when the run ends; errors
    are logged, not raised, as for the sinks, so the run's own outcome is what is reported."""
    for detector in detectors:
        try:
            detector.close()
        except Exception as exc:
            log.error("closing the %s detector failed: %s", detector.name, exc)


def camera_status(online: bool, mqtt_sink, pipeline: Pipeline) -> None:
    """A live source's frames stopped or came back: tell MQTT, and end what is in view
    (nothing can be seen while the camera is away)."""
    if mqtt_sink is not None:
        mqtt_sink.camera_status(online)
    if not online:
        pipeline.end_tracks(EndReason.CAMERA_OFFLINE)


def mqtt_side(
    config: Config, model: str, labels: Optional[str], annotate: Annotate, stats: PipelineStats, tracked: bool
):
    """(MQTT sink, live settings, readings for the preview) when [mqtt] host is set, else Nones.

    Also answers `<prefix>/cmd/probe` with a probe of the running model.
    """
    if not config.mqtt.host:
        return None, None, {}
    from .comms.builder import build_mqtt
    from .probe.remote import RemoteProbe

    sink, comm, dispatcher, settings = build_mqtt(
        config.mqtt,
        config.detect,
        make_state_dir(config),
        Path(model).name,
        stats_source=lambda: stats.dropped,
        annotate=annotate,
        tracked_events=tracked,
        backend=config.model.backend,
    )
    if backends.info(config.model.backend).tflite:  # probes time a .tflite on this machine
        RemoteProbe(
            comm.publish, sink.topics.prefix, model, labels=labels, delegate=config.model.delegate
        ).register(dispatcher)
    return sink, settings, {"mqtt_connected": lambda: comm.connected, "spool_depth": sink.spool_depth}


def local_sinks(config: Config, annotate: Annotate, stats: PipelineStats, mqtt_reads, fps: float) -> list:
    """The sinks for --output, --snapshot-dir and --web, as configured; an --output video is
    written at `fps`, the source's own rate (a video file's), else [source] fps."""
    sinks = []
    if config.output.path:
        sinks.append(output_sink(config.output.path, fps, annotate))
    if config.output.snapshot_dir:
        sinks.append(
            SnapshotSink(
                Path(config.output.snapshot_dir),
                config.detect.watch,
                config.output.snapshot_interval,
                annotate,
            )
        )
    if config.service.web:
        from .web import web_sink_from_config

        sinks.append(
            web_sink_from_config(
                config.service,
                annotate,
                stats,
                **mqtt_reads,
                clips=clips_folder(config) if config.clips.enabled else None,
            )
        )
    return sinks


def clips_folder(config: Config) -> Path:
    """[clips] dir, else clips/ in the state directory (the service's StateDirectory)."""
    return Path(config.clips.dir).expanduser() if config.clips.dir else state_dir(config) / "clips"


def clips_url(config: Config) -> Optional[str]:
    """Where MQTT events say the clips are: [clips] url, else the preview server's /clips/
    (a wildcard address is named by this host's name), else None."""
    if config.clips.url:
        return config.clips.url.rstrip("/") + "/"
    if not config.service.web:
        return None
    import socket
    from .web.server import parse_listen

    host, port = parse_listen(config.service.web)
    if host in ("0.0.0.0", "::"):
        host = socket.gethostname()
    return f"http://[{host}]:{port}/clips/" if ":" in host else f"http://{host}:{port}/clips/"


def clip_tap(config: Config):
    """With [clips] on, what records the camera's own H.264 so that edgecam encodes nothing:
    for an rtsp:// source its packets as they come (edgecam.clips.stream), else picamera2's
    encoder on the Pi camera's main stream (edgecam.clips.picamera; other sources never start
    it); None with clips off. With annotate = true the frames are drawn in Python, so edgecam
    encodes them itself."""
    c = config.clips
    if not c.enabled or c.annotate:
        return None
    if config.source.uri.strip().startswith(REMUX_SCHEMES):
        from .clips.stream import StreamClipTap

        return StreamClipTap()
    from .clips.picamera import PicameraClipTap

    return PicameraClipTap(config.source.fps, c.bitrate, c.keyframe_interval)


def clip_side(config: Config, stage, annotate: Annotate, tap=None):
    """(processor, clip sink): with [clips] on, the event stage (there is one: see
    config.check_combination) wrapped by the clip plan and the sink that records (from
    `tap`'s packets while picamera2 encodes); else (stage, None)."""
    c = config.clips
    if not c.enabled:
        return stage, None
    from .clips.encoder import pick_encoder
    from .clips.plan import ClipNotes, ClipStage, ClipTimes
    from .clips.sink import ClipSettings, ClipSink

    folder = clips_folder(config)
    check_writable(folder)
    notes = ClipNotes()
    processor = ClipStage(
        stage, notes, ClipTimes(c.pre_roll, c.post_roll, c.max_seconds), url_base=clips_url(config)
    )
    settings = ClipSettings(
        folder,
        c.pre_roll,
        c.max_mb,
        c.max_days,
        pick_encoder(c.encoder),
        c.preset,
        c.bitrate,
        c.keyframe_interval,
        config.source.fps,
    )
    image = annotate if c.annotate else (lambda result: result.frame.image)
    return processor, ClipSink(settings, notes, image, tap)


def check_writable(folder: Path) -> None:
    """An EdgecamError naming `folder` when clips cannot be written there (the service may
    only write its StateDirectory)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}.part"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise EdgecamError(
            f"[clips] dir {folder} cannot be written ({exc.strerror}): leave dir unset "
            "(clips/ in the state directory) or pick a writable folder; the service "
            "may write only its StateDirectory, /var/lib/edgecam"
        ) from None


def tracking_stages(config: Config):
    """(event stage or None, motion gate or None) from [track] and [motion] (docs/events.md)."""
    stage = gate = None
    if config.track.enabled:
        from .events import stage_from_config

        # The snapshot is encoded for MQTT, and for the clip's thumbnail.
        stage = stage_from_config(
            config.track, config.detect.watch, snapshots=bool(config.mqtt.host) or config.clips.enabled
        )
    if config.motion.enabled:
        from .motion import gate_from_config

        gate = gate_from_config(config.motion, (lambda: stage.active) if stage else (lambda: False))
    return stage, gate


def check_regions(config: Config) -> None:
    """Refuse `[detect] regions` other than `full` on a backend that cannot run on crops: the
    IMX500 runs its network on the sensor, over the whole frame, before edgecam sees it."""
    if config.detect.regions != "full" and not backends.info(config.model.backend).crops:
        raise EdgecamError(
            f"[detect] regions = {config.detect.regions} needs a detector that runs "
            "on edgecam's frames; the IMX500 runs its network on the sensor over "
            "the whole frame: use regions = full with --detector imx500"
        )


def region_stages(config: Config, stage, input_size):
    """(motion detector or None, region plan or None) from [detect] regions, [motion] and
    [track] require_motion: one MotionDetector measures each frame for the gate, the plan and
    the event stage (docs/events.md); the plan looks again where `stage` tracks objects."""
    from .motion import MotionDetector, MotionOptions
    from .regions import RegionPlan

    d, m = config.detect, config.motion
    motion = None
    if m.enabled or d.regions == "motion" or (config.track.enabled and config.track.require_motion):
        motion = MotionDetector(MotionOptions(m.threshold, m.min_area, m.keepalive, m.width))
    if d.regions == "full":
        return motion, None
    tracked = stage.watched_boxes if stage is not None else (lambda: ())
    return motion, RegionPlan(d.regions, tuple(input_size), d.max_regions, d.tile_size, tracked)


def supervise(
    pipeline: Pipeline,
    stop: threading.Event,
    duration: Optional[float],
    env=None,
    starting: Optional[Callable[[], Optional[str]]] = None,
) -> RunSummary:
    """Start the pipeline, tell systemd how it goes, stop it on `stop`/duration, drain and
    close it; returns the run summary.

    What systemd hears is notify.ServiceStatus's: READY=1 once the first frame was processed,
    WATCHDOG=1 only while frames keep being processed (or a live source is reconnecting), so
    a stalled inference loop gets the service restarted. `starting()` returns what the camera
    is busy with before it can deliver frames (the IMX500's firmware upload), else None:
    meanwhile start-up is extended before READY, and the watchdog fed after it.
    """
    from .notify import ServiceStatus

    stats = pipeline.stats
    with contextlib.ExitStack() as stack:  # undone in reverse: STOPPING, drain, socket closed
        service = ServiceStatus.from_env(env)
        stack.callback(service.close)
        pipeline.start()
        stack.callback(drain_and_close, pipeline)
        stack.callback(service.stopping)
        started = last_log = time.monotonic()
        while pipeline.running:
            if stop.wait(0.2) or (duration and time.monotonic() - started >= duration):
                break
            service.poll(
                stats.processed,
                pipeline.source.reconnecting,
                starting() if starting is not None else None,
                pipeline.source.name,
                lambda: stats.summary().line(),
            )
            now = time.monotonic()
            if now - last_log >= LOG_EVERY_S:
                last_log = now
                log.info("running: %s", stats.summary().line())
    if pipeline.error is not None:
        raise pipeline.error
    return stats.summary()


def drain_and_close(pipeline: Pipeline) -> None:
    """Stop the pipeline, let frames in flight reach the sinks, then close the sinks.

    A source that ended gets its last frames written out; a stop request (SIGTERM,
    --duration) has a deadline. Either way a stage stuck in a driver or a sink must not cost
    the spool flush and `offline`.
    """
    asked_to_stop = pipeline.running
    pipeline.stop()
    limit = SHUTDOWN_WAIT_S if asked_to_stop else DRAIN_WAIT_S
    if not pipeline.wait(limit):
        log.warning("stages still busy after %.0f s; closing the outputs anyway", limit)
    pipeline.close_sinks()


def install_signal_handlers(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set `stop`, so the run finishes the frame in flight and exits cleanly."""

    def handler(signum, _frame):
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
