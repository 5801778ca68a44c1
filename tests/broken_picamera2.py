"""A picamera2 that is installed but fails to import, for CLI subprocesses.

It stands in for the Pi's picamera2 when a numpy 2 wheel in the venv shadows the system numpy
its compiled modules were built against: numpy writes its advice to stderr, then the import
raises `ImportError: numpy.core.multiarray failed to import`.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = """\
import sys
sys.stderr.write("\\nA module that was compiled using NumPy 1.x cannot be run in\\n"
                 "NumPy 2.2.4 as it may crash.\\n")
raise ImportError("numpy.core.multiarray failed to import")
"""


def broken_picamera2_env(tmp_path: Path, env: dict) -> dict:
    """`env` with the broken picamera2 first on PYTHONPATH."""
    package = tmp_path / "site" / "picamera2"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(PACKAGE)
    env = dict(env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package.parent), env.get("PYTHONPATH")]))
    return env
