#!/usr/bin/env python3
"""Soak test of issue 4: does `edgecam run` keep a flat memory footprint over a long run?

Runs the real CLI, `edgecam run --source VIDEO --realtime --loop --json --mqtt ...`, on a
640x480 video made from the shared photos. `--realtime` paces the file like a camera at
`--fps` (drop mode, latency mode); `--fps 300` overloads inference so that frames are
dropped too. Every result goes to JSON lines and to a private mosquitto. The process's
resident memory (VmRSS) is sampled every `--interval` seconds. After a warm-up, it prints
the growth and the least-squares slope in MB per hour, then stops the process with SIGTERM,
which must exit 0. It also reports the bytes the process wrote to storage (write_bytes of
/proc/<pid>/io) per hour, for SD-card wear.

`--clips` records event clips too (`--track --clips DIR`, watching the people, dogs and kites
the photos show, within `--clips-max-mb`): the pre-roll ring and the clip writer must keep
memory flat as well.

    python scripts/soak.py [--minutes 10] [--interval 10] [--warmup 60] [--fps 30] [--clips]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from bench_pipeline import DEFAULT_LABELS, DEFAULT_MODEL, SHARED, make_video, start_mosquitto  # noqa: E402


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MB, from /proc."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def write_bytes(pid: int) -> int:
    """Bytes the process caused to be written to storage so far (/proc/<pid>/io)."""
    with open(f"/proc/{pid}/io") as fh:
        for line in fh:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise RuntimeError(f"no write_bytes for process {pid}")


def slope_per_hour(samples):
    """Least-squares slope of (seconds, MB) samples, in MB per hour."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    cov = sum((t - mt) * (v - mv) for t, v in samples)
    return cov / var * 3600 if var else 0.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between RSS samples")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds before the baseline sample")
    ap.add_argument("--fps", type=float, default=30.0,
                    help="the camera's frame rate; above what inference keeps up with, frames are dropped")
    ap.add_argument("--clips", action="store_true", help="record event clips too (--track --clips)")
    ap.add_argument("--clips-max-mb", type=float, default=200.0, help="[clips] max_mb of that run")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="edgecam-soak-") as tmp_name:
        tmp = Path(tmp_name)
        video = tmp / "soak_640x480.mp4"
        make_video(video, SHARED / "images", 300, fps=args.fps)
        broker, port = start_mosquitto(tmp)
        if broker is None:
            print("mosquitto is needed (apt-get install -y mosquitto)", file=sys.stderr)
            return 2
        cmd = [str(Path(sys.executable).parent / "edgecam"), "run", "--model", str(DEFAULT_MODEL),
               "--labels", str(DEFAULT_LABELS), "--source", str(video), "--realtime", "--loop",
               "--json", "--mqtt", f"127.0.0.1:{port}", "--device-id", "soak",
               "--state-dir", str(tmp / "state")]
        env = dict(os.environ)
        if args.clips:
            cmd += ["--track", "--watch", "person,dog,kite", "--clips", str(tmp / "clips")]
            env["EDGECAM_CLIPS__MAX_MB"] = str(args.clips_max_mb)
        # Logs go to a file: a pipe nobody reads would fill up and block the process.
        log_path = tmp / "edgecam.log"
        log_file = open(log_path, "w")
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log_file, env=env)
        try:
            start = time.monotonic()
            samples = []
            while time.monotonic() - start < args.minutes * 60:
                time.sleep(args.interval)
                if proc.poll() is not None:
                    print(f"edgecam exited early with {proc.returncode}: {log_path.read_text()[-500:]}")
                    return 1
                elapsed = time.monotonic() - start
                samples.append((elapsed, rss_mb(proc.pid)))
                print(f"{elapsed:7.0f} s  RSS {samples[-1][1]:7.1f} MB", flush=True)
            steady = [s for s in samples if s[0] >= args.warmup]
            if len(steady) < 2:
                print("run longer than the warm-up to measure growth")
                return 1
            written = write_bytes(proc.pid)
            run_s = time.monotonic() - start
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(15)
            first, last = steady[0][1], steady[-1][1]
            peak = max(v for _, v in steady)
            print(f"after {args.warmup:.0f} s warm-up: RSS {first:.1f} -> {last:.1f} MB "
                  f"(peak {peak:.1f}) over {(steady[-1][0] - steady[0][0]) / 60:.1f} min; "
                  f"slope {slope_per_hour(steady):+.1f} MB/h; SIGTERM exit code {code}")
            clips = sorted((tmp / "clips").glob("*.mp4")) if args.clips else []
            print(f"written to storage: {written / 2 ** 20:.1f} MB in {run_s / 60:.1f} min = "
                  f"{written / 2 ** 20 * 3600 / run_s:.1f} MB/h (clips {'on' if args.clips else 'off'}"
                  + (f": {len(clips)} clip(s) kept" if args.clips else "") + ")")
            return 0 if code == 0 else 1
        finally:
            if proc.poll() is None:
                proc.kill()
            log_file.close()
            broker.terminate()
            broker.wait(10)


if __name__ == "__main__":
    sys.exit(main())
