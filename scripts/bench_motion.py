#!/usr/bin/env python3
"""Motion gating benchmark: CPU seconds with and without the gate on a video with long static
stretches, and whether every object event is still found
(the video holds three objects: both runs must report the same start/end sequence, 3 tracks).

The video is made from the shared photos (tests/scenes.py): static scene, a cat crossing,
a long static stretch, two cats crossing, static again. Both runs track objects ([track]); the
gated run adds [motion]. CPU time is os.times() user+system of this process (all threads).

    python scripts/bench_motion.py [--static 150] [--keepalive 2] [--realtime] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import scenes as tv  # noqa: E402
from conftest import COCO_LABELS, SSD_MODEL  # noqa: E402
from json_run import run_json  # noqa: E402


def make_video(folder: Path, static: int, fps: float) -> Path:
    size = (640, 480)
    still = tv.static_frames(static, size)
    cat = tv.cat_frames(still_before=0, still_after=0, size=size)
    pair = tv.crossing_frames(still_after=0, size=size)
    return tv.write_video(folder / "static_stretches.avi", still + cat + still + pair + still, fps)


def one_run(video: Path, gated: bool, keepalive: float, realtime: bool, threads: int) -> dict:
    sections = {"model": {"path": str(SSD_MODEL), "labels": str(COCO_LABELS), "threads": threads},
                "source": {"uri": str(video), "realtime": realtime},
                "detect": {"watch": ["cat"]}, "track": {"enabled": True},
                "motion": {"enabled": gated, "keepalive": keepalive}}
    done = run_json(sections)
    summary = done.summary
    return {"gated": gated, "cpu_s": round(done.cpu_s, 2),
            "wall_s": round(done.wall_s, 2), "frames": summary.processed,
            "inferred": summary.processed - summary.skipped, "skipped": summary.skipped,
            "motion": dataclasses.asdict(summary.motion) if summary.motion else None,
            "events": done.of_type("event")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--static", type=int, default=150, help="frames in each static stretch")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--keepalive", type=float, default=2.0, help="seconds (frame capture time)")
    p.add_argument("--realtime", action="store_true", help="pace the video like a camera")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp), args.static, args.fps)
        base = one_run(video, False, args.keepalive, args.realtime, args.threads)
        gated = one_run(video, True, args.keepalive, args.realtime, args.threads)
    kinds = lambda r: [(e["event"], e["label"]) for e in r["events"] if e["event"] != "update"]  # noqa: E731
    ids = lambda r: len({e["id"] for e in r["events"]})  # noqa: E731
    found_all = kinds(base) == kinds(gated) and ids(base) == ids(gated) == 3
    report = {"frames": base["frames"],
              "ungated": {k: base[k] for k in ("cpu_s", "wall_s", "inferred", "skipped")},
              "gated": {k: gated[k] for k in ("cpu_s", "wall_s", "inferred", "skipped", "motion")},
              "cpu_ratio": round(gated["cpu_s"] / base["cpu_s"], 3) if base["cpu_s"] else None,
              "events_ungated": kinds(base), "events_gated": kinds(gated),
              "every_event_found": found_all}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['frames']} frames ({args.static}-frame static stretches, keep-alive {args.keepalive} s)")
        print(f"  ungated: {base['cpu_s']} CPU s, {base['inferred']} inferences, {base['wall_s']} s wall")
        print(f"  gated:   {gated['cpu_s']} CPU s, {gated['inferred']} inferences, "
              f"{gated['skipped']} skipped, {gated['wall_s']} s wall  (x{report['cpu_ratio']} CPU)")
        print(f"  gate: {gated['motion']}")
        print(f"  events ungated {kinds(base)}")
        print(f"  events gated   {kinds(gated)}")
        print(f"  every object event found with gating: {found_all}")
    return 0 if found_all else 1


if __name__ == "__main__":
    sys.exit(main())
