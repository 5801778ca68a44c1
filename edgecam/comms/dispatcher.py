"""Routes command topics to handlers and keeps each setting's retained state topic current.

Commands: `<prefix>/set/<setting>` changes a setting (state echoed, retained, on
`<prefix>/<setting>/state`); `<prefix>/cmd/<name>` runs an action. A payload a handler
cannot use is answered on `<prefix>/error`; nothing a remote sends can raise past here.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any, Callable, Dict

from ..settings import THRESHOLD_MAX, THRESHOLD_MIN, LiveSettings
from .base import Communicator
from .topics import Topics

log = logging.getLogger("edgecam.mqtt")

CommandHandler = Callable[[bytes], None]
Parser = Callable[[bytes], Any]


class CommandError(ValueError):
    """A command payload that cannot be used; the message is sent back on <prefix>/error."""


def _unwrap(payload: bytes) -> Any:
    """The payload as a JSON value if it parses, else as stripped text; {"value": x} -> x."""
    text = payload.decode("utf-8", errors="strict").strip()
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    return value


def parse_threshold(payload: bytes) -> float:
    """'0.6', 0.6 or {"value": 0.6} -> 0.6; must be a number in [0, 1]."""
    value = _unwrap(payload)
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        raise CommandError(f"threshold must be a number between 0 and 1, got {value!r}") from None
    if not THRESHOLD_MIN <= number <= THRESHOLD_MAX:
        raise CommandError(f"threshold must be a number between 0 and 1, got {value!r}")
    return number


_TRUE = {"on", "true", "1", "yes", "enable", "enabled"}
_FALSE = {"off", "false", "0", "no", "disable", "disabled"}


def parse_enabled(payload: bytes) -> bool:
    """ON/OFF, true/false, 1/0 (any case, bare or JSON) -> bool."""
    value = _unwrap(payload)
    text = str(value).strip().lower()
    if isinstance(value, bool):
        return value
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise CommandError(f"enabled must be ON or OFF (or true/false), got {value!r}")


def state_payload(setting: str, value: Any) -> str:
    """JSON for `<prefix>/<setting>/state` (schema: setting_state.json)."""
    return json.dumps({"v": 1, "ts": round(time.time(), 3), "setting": setting, "value": value})


def error_payload(topic: str, payload: bytes, message: str) -> str:
    """JSON for `<prefix>/error` (schema: error.json)."""
    shown = payload[:200].decode("utf-8", errors="replace")
    return json.dumps(
        {"v": 1, "ts": round(time.time(), 3), "topic": topic, "payload": shown, "error": message}
    )


class Dispatcher:
    """One router for every incoming command of a device."""

    def __init__(self, comm: Communicator, topics: Topics, settings: LiveSettings):
        self._comm = comm
        self.topics = topics
        self.settings = settings
        self._setters: Dict[str, CommandHandler] = {}
        self._commands: Dict[str, CommandHandler] = {}
        self.register_setting("threshold", parse_threshold, lambda v: settings.update(threshold=v).threshold)
        self.register_setting("enabled", parse_enabled, lambda v: settings.update(enabled=v).enabled)

    def register_setting(self, name: str, parse: Parser, apply: Callable[[Any], Any]) -> None:
        """Handle `<prefix>/set/<name>`: `parse(payload)` (raise CommandError/ValueError on bad
        input), then `apply(value)` returning the value now in force, echoed on the state topic."""

        def set_value(payload: bytes) -> None:
            value = apply(parse(payload))
            log.info("mqtt: %s set to %r", name, value)
            self._publish_state(name, value)

        self._setters[name] = set_value

    def register_command(self, name: str, handler: CommandHandler) -> None:
        """Handle `<prefix>/cmd/<name>` with `handler(payload)` (e.g. "snapshot", "probe").

        The handler runs on the network thread: keep it short (set a flag, queue work).
        Raising CommandError/ValueError sends the message to `<prefix>/error`.
        """
        self._commands[name] = handler

    def start(self) -> None:
        """Subscribe to the command topics and publish every setting's current state."""
        self._comm.subscribe(
            self.topics.set("+"), lambda topic, payload: self._route(topic, payload, "setting", self._setters)
        )
        self._comm.subscribe(
            self.topics.cmd("+"),
            lambda topic, payload: self._route(topic, payload, "command", self._commands),
        )
        self.publish_states()

    def publish_states(self) -> None:
        """Publish (retained) the current value of every setting.

        The transport re-publishes retained topics after each reconnect.
        """
        current = self.settings.current()
        for name in self._setters:
            value = getattr(current, name, None)
            if value is not None:
                self._publish_state(name, value)

    def _publish_state(self, name: str, value: Any) -> None:
        self._comm.publish(self.topics.setting_state(name), state_payload(name, value), retain=True)

    def _route(self, topic: str, payload: bytes, kind: str, handlers: Dict[str, CommandHandler]) -> None:
        # Every failure is answered on the error topic: a bad payload with its own message,
        # anything else as an internal error, since nothing a remote sends may take the
        # service down.
        name = topic.rsplit("/", 1)[-1]
        handler = handlers.get(name)
        if handler is None:
            self._error(topic, payload, f"unknown {kind} {name!r} (known: {', '.join(handlers) or 'none'})")
            return
        try:
            handler(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            self._error(topic, payload, str(exc))
        except Exception as exc:
            log.exception("mqtt: %s %s failed", kind, name)
            self._error(topic, payload, f"internal error: {exc}")

    def _error(self, topic: str, payload: bytes, message: str) -> None:
        log.warning("mqtt: rejected %s: %s", topic, message)
        self._comm.publish(self.topics.error, error_payload(topic, payload, message))
