#!/usr/bin/env python3
"""Rewrite the generated blocks of the docs from the code (the code is the truth):

- the config reference in docs/configuration.md, from `edgecam config reference`;
- the module map in CONTRIBUTING.md, from tests/test_layering.py's table of layers and each
  module's docstring.

tests/test_readme.py fails when either block is not what this script would write.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from edgecam.config import reference_markdown  # noqa: E402
from test_layering import LAYERED, layer_of, module_files  # noqa: E402

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"
MAP_START, MAP_END = "<!-- module-map:start -->", "<!-- module-map:end -->"
CONFIG_DOC = ROOT / "docs" / "configuration.md"
CONTRIBUTING = ROOT / "CONTRIBUTING.md"


def replace_block(text: str, start: str, end: str, block: str) -> str:
    """`text` with what lies between the markers `start` and `end` replaced by `block`."""
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{block}{end}{tail}"


def with_reference(text: str) -> str:
    """The text with the config reference block replaced by the current reference."""
    return replace_block(text, START, END, reference_markdown())


def summary(path: Path) -> str:
    """The first sentence of a module's docstring, on one line."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    return first.split(". ")[0].rstrip(".").replace("|", "\\|")


def module_map_markdown(package: Path = ROOT / "edgecam") -> str:
    """The module map: one row per module, layer by layer from the bottom up."""
    files = module_files(package)
    lines = ["| layer | module | what it is |", "|---|---|---|"]
    for index, (what, patterns) in enumerate(LAYERED):
        # In the table's order; a package's modules ("x.*") in name order.
        names = [name for pattern in patterns for name in sorted(files)
                 if layer_of(name, ((pattern,),)) and layer_of(name) == [index]]
        for row, name in enumerate(names):
            path = files[name].relative_to(package.parent)
            lines.append(f"| {what if row == 0 else ''} | `{path}` | {summary(files[name])} |")
    return "\n".join(lines) + "\n"


def with_module_map(text: str) -> str:
    """The text with the module map block replaced by the current map."""
    return replace_block(text, MAP_START, MAP_END, module_map_markdown())


if __name__ == "__main__":
    for path, rewrite in ((CONFIG_DOC, with_reference), (CONTRIBUTING, with_module_map)):
        path.write_text(rewrite(path.read_text()))
        print(f"updated {path}")
