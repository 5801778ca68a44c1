"""Log format for journald (priority prefixes, no timestamps) and for terminals (timestamps)."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import pytest

from edgecam.errors import EdgecamError
from edgecam.logs import parse_level, setup_logging, syslog_priority

SCRIPT = """
import logging, sys
from edgecam.logs import setup_logging
setup_logging(sys.argv[1])
log = logging.getLogger("edgecam.test")
log.debug("debug line")
log.info("info line")
log.warning("warning line")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("failed")
"""
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def _run(tmp_path, level, journal_stream=None, match_stderr=True):
    """Run a real process whose stderr is a file; JOURNAL_STREAM names that file (or not)."""
    err_path = tmp_path / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with open(err_path, "w") as err:
        st = os.fstat(err.fileno())
        if journal_stream is not None:
            env["JOURNAL_STREAM"] = journal_stream
        elif match_stderr:
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        subprocess.run([sys.executable, "-c", SCRIPT, level], stderr=err, env=env, check=True, timeout=60)
    return err_path.read_text().splitlines()


def test_journal_lines_have_priorities_and_no_timestamps(tmp_path):
    lines = _run(tmp_path, "info")
    assert lines[0] == "<6>edgecam.test: info line"
    assert lines[1] == "<4>edgecam.test: warning line"
    assert lines[2] == "<3>edgecam.test: failed"
    # Every traceback line keeps the error priority, so `journalctl -p err` shows it whole.
    assert len(lines) > 4 and all(ln.startswith("<3>") for ln in lines[2:])
    assert any("ZeroDivisionError" in ln for ln in lines)
    assert not any(STAMP.search(ln[3:]) for ln in lines)
    assert not any("debug line" in ln for ln in lines)


def test_terminal_lines_are_timestamped(tmp_path):
    lines = _run(tmp_path, "debug", match_stderr=False)
    assert STAMP.match(lines[0]) and lines[0].endswith("DEBUG   edgecam.test: debug line")
    assert STAMP.match(lines[2]) and "WARNING" in lines[2]
    assert not any(ln.startswith("<") for ln in lines)


def test_inherited_journal_stream_of_another_file_is_ignored(tmp_path):
    # stderr was redirected away from the journal: JOURNAL_STREAM no longer describes it.
    lines = _run(tmp_path, "info", journal_stream="1:2")
    assert STAMP.match(lines[0]) and not lines[0].startswith("<")


def test_levels_and_priorities():
    assert parse_level("WARNING") == logging.WARNING and parse_level(10) == 10
    assert [syslog_priority(v) for v in (10, 20, 30, 40, 50)] == [7, 6, 4, 3, 2]
    with pytest.raises(EdgecamError, match="unknown log level 'loud'"):
        parse_level("loud")


def test_setup_twice_replaces_its_own_handler(tmp_path):
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    with open(tmp_path / "a.log", "w") as a, open(tmp_path / "b.log", "w") as b:
        first = setup_logging("info", env={}, stream=a)
        second = setup_logging("warning", env={}, stream=b)
        try:
            assert first not in root.handlers and second in root.handlers
            assert root.level == logging.WARNING
        finally:
            root.removeHandler(second)
            root.setLevel(level)
    assert root.handlers == before


CRASH = """
import sys, threading
from edgecam.logs import print_error, setup_logging
setup_logging("info")
print_error("edgecam: error: cannot read config file /etc/edgecam/config.toml: Permission denied")
t = threading.Thread(target=lambda: 1 / 0, name="capture")
t.start(); t.join()
raise RuntimeError("boom")
"""


def _crash(tmp_path, match_stderr):
    err_path = tmp_path / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with open(err_path, "w") as err:
        if match_stderr:
            st = os.fstat(err.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        result = subprocess.run([sys.executable, "-c", CRASH], stderr=err, env=env, timeout=60)
    assert result.returncode == 1
    return err_path.read_text().splitlines()


def test_fatal_errors_reach_the_journal_as_errors(tmp_path):
    """Written outside logging, these lines would be filed at journald's default, info (6),
    and `journalctl -u edgecam -p err` would not say why the service died."""
    lines = _crash(tmp_path, match_stderr=True)
    assert lines[0] == "<3>edgecam: error: cannot read config file /etc/edgecam/config.toml: Permission denied"
    # Uncaught exceptions, in a thread and in the main thread: every line of both tracebacks.
    assert all(ln.startswith(("<2>", "<3>")) for ln in lines), lines
    assert any("uncaught exception in capture" in ln for ln in lines)
    assert any("ZeroDivisionError" in ln for ln in lines) and lines[-1] == "<2>RuntimeError: boom"


def test_fatal_errors_on_a_terminal_stay_plain(tmp_path):
    lines = _crash(tmp_path, match_stderr=False)
    assert lines[0] == "edgecam: error: cannot read config file /etc/edgecam/config.toml: Permission denied"
    assert lines[-1] == "RuntimeError: boom" and not any(ln.startswith("<") for ln in lines)


def test_the_command_lines_error_reaches_the_journal_as_an_error(tmp_path):
    """The real `edgecam run` with a model that is not there, as the service would run it."""
    err_path = tmp_path / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with open(err_path, "w") as err:
        st = os.fstat(err.fileno())
        env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        result = subprocess.run([sys.executable, "-m", "edgecam", "run", "--model",
                                 str(tmp_path / "absent.tflite"), "--source", str(tmp_path)],
                                stderr=err, stdout=subprocess.DEVNULL, env=env, timeout=120)
    lines = err_path.read_text().splitlines()
    assert result.returncode == 2
    assert lines and lines[-1].startswith("<3>edgecam: error: ") and "absent.tflite" in lines[-1], lines
