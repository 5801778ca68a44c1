"""`<prefix>/cmd/probe`: run a probe on request over MQTT, one at a time, and publish the report."""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

from ..comms.topics import Topics
from ..errors import EdgecamError
from .measure import PROBE_VERSION, REMOTE_MAX_RUNS, probe_to_payload, run_probe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteProbeRequest:
    """A `<prefix>/cmd/probe` request, validated: models, thread counts, runs, warmup."""

    models: Tuple[str, ...]
    threads: Tuple[Optional[int], ...]
    runs: int
    warmup: int


def parse_probe_request(
    payload: bytes, default_model: str, allowed_models: Sequence[str] = ()
) -> RemoteProbeRequest:
    """Parse a cmd/probe payload: empty, or JSON {"models": [...], "threads": [1, 2],
    "runs": 30, "warmup": 3}. Only the running model and `allowed_models` may be probed, so a
    remote message cannot make the device open arbitrary files. ValueError when invalid."""
    text = (payload or b"").decode("utf-8", "replace").strip()
    try:
        req = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"probe request is not JSON: {exc.msg}") from None
    if not isinstance(req, dict):
        raise ValueError("probe request must be a JSON object")
    allowed = {default_model, *allowed_models}
    by_name = {os.path.basename(m): m for m in allowed}
    models = []
    for m in req.get("models") or [default_model]:
        path = m if m in allowed else by_name.get(str(m))
        if path is None:
            raise ValueError(
                f"model {m!r} may not be probed remotely (allowed: {', '.join(sorted(by_name))})"
            )
        models.append(path)
    threads = req.get("threads") or [None]
    if not isinstance(threads, list) or not all(
        t is None or (isinstance(t, int) and 1 <= t <= 64) for t in threads
    ):
        raise ValueError("threads must be a list of integers 1..64")
    runs, warmup = req.get("runs", 30), req.get("warmup", 3)
    if not isinstance(runs, int) or not 1 <= runs <= REMOTE_MAX_RUNS:
        raise ValueError(f"runs must be an integer 1..{REMOTE_MAX_RUNS}")
    if not isinstance(warmup, int) or not 0 <= warmup <= 100:
        raise ValueError("warmup must be an integer 0..100")
    return RemoteProbeRequest(tuple(models), tuple(threads), runs, warmup)


class RemoteProbe:
    """Runs probes requested over MQTT (`<prefix>/cmd/probe`), one at a time, in a thread.

    Wire it with `RemoteProbe(comm.publish, prefix, model_path, ...).register(dispatcher)`
    (edgecam.comms.dispatcher.Dispatcher), or subscribe `handle` to the topic directly. The
    report is published retained on `<prefix>/probe` (a failed run publishes
    {"v": 1, "error": ...} there). A bad request, or one arriving while a probe runs, is
    refused. The probe runs beside the live pipeline, so its numbers include that contention.
    """

    def __init__(
        self,
        publish: Callable[..., object],
        prefix: str,
        default_model: str,
        *,
        allowed_models: Sequence[str] = (),
        source: Optional[str] = None,
        labels: Optional[str] = None,
        delegate: Optional[str] = None,
    ):
        self._publish = publish
        self.topic = Topics(prefix.rstrip("/")).probe
        self._default_model, self._allowed = default_model, tuple(allowed_models)
        self._source, self._labels, self._delegate = source, labels, delegate
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def register(self, dispatcher) -> None:
        """Register `cmd/probe` with a Dispatcher (bad requests go to its `<prefix>/error`)."""
        dispatcher.register_command("probe", self.on_command)

    def _send(self, payload: bytes) -> None:
        self._publish(self.topic, payload, retain=True)

    def _error(self, message: str) -> None:
        self._send(json.dumps({"v": PROBE_VERSION, "error": message}).encode())

    def on_command(self, payload: bytes) -> None:
        """Start a probe for this request; ValueError when it is invalid or one is running.

        Returns at once (the probe runs in its own thread), as the dispatcher requires.
        """
        req = parse_probe_request(payload, self._default_model, self._allowed)
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise ValueError(f"a probe is already running: wait for its result on {self.topic}")
            self._thread = threading.Thread(target=self._run, args=(req,), name="edgecam-probe", daemon=True)
            self._thread.start()

    def handle(self, _topic: str, payload: bytes) -> bool:
        """Subscription callback form of `on_command`: refusals are published on the probe
        topic instead of raised. True when a probe was started."""
        try:
            self.on_command(payload)
        except ValueError as exc:
            self._error(str(exc))
            return False
        return True

    def _run(self, req: RemoteProbeRequest) -> None:
        try:
            report = run_probe(
                req.models,
                threads=req.threads,
                runs=req.runs,
                warmup=req.warmup,
                source=self._source,
                labels=self._labels,
                delegate=self._delegate,
            )
        except EdgecamError as exc:
            self._error(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a remote probe must never kill the service
            log.exception("remote probe failed")
            self._error(f"probe failed: {type(exc).__name__}: {exc}")
            return
        self._send(probe_to_payload(report))

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for the running probe to finish; True when none is running."""
        t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True
