"""One in-process `edgecam run --json` for the benchmarks: the lines it printed, its run
summary, and the CPU and wall time it took (scripts/bench_motion.py, scripts/bench_regions.py)."""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass
from typing import List, Mapping

from edgecam.app import run
from edgecam.config import from_mapping
from edgecam.stats import RunSummary


@dataclass(frozen=True)
class JsonRun:
    """What one run printed and cost."""

    lines: List[dict]
    summary: RunSummary
    cpu_s: float
    wall_s: float

    def of_type(self, kind: str) -> List[dict]:
        """The lines of one `type` ("frame", "event", ...), in order."""
        return [x for x in self.lines if x["type"] == kind]


def run_json(sections: Mapping[str, Mapping[str, object]]) -> JsonRun:
    """Run edgecam on a config given as sections (as a TOML file would hold them)."""
    out = io.StringIO()
    t0, w0 = os.times(), time.monotonic()
    summary = run(from_mapping(sections), json_output=True, stdout=out)
    t1, w1 = os.times(), time.monotonic()
    return JsonRun([json.loads(x) for x in out.getvalue().splitlines()], summary,
                   (t1.user - t0.user) + (t1.system - t0.system), w1 - w0)
