#!/usr/bin/env python3
"""Rewrite the config reference block of docs/configuration.md from `edgecam config reference`
(the code is the truth)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edgecam.config import reference_markdown  # noqa: E402

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def with_reference(readme: str) -> str:
    """The text with the block between the markers replaced by the current reference."""
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{reference_markdown()}{END}{tail}"


CONFIG_DOC = ROOT / "docs" / "configuration.md"

if __name__ == "__main__":
    path = CONFIG_DOC
    path.write_text(with_reference(path.read_text()))
    print(f"updated {path}")
