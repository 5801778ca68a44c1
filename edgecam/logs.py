"""Logging to stderr that fits both a terminal and journald.

Under systemd (JOURNAL_STREAM names our stderr) journald timestamps every line itself and
reads a `<N>` syslog priority prefix, so lines carry `<N>` and no timestamp: `journalctl -p
warning -u edgecam` then works. Elsewhere lines get a timestamp and a level name.

Lines written to stderr outside logging would reach the journal at its default, info: the
command line's one-line fatal error goes through `print_error` and an uncaught exception
through the hooks `setup_logging` installs, so both are filed as errors.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Mapping, Optional, TextIO, Union

from .errors import EdgecamError

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# sd-daemon(3) / syslog(3) priorities.
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
_DEBUG_PRIORITY = 7

TERMINAL_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"


def syslog_priority(levelno: int) -> int:
    """The syslog priority (2 crit ... 7 debug) journald should file a log level under."""
    for threshold, priority in _PRIORITIES:
        if levelno >= threshold:
            return priority
    return _DEBUG_PRIORITY


class JournalFormatter(logging.Formatter):
    """`<N>name: message`, with the prefix repeated on every line of a multi-line record
    (tracebacks), since journald files each line separately."""

    def __init__(self):
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines() or [""])


def stderr_is_journal(env: Mapping[str, str], stream: TextIO) -> bool:
    """True when JOURNAL_STREAM (`device:inode`) is the file `stream` writes to.

    A child process inherits JOURNAL_STREAM even when its stderr was redirected elsewhere;
    comparing device and inode (as sd_journal_stream_fd(3) advises) catches that.
    """
    raw = env.get("JOURNAL_STREAM", "")
    if not raw:
        return False
    try:
        dev, ino = (int(part) for part in raw.split(":", 1))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return st.st_dev == dev and st.st_ino == ino


def journal_prefix(
    levelno: int, env: Optional[Mapping[str, str]] = None, stream: Optional[TextIO] = None
) -> str:
    """`<N>` for a line written straight to `stream` (default stderr) at `levelno` when that
    stream is the journal, else ''."""
    env = os.environ if env is None else env
    stream = sys.stderr if stream is None else stream
    return f"<{syslog_priority(levelno)}>" if stderr_is_journal(env, stream) else ""


def print_error(
    message: str, env: Optional[Mapping[str, str]] = None, stream: Optional[TextIO] = None
) -> None:
    """Write the one-line fatal error `message` to stderr (or `stream`), filed at err (3) when
    stderr is the journal: `journalctl -u edgecam -p err` must show why the service died."""
    stream = sys.stderr if stream is None else stream
    stream.write(f"{journal_prefix(logging.ERROR, env, stream)}{message}\n")
    stream.flush()


def _log_uncaught(exc_type, exc, tb) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    logging.getLogger("edgecam").critical("uncaught exception", exc_info=(exc_type, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    where = args.thread.name if args.thread is not None else "a thread"
    logging.getLogger("edgecam").critical(
        "uncaught exception in %s",
        where,
        exc_info=(
            args.exc_type,
            args.exc_value,  # type: ignore[arg-type]
            args.exc_traceback,
        ),
    )


def parse_level(level: Union[str, int]) -> int:
    """A logging level from a name (debug, info, warning, error, critical) or a number."""
    if isinstance(level, int) and not isinstance(level, bool):
        return level
    try:
        return LEVELS[str(level).strip().lower()]
    except KeyError:
        raise EdgecamError(f"unknown log level {level!r}: use one of {', '.join(LEVELS)}") from None


def setup_logging(
    level: Union[str, int] = "info", env: Optional[Mapping[str, str]] = None, stream: Optional[TextIO] = None
) -> logging.Handler:
    """Send log records at `level` and above to stderr (or `stream`), formatted for journald
    when that is where stderr goes; returns the installed handler.

    Calling it again replaces the handler it installed before (e.g. after reading a config).
    """
    env = os.environ if env is None else env
    stream = sys.stderr if stream is None else stream
    levelno = parse_level(level)
    handler = logging.StreamHandler(stream)
    if stderr_is_journal(env, stream):
        handler.setFormatter(JournalFormatter())
        # Python prints an uncaught traceback straight to stderr, where journald would file
        # it as info: send it through logging, at crit, instead.
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread
    else:
        handler.setFormatter(logging.Formatter(TERMINAL_FORMAT))
    handler._edgecam = True  # type: ignore[attr-defined]  # marks the handler we own
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_edgecam", False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(levelno)
    return handler
