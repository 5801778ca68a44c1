"""The processor stage: the processors run on every result in frame order, and on time passing.

The processors (tracking, events, per-label events and occupancy) run on one thread, between
inference and the sinks; the pipeline's dispatcher drives them through this stage:
- `frame(result)`: the processors on one result, which then goes to every sink;
- `idle()`: no result came for a while (a lost camera, an IMX500 still loading): time passes
  for the processors (`Processor.tick`: occupancy going off);
- `finish(reason)`: they end what they hold open (a run's end, a lost camera).

Both idle() and finish() hand what the processors made to `deliver` on a result that only
carries events (FrameState.FLUSH, on the last frame's data, so no frame is reported twice).

Detection switched off (LiveSettings.enabled False) is timed here, in one place: once the
pause has lasted `pause_ends_after` s the processors finish with reason `paused`, since a
paused detector sees nothing and what they hold open would otherwise stay as it was.
"""

from __future__ import annotations

import time
from typing import Callable, List, Optional, Sequence

from .datatypes import EndReason, FrameResult, FrameState, StageEvent
from .stages import Processor
from .settings import LiveSettings

# How long the dispatcher waits for a result before letting time pass for the processors.
IDLE_TICK_S = 0.25


class ProcessorStage:
    """The processors of one run, with the pause timer. Not thread-safe: one caller."""

    def __init__(
        self,
        processors: Sequence[Processor],
        deliver: Callable[[FrameResult], None],
        settings: Optional[LiveSettings] = None,
        pause_ends_after: Optional[float] = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.processors = list(processors)
        self._deliver = deliver
        self._settings = settings
        self._pause_ends_after = pause_ends_after
        self._clock = clock
        self._paused_since: Optional[float] = None
        self._pause_ended = False
        self.last: Optional[FrameResult] = None

    def frame(self, result: FrameResult) -> FrameResult:
        """The result once every processor has seen it (the same one, or a copy with more)."""
        self._check_pause(result.skipped)
        for process in self.processors:
            result = process(result)
        self.last = result
        return result

    def idle(self) -> None:
        """No result came: time passes (pause timer, `Processor.tick`). Nothing happens before
        the first frame, since there is no frame the events could be carried on."""
        if self.last is None:
            return
        self._check_pause(True)
        events: List[StageEvent] = []
        for process in self.processors:
            events += process.tick()
        self._carry(events)

    def finish(self, reason: EndReason) -> None:
        """Every processor ends what it holds open (`reason`: shutdown, camera_offline, paused)."""
        if self.last is None:
            return
        events: List[StageEvent] = []
        for process in self.processors:
            events += process.finish(self.last.frame.seq, reason)
        self._carry(events)

    def _carry(self, events: List[StageEvent]) -> None:
        if events and self.last is not None:
            self._deliver(
                FrameResult(self.last.frame, (), 0.0, {}, state=FrameState.FLUSH, events=tuple(events))
            )

    def _check_pause(self, nothing_inferred: bool) -> None:
        # Timed from when the pause is seen here, not by capture times: a file source's frames
        # wait in the queues, so the first paused one may have been captured before the pause.
        paused = nothing_inferred and self._settings is not None and not self._settings.current().enabled
        if self._pause_ends_after is None or not paused:
            self._paused_since, self._pause_ended = None, False
            return
        now = self._clock()
        if self._paused_since is None:
            self._paused_since = now
        if not self._pause_ended and now - self._paused_since >= self._pause_ends_after:
            self._pause_ended = True
            self.finish(EndReason.PAUSED)
