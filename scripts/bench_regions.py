#!/usr/bin/env python3
"""Detection at a distance: per `[detect] regions` mode (full, motion, tiles), on scenes with
known ground truth (tests/scenes.py: small far objects, twelve objects in view), how many real
objects got an event, how many starts each, and what it cost per frame.

Each mode is one real `edgecam run` (app.run in this process: the real pipeline, tracker and
events, one interpreter on one thread) over the same MJPG video, in one run of this script:

- recall: the share of the scene's objects matched by at least one `start` event (a start
  matches the object of the same label whose true box overlaps its box most, IoU >= 0.3, in
  the frame the start was made on); starts/object: starts matched per object started;
  false starts: starts matching no object;
- invokes/frame: model runs per frame (the run summary's `invokes` / frames);
- CPU ms/frame: os.times() user+system of this process over the run / frames (decoding,
  motion, preprocessing, inference, tracking; the same decoding in every mode), and its ratio
  to `full` in the same run (the machine is shared: compare ratios, not absolute figures).

    python scripts/bench_regions.py [--scenes small_objects,twelve_objects] [--fps 10]
                                    [--modes full,motion,tiles] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import scenes  # noqa: E402
from conftest import COCO_LABELS, SSD_MODEL  # noqa: E402
from json_run import run_json  # noqa: E402
from edgecam.datatypes import BBox, Detection  # noqa: E402
from edgecam.regions import REGION_MODES  # noqa: E402

MATCH_IOU = 0.3


def truth_box(t, size) -> BBox:
    """A scene Truth's pixel box, normalised to the frame."""
    w, h = size
    return BBox(t.box[0] / w, t.box[1] / h, t.box[2] / w, t.box[3] / h)


def matched_object(scene, event) -> object:
    """The id of the real object a start event is about, or None."""
    box = BBox(*event["box"])
    best, best_iou = None, MATCH_IOU
    for t in scene.truth(event["seq"]):
        iou = box.iou(truth_box(t, scene.size))
        if t.label == event["label"] and iou >= best_iou:
            best, best_iou = t.id, iou
    return best


def one_run(scene, video: Path, mode: str, watch: Sequence[str], threads: int = 1) -> dict:
    """One mode over the scene's video: the figures of the module docstring. `mode` is a
    `[detect] regions` value, or `motion:N` for motion with max_regions = N."""
    regions, _, most = mode.partition(":")
    detect = {"watch": list(watch), "regions": regions, **({"max_regions": int(most)} if most else {})}
    sections = {"model": {"path": str(SSD_MODEL), "labels": str(COCO_LABELS), "threads": threads},
                "source": {"uri": str(video)}, "pipeline": {"workers": 1},
                "detect": detect, "track": {"enabled": True}}
    done = run_json(sections)
    summary = done.summary
    frames = done.of_type("frame")
    starts = [x for x in done.of_type("event") if x["event"] == "start"]
    objects = {i for i, label in scene.labels().items() if label in watch}
    per_object: Dict[object, int] = {}
    false_starts = 0
    for s in starts:
        oid = matched_object(scene, s)
        if oid is None:
            false_starts += 1
        else:
            per_object[oid] = per_object.get(oid, 0) + 1
    n = max(1, summary.processed)
    cpu_ms = done.cpu_s * 1e3
    return {"scene": scene.name, "mode": mode, "objects": len(objects),
            "started": len(set(per_object) & objects),
            "recall": round(len(set(per_object) & objects) / max(1, len(objects)), 3),
            "starts_per_object": round(sum(per_object.values()) / max(1, len(per_object)), 2),
            "false_starts": false_starts, "missed": sorted(objects - set(per_object)),
            "invokes_per_frame": round(summary.invokes / n, 2),
            "cpu_ms_per_frame": round(cpu_ms / n, 1), "wall_s": round(done.wall_s, 1),
            "frames": summary.processed, "detections": [detections_of(f) for f in frames]}


def detections_of(frame_line: dict) -> Tuple[Detection, ...]:
    """The detections of one `--json` frame line (what the tracker was fed)."""
    return tuple(Detection(d["label"], d["class_id"], d["score"], BBox(*d["box"]))
                 for d in frame_line["detections"])


def bench(names: Sequence[str], modes: Sequence[str], fps: float, folder: Path) -> List[dict]:
    """Every mode on every scene; rows carry `cpu_ratio`, their CPU over `full`'s (same scene)."""
    rows = []
    for name in names:
        scene = scenes.REGION_FIXTURES[name](fps)
        video = scene.write(folder / f"{name}_{fps:g}.avi")
        watch = sorted(set(scene.labels().values()))
        base = None
        for mode in modes:
            row = one_run(scene, video, mode, watch)
            if mode == "full":
                base = row["cpu_ms_per_frame"]
            row["cpu_ratio"] = round(row["cpu_ms_per_frame"] / base, 2) if base else None
            rows.append(row)
    return rows


def table(rows: Sequence[dict]) -> str:
    """The rows as a Markdown table."""
    out = ["| scene | mode | objects started | starts/object | false starts | invokes/frame "
           "| CPU ms/frame | CPU vs full |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['scene']} | {r['mode']} | {r['started']}/{r['objects']} ({r['recall']:.0%}) "
                   f"| {r['starts_per_object']} | {r['false_starts']} | {r['invokes_per_frame']} "
                   f"| {r['cpu_ms_per_frame']} | {r['cpu_ratio']} |")
    return "\n".join(out)


def main(argv=None) -> int:
    """Run the benchmark and print its table (or JSON rows)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", default=",".join(scenes.REGION_FIXTURES))
    p.add_argument("--modes", default=",".join(REGION_MODES),
                   help="comma-separated; motion:N is motion with [detect] max_regions = N")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = bench(args.scenes.split(","), args.modes.split(","), args.fps, Path(tmp))
    for row in rows:
        row.pop("detections")
    print(json.dumps(rows, indent=1) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
