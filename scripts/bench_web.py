#!/usr/bin/env python3
"""Benchmarks of the preview server: do viewers slow inference down, and what do idle
connections cost?

The real pipeline (edgecam.pipeline.Pipeline, one interpreter) runs the SSD model over a
640x480 video file made from ../shared/images (pans), unpaced and without dropping, so its
fps is the machine's throughput and a slow sink would show as a slower pipeline. The web
sink is on in every run; runs alternate 0 and N viewers (raw MJPEG clients, each its own
process on the same machine, reading the stream as fast as they can) so machine drift hits both. Reports processed fps per run, the
mean of each, their ratio, JPEGs encoded vs received, and the CPU seconds of the process and
of the server's own threads (less sensitive than fps to a busy machine).

Then, with the pipeline running paced on the same video (like a camera), `--idle` clients
connect and send nothing: `/api/status` latency, from another process with a fresh
connection per request (like a scraper), with none and with them open, and the process's resident memory and threads
(/proc/self/status, so native threads count too) before and after they connect.

    python scripts/bench_web.py [--frames 300] [--viewers 4] [--repeat 2] [--web-fps 10]
                                [--idle 200] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import multiprocessing
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # media helpers shared with the tests

import cv2  # noqa: E402

from edgecam.annotate import Annotator  # noqa: E402
from edgecam.detector import Detector  # noqa: E402
from edgecam.pipeline import Pipeline  # noqa: E402
from edgecam.sources import VideoSource  # noqa: E402
from edgecam.web import WebSink  # noqa: E402
from edgecam.web.server import BOUNDARY  # noqa: E402
from media import pan_frames, write_video  # noqa: E402

SHARED = ROOT.parent / "shared"


def read_stream(host: str, port: int, ready, results) -> None:
    """An MJPEG viewer (own process, like a real client: no share of our GIL) reading as fast
    as it can; puts the number of parts it got on `results` when the server closes."""
    sock = socket.create_connection((host, port), timeout=30)
    sock.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
    ready.set()
    marker, tail, parts = b"--" + BOUNDARY.encode(), b"", 0
    try:
        while True:
            data = sock.recv(1 << 16)
            if not data:
                break
            chunk = tail + data
            parts += chunk.count(marker) - tail.count(marker)
            tail = chunk[-len(marker):]
    except OSError:
        pass
    results.put(parts)


def server_cpu_s() -> float:
    """CPU seconds used so far by the preview server's threads (named edgecam-web*)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for t in threading.enumerate():
        if t.name.startswith("edgecam-web") and t.native_id is not None:
            try:
                fields = Path(f"/proc/self/task/{t.native_id}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:  # ended meanwhile
                continue
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def one_run(model: str, labels: str, video: Path, viewers: int, web_fps: float, threads: int) -> dict:
    detector = Detector.load(model, labels, threads=threads)
    pipeline = None
    sink = WebSink("127.0.0.1:0", Annotator(lambda: pipeline.stats.fps.rate() if pipeline else 0.0),
                   max_fps=web_fps, max_streams=max(1, viewers),
                   stats=lambda: pipeline.stats if pipeline else None)
    host, port = sink.server.server_address[:2]
    results = multiprocessing.Queue()
    readers = []
    for _ in range(viewers):
        ready = multiprocessing.Event()
        proc = multiprocessing.Process(target=read_stream, args=(host, port, ready, results), daemon=True)
        proc.start()
        ready.wait(10)
        readers.append(proc)
    deadline = time.monotonic() + 5
    while sink.hub.viewers < viewers and time.monotonic() < deadline:
        time.sleep(0.01)
    pipeline = Pipeline(VideoSource(video), [detector], [sink], drop=False)
    t0 = time.monotonic()
    cpu0, server0 = time.process_time(), server_cpu_s()
    pipeline.start()
    pipeline.wait()
    elapsed = time.monotonic() - t0
    cpu, server = time.process_time() - cpu0, server_cpu_s() - server0
    pipeline.close_sinks()  # stops the server: the viewers see the end of their stream
    parts = sorted(results.get(timeout=30) for _ in readers)
    for proc in readers:
        proc.join(10)
    if pipeline.error is not None:
        raise pipeline.error
    processed = pipeline.stats.processed
    return {"viewers": viewers, "processed": processed, "seconds": round(elapsed, 3),
            "fps": round(processed / elapsed, 2), "jpeg_encoded": sink.hub.encoded,
            "parts_received": parts, "process_cpu_s": round(cpu, 2), "server_cpu_s": round(server, 2),
            "sink_dropped": pipeline.stats.sink_dropped.get("web", 0)}


def proc_status() -> dict:
    """VmRSS (kB) and Threads of this process (after a GC), and the preview server's threads."""
    gc.collect()
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {"rss_kb": int(fields["VmRSS"].split()[0]), "threads": int(fields["Threads"]),
            "server_threads": sum(t.name.startswith("edgecam-web") for t in threading.enumerate())}


def status_latency_ms(url: str, n: int) -> dict:
    """Median, p95 and max of `n` GET /api/status round trips, each on a fresh connection."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url + "api/status", timeout=10) as r:
            r.read()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {"p50": round(statistics.median(times), 2), "p95": round(times[int(0.95 * (n - 1))], 2),
            "max": round(times[-1], 2)}


def _latency_client(url: str, n: int, out) -> None:
    status_latency_ms(url, 3)  # warm-up
    out.put(status_latency_ms(url, n))


def status_latency_ms_elsewhere(url: str, n: int) -> dict:
    """status_latency_ms() from another process, like a real client (not sharing our GIL)."""
    ctx = multiprocessing.get_context("spawn")  # no fork of a process with running threads
    out = ctx.Queue()
    proc = ctx.Process(target=_latency_client, args=(url, n, out))
    proc.start()
    try:
        return out.get(timeout=120)
    finally:
        proc.join(10)


def open_idle(host: str, port: int, n: int) -> list:
    """`n` connections that send nothing."""
    conns = [socket.create_connection((host, port), timeout=10) for _ in range(n)]
    time.sleep(0.5)  # let the server take them all in
    return conns


def still_open(conns: list) -> int:
    """How many of `conns` the server has not closed."""
    n = 0
    for c in conns:
        c.setblocking(False)
        try:
            n += c.recv(1) != b""
        except BlockingIOError:
            n += 1
    return n


def idle_run(model: str, labels: str, video: Path, idle: int, threads: int, requests: int = 50) -> dict:
    """`/api/status` latency with `idle` silent connections open (the pipeline running, paced
    like a camera); then, the pipeline stopped and the server still up, the process's RSS and
    threads before and after `idle` connections. Meant for a fresh process (--idle-child):
    earlier runs' memory would hide a difference of a few hundred kB."""
    detector = Detector.load(model, labels, threads=threads)
    pipeline = None
    sink = WebSink("127.0.0.1:0", Annotator(lambda: pipeline.stats.fps.rate() if pipeline else 0.0),
                   stats=lambda: pipeline.stats if pipeline else None)
    host, port = sink.server.server_address[:2]
    pipeline = Pipeline(VideoSource(video, loop=True, realtime=True), [detector], [sink], drop=True).start()
    try:
        while pipeline.stats.processed < 5:
            time.sleep(0.05)
        latency_none = status_latency_ms_elsewhere(sink.url, requests)
        conns = open_idle(host, port, idle)
        latency_idle = status_latency_ms_elsewhere(sink.url, requests)
        kept = still_open(conns)  # the server closes none before idle_timeout (10 s)
        for c in conns:
            c.close()
        pipeline.stop()
        pipeline.wait(10)
        time.sleep(0.5)
        before = proc_status()
        conns = open_idle(host, port, idle)
        during = proc_status()
        for c in conns:
            c.close()
    finally:
        pipeline.stop()
        pipeline.wait(10)
        pipeline.close_sinks()
    return {"idle": idle, "still_open": kept,
            "status_ms_no_idle": latency_none, "status_ms_with_idle": latency_idle,
            "rss_kb_before": before["rss_kb"], "rss_kb_with_idle": during["rss_kb"],
            "rss_kb_per_idle": round((during["rss_kb"] - before["rss_kb"]) / max(1, idle), 2),
            "threads_before": before["threads"], "threads_with_idle": during["threads"],
            "server_threads_with_idle": during["server_threads"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(SHARED / "models" / "ssd_mobilenet_v1_coco_quant.tflite"))
    p.add_argument("--labels", default=str(SHARED / "models" / "coco_labels.txt"))
    p.add_argument("--frames", type=int, default=300, help="frames in the test video")
    p.add_argument("--viewers", type=int, default=4)
    p.add_argument("--repeat", type=int, default=2, help="pairs of (0 viewers, N viewers) runs")
    p.add_argument("--web-fps", type=float, default=10.0, help="[service] web_fps for the stream")
    p.add_argument("--threads", type=int, default=2, help="interpreter threads")
    p.add_argument("--idle", type=int, default=200, help="silent connections for the idle run (0: skip)")
    p.add_argument("--idle-child", metavar="VIDEO", help=argparse.SUPPRESS)  # the idle run, in a fresh process
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    if args.idle_child:
        print(json.dumps(idle_run(args.model, args.labels, Path(args.idle_child), args.idle, args.threads)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        per_image = max(1, args.frames // 3)
        frames = []
        for name in ("kite_and_cold.jpg", "grace_hopper.bmp", "pets.jpg"):
            frames += pan_frames(cv2.imread(str(SHARED / "images" / name)), per_image)
        video = write_video(Path(tmp) / "bench.mp4", frames[:args.frames], fps=30)
        one_run(args.model, args.labels, video, 0, args.web_fps, args.threads)  # warm-up
        runs = []
        for _ in range(args.repeat):
            for n in (0, args.viewers):
                runs.append(one_run(args.model, args.labels, video, n, args.web_fps, args.threads))
                if not args.json:
                    print(json.dumps(runs[-1]))
        idle = None
        if args.idle:
            child = subprocess.run([sys.executable, __file__, "--idle-child", str(video), "--idle", str(args.idle),
                                    "--model", args.model, "--labels", args.labels, "--threads", str(args.threads)],
                                   check=True, stdout=subprocess.PIPE, text=True)
            idle = json.loads(child.stdout.strip().splitlines()[-1])
    mean = lambda n: statistics.mean(r["fps"] for r in runs if r["viewers"] == n)  # noqa: E731
    result = {"frames": args.frames, "web_fps": args.web_fps, "threads": args.threads,
              "fps_0_viewers": round(mean(0), 2), f"fps_{args.viewers}_viewers": round(mean(args.viewers), 2),
              "ratio": round(mean(args.viewers) / mean(0), 3),
              "server_cpu_ms_per_part": round(1e3 * sum(r["server_cpu_s"] for r in runs)
                                              / max(1, sum(sum(r["parts_received"]) for r in runs)), 3),
              "runs": runs, "idle": idle}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"pipeline fps: {result['fps_0_viewers']} with 0 viewers, "
              f"{result[f'fps_{args.viewers}_viewers']} with {args.viewers} "
              f"(ratio {result['ratio']}), stream capped at {args.web_fps} fps; server CPU "
              f"{result['server_cpu_ms_per_part']} ms per JPEG sent")
        if idle:
            print(f"{idle['idle']} idle connections ({idle['still_open']} still open at the end): "
                  f"/api/status p50/p95/max {idle['status_ms_with_idle']['p50']}/"
                  f"{idle['status_ms_with_idle']['p95']}/{idle['status_ms_with_idle']['max']} ms "
                  f"(none open: {idle['status_ms_no_idle']['p50']}/{idle['status_ms_no_idle']['p95']}/"
                  f"{idle['status_ms_no_idle']['max']} ms); RSS {idle['rss_kb_before']} -> "
                  f"{idle['rss_kb_with_idle']} kB, threads {idle['threads_before']} -> {idle['threads_with_idle']} "
                  f"({idle['server_threads_with_idle']} of the server)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
