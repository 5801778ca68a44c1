#!/usr/bin/env python3
"""Benchmark of issue 4: is the pipeline as fast as the interpreter alone?

Measured in ONE run, on the same machine state:

1. raw invoke fps of one interpreter at --threads 2 on the SSD model (before and after the
   pipeline runs; their mean is the reference);
2. a naive sequential loop on the same video (decode -> detect -> draw -> publish, one frame
   after the other);
3. the pipeline (edgecam.pipeline.Pipeline, wired like `edgecam run`) on a 640x480 video file
   made from the shared photos (pans and crops), with JSON output, drawing (and with --jpeg
   a JPEG per frame) and the real MQTT sink publishing, in latency mode (one interpreter, 2 threads) and with --workers 2
   (two interpreters, 1 thread each); fps is steady state, first to last published frame;
4. a simulated live source (frames on a 30 fps wall clock, drop mode): end-to-end latency
   (capture -> published) p50 against invoke p50, and the age of a frame when inference
   starts, p95, against one frame interval;
6. (last in the report) clips on / off: the pipeline with tracking on, with and without
   [clips] (every frame encoded by x264 ultrafast into the pre-roll ring, clips written),
   alternated --clips-repeats times; the ratios and the clip sink's CPU per second of video;
5. the CPU ceiling: cores x 1000 ms divided by the CPU ms one frame needs (invoke, plus the
   side work - decode, preprocess, per-label events, JSON, drawing, MQTT - done once in one
   thread). No
   schedule of the same work on this machine can beat it.

MQTT: a mosquitto is started on a free local port when `mosquitto` is installed (or give
--mqtt HOST:PORT); without one, publishing is JSON serialisation only, and the output says so.

    python scripts/bench_pipeline.py [--model M] [--frames 600] [--json] [--only-clips]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edgecam.annotate import Annotator, draw, encode_jpeg, overlay_text  # noqa: E402
from edgecam.comms.mqtt import DirectPublisher  # noqa: E402
from edgecam.datatypes import FrameResult  # noqa: E402
from edgecam.detector import Detector  # noqa: E402
from edgecam.label_events import LabelEventOptions, LabelEvents  # noqa: E402
from edgecam.pipeline import Pipeline  # noqa: E402
from edgecam.runtime import load_interpreter, set_input  # noqa: E402
from edgecam.sinks import JsonLinesSink  # noqa: E402
from edgecam.stages import Sink  # noqa: E402
from edgecam.sources import Source, VideoSource, list_image_files  # noqa: E402
from edgecam.stats import PipelineStats, summarize  # noqa: E402

SHARED = ROOT.parent / "shared"
DEFAULT_MODEL = SHARED / "models" / "ssd_mobilenet_v1_coco_quant.tflite"
DEFAULT_LABELS = SHARED / "models" / "coco_labels.txt"
WATCH = ("person", "kite", "dog")  # the labels the MQTT sink and the per-label events watch
W, H = 640, 480


# ------------------------------------------------------------------------------ test video

def make_video(path: Path, images_dir: Path, frames: int, fps: float = 30.0) -> List[np.ndarray]:
    """A 640x480 video of slow pans across crops of the shared photos; returns its frames."""
    photos = [cv2.imread(str(p)) for p in list_image_files(images_dir)]
    photos = [p for p in photos if p is not None]
    if not photos:
        raise SystemExit(f"no images in {images_dir}")
    per_photo = max(1, frames // len(photos))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (W, H))
    if not writer.isOpened():
        raise SystemExit("OpenCV cannot write mp4v video here")
    out = []
    for i in range(frames):
        photo = photos[min(i // per_photo, len(photos) - 1)]
        h, w = photo.shape[:2]
        # A 4:3 window at 70 % of the photo, panning left to right and zooming slightly.
        t = (i % per_photo) / max(1, per_photo - 1)
        cw = int(min(w, h * 4 / 3) * (0.7 + 0.2 * t))
        ch = int(cw * 3 / 4)
        x = int((w - cw) * t)
        y = int((h - ch) * (0.5 - 0.3 * np.sin(np.pi * t)))
        frame = cv2.resize(photo[y:y + ch, x:x + cw], (W, H), interpolation=cv2.INTER_AREA)
        writer.write(frame)
        out.append(frame)
    writer.release()
    return out


# ------------------------------------------------------------------------------ MQTT

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mosquitto(tmp: Path):
    """(process, port) of a private broker, or (None, None) when mosquitto is missing."""
    exe = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
    if not exe:
        return None, None
    port = _free_port()
    conf = tmp / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.terminate()
    return None, None


def _no_publish(_topic: str, _payload: bytes) -> None:
    pass


# ------------------------------------------------------------------------------ sinks

class DrawSink(Sink):
    """Draws boxes + overlay on every frame; with `jpeg`, also encodes each one (what
    `--output DIR/` costs; the preview and MQTT snapshots encode far less often)."""

    name = "draw"

    def __init__(self, annotate: Annotator, jpeg: bool = False):
        self.annotate, self.jpeg = annotate, jpeg

    def handle(self, result: FrameResult) -> None:
        image = self.annotate(result)
        if self.jpeg:
            encode_jpeg(image)


class RecorderSink(Sink):
    """Records when each frame reached the sinks; adds no work of its own (the real JSON and
    MQTT sinks beside it do the serialising and publishing `edgecam run` does)."""

    name = "recorder"

    def __init__(self):
        self.times: List[float] = []
        self.e2e_ms: List[float] = []

    def handle(self, result: FrameResult) -> None:
        now = time.monotonic()
        self.times.append(now)
        self.e2e_ms.append((now - result.frame.mono) * 1e3)

    def fps(self) -> float:
        """Steady-state rate: frames between the first and the last publish."""
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


class PacedSource(Source):
    """A simulated live camera: in-memory frames released on a wall clock at `fps`."""

    live = True

    def __init__(self, images: List[np.ndarray], fps: float, count: int):
        super().__init__()
        self.images, self.fps, self.count, self.name = images, fps, count, f"paced-{fps:g}fps"

    def frames(self):
        start = time.monotonic()
        for i in range(self.count):
            delay = start + i / self.fps - time.monotonic()
            if delay > 0 and self._closed.wait(delay):
                return
            if self.closed:
                return
            yield self._frame(self.images[i % len(self.images)])


# ------------------------------------------------------------------------------ measurements

def cpu_busy_fraction(seconds: float = 1.0) -> float:
    """How busy all CPUs are over `seconds`, from /proc/stat (0 where it is unreadable)."""
    def sample():
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait
    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return 0.0
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def raw_invoke(model: str, frame: np.ndarray, threads: int, runs: int, warmup: int = 10):
    """(fps, ms samples, CPU ms per invoke of all the interpreter's threads) of
    interpreter.invoke() alone on a real frame's input, all from one loop."""
    det = Detector.load(model, threads=threads)
    tensor, _ = det.preprocess(frame)
    interp = load_interpreter(model, threads=threads, runtime=det.runtime)
    set_input(interp, tensor)
    for _ in range(warmup):
        interp.invoke()
    samples = []
    cpu_start, t_start = time.process_time(), time.perf_counter()
    for _ in range(runs):
        t0 = time.perf_counter()
        interp.invoke()
        samples.append((time.perf_counter() - t0) * 1e3)
    cpu_ms = (time.process_time() - cpu_start) / runs * 1e3
    return runs / (time.perf_counter() - t_start), samples, cpu_ms


def side_work_cpu_ms(model, labels, video: Path, frames: List[np.ndarray], *, mqtt_port=None,
                     state_dir=None, jpeg=False) -> float:
    """CPU time per frame of everything but invoke, done once, in one thread: decoding and
    preprocessing each frame of `video`, then handing a result with that frame's real
    detections to the same sinks `run_pipeline` uses (JSON, drawing, the MQTT sink with its
    paho and spool threads). The least CPU any schedule of that work can take."""
    det = Detector.load(model, labels, threads=2)
    found = []
    for image in frames:
        tensor, transform = det.preprocess(image)
        found.append(det.postprocess(det.invoke(tensor), transform))
    sinks, close = _sinks(model, mqtt_port, state_dir, jpeg, Annotator(lambda: 0.0))
    per_label = LabelEvents(LabelEventOptions(WATCH))
    try:
        n, start = 0, time.process_time()
        for frame in VideoSource(video).frames():
            det.preprocess(frame.image)  # the resize every frame needs; the tensor is not used
            result = per_label(FrameResult(frame, found[n % len(found)], 4.0, {}))
            for sink in sinks:
                sink.handle(result)
            n += 1
        time.sleep(0.2)  # paho's thread writes out what was queued (sleeping costs no CPU)
        return (time.process_time() - start) / n * 1e3
    finally:
        close()


def sequential(model, labels, video: Path, publish, threads=2, jpeg=False) -> float:
    """fps of the naive loop on the same video as the pipeline: decode, detect, draw
    (encode), publish, one frame after the other."""
    det = Detector.load(model, labels, threads=threads)
    start = time.perf_counter()
    i = -1
    for i, frame in enumerate(VideoSource(video).frames()):
        image = frame.image
        tensor, tr = det.preprocess(image)
        t0 = time.perf_counter()
        dets = det.postprocess(det.invoke(tensor), tr)
        ms = (time.perf_counter() - t0) * 1e3
        drawn = draw(image, dets, overlay_text(0.0, ms))
        if jpeg:
            encode_jpeg(drawn)
        publish("edgecam/bench/detections",
                json.dumps({"seq": i, "detections": [d.to_dict() for d in dets]}).encode())
    return (i + 1) / (time.perf_counter() - start)


def run_pipeline(model, labels, source, *, workers, threads, drop, mqtt_port=None,
                 state_dir=None, jpeg=False, stages=None):
    """(fps, pipeline stats, recorder sink) of one pipeline run wired like `edgecam run`:
    JSON lines, drawing every frame (and a JPEG per frame with `jpeg`), and the real MQTT
    sink (detections, counts, events, snapshots) when a broker port is given.
    `stages(annotate) -> (processors, sinks)` adds tracking and the like."""
    detectors = [Detector.load(model, labels, threads=threads) for _ in range(workers)]
    stats = PipelineStats()
    annotate = Annotator(stats.fps.rate)
    recorder = RecorderSink()
    sinks, close = _sinks(model, mqtt_port, state_dir, jpeg, annotate)
    processors, extra = stages(annotate) if stages is not None else ([], [])
    sinks += extra
    # Per-label events, counts and occupancy, as `edgecam run` always has (after the tracker).
    processors = [*processors, LabelEvents(LabelEventOptions(WATCH, events=stages is None))]
    pipeline = Pipeline(source, detectors, sinks + [recorder], drop=drop, stats=stats,
                        processors=processors)
    try:
        pipeline.start()
        pipeline.wait()
        if pipeline.error is not None:
            raise pipeline.error
    finally:
        close()
    return recorder.fps(), pipeline.stats, recorder


def _sinks(model, mqtt_port, state_dir, jpeg, annotate):
    """(sinks, close) as `edgecam run` wires them: JSON lines, drawing every frame (and a JPEG
    per frame with `jpeg`), and the real MQTT sink when a broker port is given."""
    devnull = open(os.devnull, "w")
    sinks = [JsonLinesSink(devnull), DrawSink(annotate, jpeg)]
    if mqtt_port is not None:
        from edgecam.comms.builder import build_mqtt
        from edgecam.config import DetectConfig, MqttConfig
        mqtt_sink, _, _, _ = build_mqtt(
            MqttConfig(host="127.0.0.1", port=mqtt_port, device_id="bench", discovery=False),
            DetectConfig(watch=WATCH), Path(state_dir), Path(model).name,
            annotate=annotate)
        sinks.append(mqtt_sink)

    def close():
        for sink in sinks:
            sink.close()
        devnull.close()
    return sinks, close


class TimedClipSink:
    """The clip sink with the CPU time of its thread counted (the encoder's cost)."""

    def __init__(self, sink):
        self.sink, self.cpu_s = sink, 0.0
        self.name, self.takes_flush = sink.name, sink.takes_flush

    def handle(self, result):
        t0 = time.thread_time()
        self.sink.handle(result)
        self.cpu_s += time.thread_time() - t0

    def close(self):
        t0 = time.thread_time()
        self.sink.close()
        self.cpu_s += time.thread_time() - t0


def clips_row(model, labels, video: Path, frames: int, fps: float, tmp: Path, repeats: int,
              wiring: dict) -> dict:
    """Pipeline fps with [clips] on / off (tracking on in both), alternated `repeats` times
    in one run (x264 ultrafast at the video's 640x480); the process CPU per frame off / on;
    and the clip sink's CPU per second of video (the video is `fps`)."""
    from edgecam.app import clip_side, tracking_stages
    from edgecam.config import ClipsConfig, Config, SourceConfig, TrackConfig

    def stages_for(clips: bool, timed: list):
        def stages(annotate):
            config = Config(track=TrackConfig(enabled=True), source=SourceConfig(fps=fps),
                            clips=ClipsConfig(enabled=clips, dir=str(tmp / "clips"),
                                              encoder="libx264", preset="ultrafast"))
            stage, _ = tracking_stages(config)
            processor, sink = clip_side(config, stage, annotate)
            if sink is None:
                return [processor], []
            timed.append(TimedClipSink(sink))
            return [processor], [timed[-1]]
        return stages

    def timed_run(clips: bool, timed: list):
        cpu0 = time.process_time()
        fps_, _, _ = run_pipeline(model, labels, VideoSource(video), workers=1, threads=2,
                                  drop=False, stages=stages_for(clips, timed), **wiring)
        return fps_, (time.process_time() - cpu0) / frames

    ratios, cpu_ratios, cpu_per_video_s, on_fps, off_fps = [], [], [], [], []
    for i in range(repeats):
        timed: list = []
        # Alternate which goes first, so a drift of the machine's load favours neither.
        order = (False, True) if i % 2 == 0 else (True, False)
        runs = {clips: timed_run(clips, timed) for clips in order}
        (off, off_cpu), (on, on_cpu) = runs[False], runs[True]
        ratios.append(on / off)
        cpu_ratios.append(off_cpu / on_cpu)
        on_fps.append(on)
        off_fps.append(off)
        cpu_per_video_s.append(timed[0].cpu_s / (frames / fps))
    clip_bytes = sum(p.stat().st_size for p in (tmp / "clips").glob("*.mp4"))
    return {"clips_ratio": [round(r, 3) for r in ratios],
            "clips_cpu_ratio": [round(r, 3) for r in cpu_ratios],
            "clips_ratio_min": round(min(ratios), 3), "clips_ratio_max": round(max(ratios), 3),
            "clips_on_fps": [round(v, 2) for v in on_fps], "clips_off_fps": [round(v, 2) for v in off_fps],
            "clips_cpu_per_video_s": [round(v, 4) for v in cpu_per_video_s],
            "clips_bytes_written": clip_bytes}


def print_clips_row(row: dict, repeats: int) -> None:
    """The clips-on row of the report."""
    ok = "ok" if row["clips_ratio_min"] >= 0.90 else "MISSED"
    print(f"clips on / off (tracking on, x264 ultrafast, {W}x{H}), {repeats} alternations: "
          f"ratios {', '.join(f'{r:.3f}' for r in row['clips_ratio'])} "
          f"(min {row['clips_ratio_min']:.3f}, max {row['clips_ratio_max']:.3f})   [goal >= 0.90: {ok}]")
    print(f"  process CPU per frame, off / on (the fps ratio of a CPU-bound machine with nothing "
          f"else on it): {', '.join(f'{r:.3f}' for r in row['clips_cpu_ratio'])}")
    print(f"  clip sink CPU per second of video: "
          f"{', '.join(f'{c:.3f}' for c in row['clips_cpu_per_video_s'])} s "
          f"(fps on {', '.join(map(str, row['clips_on_fps']))}; off {', '.join(map(str, row['clips_off_fps']))})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--labels", default=str(DEFAULT_LABELS))
    ap.add_argument("--images", default=str(SHARED / "images"), help="photos the test video is made from")
    ap.add_argument("--frames", type=int, default=600, help="frames in the test video")
    ap.add_argument("--raw-runs", type=int, default=300)
    ap.add_argument("--live-fps", type=float, default=30.0)
    ap.add_argument("--live-frames", type=int, default=240)
    ap.add_argument("--mqtt", default=None, help="HOST:PORT of a broker (default: start mosquitto)")
    ap.add_argument("--jpeg", action="store_true", help="also JPEG-encode every frame (like --output DIR/)")
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    ap.add_argument("--clips-repeats", type=int, default=3, help="clips off/on alternations for the clips row")
    ap.add_argument("--only-clips", action="store_true", help="run only the clips-on row")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="edgecam-bench-"))
    broker = None
    publisher = None
    try:
        video = tmp / "bench_640x480.mp4"
        frames = make_video(video, Path(args.images), args.frames)
        port = None
        if args.mqtt:
            host, _, port = args.mqtt.rpartition(":")
            port = int(port)
            publisher, mqtt_note = DirectPublisher(host, port, f"bench-{os.getpid()}"), f"MQTT broker {args.mqtt}"
        else:
            broker, port = start_mosquitto(tmp)
            if broker is not None:
                publisher, mqtt_note = DirectPublisher("127.0.0.1", port, f"bench-{os.getpid()}"), f"mosquitto on 127.0.0.1:{port}"
        publish = publisher or _no_publish
        if publisher is None:
            mqtt_note = "no broker (mosquitto not installed): publish = JSON serialisation only"
        cores = os.cpu_count()
        print(f"model {Path(args.model).name}, video {W}x{H} x {len(frames)} frames, {cores} cores, {mqtt_note}")
        busy = cpu_busy_fraction()
        if busy > 0.15:
            # Measured: a 30 fps edgecam in the background slowed raw 1x2-thread invoke more
            # than the 2x1 workers pipeline, lifting that ratio from about 0.9 to 0.98.
            print(f"WARNING: the CPUs were {busy:.0%} busy before the run: other work on the machine "
                  "skews the ratios (a 2-thread invoke suffers most); run it on an idle machine")

        if args.only_clips:
            row = clips_row(args.model, args.labels, video, len(frames), 30.0, tmp,
                            args.clips_repeats, dict(mqtt_port=port, state_dir=tmp))
            print_clips_row(row, args.clips_repeats)
            if args.json:
                print(json.dumps(row))
            return 0

        # Other load on the machine drifts the interpreter's speed during a run, so every
        # pipeline figure is divided by raw invoke fps measured right before and after it.
        raw_samples: List[float] = []

        def bracketed(measure):
            before, s1, _ = raw_invoke(args.model, frames[0], 2, args.raw_runs)
            value = measure()
            after, s2, _ = raw_invoke(args.model, frames[0], 2, args.raw_runs)
            raw_samples.extend(s1 + s2)
            return value, (before + after) / 2, (before, after)

        # The pipeline publishes through the real MQTT sink; the sequential loop publishes each
        # frame's JSON itself.
        wiring = dict(mqtt_port=port, state_dir=tmp, jpeg=args.jpeg)
        seq_fps, seq_raw, _ = bracketed(lambda: sequential(
            args.model, args.labels, video, publish, jpeg=args.jpeg))
        (lat_fps, lat_stats, _), lat_raw, lat_ba = bracketed(lambda: run_pipeline(
            args.model, args.labels, VideoSource(video), workers=1, threads=2,
            drop=False, **wiring))
        (wrk_fps, _, _), wrk_raw, wrk_ba = bracketed(lambda: run_pipeline(
            args.model, args.labels, VideoSource(video), workers=2, threads=1,
            drop=False, **wiring))
        _, live_stats, live_pub = run_pipeline(
            args.model, args.labels, PacedSource(frames, args.live_fps, args.live_frames),
            workers=1, threads=2, drop=True, **wiring)
        # Overload: a live source twice as fast as inference must still hand it fresh frames.
        over_fps = 2 * lat_raw
        _, over_stats, _ = run_pipeline(
            args.model, args.labels, PacedSource(frames, over_fps, int(over_fps * 3)),
            workers=1, threads=2, drop=True, **wiring)
        # The most any schedule could reach here: every core busy, and per frame the CPU the
        # interpreter(s) need plus the side work done once, in one thread.
        # The reference is the wall time of the same 2-thread loop the CPU time comes from:
        # raw fps measured at another moment would carry the machine's drift into the ratio.
        cap_raw, _, cpu2 = raw_invoke(args.model, frames[0], 2, args.raw_runs)
        _, _, cpu1 = raw_invoke(args.model, frames[0], 1, args.raw_runs // 2)
        side = side_work_cpu_ms(args.model, args.labels, video, frames[:100], **wiring)
        ceiling_latency = cores * 1000.0 / cap_raw / (cpu2 + side)
        ceiling_workers = cores * 1000.0 / cap_raw / (cpu1 + side)
        invoke = summarize(raw_samples)
        clips = clips_row(args.model, args.labels, video, len(frames), 30.0, tmp,
                          args.clips_repeats, wiring)

        live_inv = live_stats.inference_ms.summary()
        live_e2e = live_stats.end_to_end_ms.summary()  # every sink, the MQTT one included
        age = live_stats.frame_age_ms.summary()
        over_age = over_stats.frame_age_ms.summary()
        interval = 1000.0 / args.live_fps
        file_e2e = lat_stats.end_to_end_ms.summary()
        figures = {
            "raw_invoke_p50_ms": round(invoke.p50, 2),
            "sequential_fps": round(seq_fps, 2), "sequential_raw_fps": round(seq_raw, 2),
            "sequential_ratio": round(seq_fps / seq_raw, 3),
            "pipeline_fps": round(lat_fps, 2), "pipeline_raw_fps": round(lat_raw, 2),
            "pipeline_ratio": round(lat_fps / lat_raw, 3), "pipeline_dropped": lat_stats.dropped,
            "workers2_fps": round(wrk_fps, 2), "workers2_raw_fps": round(wrk_raw, 2),
            "workers2_ratio": round(wrk_fps / wrk_raw, 3),
            "file_end_to_end_p50_ms": round(file_e2e.p50, 2),
            "live_fps": args.live_fps, "live_invoke_p50_ms": round(live_inv.p50, 2),
            "live_end_to_end_p50_ms": round(live_e2e.p50, 2),
            "live_frame_age_p95_ms": round(age.p95, 2), "live_dropped": live_stats.dropped,
            "overload_fps": round(over_fps, 1), "overload_frame_age_p95_ms": round(over_age.p95, 2),
            "overload_dropped": over_stats.dropped, "mqtt": publisher is not None,
            "invoke_cpu_ms_2_threads": round(cpu2, 3), "invoke_cpu_ms_1_thread": round(cpu1, 3),
            "side_work_cpu_ms": round(side, 3), "ceiling_latency_ratio": round(ceiling_latency, 3),
            "ceiling_workers_ratio": round(ceiling_workers, 3),
            **clips,
        }
        ok = lambda cond: "ok" if cond else "MISSED"  # noqa: E731
        print(f"raw invoke (1 interpreter, --threads 2): p50 {invoke.p50:.2f} ms over the run; "
              "each ratio below uses the raw fps measured right before and after it")
        drawing = "draw+jpeg" if args.jpeg else "draw"
        print(f"sequential loop (decode+detect+{drawing}+publish): {seq_fps:.1f} fps vs raw {seq_raw:.1f}  "
              f"sequential/raw = {seq_fps / seq_raw:.2f}")
        print(f"pipeline (latency mode, 1x2 threads): {lat_fps:.1f} fps vs raw {lat_raw:.1f} "
              f"(before {lat_ba[0]:.1f}, after {lat_ba[1]:.1f}), dropped {lat_stats.dropped}")
        print(f"pipeline/raw = {lat_fps / lat_raw:.2f}   [goal >= 0.95: {ok(lat_fps / lat_raw >= 0.95)}]")
        print(f"pipeline/raw = {wrk_fps / wrk_raw:.2f} (--workers 2, 2x1 thread: {wrk_fps:.1f} fps vs raw "
              f"{wrk_raw:.1f})   [goal >= 1.00: {ok(wrk_fps / wrk_raw >= 1.0)}]")
        print(f"end-to-end p50 {live_e2e.p50:.2f} ms vs invoke p50 {live_inv.p50:.2f} ms "
              f"(live {args.live_fps:g} fps; +{live_e2e.p50 - live_inv.p50:.2f} ms)   "
              f"[goal <= +5 ms: {ok(live_e2e.p50 <= live_inv.p50 + 5)}]")
        print(f"  (file source, no drops: end-to-end p50 {file_e2e.p50:.2f} ms includes queueing behind inference)")
        print(f"frame age at inference p95 {age.p95:.2f} ms vs frame interval {interval:.1f} ms "
              f"(live {args.live_fps:g} fps, dropped {live_stats.dropped})   [goal <= 1 interval: {ok(age.p95 <= interval)}]")
        print(f"  overload (live {over_fps:.0f} fps = 2x raw): frame age p95 {over_age.p95:.2f} ms vs "
              f"interval {1000 / over_fps:.1f} ms, dropped {over_stats.dropped} of {over_stats.captured}")
        print(f"ceiling on this machine: {cores} cores x 1000 ms / CPU ms per frame; side work "
              f"(decode, preprocess, JSON, {drawing}, MQTT) {side:.2f} ms, invoke {cpu2:.2f} ms "
              f"at 2 threads, {cpu1:.2f} ms at 1")
        print(f"  latency mode <= {ceiling_latency:.2f} x raw, --workers 2 <= {ceiling_workers:.2f} x raw "
              f"(raw {cap_raw:.1f} fps); no schedule can beat these")
        print_clips_row(clips, args.clips_repeats)
        if args.json:
            print(json.dumps(figures))
        return 0
    finally:
        if publisher is not None:
            publisher.close()
        if broker is not None:
            broker.terminate()
            broker.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
