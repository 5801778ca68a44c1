"""The docs' promises that code can check: the config reference and the two commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from sync_readme import CONFIG_DOC, CONTRIBUTING, module_map_markdown, with_module_map, with_reference  # noqa: E402


def test_config_reference_in_the_docs_matches_the_code():
    doc = CONFIG_DOC.read_text()
    assert doc == with_reference(doc), "run scripts/sync_readme.py and commit docs/configuration.md"


def test_module_map_in_contributing_matches_the_layers_and_the_tree():
    doc = CONTRIBUTING.read_text()
    assert doc == with_module_map(doc), "run scripts/sync_readme.py and commit CONTRIBUTING.md"
    stale = doc.replace("`edgecam/errors.py`", "`edgecam/gone.py`")
    assert stale != with_module_map(stale), "a map that drifted is caught"
    listed = set(re.findall(r"`(edgecam/[\w/]+\.py)`", doc.split("<!-- module-map:start -->")[1]))
    assert listed == {str(p.relative_to(ROOT)) for p in (ROOT / "edgecam").rglob("*.py")}


def test_the_module_map_follows_a_new_module(tmp_path):
    docstrings = {"__init__.py": "The version.", "errors.py": "The one error. More here.",
                  "cli/__init__.py": "The command line."}
    for name, doc in docstrings.items():
        path = tmp_path / "edgecam" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'"""{doc}"""\n')
    rows = module_map_markdown(tmp_path / "edgecam").splitlines()[2:]
    assert rows == ["| the version and the one error type | `edgecam/__init__.py` | The version |",
                    "|  | `edgecam/errors.py` | The one error |",
                    "| the command line | `edgecam/cli/__init__.py` | The command line |"]


def test_readme_names_the_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert "./scripts/test" in readme and "./scripts/run" in readme
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_scripts_pass_shellcheck():
    scripts = [ROOT / "scripts" / "run", ROOT / "scripts" / "test", ROOT / ".ci" / "run"]
    out = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces -> '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set:
    """The anchors of every heading of a Markdown file (outside code blocks)."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {github_anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]


def broken_links(doc: Path) -> list:
    """Relative links of a Markdown file whose file or heading does not exist."""
    broken = []
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked here
        file_part, _, anchor = target.partition("#")
        path = (doc.parent / file_part).resolve() if file_part else doc
        if not path.exists():
            broken.append(f"{doc.name}: {target} (no such file)")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{doc.name}: {target} (no such heading)")
    return broken


def test_relative_links_in_the_docs_reach_a_file_and_heading():
    assert [b for doc in DOCS for b in broken_links(doc)] == []


def test_the_link_check_finds_a_broken_link(tmp_path):
    assert github_anchor("Sources (`--source`)") == "sources---source"
    (tmp_path / "a.md").write_text("# Top: `x` (y)\n\n[ok](#top-x-y) [gone](b.md) [bad](a.md#nope)\n"
                                   "```\n# not a heading\n```\n")
    assert anchors(tmp_path / "a.md") == {"top-x-y"}
    assert broken_links(tmp_path / "a.md") == ["a.md: b.md (no such file)", "a.md: a.md#nope (no such heading)"]
