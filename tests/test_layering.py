"""The package's layering, read from the source with `ast`: no module imports one above it,
there are no import cycles, and every internal import names a module that exists. The module map
in CONTRIBUTING.md is generated from the table below (tests/test_readme.py checks it is current).

Every import counts, including those inside functions and under TYPE_CHECKING: a lazy import
is still a dependency, and it is the one a test run is most likely never to execute.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "edgecam"

# Bottom to top: (what the layer is, its modules). A module may import modules of its own layer
# or of a layer below it. "x.*" is package x and everything in it. Every module of edgecam/ is
# in exactly one layer. The module map in CONTRIBUTING.md is generated from this table
# (scripts/sync_readme.py), with each module's docstring.
LAYERED: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("the version and the one error type", ("edgecam", "edgecam.errors")),
    ("value types and pure helpers, knowing nothing of the stages",
     ("edgecam.datatypes", "edgecam.settings", "edgecam.labels", "edgecam.zones", "edgecam.stats",
      "edgecam.tflite_graph", "edgecam.logs", "edgecam.notify", "edgecam.checks", "edgecam.files",
      "edgecam.backends", "edgecam.presence", "edgecam.filtering", "edgecam.queues",
      "edgecam.stages", "edgecam.regions")),
    ("configuration, the TFLite runtime, model files",
     ("edgecam.config", "edgecam.runtime", "edgecam.models", "edgecam.modelinfo")),
    ("the frame path: source -> detector -> (tracker/motion) ...",
     ("edgecam.sources.*", "edgecam.detector", "edgecam.annotate", "edgecam.tracker",
      "edgecam.motion")),
    ("the accelerator backends beside the CPU detector",
     ("edgecam.backends.imx500", "edgecam.backends.hailo")),
    ("... -> local sinks", ("edgecam.sinks",)),
    ("the event processor and the pipeline that runs the stages",
     ("edgecam.events", "edgecam.label_events", "edgecam.processing", "edgecam.pipeline")),
    ("event clips (their plan is a processor, their recorder a sink)", ("edgecam.clips.*",)),
    ("MQTT: sinks and services built on the frame path", ("edgecam.comms.*",)),
    ("the live preview", ("edgecam.web.*",)),
    ("the latency probe", ("edgecam.probe.*",)),
    ("the device checks", ("edgecam.doctor.*",)),
    ("wiring of `edgecam run`", ("edgecam.app",)),
    ("the command line", ("edgecam.cli.*", "edgecam.__main__")),
)
LAYERS: Tuple[Tuple[str, ...], ...] = tuple(modules for _what, modules in LAYERED)


def module_files(package: Path = PACKAGE) -> Dict[str, Path]:
    """Module name -> file for every .py file of the package (a package is its __init__)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imported_names(name: str, path: Path) -> Set[str]:
    """Every `edgecam...` name that module `name` imports, relative imports made absolute.

    `from X import y` gives X.y when that is a module of the package and X otherwise; which
    is decided by `resolve`, since only the tree knows.
    """
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    found: Set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "edgecam")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "edgecam":
                continue
            found.update(f"{target}.{a.name}|{target}" for a in node.names)
    return found


def resolve(raw: Iterable[str], modules: Set[str]) -> Tuple[Set[str], Set[str]]:
    """(imported modules, names that are no module of the package) from `imported_names`."""
    deps, unknown = set(), set()
    for item in raw:
        full, _, owner = item.partition("|")
        if full in modules:
            deps.add(full)
        elif (owner or full) in modules:
            deps.add(owner or full)
        else:
            unknown.add(owner or full)
    return deps, unknown


def import_graph(package: Path = PACKAGE) -> Tuple[Dict[str, Set[str]], Dict[str, Set[str]]]:
    """(module -> edgecam modules it imports, module -> imported names that do not exist)."""
    files = module_files(package)
    modules = set(files)
    graph, missing = {}, {}
    for name, path in files.items():
        deps, unknown = resolve(imported_names(name, path), modules)
        graph[name] = deps - {name}
        if unknown:
            missing[name] = unknown
    return graph, missing


def layer_of(module: str, layers: Tuple[Tuple[str, ...], ...] = LAYERS) -> List[int]:
    """Indexes of the layers that claim `module` (exactly one when the table is right)."""
    hits = []
    for i, layer in enumerate(layers):
        for pattern in layer:
            if module == pattern or (pattern.endswith(".*") and
                                     (module + ".").startswith(pattern[:-1])):
                hits.append(i)
    return hits


def upward_imports(graph: Mapping[str, Set[str]],
                   layers: Tuple[Tuple[str, ...], ...] = LAYERS) -> List[str]:
    """'a -> b' for every import of a module in a higher layer than the importer's."""
    out = []
    for module, deps in sorted(graph.items()):
        for dep in sorted(deps):
            if layer_of(dep, layers)[0] > layer_of(module, layers)[0]:
                out.append(f"{module} -> {dep}")
    return out


def cycles(graph: Mapping[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_every_module_sits_in_exactly_one_layer():
    placed = {m: layer_of(m) for m in module_files()}
    assert {m: hits for m, hits in placed.items() if len(hits) != 1} == {}


def test_no_module_imports_one_above_it():
    graph, _ = import_graph()
    assert upward_imports(graph) == []


def test_no_import_cycles():
    graph, _ = import_graph()
    assert cycles(graph) == []


def test_every_internal_import_names_a_module():
    # After a move, a stale import inside a rarely run function is only found here.
    _, missing = import_graph()
    assert missing == {}


def test_the_checks_catch_what_they_look_for(tmp_path):
    # The checks above can fail: an upward import, a cycle and a stale import are each found.
    pkg = tmp_path / "edgecam"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "__init__.py").write_text("__version__ = '0'\n")
    (pkg / "errors.py").write_text("def f():\n    from .cli import run\n")
    (pkg / "cli" / "__init__.py").write_text("from . import run\n")
    (pkg / "cli" / "run.py").write_text("from .. import __version__, errors\nimport edgecam.cli\n")
    graph, missing = import_graph(pkg)
    assert graph == {"edgecam": set(), "edgecam.errors": {"edgecam.cli.run"},
                     "edgecam.cli": {"edgecam.cli.run"},
                     "edgecam.cli.run": {"edgecam", "edgecam.errors", "edgecam.cli"}}
    assert missing == {}
    assert upward_imports(graph) == ["edgecam.errors -> edgecam.cli.run"]
    assert cycles(graph) == [["edgecam.cli", "edgecam.cli.run", "edgecam.errors"]]
    (pkg / "cli" / "run.py").write_text("from ..gone import x\nimport edgecam.nothing\n")
    assert import_graph(pkg)[1] == {"edgecam.cli.run": {"edgecam.gone", "edgecam.nothing"}}
