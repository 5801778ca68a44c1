"""Run the stages concurrently: capture -> frame slot -> inference -> sinks.

Live sources go through a latest-frame slot: when inference is busy the older frame is
dropped and counted, so inference always starts on the freshest frame. File sources go
through a small bounded queue and nothing is dropped. Each sink has its own thread and a
bounded queue, so a slow sink never stalls inference (in drop mode its oldest pending
result is dropped and counted instead). With several workers, each owns an interpreter and
results are put back in frame order before the sinks.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from .backends import Backend
from .datatypes import EndReason, Frame, FrameResult, FrameState
from .detector import timed_detect
from .errors import EdgecamError
from .motion import Motion, MotionDetector
from .processing import IDLE_TICK_S, ProcessorStage
from .queues import BoundedQueue, Closed, LatestSlot
from .regions import Region, RegionPlan
from .settings import LiveSettings
from .stages import Processor, Sink
from .stats import PipelineStats

log = logging.getLogger(__name__)

TRACKS_WAIT_S = 1.0  # longest an inference waits for the tracks of the frames before it


@dataclass(frozen=True)
class _EndTracks:
    reason: EndReason


def _carries_events(result) -> bool:
    return bool(getattr(result, "events", ()))


def _never(_result) -> bool:
    return False


@dataclass
class _Job:
    order: int
    frame: Frame
    prepared: Optional[Tuple[Any, Any]] = None


def yield_cpu_to_inference() -> None:
    """Run the calling thread only on CPU time the interpreter leaves idle (Linux SCHED_IDLE).

    The interpreter's threads keep every core busy during invoke; a sink or read-ahead thread
    preempting one of them stalls the whole parallel op, which costs more than the sink's own
    work. At idle priority that work fills the gaps between invokes instead (with one
    single-threaded interpreter per core, the pipeline does not call this). Where the
    policy is unavailable, the thread runs at the lowest nice level; failing that, as is.
    """
    tid = threading.get_native_id()
    try:
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.setpriority(os.PRIO_PROCESS, tid, 19)
        except (AttributeError, OSError):
            pass


class Pipeline:
    """Concurrent capture -> inference -> sinks for one source.

    `detectors`: one per inference worker (one = latency mode). `drop`: live behaviour
    (latest-frame slot, sinks drop when behind) or file behaviour (nothing dropped).
    `processors` run in frame order on their own thread between inference and the sinks
    (tracking, events).
    `motion`: measures every frame's motion once, before the gate, for the gate, the region
    plan and (on the result) the event stage; None: not measured.
    `gate(frame, motion) -> bool` may skip inference for a frame (motion gating).
    `plan(width, height, moving boxes, seq)`: the crops inferred beside the whole frame
    (edgecam.regions); None: the whole frame only.
    `pause_ends_tracks_after`: once detection has been switched off (settings) for this many
    seconds, the processors end what they hold open, reason `paused` (None: never; timed by
    processing.ProcessorStage, which also lets time pass for them when no frame comes).
    `stats`: the run's counters, made by the caller when readers built before the pipeline
    (overlay, MQTT, preview) share them; a fresh one otherwise.
    """

    def __init__(
        self,
        source,
        detectors: Sequence[Backend],
        sinks: Sequence[Sink],
        *,
        drop: bool,
        processors: Sequence[Processor] = (),
        settings: Optional[LiveSettings] = None,
        gate: Optional[Callable[[Frame, Optional[Motion]], bool]] = None,
        motion: Optional[MotionDetector] = None,
        plan: Optional[RegionPlan] = None,
        max_frames: Optional[int] = None,
        sink_queue: int = 8,
        stats: Optional[PipelineStats] = None,
        pause_ends_tracks_after: Optional[float] = None,
    ):
        self.source, self.detectors, self.sinks = source, list(detectors), list(sinks)
        self.drop, self.processors, self.gate = drop, list(processors), gate
        self.motion, self.plan = motion, plan
        self.settings = settings or LiveSettings(detectors[0].options.threshold)
        self.max_frames = max_frames
        self.stats = stats if stats is not None else PipelineStats()
        self._stages = ProcessorStage(
            self.processors, self._deliver_flush, self.settings, pause_ends_tracks_after
        )
        self._stop = threading.Event()
        self._order = 0
        self._order_lock = threading.Lock()
        self._emit_lock = threading.Lock()
        self._pending: List[Tuple[int, int, FrameResult]] = []
        self._next_order = 0
        self._emitted = 0
        self._dispatched = 0  # results through the processors (or passed over), in order
        self._dispatched_cond = threading.Condition()
        self.error: Optional[BaseException] = None
        self._inbox: Union[LatestSlot, BoundedQueue]
        if drop:
            self._inbox = LatestSlot(self._count_drop)
        else:
            self._inbox = BoundedQueue(2 * len(self.detectors), drop=False)
        # Results carrying events are never dropped for the sinks that deliver them (MQTT,
        # --json): an event, a count or an occupancy change is said once.
        self._sink_queues = [
            BoundedQueue(
                sink_queue,
                drop,
                self._sink_drop_counter(s),
                keep=_carries_events if getattr(s, "takes_flush", False) else _never,
            )
            for s in self.sinks
        ]
        self._ordered = BoundedQueue(sink_queue, drop=False)
        self._workers_left = len(self.detectors)
        # Only one interpreter spread over several threads suffers when other work preempts
        # one of its threads; single-threaded workers do better with sinks at normal priority
        # (measured: docs/performance.md).
        self._yield_cpu = len(self.detectors) == 1 and (self.detectors[0].threads or 1) > 1

    # -- counters ---------------------------------------------------------------------------
    def _count_drop(self) -> None:
        self.stats.dropped += 1

    def _sink_drop_counter(self, sink: Sink):
        name = sink.name
        self.stats.sink_dropped.setdefault(name, 0)

        def count():
            self.stats.sink_dropped[name] += 1

        return count

    # -- stages -----------------------------------------------------------------------------
    def _capture(self) -> None:
        if not self.drop and self._yield_cpu:
            # A file source has no deadline: read ahead only with cycles inference leaves idle.
            yield_cpu_to_inference()
        try:
            for frame in self.source.frames():
                if self._stop.is_set():
                    break
                self.stats.captured += 1
                job = _Job(-1, frame)
                if not self.drop:
                    # Every file frame will be inferred: resize it here, off the inference
                    # thread's critical path (measured: +3-4 % fps).
                    job.prepared = self.detectors[0].prepare(frame)
                self._inbox.put(job)
        except BaseException as exc:  # surfaced by run(); never silently kills the pipeline
            self.error = exc
        finally:
            self._inbox.close()

    def _infer(self, detector: Backend) -> None:
        try:
            while True:
                try:
                    with self._order_lock:
                        job = self._inbox.get()
                        job.order = self._order
                        self._order += 1
                except Closed:
                    return
                self._emit(job.order, self._run_detector(detector, job))
        except BaseException as exc:
            self.error = exc
            self.stop()
        finally:
            with self._emit_lock:
                self._workers_left -= 1
                if self._workers_left == 0:  # the last worker out: nothing more will be ordered
                    self._ordered.close()

    def _run_detector(self, detector: Backend, job: _Job) -> FrameResult:
        frame = job.frame
        self.stats.frame_age_ms.add((time.monotonic() - frame.mono) * 1e3)
        settings = self.settings.current()
        motion = self.motion.detect(frame.image) if self.motion is not None else None
        if not settings.enabled or (self.gate is not None and not self.gate(frame, motion)):
            self.stats.skipped += 1
            return FrameResult(frame, (), 0.0, {}, state=FrameState.SKIPPED)
        regions: Tuple[Region, ...] = ()
        if self.plan is not None:
            if self.plan.follows_tracks:
                self._wait_dispatched(job.order)
            regions = self.plan(frame.width, frame.height, motion.boxes if motion else (), frame.seq)
        # Live frames are preprocessed only here, so dropped or gated-out ones cost nothing.
        result = timed_detect(detector, frame, settings.threshold, job.prepared, regions)
        if motion is not None:
            result = dataclasses.replace(result, motion=motion.boxes)
        if result.state is FrameState.NO_INFORMATION:
            self.stats.skipped += 1
        else:
            self.stats.invokes += result.invokes
            self.stats.inference_ms.add(result.inference_ms)
        return result

    def _emit(self, order: int, result: FrameResult) -> None:
        # Results leave in frame order whatever worker finished first.
        with self._emit_lock:
            heapq.heappush(self._pending, (order, id(result), result))
            while self._pending and self._pending[0][0] == self._next_order:
                _, _, ready = heapq.heappop(self._pending)
                self._next_order += 1
                self._ordered.put(ready)

    def _dispatch(self) -> None:
        # Processors (tracking, event snapshots) and the fan-out to the sinks run here, off
        # the inference threads, in frame order.
        if self._yield_cpu:
            yield_cpu_to_inference()
        try:
            while True:
                try:
                    ready = self._ordered.get(timeout=IDLE_TICK_S)
                except Closed:
                    break
                except TimeoutError:
                    self._stages.idle()
                    continue
                if isinstance(ready, _EndTracks):
                    self._stages.finish(ready.reason)
                    continue
                self._dispatch_one(ready)
                with self._dispatched_cond:
                    self._dispatched += 1
                    self._dispatched_cond.notify_all()
            self._stages.finish(EndReason.SHUTDOWN)
        except BaseException as exc:  # surfaced by run()
            self.error = self.error or exc
            self.stop()
        finally:
            for q in self._sink_queues:
                q.close()

    def _dispatch_one(self, ready: FrameResult) -> None:
        if self.max_frames is not None and self._emitted >= self.max_frames:
            return
        if ready.state is FrameState.NO_INFORMATION:
            # Nothing was seen or missed: trackers, events and outputs must not take it for
            # an empty frame.
            return
        ready = self._stages.frame(ready)
        self._emitted += 1
        self.stats.processed += 1
        self.stats.fps.tick()
        for q in self._sink_queues:
            q.put(ready)
        if self.max_frames is not None and self._emitted >= self.max_frames:
            self.stop()

    def _wait_dispatched(self, order: int) -> None:
        # Crops that follow tracked objects are planned from the tracks as the frames before
        # this one left them, not as far as the dispatcher happens to have got: the same
        # video then gives the same crops, whatever the machine's load.
        with self._dispatched_cond:
            self._dispatched_cond.wait_for(
                lambda: self._dispatched >= order or self._stop.is_set(), TRACKS_WAIT_S
            )

    def _drain(self, sink: Sink, q: BoundedQueue) -> None:
        if self._yield_cpu:
            yield_cpu_to_inference()
        name = sink.name
        broken = False
        while True:
            try:
                result = q.get()
            except Closed:
                return
            if broken:
                continue
            try:
                sink.handle(result)
            except BrokenPipeError:
                # The reader of our output went away (e.g. `| head`): stop like other tools do.
                log.info("output of sink %s was closed: stopping", name)
                broken = True
                self.stop()
                continue
            except EdgecamError as exc:  # e.g. an output file that cannot be written: stop
                self.error = self.error or exc
                self.stop()
                continue
            except Exception as exc:  # one broken sink must not take the others down
                log.error("sink %s failed on frame %d: %s", name, result.frame.seq, exc)
                continue
            self.stats.end_to_end_ms.add((time.monotonic() - result.frame.mono) * 1e3)

    # -- control ----------------------------------------------------------------------------
    def start(self) -> "Pipeline":
        """Start every stage's thread; returns self."""

        def spawn(target, *args, name):
            t = threading.Thread(target=target, args=args, name=name, daemon=True)
            t.start()
            return t

        self._sink_threads = [
            spawn(self._drain, s, q, name=f"sink-{s.name}") for s, q in zip(self.sinks, self._sink_queues)
        ]
        self._dispatcher = spawn(self._dispatch, name="dispatch")
        self._workers = [spawn(self._infer, d, name=f"infer-{i}") for i, d in enumerate(self.detectors)]
        self._capture_thread = spawn(self._capture, name="capture")
        return self

    def stop(self) -> None:
        """Ask the source to stop; frames already captured are still processed."""
        self._stop.set()
        self.source.close()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until the source ended (or stop()) and every frame reached every sink.

        Returns False if `timeout` passed first (the pipeline keeps running).
        """
        deadline = None if timeout is None else time.monotonic() + timeout

        def joined(threads) -> bool:
            for t in threads:
                t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
                if t.is_alive():
                    return False
            return True

        return joined([self._capture_thread, *self._workers, self._dispatcher, *self._sink_threads])

    def end_tracks(self, reason: EndReason) -> None:
        """Close what stateful stages hold open (tracks), e.g. when the camera went offline;
        their final events reach the sinks in order with the frames (thread-safe)."""
        self._ordered.put(_EndTracks(reason))

    def _deliver_flush(self, carrier: FrameResult) -> None:
        # What the processors made without a frame (ends, occupancy going off) goes to the
        # sinks that want such results, in order with the frames.
        for sink, q in zip(self.sinks, self._sink_queues):
            if sink.takes_flush:
                q.put(carrier)

    def close_sinks(self) -> None:
        """Close every sink (flush files, MQTT spool); errors are logged, not raised."""
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                log.error("closing sink %s failed: %s", sink.name, exc)

    @property
    def running(self) -> bool:
        """True while frames may still arrive."""
        return (
            self._capture_thread.is_alive()
            or self._dispatcher.is_alive()
            or any(t.is_alive() for t in self._workers)
        )
