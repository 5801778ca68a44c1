"""`edgecam doctor`: print the table of edgecam.doctor's checks; exit 1 when one failed."""

from __future__ import annotations

from pathlib import Path

import click

from ..doctor import FAIL, check_config, format_table, run_checks


@click.command("doctor")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="config file (default /etc/edgecam/config.toml when present)",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False),
    default="/",
    hidden=True,
    help="read /sys, /dev and /usr/share below this folder (tests)",
)
def doctor_command(config_path, root):
    """Check runtime, camera, accelerators, model, broker, disk and temperature; exit 1 on failure."""
    config, rows = check_config(config_path)
    rows += run_checks(config, root=Path(root))
    click.echo(format_table(rows))
    if any(r.status == FAIL for r in rows):
        raise SystemExit(1)
