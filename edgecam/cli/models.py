"""`edgecam models list|fetch|info`: the manifest's models, installing them, and what a model is."""

from __future__ import annotations

import json

import click

from ..modelinfo import format_info, model_info
from ..models import fetch, load_manifest, model_cache_dir


@click.group("models")
def models_group():
    """List and install models from the manifest, and inspect any model file."""


@models_group.command("list")
def models_list():
    """Show the manifest's models and whether each is installed in the cache."""
    entries = load_manifest()
    cache = model_cache_dir()
    click.echo(f"model cache: {cache}")
    rows = [("NAME", "KIND", "INPUT", "DELEGATE", "INSTALLED", "DESCRIPTION")]
    for e in entries.values():
        if not e.verifiable:
            state = "unverifiable"
        elif (cache / e.file).is_file():
            state = "yes"
        else:
            state = "no"
        size = "x".join(str(v) for v in e.input_size) or "-"
        name = e.name + (" (default)" if e.default else "")
        rows.append((name, e.kind, size, e.delegate, state, e.description))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])


@models_group.command("fetch")
@click.argument("name")
@click.option(
    "--from",
    "from_dir",
    type=click.Path(file_okay=False),
    help="take the files from this folder instead of downloading them",
)
@click.option("--force", is_flag=True, help="replace files that are already installed")
def models_fetch(name, from_dir, force):
    """Download (or copy with --from) model NAME, verify its sha256 and install it."""
    result = fetch(name, from_dir=from_dir, force=force)
    if not result.written:
        click.echo(f"{name}: already installed in {result.model_path.parent}")
    for path in result.written:
        click.echo(f"installed {path}")


@models_group.command("info")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def info_command(model, as_json):
    """Show a model's tensors, ops, Mult-Adds and parameters (read from the graph, not run)."""
    info = model_info(model)
    click.echo(json.dumps(info.to_dict()) if as_json else format_info(info))
