"""The concurrent pipeline with the real detector: drops, order, bounded memory, workers."""

from __future__ import annotations

import threading
import time
import tracemalloc
from typing import Callable, Optional

import cv2
import pytest

from edgecam.detector import Detector
from edgecam.pipeline import Pipeline
from edgecam.queues import BoundedQueue, Closed, LatestSlot
from edgecam.sources import ImageSource, Source
from edgecam.stages import Sink

from conftest import COCO_LABELS, IMAGES, SSD_MODEL
from waiting import wait_until


class PhotoCamera(Source):
    """A live source made of real photos, produced as fast as `fps` allows; each photo is
    shown for `hold` frames in a row (a scene), then the next one. `ended` is set after the
    last frame."""

    live = True

    def __init__(self, fps: float, count: int, hold: int = 1):
        super().__init__()
        self.name, self.fps, self.count, self.hold = "photo-camera", fps, count, hold
        self.images = [cv2.resize(cv2.imread(str(IMAGES / n)), (640, 480))
                       for n in ("pets.jpg", "traffic.bmp", "grace_hopper.bmp")]
        self.ended = threading.Event()

    def frames(self):
        start = time.monotonic()
        for i in range(self.count):
            delay = start + i / self.fps - time.monotonic()
            if delay > 0 and self._closed.wait(delay):
                return
            if self.closed:
                return
            # A fresh buffer per frame, as a camera delivers.
            yield self._frame(self.images[(i // self.hold) % len(self.images)].copy())
        self.ended.set()


class PacedPhotoCamera(PhotoCamera):
    """A live camera at up to 1000 fps that shows each of `scenes` photos (in turn) until
    the pipeline has processed `hold` frames since it came into view: every scene is inferred
    several frames in a row however slow inference is today."""

    def __init__(self, scenes: int, hold: int, processed: Callable[[], int]):
        super().__init__(fps=1000, count=0)
        self.scenes, self.hold_processed, self.processed = scenes, hold, processed

    def frames(self):
        for scene in range(self.scenes):
            shown = self.processed()
            while self.processed() - shown < self.hold_processed:
                if self._closed.wait(0.001):
                    return
                yield self._frame(self.images[scene % len(self.images)].copy())
        self.ended.set()


class SleepySink(Sink):
    """A real sink that is slow: it records what it got and sleeps `delay` per frame."""

    def __init__(self, name: str, delay: float):
        self.name, self.delay = name, delay
        self.seqs = []
        self.labels = []

    def handle(self, result):
        self.seqs.append(result.frame.seq)
        self.labels.append([d.label for d in result.detections])
        time.sleep(self.delay)


class RecordingSink(SleepySink):
    def __init__(self, name="recorder"):
        super().__init__(name, 0.0)


STALL_S = 30.0  # far longer than any inference takes, even on this machine under load


class BehindSink(RecordingSink):
    """A sink slower than inference by construction, whatever the machine's speed: it holds
    each frame until the pipeline has processed `behind(frames handled so far)` more (or the
    source has ended or been closed). A pipeline that waited for its sinks would never get
    there: `stalled` counts the frames held STALL_S in vain; `outrun` those the pipeline
    left `behind` frames behind."""

    def __init__(self, name: str, behind: Callable[[int], int]):
        super().__init__(name)
        self.behind = behind
        self.pipeline: Optional[Pipeline] = None
        self.stalled = self.outrun = 0

    def handle(self, result):
        pipeline = self.pipeline
        target = pipeline.stats.processed + self.behind(len(self.seqs))
        super().handle(result)
        outrun = lambda: pipeline.stats.processed >= target  # noqa: E731
        source_done = lambda: pipeline.source.closed or pipeline.source.ended.is_set()  # noqa: E731
        if not wait_until(lambda: outrun() or source_done(), STALL_S, step=0.005):
            self.stalled += 1
        elif outrun():
            self.outrun += 1


@pytest.fixture(scope="module")
def detector():
    return Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=2)


def test_slow_sink_drops_and_counts_but_never_holds_inference_back():
    # A single-thread interpreter keeps the sinks at normal priority: with idle-priority sinks
    # (one interpreter over several threads) any other load on the machine starves the fast
    # sink too, which says nothing about what the slow one does to it.
    detector = Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=1)
    # The slow sink holds every frame until inference is 2 frames past what its queue of 8
    # can keep: slower than inference whatever the machine's speed or load.
    queue, behind = 8, 10
    slow, fast = BehindSink("slow", lambda handled: behind), RecordingSink("fast")
    pipeline = Pipeline(PhotoCamera(fps=1000, count=100_000), [detector], [slow, fast], drop=True,
                        sink_queue=queue)
    slow.pipeline = pipeline
    assert not pipeline._yield_cpu
    tracemalloc.start()
    pipeline.start()
    try:
        assert wait_until(lambda: len(slow.seqs) >= 2, 120)
        early, _ = tracemalloc.get_traced_memory()
        assert wait_until(lambda: len(slow.seqs) >= 4, 120)
        late, _ = tracemalloc.get_traced_memory()
    finally:
        pipeline.stop()
        pipeline.wait(10)
        tracemalloc.stop()
    stats = pipeline.stats
    assert slow.stalled == 0, "inference waited for the slow sink"
    assert slow.outrun >= 3
    # Each frame the pipeline outran the sink by cost at least behind - queue drops.
    assert stats.sink_dropped["slow"] >= (behind - queue) * slow.outrun, (stats.sink_dropped, slow.outrun)
    assert stats.sink_dropped["slow"] + len(slow.seqs) == stats.processed, "every drop is counted"
    assert len(fast.seqs) == stats.processed, "a fast sink next to a slow one misses nothing"
    assert stats.dropped > 0, "the camera outpaces inference, so stale frames are dropped"
    assert stats.processed + stats.dropped <= stats.captured <= stats.processed + stats.dropped + 2
    # Over 20+ inferences of a 1000 fps camera nothing piles up: growth stays below two
    # 640x480 frames.
    assert late - early < 2 * 640 * 480 * 3, (early, late)
    assert slow.seqs == sorted(slow.seqs) and fast.seqs == sorted(fast.seqs)


def test_file_source_with_a_slow_sink_loses_nothing(detector):
    source = ImageSource(IMAGES, loop=True)
    slow, fast = SleepySink("slow", 0.02), RecordingSink()
    pipeline = Pipeline(source, [detector], [slow, fast], drop=False, max_frames=25)
    pipeline.start()
    assert pipeline.wait(60)
    pipeline.close_sinks()
    assert slow.seqs == list(range(25)) and fast.seqs == list(range(25))
    assert pipeline.stats.dropped == 0 and pipeline.stats.sink_dropped == {"slow": 0, "recorder": 0}
    # Every fifth frame is pets.jpg (folder order: cat, grace, kite, pets, traffic).
    assert all(slow.labels[i] == ["dog", "dog"] for i in range(3, 25, 5))


def test_two_workers_keep_order_and_process_each_frame_once():
    detectors = [Detector.load(str(SSD_MODEL), str(COCO_LABELS), threads=1) for _ in range(2)]
    sink = RecordingSink()
    pipeline = Pipeline(ImageSource(IMAGES, loop=True), detectors, [sink], drop=False, max_frames=40)
    pipeline.start()
    assert pipeline.wait(60)
    assert sink.seqs == list(range(40))
    assert all(sink.labels[i] == ["car", "car"] for i in range(4, 40, 5))


def test_frame_age_and_end_to_end_latency_are_measured(detector):
    sink = RecordingSink()
    pipeline = Pipeline(PhotoCamera(fps=30, count=20), [detector], [sink], drop=True)
    pipeline.start()
    assert pipeline.wait(30)
    stats = pipeline.stats
    assert stats.end_to_end_ms.total == len(sink.seqs) > 0
    assert stats.frame_age_ms.total == stats.processed
    assert stats.end_to_end_ms.summary().p50 >= stats.inference_ms.summary().p50


def test_latest_slot_keeps_only_the_newest():
    drops = []
    slot = LatestSlot(lambda: drops.append(1))
    for i in range(5):
        slot.put(i)
    assert slot.get() == 4 and len(drops) == 4
    slot.close()
    with pytest.raises(Closed):
        slot.get()


def test_bounded_queue_blocks_without_drop_and_drops_oldest_with_drop():
    dropped = []
    q = BoundedQueue(2, drop=True, on_drop=lambda: dropped.append(1))
    for i in range(4):
        q.put(i)
    assert (q.get(), q.get(), len(dropped)) == (2, 3, 2)
    blocking = BoundedQueue(1, drop=False)
    blocking.put("a")
    done = threading.Event()
    t = threading.Thread(target=lambda: (blocking.put("b"), done.set()), daemon=True)
    t.start()
    assert not done.wait(0.2), "a full queue without drop makes the producer wait"
    assert blocking.get() == "a" and done.wait(2) and blocking.get() == "b"


def test_a_full_dropping_queue_never_drops_what_it_must_keep():
    dropped = []
    q = BoundedQueue(2, drop=True, on_drop=lambda: dropped.append(1), keep=lambda item: item.startswith("event"))
    for item in ["event-start", "f1", "f2", "event-end", "f3"]:
        q.put(item)
    left = [q.get() for _ in range(3)]
    assert left == ["event-start", "event-end", "f3"] and len(dropped) == 2


def test_slow_sink_still_gets_every_event(detector):
    from edgecam.events import stage_from_config
    from edgecam.config import Config
    import dataclasses
    # Still photos: no motion needed and no minimum age.
    track = dataclasses.replace(Config().track, enabled=True, require_motion=False, min_age=0.0)
    stage = stage_from_config(track, ("dog", "car", "person"), snapshots=False)

    class EventSink(BehindSink):
        takes_flush = True

        def handle(self, result):
            self.labels.extend(e.kind for e in result.events)
            super().handle(result)

    # Stuck on the first frame while the tracks of two scenes start, then merely slow: each
    # frame held until inference is 2 frames further.
    hold = 8
    slow = EventSink("slow", lambda handled: 2 * hold if handled == 0 else 2)
    pipeline = None
    # Each photo stays in view for 8 processed frames: a track starts only after several
    # inferred frames in a row see its object, whatever the machine's speed.
    camera = PacedPhotoCamera(scenes=4, hold=hold, processed=lambda: pipeline.stats.processed)
    pipeline = Pipeline(camera, [detector], [slow], drop=True, processors=[stage])
    slow.pipeline = pipeline
    pipeline.start()
    assert pipeline.wait(120)
    assert slow.stalled == 0, "inference waited for the slow sink"
    assert pipeline.stats.sink_dropped["slow"] > 0, "the sink was too slow for every frame"
    assert slow.labels.count("start") == stage.started > 0
    assert slow.labels.count("end") == stage.ended == stage.started
