"""`edgecam clips list|prune`: the event clips in the clips folder, and the disk budget."""

from __future__ import annotations

import json
import time

import click

from .. import config as cfg


def _folder(config_path, folder):
    from ..app import clips_folder
    from pathlib import Path

    config = cfg.resolve(config_path, {})
    return (Path(folder).expanduser() if folder else clips_folder(config)), config


PARTIAL_MIN_AGE_S = 600.0

_config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML config file (its [clips] dir and budget).",
)
_dir_option = click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False),
    help="The clips folder (default: [clips] dir, else clips/ in the state directory).",
)


@click.group("clips")
def clips_group():
    """List the event clips and delete the ones over the disk budget."""


@clips_group.command("list")
@_config_option
@_dir_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per clip instead of a table.")
def clips_list(config_path, folder, as_json):
    """The complete clips, newest first: start, length, size, labels."""
    from ..clips.store import list_clips

    path, config = _folder(config_path, folder)
    clips = list_clips(path)
    if as_json:
        for c in clips:
            click.echo(json.dumps(c.to_json()))
        return
    click.echo(f"clips folder: {path}")
    total = sum(c.size for c in clips)
    for c in clips:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c.start))
        click.echo(
            f"{when}  {c.seconds:6.1f} s  {c.size / 1024:8.0f} kB  "
            f"{','.join(c.labels) or '-':12}  {c.name}.mp4"
        )
    budget = config.clips.max_mb
    click.echo(f"{len(clips)} clip(s), {total / 2**20:.1f} MB" + (f" of {budget:g} MB" if budget else ""))


@clips_group.command("prune")
@_config_option
@_dir_option
@click.option("--max-mb", type=float, help="Keep at most this many MB of clips (default: [clips] max_mb).")
@click.option("--max-days", type=float, help="Delete clips older than this (default: [clips] max_days).")
def clips_prune(config_path, folder, max_mb, max_days):
    """Delete clips older than max_days, then the oldest until the rest fit in max_mb, and
    what an interrupted run left (*.part files unchanged for 10 minutes: a running
    service's clip in progress is left alone)."""
    from ..clips.store import prune, remove_partials

    path, config = _folder(config_path, folder)
    max_mb = config.clips.max_mb if max_mb is None else max_mb
    max_days = config.clips.max_days if max_days is None else max_days
    partial = remove_partials(path, min_age=PARTIAL_MIN_AGE_S)
    deleted = prune(path, max_mb, max_days)
    for name in deleted:
        click.echo(f"deleted {name}.mp4")
    click.echo(f"{len(deleted)} clip(s) and {len(partial)} partial file(s) deleted")
