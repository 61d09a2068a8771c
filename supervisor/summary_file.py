"""The `--summary PATH` file: checked when the run starts, written when it ends.

A run can last days; finding out at its end that the summary cannot be written loses it. So the
path is checked at start (a directory, a folder that is a file, an unwritable folder: exit 2 with
one line), and at exit a write that still fails is said plainly, the summary kept in the log.

The file is written like any other output: replaced atomically (a reader never sees half of it),
with the permissions the umask gives a new file. A path that is a symbolic link is written through
(its target is replaced), and a special file (a pipe, a device such as /dev/stdout) is written
into, never replaced by a regular file.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from supervisor.errors import ConfigError


def check_summary_path(path: Path) -> Path:
    """The file a run will write its summary to; raises ConfigError (exit 2) when it cannot be."""
    shown = str(path)
    path = path.expanduser()
    target = path.resolve() if path.is_symlink() else path
    if target.is_dir():
        raise ConfigError(f"--summary {shown}: is a directory — give a file path")
    if target.exists():
        if not os.access(target, os.W_OK):
            raise ConfigError(f"--summary {shown}: not writable — choose another path")
        if not stat.S_ISREG(target.stat().st_mode):
            return target  # a pipe or a device: written into at exit
    folder = target.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(
            f"--summary {shown}: {folder} is a file, not a folder — choose another path"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"--summary {shown}: cannot write in {folder} — choose another path")
    return target


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """Write the summary (see the module docstring). Raises OSError when it cannot."""
    path = path.expanduser()
    if path.is_symlink():
        path = path.resolve()
    text = json.dumps(summary, indent=2) + "\n"
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        with path.open("w", encoding="utf-8") as special:
            special.write(text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
