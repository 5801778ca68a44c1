"""Files and folders for outputs: a file a reader sees whole or not at all, a folder made or
one clear error."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Optional

from .errors import EdgecamError


def write_atomic(path: Path, data: bytes, *, durable: bool = False, mode: Optional[int] = None) -> None:
    """Write `data` to a temporary file beside `path`, then rename it over `path`.

    `durable`: flush it to the storage before the rename, so a power cut leaves the old file
    or the whole new one (costs a flush: for downloads, not for a file per frame).
    `mode`: the file's permissions; by default those a plain open gives (the umask's).
    The temporary file is removed when writing fails.
    """
    # Unique per thread: two sinks writing the same name never share a temporary file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def make_dir(folder: Path) -> None:
    """Create `folder` and its parents (fine when it exists); an EdgecamError naming it and
    the reason when it cannot be made (a file in the way, no permission)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgecamError(f"cannot create folder {folder}: {exc.strerror}") from None
