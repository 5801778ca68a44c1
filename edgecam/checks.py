"""The rows `edgecam doctor` prints: one value type and its four statuses, shared by the
device checks (edgecam.doctor) and the accelerator checks (edgecam.doctor.accelerators)."""

from __future__ import annotations

from dataclasses import dataclass

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"


@dataclass(frozen=True)
class Check:
    """One row of the doctor's table."""

    name: str
    status: str
    detail: str
    fix: str = ""
