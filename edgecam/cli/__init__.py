"""The `edgecam` command line: parses options into a Config and hands it to the stages.

`main` is the entry point; each subcommand lives in its own module here, which holds only
click code and calls into the domain modules (config, models, doctor, probe, app, comms).

Every EdgecamError becomes one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys

import click

from .. import __version__
from .. import config as cfg
from ..errors import EdgecamError
from ..logs import print_error
from .clips import clips_group
from .doctor import doctor_command
from .listen import listen_command
from .models import models_group
from .probe import probe_command
from .run import run_command


class _Group(click.Group):
    """A click group that turns EdgecamError into a one-line message and exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgecamError as exc:
            print_error(f"edgecam: error: {exc}")
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            # Bad options get the same one-line form, pointing at the command's help.
            where = exc.ctx.command_path if exc.ctx else "edgecam"
            print_error(f"edgecam: error: {exc.format_message()} (see `{where} --help`)")
            sys.exit(exc.exit_code)


def _version_message() -> str:
    from ..runtime import find_runtime

    try:
        runtime = find_runtime().describe()
    except EdgecamError:
        runtime = "no TFLite runtime installed"
    return f"edgecam {__version__} (runtime: {runtime})"


def _print_version(ctx, _param, value):
    if value and not ctx.resilient_parsing:
        click.echo(_version_message())
        ctx.exit()


@click.group(cls=_Group)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show edgecam's and the TFLite runtime's versions.",
)
def main():
    """edgecam: TFLite object detection on a Raspberry Pi camera, published over MQTT."""


@main.group("config")
def config_group():
    """Inspect configuration files."""


@config_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False))
def config_check(path):
    """Validate a TOML config file; exit 0 when it is valid."""
    cfg.check_combination(cfg.load_file(path))
    click.echo(f"{path}: ok")


@config_group.command("reference")
def config_reference():
    """Print every setting with its default and meaning (Markdown)."""
    click.echo(cfg.reference_markdown(), nl=False)


# The subcommands, one module each. Each module builds its command whole, so registering
# them depends on no import order.
COMMANDS = (run_command, probe_command, models_group, doctor_command, listen_command, clips_group)
for _command in COMMANDS:
    main.add_command(_command)
