#!/usr/bin/env python3
"""Events benchmark: edgecam's tracker + EventStage against a peer tracker (ByteTrack from
`supervision`) on videos with known ground truth (tests/scenes.py), side by side in one run.

The real detector runs once per fixture; every tracker is fed exactly those per-frame
detections (score >= the threshold, edgecam's default 0.5). One row per tracker per fixture:

- from `motmetrics` against the known paths (objects at least half visible, not blurred):
  MOTA, IDF1, ID switches, fragmentations; a tracker's output in a frame is its confirmed
  tracks that matched a detection in that frame (what the user sees boxed live). IDF1 is
  also given for the record (`idf1_record`): each confirmed track with its sightings from
  its first one on, before it was confirmed too, which is what an event covers (its
  `first_seen`, and its clip's boxes in the sidecar); ByteTrack's from its tracks' sightings
  before they were reported, the same way;
- what users feel: starts per real object (goal 1.00), objects never started (goal 0), false
  starts (a start on no real object), and the time from an object's first appearance to its
  start (mean, seconds). A start is assigned to the object its box overlaps most (IoU >= 0.3).

Then µs per frame of each tracker alone with 10 objects in view (synthetic boxes, same input for
both, CPU time of this process; compare as a ratio: this machine is shared).

    python scripts/bench_events.py [--fps 10 30] [--fixture street ...] [--json]

Modular on purpose: a function per tracker (`run_edgecam`, `run_bytetrack`, both -> `Run`), a
function per row (`mot_row`, `user_row`), `detections_for` for the detector; another detector
mode or tracker is one more entry in `TRACKERS` or one more call of `detections_for`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import scenes  # noqa: E402
from conftest import COCO_LABELS, SSD_MODEL  # noqa: E402
from edgecam.datatypes import BBox, Detection, Frame, FrameResult  # noqa: E402
from edgecam.detector import DetectOptions, Detector  # noqa: E402
from edgecam.events import EventOptions, EventStage  # noqa: E402
from edgecam.tracker import Tracker, TrackerOptions  # noqa: E402

WATCH = ("person", "cat", "dog", "car")
Box = Tuple[float, float, float, float]  # pixels
Detections = List[Tuple[Detection, ...]]  # per frame


@dataclass
class Run:
    """What one tracker made of one fixture: per frame the boxes it shows (track id, label,
    pixel box); the same with each reported track's sightings before it was reported
    (`record`); and its starts (frame index, track id, label, pixel box)."""

    tracker: str
    shown: List[List[Tuple[str, str, Box]]] = field(default_factory=list)
    record: List[List[Tuple[str, str, Box]]] = field(default_factory=list)
    starts: List[Tuple[int, str, str, Box]] = field(default_factory=list)
    _pending: Dict[object, List[Tuple[int, Box]]] = field(default_factory=dict)

    def sighted(self, key: object, frame: int, box: Box) -> None:
        """A track not reported yet was seen at `box` in `frame`."""
        self._pending.setdefault(key, []).append((frame, box))

    def shows(self, shown: List[Tuple[str, str, Box]], first: Dict[str, object]) -> None:
        """This frame's reported boxes; `first`: report id -> the key its earlier sightings
        were noted under, for the tracks reported for the first time in this frame."""
        self.shown.append(shown)
        self.record.append(list(shown))
        for tid, label, _ in shown:
            for frame, box in self._pending.pop(first.get(tid), ()) if tid in first else ():
                self.record[frame].append((tid, label, box))


def load_detector(threshold: float = 0.5, threads: int = 1) -> Detector:
    """The real shared SSD model."""
    return Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=threads,
                         options=DetectOptions(threshold=threshold))


def detections_for(scene: scenes.Scene, detect: Callable[[Frame], FrameResult]) -> Detections:
    """Run a detector once over every frame of a scene; the per-frame detections."""
    out = []
    for i, image in enumerate(scene.frames()):
        ts = i / scene.fps
        out.append(tuple(detect(Frame(i, ts, ts, image)).detections))
    return out


def to_pixels(box: BBox, size: Tuple[int, int]) -> Box:
    """A normalised box in pixels of a frame of `size`."""
    w, h = size
    return (box.x1 * w, box.y1 * h, box.x2 * w, box.y2 * h)


# -- trackers ----------------------------------------------------------------------------------
DEFAULTS = TrackerOptions()


def run_edgecam(scene: scenes.Scene, dets: Detections, options: TrackerOptions = DEFAULTS) -> Run:
    """edgecam's Tracker + EventStage (default options), fed frame by frame at the source's time."""
    counter = iter(range(1, 1 << 30))
    stage = EventStage(Tracker(options, new_id=lambda: f"e{next(counter)}"), EventOptions(labels=WATCH))
    run, reported = Run("edgecam"), set()
    blank = np.zeros((scene.size[1], scene.size[0], 3), np.uint8)
    for i, frame_dets in enumerate(dets):
        ts = i / scene.fps
        result = stage(FrameResult(Frame(i, ts, ts, blank), frame_dets, 0.0))
        for ev in result.events:
            if getattr(ev, "kind", None) == "start":
                run.starts.append((i, ev.id, ev.label, to_pixels(BBox(*ev.box), scene.size)))
        seen = [t for t in stage.tracker.tracks if t.missed == 0 and t.last_seen == ts]
        for t in seen:
            if not t.confirmed:
                run.sighted(t.id, i, to_pixels(t.box, scene.size))
        shown = [(t.id, t.label, to_pixels(t.box, scene.size)) for t in seen if t.confirmed and t.label in WATCH]
        run.shows(shown, {tid: tid for tid, _, _ in shown if tid not in reported})
        reported.update(tid for tid, _, _ in shown)
    stage.finish()
    return run


def run_bytetrack(scene: scenes.Scene, dets: Detections, min_hits: int = DEFAULTS.min_hits) -> Run:
    """ByteTrack (supervision's implementation), class-agnostic as it is made, with as many
    consecutive frames before a track is reported as edgecam's min_hits; a track starts when it
    is first reported."""
    import supervision as sv

    bt = _bytetrack(scene.fps, min_hits)
    run, seen = Run("bytetrack"), set()
    labels: Dict[int, str] = {}
    for i, frame_dets in enumerate(dets):
        for d in frame_dets:
            labels.setdefault(d.class_id, d.label)
        xyxy = np.array([to_pixels(d.bbox, scene.size) for d in frame_dets], np.float32).reshape(-1, 4)
        out = bt.update_with_detections(sv.Detections(
            xyxy=xyxy, confidence=np.array([d.score for d in frame_dets], np.float32),
            class_id=np.array([d.class_id for d in frame_dets], int)))
        # Its tracks' sightings before they are reported (supervision's STrack: a tracked,
        # not yet activated track matched in this frame), for the record.
        internal = {t.external_track_id: t.internal_track_id for t in bt.tracked_tracks}
        for t in bt.tracked_tracks:
            if t.frame_id == bt.frame_id and not t.is_activated:
                run.sighted(t.internal_track_id, i, tuple(float(v) for v in t.tlbr))
        shown, first = [], {}
        for box, cls, tid in zip(out.xyxy, out.class_id, out.tracker_id):
            if tid is None or tid < 0 or labels[int(cls)] not in WATCH:
                continue
            key, box = f"b{int(tid)}", tuple(float(v) for v in box)
            shown.append((key, labels[int(cls)], box))
            if key not in seen:
                seen.add(key)
                first[key] = internal.get(int(tid))
                run.starts.append((i, key, labels[int(cls)], box))
        run.shows(shown, first)
    return run


def _bytetrack(fps: float, min_hits: int):
    import supervision as sv

    with warnings.catch_warnings():  # sv.ByteTrack is deprecated in favour of `trackers` (see docs/events.md)
        warnings.simplefilter("ignore", FutureWarning)
        return sv.ByteTrack(frame_rate=fps, minimum_consecutive_frames=min_hits)


TRACKERS: Dict[str, Callable[[scenes.Scene, Detections], Run]] = {
    "edgecam": run_edgecam, "bytetrack": run_bytetrack,
}


# -- metrics -----------------------------------------------------------------------------------
def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def mot_row(truths: Sequence[Sequence[scenes.Truth]], run: Run) -> Dict[str, float]:
    """MOTA, IDF1, ID switches and fragmentations of what is shown live (py-motmetrics, IoU
    >= 0.5 to match), and the IDF1 of the record."""
    live = _mot(truths, run.shown)
    return {**live, "idf1_record": _mot(truths, run.record)["idf1"]}


def _mot(truths: Sequence[Sequence[scenes.Truth]], boxes: Sequence[Sequence[Tuple[str, str, Box]]]) -> Dict[str, float]:
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    hyp_ids: Dict[str, int] = {}  # motmetrics stores ids as floats
    for truth, shown in zip(truths, boxes):
        gt = [t for t in truth if t.observable]
        # 1 - IoU, NaN (no match possible) under 0.5: what mm.distances.iou_matrix computes, which
        # motmetrics 1.4.0 cannot run on numpy 2 (it calls the removed np.asfarray).
        dist = np.array([[1.0 - v if (v := _iou(t.box, s[2])) >= 0.5 else np.nan for s in shown] for t in gt],
                        float).reshape(len(gt), len(shown))
        acc.update([t.id for t in gt], [hyp_ids.setdefault(s[0], len(hyp_ids)) for s in shown], dist)
    m = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches", "num_fragmentations"])
    return {"mota": round(float(m["mota"].iloc[0]), 3), "idf1": round(float(m["idf1"].iloc[0]), 3),
            "id_switches": int(m["num_switches"].iloc[0]), "fragmentations": int(m["num_fragmentations"].iloc[0])}


def real_objects(truths: Sequence[Sequence[scenes.Truth]], min_frames: int = 3) -> Dict[int, int]:
    """Objects observable in at least `min_frames` frames: id -> first frame observable."""
    frames: Dict[int, List[int]] = {}
    for i, truth in enumerate(truths):
        for t in truth:
            if t.observable:
                frames.setdefault(t.id, []).append(i)
    return {k: v[0] for k, v in frames.items() if len(v) >= min_frames}


def assign_start(truth: Sequence[scenes.Truth], box: Box, min_iou: float = 0.3) -> Optional[int]:
    """The object a start's box lies on (highest IoU, at least `min_iou`), None for none."""
    best = max(((_iou(t.box, box), t.id) for t in truth), default=(0.0, None))
    return best[1] if best[0] >= min_iou else None


def user_row(truths: Sequence[Sequence[scenes.Truth]], labels: Dict[int, str], run: Run,
             fps: float) -> Dict[str, float]:
    """Starts per real object, objects never started, false starts, starts with the wrong
    label, and the mean time (s) from first appearance to start."""
    objects = real_objects(truths)
    starts: Dict[int, List[int]] = {k: [] for k in objects}
    false_starts = wrong_label = 0
    for i, _, label, box in run.starts:
        obj = assign_start(truths[i], box)
        if obj not in starts:
            false_starts += 1
            continue
        starts[obj].append(i)
        wrong_label += label != labels[obj]
    started = [k for k, v in starts.items() if v]
    delays = [(min(starts[k]) - objects[k]) / fps for k in started]
    return {"objects": len(objects),
            "starts_per_object": round(sum(len(v) for v in starts.values()) / max(1, len(objects)), 2),
            "missed": len(objects) - len(started), "false_starts": false_starts, "wrong_label": wrong_label,
            "start_delay_s": round(sum(delays) / len(delays), 2) if delays else None}


def fixture_rows(scene: scenes.Scene, dets: Detections,
                 trackers: Dict[str, Callable[[scenes.Scene, Detections], Run]] = TRACKERS,
                 mode: str = "full") -> List[dict]:
    """One row per tracker for one fixture's detections."""
    truths, labels = scene.truths(), scene.labels()
    rows = []
    for name, track in trackers.items():
        run = track(scene, dets)
        rows.append({"fixture": f"{scene.name}@{scene.fps:g}", "mode": mode, "tracker": name,
                     **user_row(truths, labels, run, scene.fps), **mot_row(truths, run)})
    return rows


# -- CPU ---------------------------------------------------------------------------------------
def synthetic_detections(n_objects: int = 10, n_frames: int = 300, seed: int = 1) -> Detections:
    """`n_objects` people walking in a 640x480 frame with jittery boxes (the CPU input)."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0.05, 0.75, (n_objects, 2))
    speed = rng.uniform(-0.002, 0.002, (n_objects, 2))
    out = []
    for i in range(n_frames):
        frame = []
        for k in range(n_objects):
            x, y = np.clip(start[k] + speed[k] * i + rng.normal(0, 0.002, 2), 0.0, 0.8)
            frame.append(Detection("person", 0, float(rng.uniform(0.55, 0.9)), BBox(x, y, x + 0.08, y + 0.2)))
        out.append(tuple(frame))
    return out


def cpu_us_per_frame(n_objects: int = 10, n_frames: int = 300, repeat: int = 3) -> Dict[str, float]:
    """CPU µs per frame of each tracker's update alone (best of `repeat`), same input."""
    import supervision as sv

    dets = synthetic_detections(n_objects, n_frames)
    size = (640, 480)
    arrays = [(np.array([to_pixels(d.bbox, size) for d in f], np.float32),
               np.array([d.score for d in f], np.float32), np.zeros(len(f), int)) for f in dets]

    def ours():
        tracker = Tracker()
        for i, f in enumerate(dets):
            tracker.update(f, i / 10)

    def peer():
        bt = _bytetrack(10, DEFAULTS.min_hits)
        for xyxy, conf, cls in arrays:
            bt.update_with_detections(sv.Detections(xyxy=xyxy, confidence=conf, class_id=cls))

    out = {}
    for name, fn in (("edgecam", ours), ("bytetrack", peer)):
        best = float("inf")
        for _ in range(repeat):
            t0 = time.process_time()
            fn()
            best = min(best, time.process_time() - t0)
        out[name] = round(best / n_frames * 1e6, 1)
    return out


# -- report ------------------------------------------------------------------------------------
COLUMNS = ("fixture", "mode", "tracker", "objects", "starts_per_object", "missed", "false_starts",
           "wrong_label", "start_delay_s", "mota", "idf1", "idf1_record", "id_switches", "fragmentations",
           "invokes_per_frame", "cpu_ms_per_frame")


def region_rows(fixtures: Sequence[str], modes: Sequence[str], fps: float, folder: Path) -> List[dict]:
    """Rows per `[detect] regions` mode on the far-object scenes (scenes.REGION_FIXTURES): each
    mode is one real run (scripts/bench_regions.py, whose crops follow edgecam's tracks), and
    both trackers get the detections that run fed edgecam's; with its model runs and CPU ms
    per frame."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_regions

    rows = []
    for name in fixtures:
        scene = scenes.REGION_FIXTURES[name](fps)
        video = scene.write(folder / f"{name}_{fps:g}.avi")
        for mode in modes:
            run = bench_regions.one_run(scene, video, mode, sorted(set(WATCH) & set(scene.labels().values())))
            for row in fixture_rows(scene, run["detections"], mode=mode):
                rows.append({**row, "invokes_per_frame": run["invokes_per_frame"],
                             "cpu_ms_per_frame": run["cpu_ms_per_frame"]})
    return rows


def table(rows: Sequence[dict]) -> str:
    """The rows as a Markdown table."""
    head = "| " + " | ".join(COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in COLUMNS) + " |" for r in rows]
    return "\n".join([head, sep, *body])


def bench(fixtures: Sequence[str], fps_list: Sequence[float], detector: Optional[Detector] = None) -> List[dict]:
    """Every fixture at every fps (plus the photo video at 10 fps): rows of every tracker."""
    detector = detector or load_detector()
    rows = []
    for name in fixtures:
        for fps in fps_list:
            scene = scenes.photo_cut_scene() if name == "photo_cut" else scenes.FIXTURES[name](fps)
            rows += fixture_rows(scene, detections_for(scene, detector.detect))
            if name == "photo_cut":
                break
    return rows


def main(argv=None) -> int:
    """Print the table (or JSON) of every fixture, then the CPU figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fps", type=float, nargs="+", default=[10, 30])
    p.add_argument("--fixture", nargs="+", default=[*scenes.FIXTURES, "photo_cut"],
                   choices=[*scenes.FIXTURES, "photo_cut"])
    p.add_argument("--objects", type=int, default=10, help="objects in view for the CPU figure")
    p.add_argument("--regions", nargs="*", default=[], choices=["full", "motion", "tiles"],
                   help="also rows per [detect] regions mode on the far-object scenes")
    p.add_argument("--region-fixture", nargs="+", default=list(scenes.REGION_FIXTURES),
                   choices=list(scenes.REGION_FIXTURES))
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = p.parse_args(argv)
    rows = bench(args.fixture, args.fps)
    if args.regions:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            rows += region_rows(args.region_fixture, args.regions, 10.0, Path(tmp))
    cpu = cpu_us_per_frame(args.objects)
    if args.json:
        print(json.dumps({"rows": rows, "cpu_us_per_frame": cpu, "cpu_objects": args.objects}, indent=1))
        return 0
    print(table(rows))
    print(f"\nCPU µs per frame, tracker update alone, {args.objects} objects in view: "
          + ", ".join(f"{k} {v}" for k, v in cpu.items())
          + f" (ratio bytetrack/edgecam {cpu['bytetrack'] / cpu['edgecam']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
