"""Topic names of one device, in one place (documented in docs/mqtt.md)."""

from __future__ import annotations

from dataclasses import dataclass

from ..labels import slug


@dataclass(frozen=True)
class Topics:
    """Every topic under a device prefix."""

    prefix: str

    @property
    def availability(self) -> str:
        """Retained online/offline; the last will."""
        return f"{self.prefix}/availability"

    @property
    def detections(self) -> str:
        """Per-frame detections, QoS 0."""
        return f"{self.prefix}/detections"

    @property
    def events(self) -> str:
        """Event start/end, QoS 1 through the spool."""
        return f"{self.prefix}/events"

    @property
    def snapshot(self) -> str:
        """Retained JPEG."""
        return f"{self.prefix}/snapshot"

    @property
    def stats(self) -> str:
        """Retained health numbers."""
        return f"{self.prefix}/stats"

    @property
    def camera_status(self) -> str:
        """Retained online/offline of the frame source."""
        return f"{self.prefix}/camera/status"

    @property
    def error(self) -> str:
        """Answers to bad commands."""
        return f"{self.prefix}/error"

    @property
    def probe(self) -> str:
        """Retained report of the last latency probe (`edgecam probe --mqtt`, cmd/probe)."""
        return f"{self.prefix}/probe"

    @property
    def probe_frame(self) -> str:
        """Per-frame JSON `edgecam probe --mqtt` publishes to time a real publish."""
        return f"{self.prefix}/probe/frame"

    @property
    def clips_latest(self) -> str:
        """Retained JSON naming the newest event clip ([clips] on)."""
        return f"{self.prefix}/clips/latest"

    @property
    def everything(self) -> str:
        """The filter matching every topic of the device (`edgecam listen`)."""
        return f"{self.prefix}/#"

    def count(self, label: str) -> str:
        """Retained count of a watched label."""
        return f"{self.prefix}/{slug(label)}/count"

    def occupancy(self, label: str) -> str:
        """Retained ON/OFF of a watched label."""
        return f"{self.prefix}/{slug(label)}/occupancy"

    def label_snapshot(self, label: str) -> str:
        """Retained JPEG: the best frame of the last tracked object of a label."""
        return f"{self.prefix}/{slug(label)}/snapshot"

    def label_event(self, label: str) -> str:
        """A tracked object of a label started or ended: Home Assistant's `event` entity
        (QoS 1, not retained; payload: sink.ha_event_payload)."""
        return f"{self.prefix}/{slug(label)}/event"

    def zone_count(self, zone: str, label: str) -> str:
        """Retained count of tracked objects of a label standing in a zone."""
        return f"{self.prefix}/zones/{slug(zone)}/{slug(label)}/count"

    def setting_state(self, name: str) -> str:
        """Retained current value of a setting."""
        return f"{self.prefix}/{name}/state"

    def set(self, name: str) -> str:
        """Command topic changing a setting."""
        return f"{self.prefix}/set/{name}"

    def cmd(self, name: str) -> str:
        """Command topic running an action."""
        return f"{self.prefix}/cmd/{name}"
