"""`edgecam run`: options -> Config -> app.run, with a clean exit on Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, Callable, Dict, Mapping

import click

from .. import config as cfg

log = logging.getLogger("edgecam")


def _split_host_port(value):
    """(host, port) of --mqtt, (None, None) when not given; the port only when written."""
    if value is None:
        return None, None
    from ..comms.identity import parse_host_port

    host, port = parse_host_port(value, default_port=0)
    return host, port or None


def _config_option(section: str, key: str, meta: Mapping[str, Any]) -> Callable:
    """The click option of one config key, from its metadata: the type, the choices and the
    help are the key's own, so `--help` and the config reference say the same."""
    name = meta["cli"]
    kind = meta["kind"]
    where = f" ([{section}] {key})."
    dest = f"{section}__{key}"
    if kind is bool:
        return click.option(f"--{name}/--no-{name}", dest, default=None, help=meta["help"] + where)
    choices = getattr(meta["check"], "choices", None)
    if choices is not None:
        return click.option(f"--{name}", dest, type=click.Choice(list(choices)), help=meta["help"] + where)
    if kind is list:  # the config reads a comma-separated string as a list
        return click.option(f"--{name}", dest, type=str, help=meta["help"] + ", comma-separated" + where)
    return click.option(f"--{name}", dest, type=kind, help=meta["help"] + where)


def config_options(command: Callable) -> Callable:
    """Add an option for every config key whose metadata names one (config: `cli=`)."""
    for section, key, meta in reversed(cfg.command_line_keys()):
        command = _config_option(section, key, meta)(command)
    return command


def config_overrides(opts: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """{section: {key: value}} of the generated options (None where not given)."""
    overrides: Dict[str, Dict[str, Any]] = {}
    for section, key, _meta in cfg.command_line_keys():
        overrides.setdefault(section, {})[key] = opts[f"{section}__{key}"]
    return overrides


@click.command("run")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML config file (default /etc/edgecam/config.toml when present).",
)
@config_options
@click.option(
    "--clips", "clips_dir", help="Record a clip of each tracked event into DIR ([clips]; needs --track)."
)
@click.option("--json", "json_output", is_flag=True, help="One JSON object per frame on stdout.")
@click.option("--mqtt", help="MQTT broker HOST[:PORT] ([mqtt] host, port).")
def run_command(config_path, clips_dir, json_output, mqtt, **opts):
    """Detect objects in frames from a camera, stream or files, and report them."""
    from ..app import install_signal_handlers, run

    overrides = config_overrides(opts)
    host, port = _split_host_port(mqtt)
    overrides["mqtt"].update(host=host, port=port)
    overrides.setdefault("clips", {}).update(enabled=True if clips_dir else None, dir=clips_dir)
    config = cfg.resolve(config_path, overrides)
    _setup_logging(config.service.log_level)
    stop = threading.Event()
    install_signal_handlers(stop)
    summary = run(config, json_output=json_output, stop=stop)
    line = summary.line()
    if json_output:
        log.info(line)
        _quiet_closed_stdout()
        return
    try:
        click.echo(line)
    except BrokenPipeError:
        pass
    finally:
        _quiet_closed_stdout()


def _quiet_closed_stdout() -> None:
    # Python flushes stdout at exit; if the reader is gone that flush would print a traceback.
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _setup_logging(level: str) -> None:
    from ..logs import setup_logging

    setup_logging(level)
