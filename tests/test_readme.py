"""The README's promises that code can check: the config reference and the two commands."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from sync_readme import with_reference  # noqa: E402


def test_config_reference_in_readme_matches_the_code():
    readme = (ROOT / "README.md").read_text()
    assert readme == with_reference(readme), "run scripts/sync_readme.py and commit README.md"


def test_readme_names_the_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert "./scripts/test" in readme and "./scripts/run" in readme
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_scripts_pass_shellcheck():
    scripts = [ROOT / "scripts" / "run", ROOT / "scripts" / "test", ROOT / ".ci" / "run"]
    out = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout
