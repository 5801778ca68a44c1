"""The two interfaces of the stages the pipeline runs after inference: a `Processor` (tracking,
events) changes each result in frame order, a `Sink` delivers it (stdout, files, MQTT, the
preview)."""

from __future__ import annotations

import abc
from typing import Optional, Sequence

from .datatypes import EndReason, FrameResult, StageEvent


class Processor(abc.ABC):
    """The interface of a stage between inference and the sinks (tracking, events): called
    with every result in frame order, on one thread."""

    @abc.abstractmethod
    def __call__(self, result: FrameResult) -> FrameResult:
        """The result passed on to the sinks (the same one, or a copy with more in it)."""

    def finish(self, seq: Optional[int], reason: EndReason) -> Sequence[StageEvent]:
        """Close what the stage holds open (tracks) at the end of a run or a camera loss, and
        return the final events; a stateless stage has none."""
        return []

    def tick(self) -> Sequence[StageEvent]:
        """Time passed without a result (a lost camera, a sensor still loading): the events
        that makes (occupancy going off); most stages have none."""
        return []


class Sink(abc.ABC):
    """The sink interface the pipeline calls: `handle` each result in order, then `close`.

    `name` labels the sink's thread, drop counter and log lines. `takes_flush`: the sink also
    gets the final events of a run or of a camera loss (a FrameResult in state FLUSH
    carrying only events); the others never see such results.
    """

    name = "sink"
    takes_flush = False

    @abc.abstractmethod
    def handle(self, result: FrameResult) -> None:
        """Consume one processed frame."""

    def close(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Flush and release; called once after the last result. Nothing to do by default."""
